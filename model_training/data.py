"""CT-RATE-VQA rows -> SFT conversations and GRPO prompts, read with ``load_dataset``.

``path_or_repo`` is a built folder (``ct-rate-vqa``), or a Hub dataset id. Images are carried
as their PNG bytes (never decoded and re-encoded here); TRL decodes them when it batches.

Two tasks share the conversion (``task`` of :class:`~model_training.configs.CTRateVQAArguments`):

- classification rows (configs zoom / plain): the user turn is the question with its options;
  SFT teaches ``prompts.sft_target``; GRPO rows carry ``answer`` and ``options`` for the rewards.
- grounding rows (config grounding): the user turn is the query (``prompts.prompt_messages``
  under the grounding system prompt, as the evaluator prompts); SFT teaches
  ``grounding.format_answer`` of the row's box and points converted to the MODEL-INPUT frame
  (``grounding.frame_for(processor, image size)``, computed once per distinct image size);
  GRPO rows carry ``target_bbox`` (4 floats) and ``target_points`` ([[x, y], [x, y]]) in that
  frame for MedReasoner's rewards.

Every GRPO row carries ``task``; the SFT and GRPO rows of both tasks share one schema, so the
multitask training set is their concatenation, shuffled with the seed (:func:`mix`).
"""

from __future__ import annotations

import io
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
from PIL import Image

from common.build_status import IncompleteBuildError, check_build_complete
from common.names import CLASSIFICATION_TASK, GROUNDING_TASK

from .configs import ConfigError, CTRateVQAArguments
from .grounding import Frame, format_answer, frame_for
from .prompts import prompt_messages, sft_target, task_of

logger = logging.getLogger(__name__)

IMAGES = datasets.List(datasets.Image())
COLUMNS = ("image", "question", "answer", "options")  # what the classification rows need
GROUNDING_COLUMNS = ("image", "query", "finding", "answer", "bbox", "points", "mask")
TASK_COLUMNS = {CLASSIFICATION_TASK: COLUMNS, GROUNDING_TASK: GROUNDING_COLUMNS}
# how a training stage's recipe or command line allows an incomplete build (CTRateVQAArguments)
INCOMPLETE_BUILD_OPTION = "allow_incomplete_build: true (--allow_incomplete_build)"
# the GRPO rows of both tasks: one schema, so that a multitask set concatenates
GRPO_FEATURES = datasets.Features(
    {
        "task": datasets.Value("string"),
        "answer": datasets.Value("string"),
        "options": datasets.List(datasets.Value("string")),
        "target_bbox": datasets.List(datasets.Value("float64")),
        "target_points": datasets.List(datasets.List(datasets.Value("int64"))),
    }
)


class DatasetError(ConfigError):
    """The recipe's dataset cannot be read: missing folder, config, split or columns."""


def _looks_local(path: str) -> bool:
    """A path rather than a Hub id ``name`` / ``org/name``."""
    return os.path.isabs(path) or path.startswith((".", "~")) or path.count("/") > 1


