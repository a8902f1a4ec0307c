"""What a trained checkpoint records about its training, read for results.json: the run's name,
the stages in order, each stage's data config, the GRPO rewards, the trainable scope and the task.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from common.names import (
    FINAL_DIR_NAME,
    GROUNDING_TASK,
    MULTITASK,
    RUN_RECIPE_NAME,
    STAGE_LABELS,
    STAGE_RECIPES_DIR,
    TRAINING_LOGS_NAME,
)


def json_or_none(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _yaml_or_empty(path: Path) -> dict:
    import yaml

    try:
        value = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return value if isinstance(value, dict) else {}


def _default_dataset_config() -> str:
    from .configs import CTRateVQAArguments

    return CTRateVQAArguments.__dataclass_fields__["dataset_config"].default


def _stage_record(stage: str, summary: dict, dataset_config: object) -> dict:
    """One stage's record: the config(s) its rows came from (a grounding stage reads its
    grounding_config; a multitask stage both, as ``zoom+grounding``), its task, its rewards."""
    config = dataset_config or _default_dataset_config()
    task = summary.get("task")
    if task == GROUNDING_TASK and summary.get("grounding_config"):
        config = summary["grounding_config"]
    elif task == MULTITASK and summary.get("grounding_config"):
        config = f"{config}+{summary['grounding_config']}"
    record = {"stage": stage, "dataset_config": config}
    if task:
        record["task"] = task
    for key in ("reward_funcs", "reward_weights", "trainable_scope"):
        if summary.get(key) is not None:
            record[key] = summary[key]
    return record


def _final_stages(folder: Path) -> list[dict]:
    """The stages a run's ``final/`` folder was trained with (training_logs.json, recipe.yaml)."""
    logs = json_or_none(folder / TRAINING_LOGS_NAME) or {}
    recipe = _yaml_or_empty(folder / RUN_RECIPE_NAME)
    stages: list[dict] = []
    for stage, summary in logs.items():
        if stage not in STAGE_LABELS or not isinstance(summary, dict):
            continue
        section = recipe.get(stage) if isinstance(recipe.get(stage), dict) else {}
        if stages and "model_name_or_path" in section:  # started from another model
            stages = []
        config = section.get("dataset_config", recipe.get("dataset_config"))
        stages.append(_stage_record(stage, summary, config))
    return stages


def _stage_folder_stages(folder: Path, depth: int = 0) -> list[dict]:
    """The stages a stage folder (``<run>/sft``, ``<run>/grpo`` or a stage script's output) was
    trained with: its training_summary.json, and the run's stage recipe where there is one
    (whose model_name_or_path leads to the stage it started from)."""
    from common.names import TRAINING_SUMMARY_NAME

    summary = json_or_none(folder / TRAINING_SUMMARY_NAME)
    if not summary or summary.get("stage") not in STAGE_LABELS:
        return []
    stage = summary["stage"]
    recipe = _yaml_or_empty(folder.parent / STAGE_RECIPES_DIR / f"{stage}.yaml")
    if Path(str(recipe.get("output_dir", ""))).name != folder.name:
        recipe = {}  # the recipes/ folder next to it is not this stage's
    earlier: list[dict] = []
    start, out = recipe.get("model_name_or_path"), recipe.get("output_dir")
    if start and out and depth < len(STAGE_LABELS):
        started_from = (folder / os.path.relpath(str(start), str(out))).resolve()
        if started_from.is_dir() and started_from != folder.resolve():
            earlier = _stage_folder_stages(started_from, depth + 1)
    config = summary.get("dataset_config", recipe.get("dataset_config"))
    return [*earlier, _stage_record(stage, summary, config)]


def training_record(model: str) -> dict | None:
    """What a local checkpoint folder records about its training, for results.json: the run's
    name, the stages in order, the training data config of the first stage (and of each), the
    GRPO reward names and weights. None for a Hub model or a folder without training records."""
    folder = Path(model)
    if not folder.is_dir():
        return None
    stages = _final_stages(folder) or _stage_folder_stages(folder)
    if not stages:
        return None
    named = folder.resolve()
    generic = named.name == FINAL_DIR_NAME or named.name in STAGE_LABELS
    record = {
        "run": named.parent.name if generic else named.name,
        "stages": [s["stage"] for s in stages],
        "dataset_config": stages[0]["dataset_config"],
        "dataset_configs": {s["stage"]: s["dataset_config"] for s in stages},
    }
    grpo = [s for s in stages if s["stage"] == "grpo"]
    if grpo:
        record |= {k: grpo[-1][k] for k in ("reward_funcs", "reward_weights") if k in grpo[-1]}
    if "trainable_scope" in stages[-1]:
        record["trainable_scope"] = stages[-1]["trainable_scope"]
    if "task" in stages[-1]:
        record["task"] = stages[-1]["task"]  # classification, grounding or multitask
    return record


def display_name(model: str, training: dict | None) -> str:
    """A readable name: a Hub id as it is; a trained local checkpoint as ``<run> (SFT+GRPO)``;
    another local folder by its name. Never a local path."""
    if not Path(model).exists():
        return model
    if training:
        return f"{training['run']} ({'+'.join(STAGE_LABELS[s] for s in training['stages'])})"
    return Path(model).resolve().name


