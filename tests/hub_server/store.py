"""Repo storage operations of ``LocalHub``: lookups, revisions, new commits, test inspection."""

from __future__ import annotations

import fnmatch
import hashlib
import re
import time

from .responses import HubError
from .storage import _Commit, _Entry, _Repo


class RepoStoreMixin:
    """Reading and changing the in-memory repos (callers hold ``self._lock`` where needed)."""

    def commit_count(self, repo_id: str, repo_type: str = "model") -> int:
        """Commits made on ``repo_id`` through the commit endpoint (not the initial commit)."""
        with self._lock:
            return self._commits[f"{repo_type}s/{repo_id}"]

    def repo_exists(self, repo_id: str, repo_type: str = "model") -> bool:
        with self._lock:
            return (repo_type, repo_id) in self._repos

    def head(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> str:
        """The commit id ``revision`` points to."""
        with self._lock:
            repo = self._get_repo(repo_type, repo_id)
            return self._resolve(repo, revision).oid

    def files(
        self, repo_id: str, repo_type: str = "model", revision: str = "main"
    ) -> dict[str, bytes]:
        """The files of ``revision``: {path: content}."""
        with self._lock:
            repo = self._get_repo(repo_type, repo_id)
            commit = self._resolve(repo, revision)
            return {p: repo.content(e) for p, e in sorted(commit.files.items())}

    def lfs_objects(self, repo_id: str, repo_type: str = "model") -> set[str]:
        """sha256 of the LFS objects stored for the repo (committed or not)."""
        with self._lock:
            return set(self._get_repo(repo_type, repo_id).lfs)

    def _get_repo(self, repo_type: str, repo_id: str) -> _Repo:
        repo = self._repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, f"Repository not found: {repo_type}s/{repo_id}", "RepoNotFound")
        return repo

    def _resolve(self, repo: _Repo, revision: str) -> _Commit:
        oid = repo.branches.get(revision) or repo.tags.get(revision)
        if oid is None and revision in repo.commits:
            oid = revision
        if oid is None and re.fullmatch(r"[0-9a-f]{7,40}", revision):
            matches = [c for c in repo.commits if c.startswith(revision)]
            oid = matches[0] if len(matches) == 1 else None
        if oid is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return repo.commits[oid]

    def _new_commit(
        self,
        repo: _Repo,
        parent: _Commit | None,
        files: dict[str, _Entry],
        title: str,
        message: str,
        author: str = "local-user",
        changed: set[str] | None = None,
    ) -> _Commit:
        seq = next(self._seq)
        seed = f"{repo.repo_type}/{repo.repo_id}\n{parent.oid if parent else ''}\n{seq}\n"
        seed += f"{time.time_ns()}\n{title}\n" + "\n".join(
            f"{p}:{e.blob_oid}" for p, e in sorted(files.items())
        )
        oid = hashlib.sha1(seed.encode()).hexdigest()
        changed = set(files) if changed is None else changed
        files = {
            p: (_Entry(e.size, e.blob_oid, e.sha256, oid) if p in changed else e)
            for p, e in files.items()
        }
        commit = _Commit(
            oid, seq, title, message, time.time(), parent.oid if parent else None, files, author
        )
        repo.commits[oid] = commit
        return commit

    def _is_lfs(self, path: str, size: int, sample: bytes) -> bool:
        name = path.rsplit("/", 1)[-1]
        return (
            size >= self.lfs_threshold
            or any(fnmatch.fnmatch(name, pattern) for pattern in self.lfs_patterns)
            or b"\x00" in sample
        )

    def _count(self, key: str, amount: int = 1) -> None:
        with self._lock:
            self._bytes[key] += amount

    def _repo_url(self, repo: _Repo) -> str:
        return f"{self.url}/{repo.prefix}{repo.repo_id}"
