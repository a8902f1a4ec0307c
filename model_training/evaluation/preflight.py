"""The checks the evaluation commands (evaluate, retention, leaderboard, baselines) make before
they write anything or start generating: an output folder they can create or write into, and,
for a push, a Hub that answers (``hub_cards.publish.hub_problem``).

Each returns the problem as one line (or None), or raises the caller's ``UserError`` subclass
with it: the command then exits with status 2 and leaves nothing behind.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

from common.errors import UserError


def output_folder_problem(path: str | Path, option: str) -> str | None:
    """Why ``path`` cannot be the output folder named by ``option`` (one line), or None: it is
    a file, lies inside a file, or its nearest existing folder cannot be written."""
    folder = Path(path)  # as the commands write it (a shell has expanded ~ already)
    if folder.exists() and not folder.is_dir():
        return (
            f"{option} {path} is a file, not a folder: give a folder path (new, or a folder "
            "this command wrote)"
        )
    existing = next((p for p in (folder, *folder.parents) if p.exists() or p.is_symlink()), None)
    if existing is not None and not existing.is_dir():
        return f"{option} {path} lies inside {existing}, which is not a folder: give a folder path"
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        return f"{option} {path}: {existing} cannot be written: give a folder you can write to"
    return None


def foreign_entry(folder: Path, own: tuple[str, ...]) -> str | None:
    """The first entry of ``folder`` whose name matches none of the ``own`` patterns (the names
    a command writes there, or leaves alone; a sub-folder is matched as ``name/``), or None."""
    if not folder.is_dir():
        return None
    for entry in sorted(folder.iterdir()):
        name = entry.name + ("/" if entry.is_dir() else "")
        if not any(fnmatch.fnmatchcase(name, pattern) for pattern in own):
            return name
    return None


def check_output_folder(
    path: str | Path, option: str, error: type[UserError], own: tuple[str, ...] | None = None
) -> None:
    """Raise ``error`` when ``path`` cannot be the output folder (``output_folder_problem``),
    or, given the names the command writes there (``own``, glob patterns), when it holds a
    file of anyone else's: the command would overwrite or mix with it."""
    problem = output_folder_problem(path, option)
    if problem:
        raise error(problem)
    entry = foreign_entry(Path(path), own) if own is not None else None
    if entry is not None:
        raise error(
            f"{option} {path} holds {entry}, which this command did not write: give a new or "
            "empty folder, or one this command wrote (its files are never mixed with others)"
        )


__all__ = ["check_output_folder", "foreign_entry", "output_folder_problem"]
