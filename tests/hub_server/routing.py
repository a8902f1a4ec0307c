"""Request routing of ``LocalHub``: URL to (request kind, handler, args), control routes."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, unquote, urlsplit

from .responses import HubError, _json_response, _Response


class RoutingMixin:
    """``_dispatch`` (counting, failure injection) and the route tables of ``LocalHub``."""

    def _dispatch(self, method: str, raw_path: str, headers, body: bytes) -> _Response:
        split = urlsplit(raw_path)
        query = parse_qs(split.query, keep_blank_values=True)
        segs = [unquote(s) for s in split.path.split("/")[1:]]
        if segs and segs[-1] == "" and len(segs) > 1:
            segs = segs[:-1]
        if segs and segs[0] == "_localhub":
            return self._control(method, segs[1:], body)
        kind, handler, args = self._route(method, segs)
        with self._lock:
            self._requests[kind] += 1
            if kind == "other":
                self.unhandled.append((method, split.path))
        if handler is None:
            raise HubError(404, f"Not found: {method} {split.path}")
        rule = self._check_failure(kind)
        if rule is not None and not (kind == "download" and rule.truncate is not None):
            if kind == "lfs_upload":
                with self._lock:
                    self._bytes["lfs_received"] += len(body)
            if kind == "commit":
                self._count_regular_bytes(body)
            raise HubError(rule.status, f"Injected failure of {kind} request")
        resp = handler(*args, query=query, headers=headers, body=body, method=method)
        if rule is not None and resp.status == 200:
            resp.truncate = rule.truncate
        return resp

    def _control(self, method: str, segs: list[str], body: bytes) -> _Response:
        """Test control from another process (not counted): stats, reset_stats, fail_next."""
        if segs == ["stats"] and method == "GET":
            return _json_response(self.stats())
        if segs == ["reset_stats"] and method == "POST":
            self.reset_stats()
            return _json_response({})
        if segs == ["fail_next"] and method == "POST":
            try:
                self.fail_next(**self._json_body(body))
            except (TypeError, ValueError) as err:
                raise HubError(400, str(err)) from None
            return _json_response({})
        if segs == ["clear_failures"] and method == "POST":
            self.clear_failures()
            return _json_response({})
        raise HubError(404, f"Unknown control request {method} /_localhub/{'/'.join(segs)}")

    def _split_repo(self, repo_type: str, parts: list[str]) -> tuple[str, list[str]]:
        """(repo_id, rest) from path parts starting at the repo id (``ns/name`` or ``name``)."""
        if not parts:
            raise HubError(404, "Not found")
        with self._lock:
            if len(parts) >= 2 and (repo_type, f"{parts[0]}/{parts[1]}") in self._repos:
                return f"{parts[0]}/{parts[1]}", parts[2:]
            if (repo_type, parts[0]) in self._repos:
                return parts[0], parts[1:]
        if len(parts) >= 2:
            return f"{parts[0]}/{parts[1]}", parts[2:]
        return parts[0], []

    @staticmethod
    def _take_rev(parts: list[str]) -> tuple[str, list[str]]:
        """A revision (one segment, or literal ``refs/pr/N`` / ``refs/convert/x``) + the rest."""
        if not parts:
            return "main", []
        if parts[0] == "refs" and len(parts) >= 3 and parts[1] in ("pr", "convert"):
            return "/".join(parts[:3]), parts[3:]
        return parts[0], parts[1:]

    def _route(self, method: str, segs: list[str]):
        other = ("other", None, ())
        if not segs or segs == [""]:
            return other
        if segs[0] == "api" and len(segs) >= 2:
            head = segs[1]
            if segs[1:3] == ["repos", "create"] and method == "POST":
                return "create_repo", self._api_create_repo, ()
            if segs[1:3] == ["repos", "delete"] and method == "DELETE":
                return "delete_repo", self._api_delete_repo, ()
            if head == "validate-yaml" and method == "POST":
                return "validate_yaml", self._api_validate_yaml, ()
            if head == "whoami-v2" and method == "GET":
                return "whoami", self._api_whoami, ()
            if head in ("models", "datasets", "spaces") and len(segs) >= 3:
                repo_type = head[:-1]
                repo_id, rest = self._split_repo(repo_type, segs[2:])
                return self._route_api_repo(method, repo_type, repo_id, rest)
            return other
        if segs[0] == "_lfs" and len(segs) >= 4 and method == "PUT":
            repo_type, repo_id, oid = segs[1], "/".join(segs[2:-1]), segs[-1]
            return "lfs_upload", self._lfs_upload, (repo_type, repo_id, oid)
        repo_type, parts = "model", segs
        if segs[0] in ("datasets", "spaces") and len(segs) >= 3:
            repo_type, parts = segs[0][:-1], segs[1:]
        for i, part in enumerate(parts[:2]):
            if part.endswith(".git"):
                repo_id = "/".join([*parts[:i], part[:-4]])
                tail = parts[i + 1 :]
                if tail == ["info", "lfs", "objects", "batch"] and method == "POST":
                    return "lfs_batch", self._lfs_batch, (repo_type, repo_id)
                if tail == ["info", "lfs", "objects", "verify"] and method == "POST":
                    return "lfs_verify", self._lfs_verify, (repo_type, repo_id)
                return other
        repo_id, rest = self._split_repo(repo_type, parts)
        if rest and rest[0] in ("resolve", "raw") and method in ("GET", "HEAD"):
            revision, path = self._take_rev(rest[1:])
            kind = "head" if method == "HEAD" else "download"
            return kind, self._resolve_file, (repo_type, repo_id, revision, "/".join(path))
        return other

    def _route_api_repo(self, method: str, repo_type: str, repo_id: str, rest: list[str]):
        action = rest[0] if rest else None
        args = (repo_type, repo_id)
        if action is None and method == "GET":
            return "repo_info", self._api_info, (*args, None)
        if action == "revision" and method == "GET" and len(rest) >= 2:
            return "repo_info", self._api_info, (*args, "/".join(rest[1:]))
        if action in ("tree", "paths-info", "commits", "preupload", "commit") and len(rest) >= 2:
            revision, tail = self._take_rev(rest[1:])
            if action == "tree" and method == "GET":
                return "tree", self._api_tree, (*args, revision, "/".join(tail))
            if action == "paths-info" and method == "POST":
                return "paths_info", self._api_paths_info, (*args, revision)
            if action == "commits" and method == "GET":
                return "commits", self._api_commits, (*args, revision)
            if action == "preupload" and method == "POST":
                return "preupload", self._api_preupload, (*args, revision)
            if action == "commit" and method == "POST":
                return "commit", self._api_commit, (*args, revision)
        if action == "refs" and method == "GET":
            return "refs", self._api_refs, args
        if action == "branch" and len(rest) >= 2 and method in ("POST", "DELETE"):
            return "branch", self._api_branch, (*args, "/".join(rest[1:]))
        if action == "tag" and len(rest) >= 2 and method in ("POST", "DELETE"):
            return "tag", self._api_tag, (*args, "/".join(rest[1:]))
        if action == "settings" and method == "PUT":
            return "settings", self._api_settings, args
        return "other", None, ()

    @staticmethod
    def _json_body(body: bytes) -> dict:
        try:
            data = json.loads(body or b"{}")
        except ValueError as err:
            raise HubError(400, f"Invalid JSON body: {err}") from None
        if not isinstance(data, dict):
            raise HubError(400, "Expected a JSON object")
        return data
