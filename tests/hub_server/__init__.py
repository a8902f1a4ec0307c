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

from .constants import REQUEST_KINDS
from .hub import LocalHub
from .server import free_port
from .storage import git_blob_sha1, lfs_pointer

__all__ = ["LocalHub", "free_port", "git_blob_sha1", "lfs_pointer", "REQUEST_KINDS"]
