"""A trained checkpoint's history, written by the stage that trains it and read for results.json.

Each training stage writes into its ``training_summary.json`` a ``history`` list: the stages the
model went through, in order (:func:`stage_history`). A stage's history is the history recorded
by the model it started from (``model_name_or_path``, where that is a local folder holding one)
plus its own entry, so a GRPO started from another run's SFT model records both stages. An
entry holds the facts the stage knew:

    stage             sft or grpo
    run               the run's name: the output folder's, or its parent's where the folder is
                      named like a stage (sft/, grpo/, final/)
    base_model        the model the stage started from: a Hub id, or a local folder's name
    dataset           the training data: a Hub id, or a local folder's name
    dataset_config    the config(s) its rows came from (a grounding stage: its grounding config;
                      multitask: both, as ``zoom+grounding``)
    task              classification, grounding or multitask
    trainable_scope   the parameters it trained
    reward_funcs, reward_weights   GRPO's rewards

Published files never hold a local path: a local folder is recorded by its name only. A run's
``final/`` carries its last stage's file; :func:`training_record` reads any of these folders
and never looks at the folder layout or the recipes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from common.hub_ids import is_hub_id
from common.names import FINAL_DIR_NAME, STAGE_LABELS, TRAINING_SUMMARY_NAME

if TYPE_CHECKING:
    from .configs import CTRateVQAArguments

HISTORY_KEY = "history"  # the key of training_summary.json holding the stages, in order
REWARD_KEYS = ("reward_funcs", "reward_weights")


def json_or_none(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def recorded_name(name: str) -> str:
    """A Hub id as it is; anything else (a local folder) by its last path part only."""
    return name if is_hub_id(name) else Path(name).name


def run_name(output_dir: str | Path) -> str:
    """The name of the run a stage's output folder belongs to: the folder's own name, or its
    parent's where it is named like a stage or a run's final folder."""
    folder = Path(output_dir).resolve()
    generic = folder.name == FINAL_DIR_NAME or folder.name in STAGE_LABELS
    return folder.parent.name if generic else folder.name


def recorded_history(model: str | Path) -> list[dict] | None:
    """The history a local folder's training_summary.json records; None for a Hub id, a folder
    without one, or a record that is not a list of stage entries."""
    folder = Path(model)
    summary = json_or_none(folder / TRAINING_SUMMARY_NAME) if folder.is_dir() else None
    history = (summary or {}).get(HISTORY_KEY)
    if not isinstance(history, list) or not history:
        return None
    return history if all(_is_entry(entry) for entry in history) else None


def _is_entry(entry: object) -> bool:
    """A history entry with what training_record reads: a stage, a run and a data config."""
    return (
        isinstance(entry, dict)
        and entry.get("stage") in STAGE_LABELS
        and all(isinstance(entry.get(key), str) for key in ("run", "dataset_config"))
    )


def stage_history(
    stage: str,
    args: CTRateVQAArguments,
    start_model: str,
    output_dir: str | Path,
    reward_funcs: list[str] | None = None,
    reward_weights: list[float] | None = None,
) -> list[dict]:
    """The history a stage writes: ``start_model``'s recorded history plus this stage's entry
    (stage ``stage`` trained from ``start_model`` into ``output_dir`` with ``args``)."""
    entry = {
        "stage": stage,
        "run": run_name(output_dir),
        "base_model": recorded_name(start_model),
        "dataset": recorded_name(str(args.dataset_name)),
        "dataset_config": "+".join(args.config_of(task) for task in args.tasks),
        "task": args.task,
        "trainable_scope": args.trainable_scope,
    }
    rewards = dict(zip(REWARD_KEYS, (reward_funcs, reward_weights), strict=True))
    entry |= {key: list(value) for key, value in rewards.items() if value is not None}
    return [*(recorded_history(start_model) or []), entry]


def training_record(model: str) -> dict | None:
    """What a local checkpoint folder records about its training, for results.json: the run's
    name, the stages in order, the training data config of the first stage (and of each), the
    GRPO reward names and weights of the last GRPO stage, the last stage's trainable scope and
    task. None for a Hub model or a folder without a recorded history."""
    stages = recorded_history(model)
    if stages is None:
        return None
    record = {
        "run": stages[-1]["run"],
        "stages": [s["stage"] for s in stages],
        "dataset_config": stages[0]["dataset_config"],
        "dataset_configs": {s["stage"]: s["dataset_config"] for s in stages},
    }
    grpo = [s for s in stages if s["stage"] == "grpo"]
    if grpo:
        record |= {k: grpo[-1][k] for k in REWARD_KEYS if k in grpo[-1]}
    for key in ("trainable_scope", "task"):  # task: classification, grounding or multitask
        if key in stages[-1]:
            record[key] = stages[-1][key]
    return record


def display_name(model: str, training: dict | None) -> str:
    """A readable name: a Hub id as it is; a trained local checkpoint as ``<run> (SFT+GRPO)``;
    another local folder by its name. Never a local path."""
    if not Path(model).exists():
        return model
    if training:
        return f"{training['run']} ({'+'.join(STAGE_LABELS[s] for s in training['stages'])})"
    return Path(model).resolve().name
