"""Whether a built CT-RATE-VQA folder is complete: its ``build_manifest.json`` says so.

The builder writes ``status: in_progress`` when it starts and ``status: complete`` as its last
step. Publishing, training and evaluation all read that one field, here; a folder without a
manifest (a dataset the user made another way, or a Hub id) has nothing to say and passes.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import UserError
from .names import MANIFEST_NAME

COMPLETE = "complete"  # the builder's last write to the manifest


class IncompleteBuildError(UserError):
    """A built folder whose manifest says the build did not finish (or cannot be read)."""


def build_problem(folder: str | Path) -> str | None:
    """Why ``folder`` is not a complete build (one line), or None: complete, or no manifest."""
    path = Path(folder).expanduser() / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return f"{path} cannot be read ({type(err).__name__}); rebuild the dataset"
    status = manifest.get("status") if isinstance(manifest, dict) else None
    if status != COMPLETE:
        return (
            f"{path} says the build is {status!r}, not {COMPLETE!r}: re-run the build (it resumes)"
        )
    return None


def check_build_complete(
    folder: str | Path, allow_incomplete: bool = False, option: str = "--allow-incomplete-build"
) -> None:
    """Refuse a local build folder whose manifest says it is incomplete, unless the user allows
    it with ``option`` (named in the message)."""
    if allow_incomplete or not Path(folder).expanduser().is_dir():
        return
    problem = build_problem(folder)
    if problem:
        raise IncompleteBuildError(f"{problem}, or pass {option} to use it as it is")


__all__ = ["COMPLETE", "IncompleteBuildError", "build_problem", "check_build_complete"]
