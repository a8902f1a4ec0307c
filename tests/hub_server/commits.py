"""Route handlers for uploads: preupload and the NDJSON commit, with their checks."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

from .responses import HubError, _json_response, _Response, _truthy
from .storage import _Entry, git_blob_sha1, lfs_pointer


class CommitHandlersMixin:
    """The preupload / commit handlers of ``LocalHub``."""

    def _count_regular_bytes(self, body: bytes) -> None:
        total = 0
        for line in body.splitlines():
            with contextlib.suppress(Exception):
                item = json.loads(line)
                if item.get("key") == "file":
                    value = item["value"]
                    if value.get("encoding", "base64") == "base64":
                        total += len(base64.b64decode(value["content"]))
                    else:
                        total += len(value["content"].encode())
        with self._lock:
            self._bytes["regular_received"] += total

    def _api_preupload(self, repo_type, repo_id, revision, *, body, **_) -> _Response:
        data = self._json_body(body)
        files = data.get("files")
        if not isinstance(files, list):
            raise HubError(400, "Expected 'files' to be a list")
        with self._lock:
            repo = self._get_repo(repo_type, repo_id)
            commit = self._resolve(repo, revision)
            out = []
            for item in files:
                path = item.get("path")
                if not isinstance(path, str):
                    raise HubError(400, "Each file needs a 'path'")
                try:
                    sample = base64.b64decode(item.get("sample") or "")
                except ValueError:
                    raise HubError(400, f"Invalid base64 sample for {path}") from None
                size = int(item.get("size") or 0)
                mode = "lfs" if self._is_lfs(path, size, sample) else "regular"
                entry = commit.files.get(path)
                oid = None if entry is None else (entry.sha256 or entry.blob_oid)
                out.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        return _json_response({"files": out, "commitOid": commit.oid})

    def _api_commit(self, repo_type, repo_id, revision, *, query, body, **_) -> _Response:
        self._count_regular_bytes(body)
        lines = []
        for raw in body.splitlines():
            if raw.strip():
                try:
                    lines.append(json.loads(raw))
                except ValueError as err:
                    raise HubError(400, f"Invalid NDJSON line: {err}") from None
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "The first NDJSON line must be the commit header")
        header = lines[0].get("value") or {}
        create_pr = _truthy(query.get("create_pr"))
        with self._lock:
            repo = self._get_repo(repo_type, repo_id)
            if create_pr:
                base = self._resolve(repo, revision)
                pr_number = repo.pr_count + 1
                branch = f"refs/pr/{pr_number}"
            else:
                if revision not in repo.branches:
                    self._resolve(repo, revision)  # 404 RevisionNotFound when unknown
                    raise HubError(400, f"Cannot commit to {revision}: not a branch")
                branch, base = revision, repo.commits[repo.branches[revision]]
            parent_commit = header.get("parentCommit")
            if parent_commit and parent_commit != base.oid:
                raise HubError(
                    412,
                    "A commit has happened since. Please refresh and try again.",
                    body={"expectedParentCommit": base.oid},
                )
            files = dict(base.files)
            changed: set[str] = set()
            new_blobs: dict[str, bytes] = {}
            for item in lines[1:]:
                key, value = item.get("key"), item.get("value") or {}
                path = value.get("path")
                if key in ("file", "lfsFile"):
                    path = self._check_path(path)
                    if key == "file":
                        content = self._decode_content(value, path)
                        blob = git_blob_sha1(content)
                        new_blobs[blob] = content
                        entry = _Entry(len(content), blob, None, "")
                    else:
                        oid = value.get("oid")
                        stored = repo.lfs.get(oid) if isinstance(oid, str) else None
                        if stored is None:
                            raise HubError(
                                422,
                                f"LFS object {oid} for {path} was not uploaded",
                                body={"path": path, "oid": oid},
                            )
                        if value.get("size") is not None and int(value["size"]) != len(stored):
                            raise HubError(422, f"LFS object size mismatch for {path}")
                        pointer = lfs_pointer(oid, len(stored))
                        entry = _Entry(len(stored), git_blob_sha1(pointer), oid, "")
                    self._check_no_clash(files, path)
                    old = files.get(path)
                    if old is None or (old.blob_oid, old.sha256) != (entry.blob_oid, entry.sha256):
                        files[path] = entry
                        changed.add(path)
                elif key == "deletedFile":
                    path = self._check_path(path)
                    if path not in files:
                        raise HubError(
                            404, f"A file with this name doesn't exist: {path}", "EntryNotFound"
                        )
                    del files[path]
                    changed.add(path)
                elif key == "deletedFolder":
                    folder = self._check_path(str(path).rstrip("/"))
                    doomed = [p for p in files if p.startswith(folder + "/")]
                    if not doomed:
                        raise HubError(
                            404, f"A folder with this name doesn't exist: {folder}", "EntryNotFound"
                        )
                    for p in doomed:
                        del files[p]
                        changed.add(p)
                else:
                    raise HubError(400, f"Unknown NDJSON key {key!r}")
            # Everything checked: apply atomically.
            repo.blobs.update(new_blobs)
            commit = self._new_commit(
                repo,
                base,
                files,
                str(header.get("summary") or "Update"),
                str(header.get("description") or ""),
                changed=changed,
            )
            pr_url = None
            if create_pr:
                repo.pr_count = pr_number
                pr_url = f"{self._repo_url(repo)}/discussions/{pr_number}"
            repo.branches[branch] = commit.oid
            self._commits[f"{repo_type}s/{repo_id}"] += 1
        return _json_response(
            {
                "success": True,
                "commitOid": commit.oid,
                "commitUrl": f"{self._repo_url(repo)}/commit/{commit.oid}",
                "pullRequestUrl": pr_url,
                "hookOutput": "",
            }
        )

    @staticmethod
    def _check_path(path: Any) -> str:
        if (
            not isinstance(path, str)
            or not path
            or path.startswith("/")
            or any(part in ("", ".", "..") for part in path.split("/"))
            or path.startswith(".git/")
        ):
            raise HubError(400, f"Invalid path in repo: {path!r}")
        return path

    @staticmethod
    def _check_no_clash(files: dict[str, _Entry], path: str) -> None:
        parts = path.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in files:
                raise HubError(400, f"{path}: {'/'.join(parts[:i])} is a file")
        if any(p.startswith(path + "/") for p in files):
            raise HubError(400, f"{path} is a folder")

    @staticmethod
    def _decode_content(value: dict, path: str) -> bytes:
        content = value.get("content", "")
        if value.get("encoding", "base64") == "base64":
            try:
                return base64.b64decode(content, validate=True)
            except ValueError:
                raise HubError(400, f"Invalid base64 content for {path}") from None
        return str(content).encode("utf-8")
