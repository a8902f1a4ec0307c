"""Client-side checks of ``tests/hub_server/`` with the REAL libraries, in a fresh process.

Run by ``tests/test_hub_server.py`` as ``python tests/_hub_client_checks.py`` with
``HF_ENDPOINT`` pointing at a ``LocalHub`` started in the pytest process (and HF_HUB_OFFLINE
unset, HF_HUB_DISABLE_XET=1, HF_HOME=<temp>). The env vars must be set before
huggingface_hub / datasets / transformers are imported, hence a separate process. Failures
are injected through the server's ``/_localhub/...`` control routes. Prints one line
``HUB_CHECKS_RESULT=<json>`` with what it observed; the pytest side asserts on it.

Every connection to a host other than loopback (DNS lookups included) is refused and recorded
in ``blocked``: the checks prove that nothing reaches the internet.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import time
import traceback
import urllib.request
from pathlib import Path

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
blocked: list[str] = []
_getaddrinfo = socket.getaddrinfo
_connect = socket.socket.connect


def _guarded_getaddrinfo(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    if name is not None and name not in LOOPBACK:
        blocked.append(f"dns:{name}")
        raise socket.gaierror(f"{name}: blocked by the hub tests (no internet)")
    return _getaddrinfo(host, *args, **kwargs)


def _guarded_connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOOPBACK:
        blocked.append(f"connect:{address[0]}")
        raise ConnectionRefusedError(f"{address[0]}: blocked by the hub tests (no internet)")
    return _connect(self, address)


socket.getaddrinfo = _guarded_getaddrinfo
socket.socket.connect = _guarded_connect

ENDPOINT = os.environ["HF_ENDPOINT"].rstrip("/")
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
DS = "org/tiny-ct"
MODEL = "org/tiny-bert"
README = """---
license: mit
configs:
- config_name: cfg
  data_files:
  - split: train
    path: cfg/train-*
  - split: test
    path: cfg/test-*
---
# Tiny CT dataset

A two-split Parquet dataset for the local Hub tests.
"""
TRAIN = {"id": [0, 1, 2, 3], "text": ["a", "bb", "ccc", "dddd"], "label": [0, 1, 0, 1]}
TEST = {"id": [10], "text": ["z"], "label": [1]}


def control(method: str, name: str, payload: dict | None = None) -> dict:
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(f"{ENDPOINT}/_localhub/{name}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with _OPENER.open(request, timeout=10) as response:
        return json.loads(response.read())


def stats() -> dict:
    return control("GET", "stats")


def delta(before: dict, after: dict, key: str) -> int:
    if key.startswith("requests."):
        kind = key.split(".", 1)[1]
        return after["requests"].get(kind, 0) - before["requests"].get(kind, 0)
    return after[key] - before[key]


def error_of(call) -> dict:
    """Run ``call``; return the exception's class names and HTTP status (None if no error)."""
    try:
        call()
    except Exception as err:
        response = getattr(err, "response", None)
        return {
            "types": [cls.__name__ for cls in type(err).__mro__],
            "status": getattr(response, "status_code", None),
        }
    return {"types": [], "status": None}


