"""The in-memory storage model: repos, commits, file entries and git/LFS object ids."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


def git_blob_sha1(data: bytes) -> str:
    """Git's object id of a blob (what the Hub reports as ``oid`` of a regular file)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The Git LFS pointer file the Hub stores in git for an LFS object."""
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
    )


@dataclass(frozen=True)
class _Entry:
    size: int
    blob_oid: str  # git sha1 of the content (regular) or of the LFS pointer (LFS)
    sha256: str | None  # LFS object id, None for a regular file
    commit: str  # commit that last changed this path


@dataclass
class _Commit:
    oid: str
    seq: int
    title: str
    message: str
    date: float
    parent: str | None
    files: dict[str, _Entry]
    author: str = "local-user"


@dataclass
class _Repo:
    repo_type: str
    repo_id: str
    private: bool
    created: float
    gated: bool | str = False
    sdk: str | None = None
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    commits: dict[str, _Commit] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)  # git sha1 -> content
    lfs: dict[str, bytes] = field(default_factory=dict)  # sha256 -> content
    pr_count: int = 0

    @property
    def prefix(self) -> str:
        return "" if self.repo_type == "model" else f"{self.repo_type}s/"

    def content(self, entry: _Entry) -> bytes:
        return self.lfs[entry.sha256] if entry.sha256 else self.blobs[entry.blob_oid]
