"""Route handlers for repos: create, delete, settings, repo info, whoami, validate-yaml."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from .constants import _NAME_RE, _YAML_BLOCK, REPO_TYPES
from .responses import HubError, _iso, _json_response, _Response, _truthy
from .storage import _Commit, _Entry, _Repo, git_blob_sha1, lfs_pointer

try:  # only used to fill ``cardData`` from README.md; huggingface_hub depends on PyYAML
    import yaml as _yaml
except ImportError:  # pragma: no cover
    _yaml = None


class RepoHandlersMixin:
    """The repo-level API handlers of ``LocalHub``."""

    def _card_data(self, repo: _Repo, commit: _Commit) -> dict | None:
        entry = commit.files.get("README.md")
        if entry is None or _yaml is None:
            return None
        try:
            text = repo.content(entry).decode("utf-8")
            match = _YAML_BLOCK.search(text)
            data = _yaml.safe_load(match.group(2)) if match else None
        except Exception:
            return None
        return data if isinstance(data, dict) else None

    def _api_create_repo(self, *, body, **_) -> _Response:
        data = self._json_body(body)
        name, org = data.get("name"), data.get("organization")
        repo_type = data.get("type") or "model"
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"Invalid repo type {repo_type!r}")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise HubError(400, f"Invalid repo name {name!r}")
        if org is not None and (not isinstance(org, str) or not _NAME_RE.match(org)):
            raise HubError(400, f"Invalid organization {org!r}")
        repo_id = f"{org}/{name}" if org else name
        with self._lock:
            existing = self._repos.get((repo_type, repo_id))
            if existing is not None:
                url = self._repo_url(existing)
                raise HubError(
                    409,
                    f"You already created this {repo_type} repo",
                    body={"url": url, "name": repo_id},
                )
            private = data.get("private")
            if private is None:
                private = data.get("visibility") == "private"
            repo = _Repo(repo_type, repo_id, bool(private), time.time(), sdk=data.get("sdk"))
            attributes = "".join(
                f"{pattern} filter=lfs diff=lfs merge=lfs -text\n" for pattern in self.lfs_patterns
            ).encode()
            blob = git_blob_sha1(attributes)
            repo.blobs[blob] = attributes
            files = {".gitattributes": _Entry(len(attributes), blob, None, "")}
            commit = self._new_commit(repo, None, files, "initial commit", "", author="system")
            repo.branches["main"] = commit.oid
            self._repos[(repo_type, repo_id)] = repo
            return _json_response({"url": self._repo_url(repo), "name": repo_id, "id": repo_id})

    def _api_delete_repo(self, *, body, **_) -> _Response:
        data = self._json_body(body)
        name, org = data.get("name"), data.get("organization")
        repo_type = data.get("type") or "model"
        repo_id = f"{org}/{name}" if org else str(name)
        with self._lock:
            self._get_repo(repo_type, repo_id)
            del self._repos[(repo_type, repo_id)]
        return _json_response({})

    def _api_validate_yaml(self, **_) -> _Response:
        return _json_response({"errors": [], "warnings": []})

    def _api_whoami(self, *, headers, **_) -> _Response:
        if not headers.get("Authorization"):
            raise HubError(401, "Invalid username or password.")
        return _json_response(
            {
                "type": "user",
                "id": "0" * 24,
                "name": "local-user",
                "fullname": "Local User",
                "canPay": False,
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"displayName": "local"}},
            }
        )

    def _api_settings(self, repo_type, repo_id, *, body, **_) -> _Response:
        data = self._json_body(body)
        with self._lock:
            repo = self._get_repo(repo_type, repo_id)
            if "gated" in data:
                repo.gated = data["gated"] or False
            if "private" in data:
                repo.private = bool(data["private"])
            if "visibility" in data:
                repo.private = data["visibility"] == "private"
        return _json_response({})

    def _api_info(self, repo_type, repo_id, revision, *, query, **_) -> _Response:
        blobs = _truthy(query.get("blobs"))
        with self._lock:
            repo = self._get_repo(repo_type, repo_id)
            commit = self._resolve(repo, revision or "main")
            siblings = []
            for path, entry in sorted(commit.files.items()):
                sibling: dict[str, Any] = {"rfilename": path}
                if blobs:
                    sibling.update(size=entry.size, blobId=entry.blob_oid)
                    if entry.sha256:
                        pointer_size = len(lfs_pointer(entry.sha256, entry.size))
                        sibling["lfs"] = {
                            "size": entry.size,
                            "sha256": entry.sha256,
                            "pointerSize": pointer_size,
                        }
                siblings.append(sibling)
            info: dict[str, Any] = {
                "_id": hashlib.sha1(f"{repo_type}/{repo_id}".encode()).hexdigest()[:24],
                "id": repo_id,
                "author": repo_id.split("/")[0] if "/" in repo_id else None,
                "sha": commit.oid,
                "lastModified": _iso(commit.date),
                "createdAt": _iso(repo.created),
                "private": repo.private,
                "gated": repo.gated,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": siblings,
                "usedStorage": sum(len(b) for b in repo.blobs.values())
                + sum(len(b) for b in repo.lfs.values()),
            }
            if repo_type == "model":
                info["modelId"] = repo_id
            card = self._card_data(repo, commit)
            if card is not None:
                info["cardData"] = card
                if repo_type == "model":
                    for key in ("library_name", "pipeline_tag"):
                        if isinstance(card.get(key), str):
                            info[key] = card[key]
                tags = card.get("tags")
                if isinstance(tags, list):
                    info["tags"] = [str(t) for t in tags]
            if repo_type == "space":
                info["sdk"] = repo.sdk
        return _json_response(info)
