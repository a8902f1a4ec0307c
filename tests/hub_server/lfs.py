"""Route handlers for the Git LFS protocol: batch, object upload (PUT), verify."""

from __future__ import annotations

import hashlib
from urllib.parse import quote

from .constants import _HEX64
from .responses import HubError, _json_response, _Response


class LfsHandlersMixin:
    """The LFS handlers of ``LocalHub``."""

    def _lfs_batch(self, repo_type, repo_id, *, body, **_) -> _Response:
        data = self._json_body(body)
        if data.get("operation", "upload") != "upload":
            raise HubError(400, "Only the upload operation is supported")
        objects = data.get("objects")
        if not isinstance(objects, list):
            raise HubError(400, "Expected 'objects' to be a list")
        with self._lock:
            repo = self._get_repo(repo_type, repo_id)
            base = f"{self.url}/_lfs/{repo_type}/{quote(repo_id)}"
            verify = f"{self.url}/{repo.prefix}{quote(repo_id)}.git/info/lfs/objects/verify"
            out = []
            for obj in objects:
                oid, size = obj.get("oid"), obj.get("size")
                if not isinstance(oid, str) or not _HEX64.match(oid) or not isinstance(size, int):
                    out.append(
                        {
                            "oid": str(oid),
                            "size": size if isinstance(size, int) else 0,
                            "error": {"code": 422, "message": "Invalid oid or size"},
                        }
                    )
                elif oid in repo.lfs:
                    out.append({"oid": oid, "size": size})
                else:
                    out.append(
                        {
                            "oid": oid,
                            "size": size,
                            "authenticated": True,
                            "actions": {
                                "upload": {"href": f"{base}/{oid}?size={size}"},
                                "verify": {"href": verify},
                            },
                        }
                    )
        resp = _json_response({"transfer": "basic", "objects": out, "hash_algo": "sha256"})
        resp.headers[0] = ("Content-Type", "application/vnd.git-lfs+json")
        return resp

    def _lfs_upload(self, repo_type, repo_id, oid, *, query, body, **_) -> _Response:
        with self._lock:
            self._bytes["lfs_received"] += len(body)
            repo = self._get_repo(repo_type, repo_id)
        digest = hashlib.sha256(body).hexdigest()
        if digest != oid:
            raise HubError(400, f"sha256 mismatch: expected {oid}, got {digest}")
        expected = query.get("size")
        if expected and int(expected[-1]) != len(body):
            raise HubError(400, f"size mismatch: expected {expected[-1]}, got {len(body)}")
        with self._lock:
            if oid not in repo.lfs:
                repo.lfs[oid] = body
                self._bytes["lfs_stored"] += len(body)
                self._bytes["lfs_objects"] += 1
        return _Response(status=200)

    def _lfs_verify(self, repo_type, repo_id, *, body, **_) -> _Response:
        data = self._json_body(body)
        with self._lock:
            repo = self._get_repo(repo_type, repo_id)
            stored = repo.lfs.get(data.get("oid", ""))
        if stored is None:
            raise HubError(404, f"LFS object {data.get('oid')} not found")
        if data.get("size") is not None and int(data["size"]) != len(stored):
            raise HubError(422, "LFS object size mismatch")
        return _json_response({"success": True})
