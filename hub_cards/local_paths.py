"""No published file names a local path: the writers' rule and the publisher's check.

Writers record a Hub id as it is and a local folder by its name only
(:func:`without_local_paths` does it for a whole record, e.g. a run's recipe). Before anything is
sent, :func:`local_path_problem` reads every text file of a push and refuses one that names a
local absolute path. What counts as one (:func:`local_path_in`), found at a path boundary only
(never inside a URL, a word or another path: a web address, "and/or", "1/2"):

- a path at or below the pushed folder, the working directory, the home directory or a folder
  above them of two parts or more (a one-part folder such as the temporary, home or root folder
  itself is no local path of the user's, and a tokenizer's vocabulary holds such words);
- any absolute path whose first two parts or more exist on this machine, outside the system
  folders (``SYSTEM_FOLDERS``: the usr, etc, proc, dev, ... folders), whether or not the rest of
  it exists.

A file counts as text when it is at most ``TEXT_LIMIT`` bytes, holds no NUL byte and reads as
UTF-8 (weights, Parquet shards and images do not); a JSON file is also read decoded, so that an
escaped path (non-ASCII characters or slashes written as escapes) is found.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import TypeVar, cast

# ours: the largest file read as text (a Qwen tokenizer.json is about 11 MB)
TEXT_LIMIT = 64 * 1024**2
SNIFF_BYTES = 8192  # a binary file has a NUL byte this early (git's own test)
# top-level folders of the system: paths below them name no user's folder (/usr/bin, /dev/null)
SYSTEM_FOLDERS = frozenset(
    {"bin", "boot", "dev", "etc", "lib", "lib32", "lib64", "libx32", "nix", "proc", "run", "sbin",
     "snap", "sys", "usr", "var", "Applications", "Library", "System"}
)  # fmt: skip
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]*")
# an absolute path: "/" not preceded by a character of a word, a path or a URL
_PATH = re.compile(r"(?<![\w.~+\-/%@\\])/[^\s\"'`<>|()\[\]{},;*?=\\]*")
_TRAILING = ".,:;!"  # sentence punctuation after a path
Record = TypeVar("Record")


def is_local_path(value: object) -> bool:
    """Whether ``value`` is a string naming a local absolute path (``/...`` or ``~...``) and
    nothing else: one line, not a URL."""
    if not isinstance(value, str) or not value or "\n" in value or "://" in value:
        return False
    return os.path.isabs(os.path.expanduser(value)) and value.strip() not in ("/", "~")


def without_local_paths(record: Record) -> Record:
    """``record`` (a dict, list or scalar, as JSON or YAML holds it) with every string that is a
    local absolute path replaced by its last part (a folder or file name); Hub ids, relative
    paths and other text are kept as they are."""
    if isinstance(record, dict):
        return cast(Record, {key: without_local_paths(value) for key, value in record.items()})
    if isinstance(record, list | tuple):
        return cast(Record, type(record)(without_local_paths(value) for value in record))
    if is_local_path(record):
        return cast(Record, Path(os.path.expanduser(str(record)).rstrip("/")).name or record)
    return record


def local_roots(*folders: str | Path) -> set[str]:
    """The folders at or below which every path is local: ``folders``, the working directory,
    the home directory and the temporary folder, as given and resolved, and every folder above
    them of two parts or more."""
    bases = [Path(f).absolute() for f in folders]
    bases += [Path.cwd(), Path.home(), Path(tempfile.gettempdir())]
    roots: set[str] = set()
    for base in bases:
        for path in {base, base.resolve()}:
            for folder in (path, *path.parents):
                parts = PurePosixPath(folder).parts[1:]
                if len(parts) > 1:
                    roots.add(str(PurePosixPath("/", *parts)))
    return roots


def _candidates(text: str) -> Iterable[str]:
    """The absolute paths written in ``text`` (URLs left out; ``file://`` URLs read as paths)."""
    text = _URL.sub(lambda m: m.group(0)[7:] if m.group(0).startswith("file:///") else " ", text)
    for match in _PATH.finditer(text):
        token = match.group(0).rstrip(_TRAILING)
        if len(token) > 1:
            yield os.path.normpath(token)


def _is_local(token: str, roots: set[str]) -> bool:
    parts = PurePosixPath(token).parts[1:]
    prefixes = [str(PurePosixPath("/", *parts[:depth])) for depth in range(2, len(parts) + 1)]
    if any(prefix in roots for prefix in prefixes):
        return True
    if not prefixes or parts[0] in SYSTEM_FOLDERS:
        return False
    return any(os.path.lexists(prefix) for prefix in prefixes)


def local_path_in(text: str, roots: set[str]) -> str | None:
    """The first local absolute path ``text`` names (see the module's rules), or None."""
    for token in _candidates(text):
        if _is_local(token, roots):
            return token
    return None


def _strings(value: object) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def text_of(path: Path) -> str | None:
    """The text of ``path`` as the check reads it (a JSON file's decoded strings added), or None
    for a file that is not text."""
    if path.stat().st_size > TEXT_LIMIT:
        return None
    with path.open("rb") as file:
        if b"\0" in file.read(SNIFF_BYTES):  # weights, shards, images: not read further
            return None
        file.seek(0)
        data = file.read()
    if b"\0" in data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if path.suffix == ".json":
        with contextlib.suppress(ValueError):  # not JSON after all: the raw text is read
            text += "\n" + "\n".join(_strings(json.loads(text)))
    return text


def local_path_problem(
    folder: str | Path, files: Iterable[str], also: Iterable[str | Path] = ()
) -> str | None:
    """Why the push of ``files`` (relative to ``folder``) would publish a local path (one line
    naming the file and the path), or None. ``also``: other local folders the push came from
    (a Space's source folder)."""
    folder = Path(folder)
    roots = local_roots(folder, *also)
    for name in files:
        text = text_of(folder / name)
        found = local_path_in(text, roots) if text is not None else None
        if found is not None:
            return (
                f"{folder / name} names the local path {found}: a published file names a local "
                "folder by its name only; remove the path (a run's final/ folder: run the same "
                "`python -m model_training.run` command with --resume to rewrite it), then push "
                "again"
            )
    return None


__all__ = [
    "SYSTEM_FOLDERS",
    "TEXT_LIMIT",
    "is_local_path",
    "local_path_in",
    "local_path_problem",
    "local_roots",
    "text_of",
    "without_local_paths",
]
