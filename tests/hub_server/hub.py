"""``LocalHub``: state, lifecycle, stats and the mixins that hold its routes and handlers."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from typing import Any

from .commits import CommitHandlersMixin
from .constants import LFS_PATTERNS, LFS_THRESHOLD
from .downloads import DownloadHandlersMixin
from .failures import FailureInjectionMixin, _FailureRule
from .history import HistoryHandlersMixin
from .lfs import LfsHandlersMixin
from .listings import ListingHandlersMixin
from .repos import RepoHandlersMixin
from .routing import RoutingMixin
from .server import _Handler, _Server
from .storage import _Repo
from .store import RepoStoreMixin


class LocalHub(
    RoutingMixin,
    RepoStoreMixin,
    FailureInjectionMixin,
    RepoHandlersMixin,
    HistoryHandlersMixin,
    ListingHandlersMixin,
    CommitHandlersMixin,
    LfsHandlersMixin,
    DownloadHandlersMixin,
):
    """An in-memory Hub on ``host:port``; ``port=None`` binds a free port at ``start()``."""

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        *,
        lfs_threshold: int = LFS_THRESHOLD,
        lfs_patterns: tuple[str, ...] = LFS_PATTERNS,
    ):
        self.host = host
        self._port = port
        self.lfs_threshold = lfs_threshold
        self.lfs_patterns = tuple(lfs_patterns)
        self._lock = threading.RLock()
        self._repos: dict[tuple[str, str], _Repo] = {}
        self._seq = itertools.count(1)
        self._failures: dict[str, _FailureRule] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.unhandled: list[tuple[str, str]] = []  # (method, path) of unknown routes
        self.reset_stats()

    # ---- lifecycle

    def start(self) -> LocalHub:
        if self._server is not None:
            return self
        self._server = _Server((self.host, self._port or 0), _Handler, self)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.name = f"LocalHub:{self._port}"
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_open_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("LocalHub has no port before start()")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ---- test helpers

    def reset(self) -> None:
        """Forget every repo, failure rule and counter (the server keeps running)."""
        with self._lock:
            self._repos.clear()
            self._failures.clear()
            self.unhandled.clear()
            self.reset_stats()

    def reset_stats(self) -> None:
        with self._lock:
            self._requests: Counter[str] = Counter()
            self._commits: Counter[str] = Counter()
            self._bytes = Counter()

    def stats(self) -> dict[str, Any]:
        """A snapshot of the counters.

        ``requests``: {kind: count}; ``commits``: {"datasets/org/name": commits made through
        the commit endpoint}; ``lfs_bytes_received`` (all LFS PUT bodies, failed ones too),
        ``lfs_bytes_stored`` (objects accepted), ``lfs_objects_stored``,
        ``regular_bytes_received`` (decoded base64 ``file`` contents of commit requests, failed
        ones too), ``bytes_served`` (file bytes sent by GET resolve), ``range_requests``.
        """
        with self._lock:
            return {
                "requests": dict(self._requests),
                "commits": dict(self._commits),
                "lfs_bytes_received": self._bytes["lfs_received"],
                "lfs_bytes_stored": self._bytes["lfs_stored"],
                "lfs_objects_stored": self._bytes["lfs_objects"],
                "regular_bytes_received": self._bytes["regular_received"],
                "bytes_served": self._bytes["served"],
                "range_requests": self._bytes["range_requests"],
            }
