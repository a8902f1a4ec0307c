"""A small Hugging Face Hub-compatible HTTP server for tests, on 127.0.0.1 (stdlib only).

The real clients (``huggingface_hub.HfApi``, ``hf_hub_download``, ``snapshot_download``,
``HfFileSystem``, ``DatasetCard``/``ModelCard``, ``datasets.load_dataset``, transformers'
``from_pretrained``) work against it unmodified when the process has, BEFORE importing
``huggingface_hub`` / ``datasets`` / ``transformers``::

    HF_ENDPOINT=http://127.0.0.1:<port>   # URL templates are frozen at import time
    HF_HUB_DISABLE_XET=1                  # no Xet here; uploads must use the LFS protocol
    HF_UPDATE_DOWNLOAD_COUNTS=0           # datasets would HEAD an S3 bucket otherwise
    HF_HUB_DISABLE_TELEMETRY=1
    HF_HOME=<temp dir>                    # a fresh cache (and no cached token)
    (HF_HUB_OFFLINE unset)

and ``datasets.config.USE_PARQUET_EXPORT = False`` (datasets would ask
``datasets-server.<endpoint host>`` for the Parquet export otherwise).

Usage::

    with LocalHub() as hub:                # or LocalHub(port=free_port()).start() ... hub.stop()
        os.environ["HF_ENDPOINT"] = hub.url
        ...
        hub.stats()["requests"]["commit"]
        hub.commit_count("org/name", repo_type="dataset")
        hub.fail_next("lfs_upload", status=403, after=1)

Project fixture (``tests/conftest.py``), in this order:

1. at import time, BEFORE anything imports huggingface_hub / datasets / transformers (the
   project's own modules included): ``port = free_port()``, then set the env vars above with
   ``HF_ENDPOINT=http://127.0.0.1:{port}`` and ``HF_HOME`` on a fresh temp dir;
2. a session fixture starts ``LocalHub(port=port)`` lazily and stops it at the end;
3. if the session defaults to ``HF_HUB_OFFLINE=1``, a fixture for Hub tests flips it at run
   time: ``huggingface_hub.constants.HF_HUB_OFFLINE = False`` and
   ``datasets.config.HF_HUB_OFFLINE = False`` (monkeypatch: restored afterwards), plus
   ``datasets.config.USE_PARQUET_EXPORT = False``;
4. between tests, ``hub.reset()`` (or unique repo names) and ``hub.clear_failures()``.

Another process (a CLI under test) can drive the server through control routes that are not
counted in the stats: ``GET /_localhub/stats``, ``POST /_localhub/reset_stats``,
``POST /_localhub/fail_next`` (JSON: the ``fail_next`` arguments),
``POST /_localhub/clear_failures``.

Everything is kept in memory: repos (branches, tags, commits with full file maps), regular
file contents by git blob sha1 and LFS objects by sha256 (per repo). Request headers are never
recorded or logged (any ``Authorization: Bearer`` token is accepted). Private/gated flags are
stored and reported, not enforced.

Request kinds (keys of ``stats()["requests"]`` and valid ``fail_next`` kinds):
``create_repo``, ``delete_repo``, ``validate_yaml``, ``whoami``, ``repo_info``, ``tree``,
``paths_info``, ``commits``, ``refs``, ``preupload``, ``commit``, ``branch``, ``tag``,
``settings``, ``lfs_batch``, ``lfs_upload`` (the PUT of an object's bytes), ``lfs_verify``,
``head`` (HEAD .../resolve/...), ``download`` (GET .../resolve/...), ``other`` (unknown
routes, also listed in ``LocalHub.unhandled``).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import fnmatch
import hashlib
import itertools
import json
import re
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

try:  # only used to fill ``cardData`` from README.md; huggingface_hub depends on PyYAML
    import yaml as _yaml
except ImportError:  # pragma: no cover
    _yaml = None

__all__ = ["LocalHub", "free_port", "git_blob_sha1", "lfs_pointer", "REQUEST_KINDS"]

REPO_TYPES = ("model", "dataset", "space")
REQUEST_KINDS = (
    "create_repo",
    "delete_repo",
    "validate_yaml",
    "whoami",
    "repo_info",
    "tree",
    "paths_info",
    "commits",
    "refs",
    "preupload",
    "commit",
    "branch",
    "tag",
    "settings",
    "lfs_batch",
    "lfs_upload",
    "lfs_verify",
    "head",
    "download",
    "other",
)
LFS_THRESHOLD = 10 * 1024 * 1024  # the Hub stores files of 10 MB or more with LFS
# The Hub's default .gitattributes (models + datasets), plus medical volumes.
LFS_PATTERNS = (
    "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib",
    "*.lfs.*", "*.lz4", "*.mds", "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz",
    "*.onnx", "*.ot", "*.parquet", "*.pb", "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar",
    "*.safetensors", "*.tar.*", "*.tar", "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip",
    "*.zst", "*tfevents*", "*.mp3", "*.ogg", "*.wav", "*.flac", "*.jpg", "*.jpeg", "*.png",
    "*.webp", "*.gif", "*.tif", "*.tiff", "*.mp4", "*.webm", "*.nii", "*.nii.gz", "*.nrrd",
    "*.mha", "*.dcm",
)  # fmt: skip
_NAME_RE = re.compile(r"^[A-Za-z0-9][\w.\-]*$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_YAML_BLOCK = re.compile(r"^(\s*---(?:\r\n|\r|\n))([\S\s]*?)((?:\r\n|\r|\n)---[ \t]*(\r\n|\n|$))")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def git_blob_sha1(data: bytes) -> str:
    """Git's object id of a blob (what the Hub reports as ``oid`` of a regular file)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The Git LFS pointer file the Hub stores in git for an LFS object."""
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
    )