def run(result: dict, work: Path) -> None:
    import datasets
    import torch
    from huggingface_hub import (
        CommitOperationAdd,
        DatasetCard,
        HfApi,
        HfFileSystem,
        ModelCard,
        constants,
        hf_hub_download,
        snapshot_download,
    )
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoTokenizer,
        BertConfig,
        BertModel,
        BertTokenizer,
    )

    datasets.config.USE_PARQUET_EXPORT = False
    datasets.disable_progress_bars()
    api = HfApi()
    result["endpoint"] = api.endpoint

    # -- create repo twice (exist_ok), third time 409
    result["create"] = {
        "first": str(api.create_repo(DS, repo_type="dataset")),
        "again": str(api.create_repo(DS, repo_type="dataset", exist_ok=True)),
        "conflict": error_of(lambda: api.create_repo(DS, repo_type="dataset"))["status"],
    }

    # -- upload a dataset folder, load it back
    folder = work / "dataset"
    (folder / "cfg").mkdir(parents=True)
    (folder / "README.md").write_text(README)
    datasets.Dataset.from_dict(TRAIN).to_parquet(folder / "cfg/train-00000-of-00001.parquet")
    datasets.Dataset.from_dict(TEST).to_parquet(folder / "cfg/test-00000-of-00001.parquet")
    parquet_bytes = sum(p.stat().st_size for p in (folder / "cfg").glob("*.parquet"))
    s0 = stats()
    first = api.upload_folder(folder_path=folder, repo_id=DS, repo_type="dataset")
    s1 = stats()
    result["upload"] = {
        "oid": first.oid,
        "lfs_bytes": delta(s0, s1, "lfs_bytes_received"),
        "parquet_bytes": parquet_bytes,
        "regular_bytes": delta(s0, s1, "regular_bytes_received"),
        "readme_bytes": len(README.encode()),
        "commits": s1["commits"].get(f"datasets/{DS}", 0),
        "files": sorted(api.list_repo_files(DS, repo_type="dataset")),
    }
    loaded = datasets.load_dataset(DS, "cfg")
    result["load"] = {
        "splits": sorted(loaded),
        "train": loaded["train"].to_dict(),
        "test": loaded["test"].to_dict(),
    }
    card = DatasetCard.load(DS, repo_type="dataset")
    info = api.dataset_info(DS)
    result["card"] = {
        "configs": [c["config_name"] for c in card.data.configs],
        "license": card.data.license,
        "text_has_title": "# Tiny CT dataset" in card.text,
        "info_card_license": info.card_data.license if info.card_data else None,
        "info_sha": info.sha,
    }

    # -- the same folder again: no commit, no bytes
    commits_before = len(api.list_repo_commits(DS, repo_type="dataset"))
    s2 = stats()
    again = api.upload_folder(folder_path=folder, repo_id=DS, repo_type="dataset")
    s3 = stats()
    result["reupload"] = {
        "same_oid": again.oid == first.oid,
        "commit_requests": delta(s2, s3, "requests.commit"),
        "lfs_puts": delta(s2, s3, "requests.lfs_upload"),
        "lfs_bytes": delta(s2, s3, "lfs_bytes_received"),
        "regular_bytes": delta(s2, s3, "regular_bytes_received"),
        "commits_listed": [commits_before, len(api.list_repo_commits(DS, repo_type="dataset"))],
    }

    # -- an LFS PUT that fails for good: upload_folder raises, main unchanged; a re-run resumes
    extra = {f"extra/blob-{i}.bin": os.urandom(40_000 + 1000 * i) for i in range(3)}
    for name, data in extra.items():
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_bytes(data)
    head = api.dataset_info(DS).sha
    control("POST", "fail_next", {"kind": "lfs_upload", "after": 1, "status": 403})
    s4 = stats()
    failed = error_of(
        lambda: api.upload_folder(folder_path=folder, repo_id=DS, repo_type="dataset")
    )
    s5 = stats()
    files_after_failure = api.list_repo_files(DS, repo_type="dataset")
    head_after_failure = api.dataset_info(DS).sha
    resumed = api.upload_folder(folder_path=folder, repo_id=DS, repo_type="dataset")
    s6 = stats()
    result["lfs_failure"] = {
        "error": failed,
        "head_unchanged": head_after_failure == head,
        "extra_visible": any(f.startswith("extra/") for f in files_after_failure),
        "extra_bytes": sum(len(d) for d in extra.values()),
        "received_during_failure": delta(s4, s5, "lfs_bytes_received"),
        "stored_during_failure": delta(s4, s5, "lfs_bytes_stored"),
        "objects_stored_during_failure": delta(s4, s5, "lfs_objects_stored"),
        "rerun_lfs_bytes": delta(s5, s6, "lfs_bytes_received"),
        "rerun_commits": delta(s5, s6, "requests.commit"),
        "rerun_parent_is_old_head": api.list_repo_commits(DS, repo_type="dataset")[1].commit_id
        == head,
        "rerun_oid_is_head": resumed.oid == api.dataset_info(DS).sha,
        "extra_committed": sorted(
            f for f in api.list_repo_files(DS, repo_type="dataset") if f.startswith("extra/")
        ),
    }

    # -- one transient 500 on an LFS PUT: the client retries (~1 s later) and succeeds
    (folder / "extra/transient.bin").write_bytes(os.urandom(20_000))
    control("POST", "fail_next", {"kind": "lfs_upload"})
    s7 = stats()
    started = time.monotonic()
    api.upload_folder(folder_path=folder, repo_id=DS, repo_type="dataset")
    s8 = stats()
    result["transient"] = {
        "lfs_puts": delta(s7, s8, "requests.lfs_upload"),
        "stored": delta(s7, s8, "lfs_bytes_stored"),
        "seconds": round(time.monotonic() - started, 2),
        "committed": api.file_exists(DS, "extra/transient.bin", repo_type="dataset"),
    }

    # -- a failed commit (500) changes nothing; the re-run sends no LFS bytes again
    (folder / "README.md").write_text(README + "\nUpdated.\n")
    head = api.dataset_info(DS).sha
    control("POST", "fail_next", {"kind": "commit"})
    s9 = stats()
    failed = error_of(
        lambda: api.upload_folder(folder_path=folder, repo_id=DS, repo_type="dataset")
    )
    head_after_failure = api.dataset_info(DS).sha
    readme_after_failure = Path(
        hf_hub_download(DS, "README.md", repo_type="dataset", revision=head_after_failure)
    ).read_text()
    s10 = stats()
    api.upload_folder(folder_path=folder, repo_id=DS, repo_type="dataset")
    s11 = stats()
    result["commit_failure"] = {
        "error": failed,
        "head_unchanged": head_after_failure == head,
        "readme_unchanged": readme_after_failure == README,
        "rerun_lfs_bytes": delta(s10, s11, "lfs_bytes_received"),
        "rerun_regular_bytes": delta(s10, s11, "regular_bytes_received"),
        "commits_made_by_failure": s10["commits"][f"datasets/{DS}"]
        - s9["commits"][f"datasets/{DS}"],
        "readme_now": Path(hf_hub_download(DS, "README.md", repo_type="dataset")).read_text()
        == README + "\nUpdated.\n",
    }

    # -- stale parentCommit -> 412, nothing changes
    head = api.dataset_info(DS).sha
    stale = error_of(
        lambda: api.create_commit(
            DS,
            repo_type="dataset",
            operations=[CommitOperationAdd("notes.txt", b"stale")],
            commit_message="stale parent",
            parent_commit=first.oid,
        )
    )
    fresh = api.create_commit(
        DS,
        repo_type="dataset",
        operations=[CommitOperationAdd("notes.txt", b"fresh")],
        commit_message="fresh parent",
        parent_commit=head,
    )
    result["parent_commit"] = {
        "stale": stale,
        "head_unchanged_by_stale": True,  # replaced below
        "fresh_parent_ok": api.list_repo_commits(DS, repo_type="dataset")[1].commit_id == head,
        "fresh_oid": fresh.oid,
    }
    result["parent_commit"]["head_unchanged_by_stale"] = (
        api.list_repo_commits(DS, repo_type="dataset")[1].commit_id == head
    )

    # -- a download cut mid-body resumes with a Range request
    # http_get reads the body in DOWNLOAD_CHUNK_SIZE (10 MB) pieces and resumes from the last
    # whole piece: make pieces small so that a 300 kB file resumes after 2 pieces (128 KiB).
    constants.DOWNLOAD_CHUNK_SIZE = 64 * 1024
    big = os.urandom(300_000)
    api.upload_file(
        path_or_fileobj=big, path_in_repo="extra/big.bin", repo_id=DS, repo_type="dataset"
    )
    control("POST", "fail_next", {"kind": "download", "truncate": 2 * 64 * 1024})
    s12 = stats()
    path = hf_hub_download(DS, "extra/big.bin", repo_type="dataset")
    s13 = stats()
    fs = HfFileSystem()
    with fs.open(f"datasets/{DS}/extra/big.bin", "rb", block_size=4096) as handle:
        handle.seek(123_456)
        window = handle.read(100)
    s14 = stats()
    result["resume"] = {
        "content_ok": Path(path).read_bytes() == big,
        "downloads": delta(s12, s13, "requests.download"),
        "range_requests": delta(s12, s13, "range_requests"),
        "bytes_served": delta(s12, s13, "bytes_served"),
        "size": len(big),
        "hffs_window_ok": window == big[123_456:123_556],
        "hffs_range_requests": delta(s13, s14, "range_requests"),
        "hffs_ls": sorted(fs.ls(f"datasets/{DS}/cfg", detail=False)),
        "hffs_text": fs.read_text(f"datasets/{DS}/notes.txt"),
    }

    # -- branches (URL-encoded revision), PRs, lookups, errors
    api.create_branch(DS, repo_type="dataset", branch="feat/x")
    api.create_branch(DS, repo_type="dataset", branch="feat/x", exist_ok=True)
    api.upload_file(
        path_or_fileobj=b"on a branch",
        path_in_repo="branch.txt",
        repo_id=DS,
        repo_type="dataset",
        revision="feat/x",
    )
    pr = api.upload_file(
        path_or_fileobj=b"in a PR",
        path_in_repo="pr.txt",
        repo_id=DS,
        repo_type="dataset",
        create_pr=True,
    )
    paths_info = api.get_paths_info(DS, ["cfg", "README.md", "missing"], repo_type="dataset")
    result["api"] = {
        "branch_file": Path(
            hf_hub_download(DS, "branch.txt", repo_type="dataset", revision="feat/x")
        ).read_text(),
        "branch_file_on_main": api.file_exists(DS, "branch.txt", repo_type="dataset"),
        "branch_file_on_branch": api.file_exists(
            DS, "branch.txt", repo_type="dataset", revision="feat/x"
        ),
        "refs": sorted(b.name for b in api.list_repo_refs(DS, repo_type="dataset").branches),
        "pr_url": pr.pr_url,
        "pr_file": Path(
            hf_hub_download(DS, "pr.txt", repo_type="dataset", revision="refs/pr/1")
        ).read_text(),
        "pr_file_on_main": api.file_exists(DS, "pr.txt", repo_type="dataset"),
        "paths_info": [(type(p).__name__, p.path) for p in paths_info],
        "tree_cfg": sorted(p.path for p in api.list_repo_tree(DS, "cfg", repo_type="dataset")),
        "tree_missing": error_of(
            lambda: list(api.list_repo_tree(DS, "missing", repo_type="dataset"))
        ),
        "missing_file": error_of(lambda: hf_hub_download(DS, "missing.txt", repo_type="dataset")),
        "missing_repo": error_of(lambda: hf_hub_download("org/nope", "x.txt")),
        "missing_revision": error_of(
            lambda: hf_hub_download(DS, "README.md", repo_type="dataset", revision="nope")
        ),
        "lfs_sibling": [
            (s.rfilename, s.lfs.sha256 if s.lfs else None)
            for s in api.dataset_info(DS, files_metadata=True).siblings
            if s.rfilename == "extra/big.bin"
        ],
    }

    # -- a tiny transformers model: upload, then Auto*.from_pretrained
    model_dir = work / "model"
    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        vocab_size=99,
    )
    model = BertModel(config)
    model.save_pretrained(model_dir, safe_serialization=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(94)]
    (model_dir / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(str(model_dir / "vocab.txt")).save_pretrained(model_dir)
    (model_dir / "README.md").write_text(
        "---\nlicense: apache-2.0\nlibrary_name: transformers\n---\n# Tiny BERT\n"
    )
    api.create_repo(MODEL, exist_ok=True)
    s15 = stats()
    api.upload_folder(folder_path=model_dir, repo_id=MODEL)
    s16 = stats()
    loaded_config = AutoConfig.from_pretrained(MODEL)
    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    loaded_model = AutoModel.from_pretrained(MODEL)
    expected, got = model.state_dict(), loaded_model.state_dict()
    snapshot = Path(snapshot_download(MODEL))
    result["model"] = {
        "lfs_bytes": delta(s15, s16, "lfs_bytes_received"),
        "safetensors_bytes": (model_dir / "model.safetensors").stat().st_size,
        "config": [type(loaded_config).__name__, loaded_config.hidden_size],
        "tokenizer_ids": tokenizer("w1 w2")["input_ids"],
        "model_class": type(loaded_model).__name__,
        "weights_equal": sorted(expected) == sorted(got)
        and all(torch.equal(expected[k], got[k]) for k in expected),
        "snapshot_files": sorted(
            p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()
        ),
        "card_license": ModelCard.load(MODEL).data.license,
        "library_name": api.model_info(MODEL).library_name,
    }

    # -- delete a repo
    api.create_repo("org/scratch", repo_type="dataset")
    api.delete_repo("org/scratch", repo_type="dataset")
    result["delete"] = {
        "exists": api.repo_exists("org/scratch", repo_type="dataset"),
        "missing_ok": error_of(
            lambda: api.delete_repo("org/scratch", repo_type="dataset", missing_ok=True)
        )["types"],
    }


def main() -> int:
    result: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            run(result, Path(tmp))
        except Exception:
            result["error"] = traceback.format_exc()
    result["blocked"] = blocked
    print("HUB_CHECKS_RESULT=" + json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
