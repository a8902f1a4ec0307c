"""What in a run's ``output_dir`` is the run's own: the run writes and removes only those files,
and refuses a folder it writes into that holds anything else (never deleting it).

The run's own entries in ``OUT``: ``run_state.json``, ``run_summary.json``, ``run.lock`` (while
it runs), ``recipes/<stage>.yaml``, and one folder per step: ``sft/`` and ``grpo/`` (the
Trainer's), ``eval/<label>/`` (the evaluator's), ``final/`` (the driver's). Anything else in
``OUT`` (the demo's tiny model, the user's notes) is never touched.

In a step folder, an entry is the run's own when the step's record in ``run_state.json``
lists it (``files``: what the folder held when the step last stopped, recorded by the driver
whether the step finished, failed or was interrupted) or when its name is one the step's
program writes (:data:`STAGE_FILES` & co.: what a step killed together with its driver may
have left before it was listed). Folders are listed with a trailing ``/``; links are entries,
never followed.
"""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path

from common.names import FINAL_DIR_NAME, RUN_RECIPE_NAME, STAGE_RECIPES_DIR, TRAINING_LOGS_NAME
from common.results_schema import RESULTS_FILE

from .evaluation.evaluate import evaluator_files
from .run_arguments import RecipeError

LOCK_FILE = "run.lock"  # held while a driver runs in OUT (common.folder_lock)
SUMMARY_FILE = "run_summary.json"
# what a Trainer (transformers, TRL, DeepSpeed, FSDP, PEFT) and our stages write into a stage's
# output_dir and into each checkpoint-N/ in it
STAGE_FILES = (
    "README.md", "config.json", "generation_config.json", "model.safetensors",
    "model-*-of-*.safetensors", "model.safetensors.index.json", "pytorch_model*.bin",
    "pytorch_model.bin.index.json", "adapter_model.safetensors", "adapter_model.bin",
    "adapter_config.json", "chat_template.jinja", "chat_template.json", "tokenizer.json",
    "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.json",
    "merges.txt", "preprocessor_config.json", "processor_config.json",
    "video_preprocessor_config.json", "training_args.bin", "training_summary.json",
    "trainer_state.json", "optimizer.pt", "optimizer.bin", "scheduler.pt", "scaler.pt",
    "rng_state.pth", "rng_state_*.pth", "entropy_ctrl_state.json", "latest", "zero_to_fp32.py",
)  # fmt: skip
# folders of a stage (or a checkpoint) whose whole content the libraries write
STAGE_TREES = ("runs", "completions", "global_step*", "pytorch_model_fsdp_*", "optimizer_*")
CHECKPOINT = re.compile(r"^checkpoint-\d+/")
EVAL_FILES = evaluator_files()  # the evaluator's own list
FINAL_FILES = (
    RUN_RECIPE_NAME, TRAINING_LOGS_NAME, RESULTS_FILE, SUMMARY_FILE, "*_loss.png",
    "*_reward.png", ".eval_results/", ".eval_results/*.yaml",
)  # fmt: skip


def step_kind(step: str) -> str:
    """'stage', 'eval' or 'final': which program writes the step's folder."""
    if step == FINAL_DIR_NAME:
        return "final"
    return "eval" if step.startswith("eval/") else "stage"


def _stage_entry(entry: str) -> bool:
    rest = CHECKPOINT.sub("", entry, count=1)
    if rest == "":  # checkpoint-N/ itself
        return True
    top, slash, _ = rest.partition("/")
    if slash:
        return any(fnmatch.fnmatchcase(top, tree) for tree in STAGE_TREES)
    return any(fnmatch.fnmatchcase(rest, name) for name in STAGE_FILES)


def written_by(kind: str, entry: str) -> bool:
    """Whether ``entry`` (a path in a step folder, a folder with a trailing '/') has a name that
    the step's program writes."""
    if kind == "eval":
        return any(fnmatch.fnmatchcase(entry, name) for name in EVAL_FILES)
    if kind == "final":
        top = entry.split("/")[0]
        return any(fnmatch.fnmatchcase(entry, name) for name in FINAL_FILES) or (
            "/" not in entry and _stage_entry(top)
        )
    return _stage_entry(entry)


