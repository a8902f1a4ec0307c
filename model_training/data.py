"""CT-RATE-VQA rows -> SFT conversations and GRPO prompts, read with ``load_dataset``.

``path_or_repo`` is a built folder (``ct-rate-vqa``), or a Hub dataset id. Images are carried
as their PNG bytes (never decoded and re-encoded here); TRL decodes them when it batches.
"""

from __future__ import annotations

import os
from pathlib import Path

import datasets

from .configs import ConfigError
from .prompts import prompt_messages, sft_target

IMAGES = datasets.List(datasets.Image())
COLUMNS = ("image", "question", "answer", "options")  # what the SFT and GRPO rows read


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
) -> datasets.Dataset:
    """One split of CT-RATE-VQA; ``limit`` keeps the first rows (for smoke runs).

    Raises:
        DatasetError: one line naming the dataset, config and split, and what exists (the
            folder missing, the configs or splits available, the columns lacking).
    """
    where = f"dataset {path_or_repo!r} (config {config!r}, split {split!r})"
    if _looks_local(path_or_repo) and not Path(path_or_repo).expanduser().is_dir():
        raise DatasetError(f"{where}: no such folder")
    try:
        ds = datasets.load_dataset(path_or_repo, config, split=split, revision=revision)
    except (ValueError, OSError) as error:  # unknown config / split, not found, unreachable
        lines = str(error).strip().splitlines() or [type(error).__name__]
        local = Path(path_or_repo).expanduser().is_dir()
        hint = "" if local else " (no local folder of that name: read as a Hub dataset id)"
        raise DatasetError(f"{where}: {lines[0]}{hint}") from error
    missing = [c for c in COLUMNS if c not in ds.column_names]
    if missing:
        raise DatasetError(f"{where}: no column(s) {missing}; it has {ds.column_names}")
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    return ds.cast_column("image", datasets.Image(decode=False))


def to_sft(ds: datasets.Dataset, mode: str, target: str) -> datasets.Dataset:
    """Rows -> {"images": [image], "messages": system, user (image + question), assistant}."""

    def convert(row: dict) -> dict:
        messages = prompt_messages(row, mode) + [
            {"role": "assistant", "content": [{"type": "text", "text": sft_target(row, target)}]}
        ]
        return {"images": [row["image"]], "messages": messages}

    out = ds.map(convert, remove_columns=ds.column_names, desc="SFT conversations")
    return out.cast_column("images", IMAGES)


def to_grpo(ds: datasets.Dataset, mode: str) -> datasets.Dataset:
    """Rows -> {"prompt": messages, "images": [image], "answer", "options"} (reward inputs)."""

    def convert(row: dict) -> dict:
        return {"prompt": prompt_messages(row, mode), "images": [row["image"]]}

    keep = {"answer", "options"}
    out = ds.map(
        convert, remove_columns=[c for c in ds.column_names if c not in keep], desc="GRPO prompts"
    )
    return out.cast_column("images", IMAGES)
