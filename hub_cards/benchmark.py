"""``eval.yaml``: declares CT-RATE-VQA as a Hub Benchmark that Inspect (inspect-ai) can run, so
that model repos' ``.eval_results`` entries aggregate into a leaderboard on the dataset page.

One task per classification config (``zoom``, ``plain``), on the test split of that config's Inspect
companion config (``zoom_inspect``, ``plain_inspect``): the same test rows with the image as a
``data:image/png;base64,...`` string, the only image form Inspect's ``input_image`` accepts.
Each task keeps the config's name as its ``id``: that is the ``task_id`` the ``.eval_results``
entries of model repos refer to. The ``grounding`` config (a box and two points, no choices) is
no multiple-choice task: it has no Inspect companion and is left out of ``eval.yaml``.

Only the keys of Inspect's ``HFTask`` (``inspect_ai/_eval/task/hf.py``, extra keys forbidden)
are written: ``id``, ``config``, ``split``, ``field_spec`` (``input``, ``input_image``,
``target`` = the ClassLabel index, ``choices`` = the class names in label order), ``solvers``
and ``scorers``. The ``choice`` scorer's accuracy is micro accuracy, the paper's measure.

A user runs it with ``inspect eval hf/ORG/NAME --model PROVIDER/MODEL`` (all tasks) or
``inspect eval hf/ORG/NAME/zoom ...`` (one task).
"""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from common.names import GROUNDING_CONFIG

EVAL_FILE = "eval.yaml"
EVALUATION_FRAMEWORK = "inspect-ai"  # the framework the Hub's Benchmark registry expects
TEST_SPLIT = "test"
INSPECT_SUFFIX = "_inspect"  # ours: `<config>_inspect` holds `<config>`'s test rows for Inspect
IMAGE_URI_COLUMN = "image_data_uri"  # ours: the data-URI column of the Inspect configs
PAPER_TEST_ROWS = 15_507  # paper: 8:2 split, 15,507 test slices
BASE64_RATIO = 4 / 3  # base64 writes 3 bytes as 4 characters
# Inspect's `multiple_choice` solver lists the options as letters; `choice` scores the letter
SOLVERS = [{"name": "multiple_choice"}]
SCORERS = [{"name": "choice"}]
IMAGE_MIME = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}


def inspect_config(config: str) -> str:
    """The name of ``config``'s Inspect companion config."""
    return f"{config}{INSPECT_SUFFIX}"


def data_uri(image: bytes) -> str:
    """``data:image/png;base64,...`` for PNG (or JPEG) bytes."""
    mime = next((m for magic, m in IMAGE_MIME.items() if image.startswith(magic)), None)
    if mime is None:
        raise ValueError(f"image bytes are neither PNG nor JPEG (start {image[:8]!r})")
    return f"data:{mime};base64,{base64.b64encode(image).decode('ascii')}"


def eval_spec(manifest: dict) -> dict:
    """The benchmark declaration for a built CT-RATE-VQA folder, from its manifest."""
    tasks = [
        {
            "id": config,
            "config": companion["config"],
            "split": TEST_SPLIT,
            "field_spec": {
                "input": "question",
                "input_image": IMAGE_URI_COLUMN,
                "target": "label",  # ClassLabel index: Inspect turns it into the letter
                "choices": "options",  # the class names in label order
            },
            "solvers": [dict(s) for s in SOLVERS],  # copies: no YAML anchors in the file
            "scorers": [dict(s) for s in SCORERS],
        }
        for config, companion in manifest.get("inspect", {}).items()
        if config != GROUNDING_CONFIG  # not a multiple-choice task
    ]
    if not tasks:
        raise ValueError(
            "the build manifest lists no Inspect config (`inspect`): rebuild the folder with "
            "`python -m dataset_builder build` to write eval.yaml"
        )
    return {
        "name": "CT-RATE-VQA",
        "description": "Chest-CT lesion classification as visual question answering "
        "(MedReason-R1, arXiv 2510.19626); score: accuracy of the `choice` scorer "
        f"on the {TEST_SPLIT} split.",
        "evaluation_framework": EVALUATION_FRAMEWORK,
        "tasks": tasks,
    }


def full_scale_bytes(companion: dict) -> float:
    """What an Inspect config adds at the paper's scale: mean PNG bytes x 4/3 x 15,507."""
    return companion["png_bytes_mean"] * BASE64_RATIO * PAPER_TEST_ROWS


def inspect_card_text(manifest: dict) -> str:
    """The card's lines on the Inspect configs and their size, from the manifest's measurements.

    Size method: the mean PNG size of this build's test rows x 4/3 (base64) x the paper's
    15,507 test rows.
    """
    companions = manifest.get("inspect", {})
    if not companions:
        return ""
    names = ", ".join(f"`{c['config']}`" for c in companions.values())
    lines = [
        f"- {names}: the test rows of {', '.join(f'`{v}`' for v in companions)} with the image "
        f"as a data-URI string (`{IMAGE_URI_COLUMN}`, `data:image/png;base64,...`) instead of "
        "`image`: the form Inspect reads, for the Benchmark tasks of `eval.yaml` "
        "(`inspect eval hf/ORG/NAME --model PROVIDER/MODEL`). Each repeats its config's test "
        "images as base64 text. Size at the paper's scale = mean PNG size of this build's test "
        f"rows x 4/3 (base64) x {PAPER_TEST_ROWS:,} test rows:"
    ]
    for companion in companions.values():
        lines.append(
            f"  - `{companion['config']}`: mean PNG {companion['png_bytes_mean'] / 1e3:,.1f} kB "
            f"over {companion['rows']} test rows, so about "
            f"**{full_scale_bytes(companion) / 1e9:,.2f} GB** at {PAPER_TEST_ROWS:,} rows "
            f"(this build wrote {companion['parquet_bytes'] / 1e6:,.2f} MB of Parquet for it)."
        )
    return "\n".join(lines)


def write_eval_yaml(out: str | Path, manifest: dict) -> Path:
    path = Path(out) / EVAL_FILE
    path.write_text(yaml.safe_dump(eval_spec(manifest), sort_keys=False, allow_unicode=True))
    return path