def folder_entries(folder: Path) -> list[str]:
    """Every entry under ``folder``, relative, sorted; folders end in '/'; links are not
    followed."""
    found: list[str] = []
    for root, dirs, files in os.walk(folder):
        base = Path(root).relative_to(folder)
        for name in dirs:
            path = (base / name).as_posix()
            found.append(path if Path(root, name).is_symlink() else path + "/")
        found += [(base / name).as_posix() for name in files]
    return sorted(found)


def foreign_entry(state_record: dict | None, step: str, folder: Path) -> str | None:
    """The first entry of ``folder`` that is not the run's own, or None."""
    if not folder.is_dir() or folder.is_symlink():
        return "" if folder.exists() or folder.is_symlink() else None
    listed = set((state_record or {}).get("files") or [])
    kind = step_kind(step)
    for entry in folder_entries(folder):
        if entry not in listed and not written_by(kind, entry):
            return entry
    return None


def check_step_folder(state_record: dict | None, step: str, folder: Path) -> None:
    """Refuse a step folder holding an entry the run did not write (or a file in its place)."""
    entry = foreign_entry(state_record, step, folder)
    if entry == "":
        raise RecipeError(
            f"{folder} is not a folder, and the run writes its '{step}' step there: move it "
            "away or choose another output_dir"
        )
    if entry is not None:
        raise RecipeError(
            f"{folder / entry} was not written by this run (its '{step}' step folder holds it): "
            "move it out of that folder, then run the same command again; nothing was changed"
        )


def remove_own(state_record: dict | None, step: str, folder: Path) -> None:
    """Delete the run's own entries of a step folder (after :func:`check_step_folder`), then
    the folder if it is left empty; anything else stays."""
    if not folder.is_dir():
        return
    listed = set((state_record or {}).get("files") or [])
    kind = step_kind(step)
    for entry in reversed(folder_entries(folder)):  # contents before their folder
        if entry not in listed and not written_by(kind, entry):
            continue
        path = folder / entry
        if entry.endswith("/"):
            if not any(path.iterdir()):
                path.rmdir()
        else:
            path.unlink()
    if not any(folder.iterdir()):
        folder.rmdir()


def check_output_dir(output_dir: str | Path) -> None:
    """Refuse an output_dir that cannot be a folder of this run: a file, or a path under a
    file, or under a folder it cannot write in."""
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise RecipeError(
            f"output_dir {output_dir} is a file, not a folder: choose a new folder (or the "
            "folder of an earlier run)"
        )
    existing = next((p for p in [path, *path.parents] if p.exists()), None)
    if existing is None:
        return
    if not existing.is_dir():
        raise RecipeError(
            f"output_dir {output_dir} lies under {existing}, which is a file: choose another "
            "output_dir"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RecipeError(
            f"output_dir {output_dir}: {existing} cannot be written by this user; choose "
            "another output_dir"
        )


def make_folder(path: Path) -> list[Path]:
    """``mkdir -p path``; return the folders it created, deepest first (for
    :func:`remove_if_empty`)."""
    missing = [p for p in [path, *path.parents] if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    return missing


def remove_if_empty(folders: list[Path]) -> None:
    """Remove the folders :func:`make_folder` created that are still empty (a run that stopped
    before writing anything leaves nothing behind)."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (or already gone): kept
            return


def check_run_files(output_dir: Path, steps: dict[str, dict], stage_names: tuple[str, ...]) -> None:
    """Refuse run-level files of ``output_dir`` that this run did not write: a
    ``run_summary.json`` without the run's state, a stage recipe of a stage the state does not
    know. ``steps``: the run state's records."""
    summary = output_dir / SUMMARY_FILE
    if summary.exists() and not steps:
        raise RecipeError(
            f"{summary} was not written by a run of this folder (there is no run state beside "
            "it): move it away or choose another output_dir"
        )
    for stage in stage_names:
        recipe = output_dir / STAGE_RECIPES_DIR / f"{stage}.yaml"
        if (recipe.exists() or recipe.is_symlink()) and stage not in steps:
            raise RecipeError(
                f"{recipe} was not written by this run (its state has no '{stage}' step): move "
                "it away or choose another output_dir"
            )


__all__ = [
    "LOCK_FILE", "SUMMARY_FILE", "check_output_dir", "check_run_files", "check_step_folder",
    "folder_entries", "foreign_entry", "make_folder", "remove_if_empty", "remove_own",
    "step_kind", "written_by",
]  # fmt: skip
