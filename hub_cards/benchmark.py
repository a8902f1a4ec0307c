"""``eval.yaml``: declares CT-RATE-VQA as a Hub Benchmark, so that model repos' ``.eval_results``
entries aggregate into a leaderboard on the dataset page.

One task per config (``zoom``, ``plain``) on the test split; the metric is accuracy (micro,
the share of correctly answered questions). Field names follow the Hub's eval-results
documentation as of 2026 (Inspect-AI based, ``evaluation_framework`` required); the task ids
are what ``.eval_results/*.yaml`` entries refer to as ``task_id``.
"""

from __future__ import annotations

from pathlib import Path

import yaml

EVAL_FILE = "eval.yaml"
EVALUATION_FRAMEWORK = "inspect-ai"  # the framework the Hub's Benchmark registry expects
METRIC = "accuracy"  # micro accuracy over the test split (MedReason-R1 Table 1)
TEST_SPLIT = "test"


def eval_spec(manifest: dict) -> dict:
    """The benchmark declaration for a built CT-RATE-VQA folder, from its manifest."""
    classes = manifest["class_map"]["classes"]
    tasks = []
    for config in manifest["configs"]:
        tasks.append(
            {
                "id": config,
                "config": config,
                "split": TEST_SPLIT,
                "field_spec": {
                    "input": "question",
                    "input_image": "image",
                    "target": "answer",
                    "choices": "options",
                },
                "metric": METRIC,
                "description": f"Seven-class lesion VQA on the `{config}` images "
                f"({', '.join(classes)}); score = {METRIC} on the {TEST_SPLIT} split.",
            }
        )
    return {
        "name": "CT-RATE-VQA",
        "description": "Chest-CT lesion classification as visual question answering "
        "(MedReason-R1, arXiv 2510.19626).",
        "evaluation_framework": EVALUATION_FRAMEWORK,
        "tasks": tasks,
    }


def write_eval_yaml(out: str | Path, manifest: dict) -> Path:
    path = Path(out) / EVAL_FILE
    path.write_text(yaml.safe_dump(eval_spec(manifest), sort_keys=False, allow_unicode=True))
    return path
