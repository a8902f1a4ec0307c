"""Route handlers for listings: tree and paths-info, with their file/folder JSON."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import parse_qs

from .responses import HubError, _iso, _json_response, _Response, _truthy
from .storage import _Commit, _Entry, _Repo, lfs_pointer


class ListingHandlersMixin:
    """The tree / paths-info handlers of ``LocalHub``."""

    @staticmethod
    def _entry_json(path: str, entry: _Entry, last: _Commit | None = None) -> dict:
        out: dict[str, Any] = {
            "type": "file",
            "oid": entry.blob_oid,
            "size": entry.size,
            "path": path,
        }
        if entry.sha256:
            pointer_size = len(lfs_pointer(entry.sha256, entry.size))
            out["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": pointer_size}
        if last is not None:
            out["lastCommit"] = {"id": last.oid, "title": last.title, "date": _iso(last.date)}
        return out

    def _folder_json(self, repo: _Repo, commit: _Commit, path: str, expand: bool) -> dict:
        prefix = path + "/"
        inside = sorted((p, e) for p, e in commit.files.items() if p.startswith(prefix))
        oid = hashlib.sha1("\n".join(f"{p}:{e.blob_oid}" for p, e in inside).encode()).hexdigest()
        out: dict[str, Any] = {"type": "directory", "oid": oid, "size": 0, "path": path}
        if expand and inside:
            last = max((repo.commits[e.commit] for _, e in inside), key=lambda c: c.seq)
            out["lastCommit"] = {"id": last.oid, "title": last.title, "date": _iso(last.date)}
        return out

    def _path_json(self, repo: _Repo, commit: _Commit, path: str, expand: bool) -> dict | None:
        entry = commit.files.get(path)
        if entry is not None:
            return self._entry_json(path, entry, repo.commits[entry.commit] if expand else None)
        if path and any(p.startswith(path + "/") for p in commit.files):
            return self._folder_json(repo, commit, path, expand)
        return None

    def _api_tree(self, repo_type, repo_id, revision, path, *, query, **_) -> _Response:
        recursive = _truthy(query.get("recursive"))
        expand = _truthy(query.get("expand"))
        path = path.strip("/")
        with self._lock:
            repo = self._get_repo(repo_type, repo_id)
            commit = self._resolve(repo, revision)
            prefix = path + "/" if path else ""
            below = {p: e for p, e in commit.files.items() if p.startswith(prefix)}
            if path and not below:
                raise HubError(
                    404,
                    f"Entry not found: {path} is not a folder of {repo_id}@{revision}",
                    "EntryNotFound",
                    headers={"X-Repo-Commit": commit.oid},
                )
            folders: set[str] = set()
            files: list[str] = []
            for p in below:
                parts = p[len(prefix) :].split("/")
                if recursive:
                    files.append(p)
                    folders.update(prefix + "/".join(parts[:i]) for i in range(1, len(parts)))
                elif len(parts) == 1:
                    files.append(p)
                else:
                    folders.add(prefix + parts[0])
            out = [self._folder_json(repo, commit, f, expand) for f in sorted(folders)]
            for p in sorted(files):
                entry = below[p]
                out.append(
                    self._entry_json(p, entry, repo.commits[entry.commit] if expand else None)
                )
        return _json_response(out)

    def _api_paths_info(self, repo_type, repo_id, revision, *, headers, body, **_) -> _Response:
        if "json" in headers.get("Content-Type", ""):
            data = self._json_body(body)
            paths = data.get("paths") or []
            paths = [paths] if isinstance(paths, str) else paths
            expand = str(data.get("expand", "")).lower() in ("1", "true")
        else:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
            paths = form.get("paths", [])
            expand = _truthy(form.get("expand"))
        with self._lock:
            repo = self._get_repo(repo_type, repo_id)
            commit = self._resolve(repo, revision)
            out = []
            for path in paths:
                info = self._path_json(repo, commit, str(path).strip("/"), expand)
                if info is not None:
                    out.append(info)
        return _json_response(out)
