"""Route handlers for downloads: GET/HEAD ``.../resolve/...`` with Range support."""

from __future__ import annotations

import re
from urllib.parse import quote

from .responses import HubError, _Response


class DownloadHandlersMixin:
    """The resolve (file download) handler of ``LocalHub``."""

    def _resolve_file(self, repo_type, repo_id, revision, path, *, headers, method, **_):
        with self._lock:
            repo = self._get_repo(repo_type, repo_id)
            commit = self._resolve(repo, revision)
            entry = commit.files.get(path)
            if entry is None:
                raise HubError(
                    404,
                    f"Entry not found: {path}",
                    "EntryNotFound",
                    headers={"X-Repo-Commit": commit.oid},
                )
            data = repo.content(entry)
        etag = entry.sha256 or entry.blob_oid
        hdrs = [
            ("X-Repo-Commit", commit.oid),
            ("ETag", f'"{etag}"'),
            ("Accept-Ranges", "bytes"),
            ("Content-Type", "application/octet-stream"),
            ("Content-Disposition", f"inline; filename*=UTF-8''{quote(path.split('/')[-1])}"),
        ]
        if entry.sha256:
            hdrs += [("X-Linked-Etag", f'"{entry.sha256}"'), ("X-Linked-Size", str(entry.size))]
        status, start, end = 200, 0, len(data)
        range_header = headers.get("Range")
        if range_header:
            parsed = self._parse_range(range_header, len(data))
            if parsed == "unsatisfiable":
                raise HubError(
                    416,
                    "Range Not Satisfiable",
                    headers={"Content-Range": f"bytes */{len(data)}", "X-Repo-Commit": commit.oid},
                )
            if parsed is not None:
                status, (start, end) = 206, parsed
                hdrs.append(("Content-Range", f"bytes {start}-{end - 1}/{len(data)}"))
        body = data[start:end]
        if method == "HEAD":
            return _Response(status, b"", hdrs, content_length=len(body))
        if status == 206:
            self._count("range_requests")
        return _Response(status, body, hdrs, served=True)

    @staticmethod
    def _parse_range(value: str, size: int):
        """(start, end) for one ``bytes=`` range, "unsatisfiable", or None to ignore it."""
        match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", value)
        if not match or (not match.group(1) and not match.group(2)):
            return None
        first, last = match.group(1), match.group(2)
        if first:
            start = int(first)
            end = min(int(last) + 1, size) if last else size
            if start >= size:
                return "unsatisfiable"
            if end <= start:
                return None
            return start, end
        suffix = int(last)
        if suffix == 0:
            return "unsatisfiable"
        return max(size - suffix, 0), size
