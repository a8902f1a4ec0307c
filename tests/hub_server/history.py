"""Route handlers for history and refs: commit log, refs listing, branches, tags."""

from __future__ import annotations

from .responses import HubError, _iso, _json_response, _Response
from .storage import _Commit


class HistoryHandlersMixin:
    """The commits / refs / branch / tag handlers of ``LocalHub``."""

    def _api_commits(self, repo_type, repo_id, revision, **_) -> _Response:
        with self._lock:
            repo = self._get_repo(repo_type, repo_id)
            commit: _Commit | None = self._resolve(repo, revision)
            out = []
            while commit is not None:
                out.append(
                    {
                        "id": commit.oid,
                        "title": commit.title,
                        "message": commit.message,
                        "date": _iso(commit.date),
                        "authors": [{"user": commit.author, "avatar": None}],
                    }
                )
                commit = repo.commits.get(commit.parent) if commit.parent else None
        return _json_response(out)

    def _api_refs(self, repo_type, repo_id, **_) -> _Response:
        with self._lock:
            repo = self._get_repo(repo_type, repo_id)
            branches = [
                {"name": n, "ref": f"refs/heads/{n}", "targetCommit": oid}
                for n, oid in sorted(repo.branches.items())
                if not n.startswith("refs/")
            ]
            prs = [
                {"name": n, "ref": n, "targetCommit": oid}
                for n, oid in sorted(repo.branches.items())
                if n.startswith("refs/pr/")
            ]
            tags = [
                {"name": n, "ref": f"refs/tags/{n}", "targetCommit": oid}
                for n, oid in sorted(repo.tags.items())
            ]
        return _json_response(
            {"branches": branches, "converts": [], "tags": tags, "pullRequests": prs}
        )

    def _api_branch(self, repo_type, repo_id, branch, *, method, body, **_) -> _Response:
        with self._lock:
            repo = self._get_repo(repo_type, repo_id)
            if method == "DELETE":
                if branch not in repo.branches:
                    raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
                if branch == "main":
                    raise HubError(403, "Cannot delete the default branch")
                del repo.branches[branch]
                return _json_response({})
            data = self._json_body(body)
            if branch in repo.branches:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}")
            start = self._resolve(repo, data.get("startingPoint") or "main")
            repo.branches[branch] = start.oid
        return _json_response({})

    def _api_tag(self, repo_type, repo_id, target, *, method, body, **_) -> _Response:
        with self._lock:
            repo = self._get_repo(repo_type, repo_id)
            if method == "DELETE":
                if target not in repo.tags:
                    raise HubError(404, f"Invalid rev id: {target}", "RevisionNotFound")
                del repo.tags[target]
                return _json_response({})
            data = self._json_body(body)
            tag = data.get("tag")
            if not isinstance(tag, str) or not tag:
                raise HubError(400, "Missing tag name")
            if tag in repo.tags:
                raise HubError(409, f"Tag already exists: {tag}")
            repo.tags[tag] = self._resolve(repo, target).oid
        return _json_response({})
