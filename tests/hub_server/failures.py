"""Failure injection: ``fail_next`` rules and the check made before each counted request."""

from __future__ import annotations

from dataclasses import dataclass

from .constants import REQUEST_KINDS


@dataclass
class _FailureRule:
    skip: int
    remaining: int
    status: int
    truncate: int | None


class FailureInjectionMixin:
    """``fail_next`` / ``clear_failures`` and ``_check_failure`` of ``LocalHub``."""

    def fail_next(
        self,
        kind: str,
        count: int = 1,
        after: int = 0,
        status: int = 500,
        truncate: int | None = None,
    ) -> None:
        """Let the next ``after`` requests of ``kind`` through, then fail ``count`` of them.

        A failed request is answered ``status`` with a JSON error (its body is read and counted
        first, and nothing changes: a failed commit or LFS PUT stores nothing). For ``download``
        with ``truncate=N`` the answer is instead a 200 that announces the full length, sends N
        bytes and drops the connection (the client then resumes with a Range request).

        Mind the client's retries: ``huggingface_hub`` retries 408/429/500/502/503/504 on
        preupload, LFS batch, LFS PUT/verify, tree and paths-info requests (``http_backoff``:
        5 retries, 1 s, 2 s, 4 s, 8 s, 8 s), so ONE 500 there is a transient error the client
        survives ~1 s later; use a 4xx status (e.g. 403) for a failure it gives up on. The
        commit POST is not retried: a 500 there fails ``create_commit``/``upload_folder``.
        A new rule for ``kind`` replaces the previous one.
        """
        if kind not in REQUEST_KINDS:
            raise ValueError(f"unknown request kind {kind!r}; one of {REQUEST_KINDS}")
        if count < 1 or after < 0:
            raise ValueError("count must be >= 1 and after >= 0")
        with self._lock:
            self._failures[kind] = _FailureRule(after, count, status, truncate)

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def _check_failure(self, kind: str) -> _FailureRule | None:
        with self._lock:
            rule = self._failures.get(kind)
            if rule is None:
                return None
            if rule.skip > 0:
                rule.skip -= 1
                return None
            rule.remaining -= 1
            if rule.remaining <= 0:
                del self._failures[kind]
            return rule