def _iso(ts: float) -> str:
    moment = _dt.datetime.fromtimestamp(ts, tz=_dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _header_safe(text: str) -> str:
    return text.encode("ascii", "backslashreplace").decode("ascii").replace("\n", " ")[:500]


def _truthy(values: list[str] | None) -> bool:
    return bool(values) and values[-1].lower() in ("1", "true", "yes")


# --------------------------------------------------------------------------------------------
# State


@dataclass(frozen=True)
class _Entry:
    size: int
    blob_oid: str  # git sha1 of the content (regular) or of the LFS pointer (LFS)
    sha256: str | None  # LFS object id, None for a regular file
    commit: str  # commit that last changed this path


@dataclass
class _Commit:
    oid: str
    seq: int
    title: str
    message: str
    date: float
    parent: str | None
    files: dict[str, _Entry]
    author: str = "local-user"


@dataclass
class _Repo:
    repo_type: str
    repo_id: str
    private: bool
    created: float
    gated: bool | str = False
    sdk: str | None = None
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    commits: dict[str, _Commit] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)  # git sha1 -> content
    lfs: dict[str, bytes] = field(default_factory=dict)  # sha256 -> content
    pr_count: int = 0

    @property
    def prefix(self) -> str:
        return "" if self.repo_type == "model" else f"{self.repo_type}s/"

    def content(self, entry: _Entry) -> bytes:
        return self.lfs[entry.sha256] if entry.sha256 else self.blobs[entry.blob_oid]


class HubError(Exception):
    """An HTTP error answer: status, message, optional ``X-Error-Code`` and extra headers."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        body: dict | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        self.body = body


@dataclass
class _Response:
    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_length: int | None = None  # for HEAD: the length GET would send
    truncate: int | None = None  # failure injection: send only this many body bytes, then close
    served: bool = False  # a file download: count the body bytes actually sent


@dataclass
class _FailureRule:
    skip: int
    remaining: int
    status: int
    truncate: int | None


def _json_response(data: Any, status: int = 200, headers: list | None = None) -> _Response:
    body = json.dumps(data).encode()
    hdrs = [("Content-Type", "application/json; charset=utf-8"), *(headers or [])]
    return _Response(status=status, body=body, headers=hdrs)


def _error_response(err: HubError) -> _Response:
    body = dict(err.body or {})
    body.setdefault("error", err.message)
    headers = [("X-Error-Message", _header_safe(err.message))]
    if err.code:
        headers.append(("X-Error-Code", err.code))
    headers.extend(err.headers.items())
    return _json_response(body, status=err.status, headers=headers)


# --------------------------------------------------------------------------------------------
# HTTP plumbing


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler, hub: LocalHub):
        self.hub = hub
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        with self._open_lock:
            conns = list(self._open)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LocalHub/1.0"
    timeout = 60  # idle keep-alive connections are closed after this
    server: _Server

    def log_message(self, format, *args):  # quiet: never log requests or headers
        pass

    def do_GET(self):
        self._handle("GET")

    def do_HEAD(self):
        self._handle("HEAD")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_DELETE(self):
        self._handle("DELETE")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self, method: str) -> None:
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        hub = self.server.hub
        try:
            resp = hub._dispatch(method, self.path, self.headers, body)
        except HubError as err:
            resp = _error_response(err)
        except Exception as err:  # a bug in the server: answer 500, keep serving
            resp = _error_response(HubError(500, f"local hub error: {type(err).__name__}: {err}"))
        self._send(method, resp)

    def _send(self, method: str, resp: _Response) -> None:
        self.send_response(resp.status)
        for key, value in resp.headers:
            self.send_header(key, value)
        length = resp.content_length if resp.content_length is not None else len(resp.body)
        self.send_header("Content-Length", str(length))
        if resp.truncate is not None:
            self.send_header("Connection", "close")
        self.end_headers()
        if method == "HEAD":
            return
        if resp.served:
            sent = len(resp.body) if resp.truncate is None else min(resp.truncate, len(resp.body))
            self.server.hub._count("served", sent)
        if resp.truncate is not None:
            self.wfile.write(resp.body[: resp.truncate])
            self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(resp.body)


# --------------------------------------------------------------------------------------------
# The hub


class LocalHub:
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

    def commit_count(self, repo_id: str, repo_type: str = "model") -> int:
        """Commits made on ``repo_id`` through the commit endpoint (not the initial commit)."""
        with self._lock:
            return self._commits[f"{repo_type}s/{repo_id}"]

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

    # ---- internals: state

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

    # ---- internals: routing

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

    # ---- helpers for handlers

    @staticmethod
    def _json_body(body: bytes) -> dict:
        try:
            data = json.loads(body or b"{}")
        except ValueError as err:
            raise HubError(400, f"Invalid JSON body: {err}") from None
        if not isinstance(data, dict):
            raise HubError(400, "Expected a JSON object")
        return data

    def _repo_url(self, repo: _Repo) -> str:
        return f"{self.url}/{repo.prefix}{repo.repo_id}"

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

    # ---- handlers: repos

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

    # ---- handlers: uploads

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

    # ---- handlers: downloads

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