def load_vqa(
    path_or_repo: str,
    config: str = "zoom",
    split: str = "train",
    limit: int | None = None,
    revision: str | None = None,
    task: str = CLASSIFICATION_TASK,
    allow_incomplete_build: bool = False,
    incomplete_option: str = INCOMPLETE_BUILD_OPTION,
) -> datasets.Dataset:
    """One split of CT-RATE-VQA; ``limit`` keeps the first rows (for smoke runs); ``task``
    names the columns the rows must have. A local folder whose ``build_manifest.json`` says the
    build is incomplete is refused unless ``allow_incomplete_build`` (the message names
    ``incomplete_option``, the caller's spelling of that option).

    Raises:
        DatasetError: one line naming the dataset, config and split, and what exists (the
            folder missing, the configs or splits available, the columns lacking), or the
            manifest of an incomplete build and the option that allows it.
    """
    where = f"dataset {path_or_repo!r} (config {config!r}, split {split!r})"
    if _looks_local(path_or_repo) and not Path(path_or_repo).expanduser().is_dir():
        raise DatasetError(f"{where}: no such folder")
    try:
        check_build_complete(path_or_repo, allow_incomplete_build, incomplete_option)
    except IncompleteBuildError as error:  # the stages report ConfigErrors as one line
        raise DatasetError(f"{where}: {error}") from error
    try:
        ds = datasets.load_dataset(path_or_repo, config, split=split, revision=revision)
    except (ValueError, OSError) as error:  # unknown config / split, not found, unreachable
        lines = str(error).strip().splitlines() or [type(error).__name__]
        local = Path(path_or_repo).expanduser().is_dir()
        hint = "" if local else " (no local folder of that name: read as a Hub dataset id)"
        raise DatasetError(f"{where}: {lines[0]}{hint}") from error
    missing = [c for c in TASK_COLUMNS[task] if c not in ds.column_names]
    if missing:
        rebuild = (
            " (rebuild it with python -m dataset_builder build: it writes the grounding config)"
            if task == GROUNDING_TASK
            else ""
        )
        raise DatasetError(
            f"{where}: no column(s) {missing}; it has {ds.column_names} ({task} rows){rebuild}"
        )
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    ds = ds.cast_column("image", datasets.Image(decode=False))
    if "mask" in ds.column_names:  # the true mask is for evaluation, never decoded here
        ds = ds.cast_column("mask", datasets.Image(decode=False))
    return ds


def load_task_rows(args: CTRateVQAArguments, split: str | None = None) -> dict[str, Any]:
    """{task: its rows} for each task of ``args`` (dataset_limit rows of each at most)."""
    split = split or args.dataset_train_split
    return {
        task: load_vqa(
            args.dataset_name,
            args.config_of(task),
            split,
            args.dataset_limit,
            task=task,
            allow_incomplete_build=args.allow_incomplete_build,
        )
        for task in args.tasks
    }


# -- the model-input frame ----------------------------------------------------------------------


def image_size(image: dict) -> tuple[int, int]:
    """(width, height) of an undecoded ``Image`` value (bytes or path): the header only."""
    source = io.BytesIO(image["bytes"]) if image.get("bytes") else image["path"]
    with Image.open(source) as opened:
        return opened.size


def frames(processor: Any) -> Callable[[tuple[int, int]], Frame]:
    """``size -> Frame`` under ``processor``, each distinct image size computed once."""
    cache: dict[tuple[int, int], Frame] = {}

    def frame(size: tuple[int, int]) -> Frame:
        if size not in cache:
            cache[size] = frame_for(processor, size)
        return cache[size]

    return frame


def model_targets(row: dict, frame: Frame) -> tuple[list[float], list[list[int]]]:
    """A grounding row's box (floats) and points in the model-input frame."""
    box = [float(v) for v in frame.box_to_model(list(row["bbox"]))]
    return box, [frame.point_to_model(list(p)) for p in row["points"]]


def grounding_target(row: dict, target: str, frame: Frame) -> str:
    """The assistant reply SFT teaches for a grounding row: ``prompts.sft_target`` whose answer
    is ``format_answer`` of the row's model-frame box and points."""
    return sft_target(row, target, answer=format_answer(*model_targets(row, frame)))


def _needs_processor(task: str, processor: Any) -> None:
    if task == GROUNDING_TASK and processor is None:
        raise ValueError("grounding rows need the processor: its model-input frame")


# -- conversions --------------------------------------------------------------------------------


def _log_converted(desc: str, converted: int, rows: int) -> None:
    """Debug line: how many of ``rows`` this process converted (the others came from the
    datasets cache another process, or an earlier run, wrote). ``convert`` counts in a closure
    cell, which is 0 when ``datasets`` hashes the function: the fingerprint stays the same."""
    logger.debug(
        "%s: process %s converted %d rows and read %d from the datasets cache",
        desc,
        os.environ.get("RANK", "0"),
        converted,
        rows - converted,
    )


