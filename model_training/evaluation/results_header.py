"""The keys every task's ``results.json`` starts with (``report_header``): the model (its name,
readable name, parameter count and, for a trained checkpoint, its training history as
``model_training.training_history`` reads it), the data, the task, the prompts, the decoding,
the image ablation (``image_ablation``: ``{"mode": "none" | "blank" | "shuffle", "seed": int or
null}``, ``image_ablation.py``).

results.json is published (a run's ``final/``, a results repo), so it never holds a local path:
the model and the dataset are recorded as a Hub id as it is, a snapshot in the local Hub cache by
its repo id, any other local folder by its name only (``source_name``); the evaluator's own
``eval_settings.json``, which is not published, keeps the local paths that resuming compares.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from common.hub_ids import is_hub_id
from common.results_schema import IMAGE_ABLATION, NO_ABLATION

from .. import prompts
from ..training_history import display_name, recorded_name, training_record
from .decoding import Decoding
from .image_ablation import ablation_record
from .options import DEFAULT_ABLATION_SEED

SAFETENSORS_INDEX = "model.safetensors.index.json"  # a sharded checkpoint's weight map
SAFETENSORS_WEIGHTS = "model.safetensors"  # a single-file checkpoint's weights
# a snapshot folder of the Hub cache: .../models--ORG--NAME/snapshots/<revision>[/subfolder]
CACHE_SNAPSHOT = re.compile(r"^(?:models|datasets|spaces)--(.+)$")


def source_name(name: str) -> str:
    """A model or dataset as results.json records it: a Hub id as it is; a snapshot folder of
    the Hub cache (where baselines are downloaded) by its repo id; any other local path by its
    folder's name only (``training_history.recorded_name``)."""
    parts = Path(name).parts
    for i, part in enumerate(parts[:-2]):
        match = CACHE_SNAPSHOT.match(part)
        if match and parts[i + 1] == "snapshots" and Path(name).exists():
            return match.group(1).replace("--", "/")
    return recorded_name(name)


def checkpoint_folder(model: str) -> Path | None:
    """The folder of ``model``'s files: a local folder, or a Hub model's snapshot already in the
    local cache (never downloaded here); None when there is none."""
    if Path(model).is_dir():
        return Path(model)
    if not is_hub_id(model):
        return None
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model, local_files_only=True))
    except Exception:  # noqa: BLE001  (not in the cache: the size stays unknown)
        return None


def parameter_count(model: str) -> int | None:
    """The number of parameters in ``model``'s safetensors weights (read from their headers:
    no tensor is loaded); None for a checkpoint without them (or not in the local cache)."""
    from safetensors import safe_open

    folder = checkpoint_folder(model)
    if folder is None:
        return None
    try:
        index = json.loads((folder / SAFETENSORS_INDEX).read_text())
    except (OSError, ValueError):  # a single-file checkpoint (or an unreadable index)
        index = None
    weight_map = index.get("weight_map", {}) if isinstance(index, dict) and index else None
    names = sorted(set(weight_map.values())) if weight_map is not None else [SAFETENSORS_WEIGHTS]
    files = [folder / name for name in names]
    if not files or not all(path.is_file() for path in files):
        return None
    total = 0
    for path in files:
        with safe_open(str(path), "pt") as weights:
            for key in weights.keys():  # noqa: SIM118  (safe_open is not a mapping)
                shape = weights.get_slice(key).get_shape()
                total += int(torch.Size(shape).numel())
    return total


def model_record(model: str) -> dict:
    """The results.json keys about the evaluated model: ``display_name``,
    ``model_parameters`` (None when unknown) and, for a trained checkpoint, ``training``."""
    training = training_record(model)
    record = {
        "display_name": display_name(model, training),
        "model_parameters": parameter_count(model),
    }
    return record | ({"training": training} if training else {})


def dataset_revision(dataset: str, revision: str | None = None) -> str | None:
    """The Hub commit of a dataset given by id (None for a local folder or when offline)."""
    if Path(dataset).exists():
        return None
    try:
        from huggingface_hub import HfApi

        return HfApi().dataset_info(dataset, revision=revision).sha
    except Exception:  # noqa: BLE001  (offline, gated or unknown: the revision stays unknown)
        return revision


def report_header(settings: dict, revision: str | None, task: str) -> dict:
    """The results.json keys every task's report starts with: model, dataset (a Hub id, or a
    local folder's name), task, prompts, decoding, image ablation (``settings`` without one:
    the real images)."""
    return {
        "model": source_name(settings["model"]),
        **model_record(settings["model"]),
        "dataset": source_name(settings["dataset"]),
        "config": settings["config"],
        "split": settings["split"],
        "dataset_revision": dataset_revision(settings["dataset"], revision),
        "task": task,
        "prompts": prompts.record(task),
        "decoding": Decoding(settings["max_new_tokens"], settings["repetition_penalty"]).record(),
        IMAGE_ABLATION: settings.get(IMAGE_ABLATION)
        or ablation_record(NO_ABLATION, DEFAULT_ABLATION_SEED),
    }
