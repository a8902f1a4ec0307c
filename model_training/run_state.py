"""What a run has done: one file, ``OUT/run_state.json``, and the decision per step.

Per step: a key (a hash of the step's settings and of the versions of the steps it starts from:
their keys and when they finished) and a status. ``--resume`` keeps a finished step whose key is
unchanged, continues a stage from its last complete checkpoint and an evaluation from its
predictions; ``--overwrite`` redoes it; without either, a step an earlier run started is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Literal

from common.folder_lock import FolderLock

from .run_arguments import RecipeError, RunArguments
from .run_files import check_step_folder

STATE_FILE = "run_state.json"
STATUSES = ("running", "done")
Decision = Literal["skip", "continue", "fresh"]


class RunState:
    """``run_state.json``: {step: {"key", "inputs", "status": "running" | "done", "command"}}.

    A step's ``inputs`` is the hash of the keys of the steps it starts from; its ``key`` adds
    its own settings. A step is current when it is done with the key this command computes."""

    def __init__(self, output_dir: Path):
        self.path = output_dir / STATE_FILE
        self.steps: dict[str, dict] = read_state(self.path)
        self.lock: FolderLock | None = None  # the run's lock (run.run), handed to each step

    def key(self, step: str) -> str | None:
        record = self.steps.get(step)
        return record.get("key") if record and record.get("status") == "done" else None

    def version(self, step: str) -> str | None:
        """What a later step's inputs hash takes from ``step``: its key and when it finished,
        so that redoing a step with the same settings (``--overwrite --stage sft``) still
        changes what the steps after it start from."""
        key = self.key(step)
        return None if key is None else f"{key}@{self.steps[step].get('finished')}"

    def finish(self, step: str) -> None:
        self.record(step, status="done", finished=time.time_ns())

    def record(self, step: str, **fields: object) -> None:
        """Update ``step``'s record and write the file whole (a new file, then renamed over
        the old one: a run killed while it writes leaves the old state, never half of it)."""
        self.steps[step] = {**self.steps.get(step, {}), **fields}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(json.dumps(self.steps, indent=1))
        os.replace(partial, self.path)


def read_state(path: Path) -> dict[str, dict]:
    """The records of ``path`` (none when it does not exist); a file that is not a run state
    of ours is refused, never overwritten."""
    if not path.exists() and not path.is_symlink():
        return {}
    try:
        steps = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        steps = err
    if not isinstance(steps, dict) or not all(
        isinstance(r, dict) and r.get("status", "running") in STATUSES for r in steps.values()
    ):
        raise RecipeError(
            f"{path} is not the state of a model_training.run run (it cannot be read as one): "
            "move it away or choose another output_dir"
        )
    return steps


def hash_of(*parts: object) -> str:
    """A short, stable hash of JSON-able ``parts``."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_ours(state: RunState, step: str, folder: Path) -> None:
    """Refuse a step folder that holds anything this run did not write (never delete those):
    the folder of a step the state does not know must be empty or absent; a known step's
    holds only the run's own entries (``run_files``)."""
    if step in state.steps:
        check_step_folder(state.steps[step], step, folder)
    elif folder.is_symlink() or folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise RecipeError(
            f"{folder} exists but this run did not write it (no '{step}' in {state.path}); "
            "move it away or choose another output_dir"
        )


def model_fingerprint(model: str | None) -> list | None:
    """What identifies a local start model's current files (name, size and modification time
    of its config and weights), so that a step starting from a folder another run rewrote
    (paper_tables' ``grpo_from``) starts afresh; None for a Hub id or no model."""
    folder = Path(model) if model else None
    if folder is None or not folder.is_dir():
        return None
    files = sorted(p for p in folder.iterdir() if p.name == "config.json" or p.suffix in (
        ".safetensors", ".json") and p.name.startswith(("model", "adapter")))  # fmt: skip
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def plan_step(
    state: RunState, run: RunArguments, step: str, folder: Path, settings: object,
    inputs: list[str], start: list | None = None,
) -> tuple[Decision, str, str]:  # fmt: skip
    """Decide a step: ('skip' | 'continue' | 'fresh', key, inputs hash). ``continue`` keeps
    the step's partial work (checkpoints, predictions); ``fresh`` deletes what it wrote. The
    inputs hash covers the versions of the ``inputs`` steps (:meth:`RunState.version`) and the
    ``start`` model's fingerprint."""
    inputs_hash = hash_of([state.version(name) for name in inputs], *([start] if start else []))
    key = hash_of(settings, inputs_hash)
    record = state.steps.get(step)
    if record is None:
        check_ours(state, step, folder)
        return "fresh", key, inputs_hash
    if not (run.resume or run.overwrite):
        raise RecipeError(
            f"{folder} holds the '{step}' step of an earlier run: pass --resume to keep and "
            "continue it, or --overwrite to redo it"
        )
    if (
        run.resume
        and record.get("status") == "done"
        and record.get("key") == key
        and folder.exists()
    ):
        return "skip", key, inputs_hash
    if run.resume and record.get("inputs") == inputs_hash:
        return "continue", key, inputs_hash
    if run.resume:  # say why --resume does not keep it
        changed = [f"the step(s) {', '.join(inputs)}"] * bool(inputs)
        changed += ["its start model's files"] * bool(start)
        print(
            f"{step}: --resume starts it afresh: what it starts from changed since the earlier "
            f"run ({' or '.join(changed) or 'its inputs'}; a relative model or dataset path is "
            "read from the working folder)",
            file=sys.stderr,
            flush=True,
        )
    return "fresh", key, inputs_hash


__all__ = [
    "STATE_FILE", "RunState", "check_ours", "hash_of", "model_fingerprint", "plan_step",
    "read_state",
]  # fmt: skip