def to_sft(ds: datasets.Dataset, mode: str, target: str, processor: Any = None) -> datasets.Dataset:
    """Rows -> {"images": [image], "messages": system, user (image + question or query),
    assistant}; grounding rows need ``processor`` (the model-input frame)."""
    task = task_of(ds.column_names)
    _needs_processor(task, processor)
    frame = frames(processor) if task == GROUNDING_TASK else None
    converted = [0]  # rows this process converted (0 = all from the datasets cache)

    def convert(row: dict) -> dict:
        converted[0] += 1
        if frame is not None:
            reply = grounding_target(row, target, frame(image_size(row["image"])))
        else:
            reply = sft_target(row, target)
        messages = prompt_messages(row, mode) + [
            {"role": "assistant", "content": [{"type": "text", "text": reply}]}
        ]
        return {"images": [row["image"]], "messages": messages}

    desc = f"SFT conversations ({task})"
    out = ds.map(convert, remove_columns=ds.column_names, desc=desc)
    _log_converted(desc, converted[0], len(ds))
    return out.cast_column("images", IMAGES)


def to_grpo(ds: datasets.Dataset, mode: str, processor: Any = None) -> datasets.Dataset:
    """Rows -> {"prompt": messages, "images": [image], "task", "answer", "options",
    "target_bbox", "target_points"} (the reward inputs; the other task's columns empty)."""
    task = task_of(ds.column_names)
    _needs_processor(task, processor)
    frame = frames(processor) if task == GROUNDING_TASK else None
    converted = [0]  # rows this process converted (0 = all from the datasets cache)

    def convert(row: dict) -> dict:
        converted[0] += 1
        out = {
            "prompt": prompt_messages(row, mode),
            "images": [row["image"]],
            "task": task,
            "answer": row["answer"],
            "options": list(row.get("options") or []),
            "target_bbox": [],
            "target_points": [],
        }
        if frame is not None:
            out["target_bbox"], out["target_points"] = model_targets(
                row, frame(image_size(row["image"]))
            )
        return out

    desc = f"GRPO prompts ({task})"
    out = ds.map(convert, remove_columns=ds.column_names, desc=desc)
    _log_converted(desc, converted[0], len(ds))
    return out.cast(datasets.Features({**out.features, **GRPO_FEATURES, "images": IMAGES}))


def mix(
    parts: dict[str, datasets.Dataset], seed: int, grounding_fraction: float | None = None
) -> datasets.Dataset:
    """One training set from the converted rows of each task: concatenated and shuffled with
    ``seed``; with ``grounding_fraction`` (0 < f < 1), the larger side is first subsampled
    (shuffled with ``seed``, then cut) so that grounding rows make up that share."""
    if len(parts) == 1:
        return next(iter(parts.values()))
    if grounding_fraction is not None:
        grounding, classification = parts[GROUNDING_TASK], parts[CLASSIFICATION_TASK]
        n_g, n_c = len(grounding), len(classification)
        want_g = math.floor(grounding_fraction / (1 - grounding_fraction) * n_c)
        if want_g < n_g:
            grounding = grounding.shuffle(seed=seed).select(range(max(want_g, 1)))
        else:
            want_c = math.floor((1 - grounding_fraction) / grounding_fraction * n_g)
            classification = classification.shuffle(seed=seed).select(range(max(want_c, 1)))
        parts = {CLASSIFICATION_TASK: classification, GROUNDING_TASK: grounding}
    return datasets.concatenate_datasets(list(parts.values())).shuffle(seed=seed)


def sft_dataset(
    args: CTRateVQAArguments, processor: Any, seed: int, rows: dict | None = None
) -> datasets.Dataset:
    """The SFT conversations of the stage's task(s) (``rows``: :func:`load_task_rows`'s)."""
    rows = rows if rows is not None else load_task_rows(args)
    parts = {
        task: to_sft(ds, args.prompt_mode, args.sft_target, processor) for task, ds in rows.items()
    }
    return mix(parts, seed, args.grounding_fraction)


def grpo_dataset(
    args: CTRateVQAArguments, processor: Any, seed: int, rows: dict | None = None
) -> datasets.Dataset:
    """The GRPO prompts of the stage's task(s) (``rows``: :func:`load_task_rows`'s)."""
    rows = rows if rows is not None else load_task_rows(args)
    parts = {task: to_grpo(ds, args.prompt_mode, processor) for task, ds in rows.items()}
    return mix(parts, seed, args.grounding_fraction)
