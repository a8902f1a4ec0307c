"""Tests of ``tests/hub_server/``: raw HTTP in-process, the real clients in ONE subprocess.

The server runs in the pytest process. The client side (huggingface_hub, datasets,
transformers) runs in a subprocess (``tests/_hub_client_checks.py``) because HF_ENDPOINT
must be set before those libraries are imported and this session's conftest turns offline
mode on. Nothing leaves 127.0.0.1: the subprocess refuses any other connection.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.hub_server import LocalHub, free_port, git_blob_sha1, lfs_pointer

HERE = Path(__file__).resolve().parent
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy


@pytest.fixture(scope="module")
def hub():
    with LocalHub() as server:
        yield server


def call(hub, method, path, *, body=None, json_body=None, headers=None):
    """(status, headers, body) of one request; HTTP errors are returned, not raised."""
    data = json.dumps(json_body).encode() if json_body is not None else body
    request = urllib.request.Request(hub.url + path, data=data, method=method)
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    if json_body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with OPENER.open(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def create(hub, repo_id, repo_type="dataset"):
    org, name = repo_id.split("/")
    payload = {"name": name, "organization": org, "type": repo_type}
    return call(hub, "POST", "/api/repos/create", json_body=payload)


def commit(hub, repo_id, *ops, parent=None, revision="main", repo_type="dataset"):
    header = {"summary": "test commit", "description": ""}
    if parent:
        header["parentCommit"] = parent
    lines = [{"key": "header", "value": header}, *ops]
    body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    path = f"/api/{repo_type}s/{repo_id}/commit/{revision}"
    return call(hub, "POST", path, body=body, headers={"Content-Type": "application/x-ndjson"})


def add_file(path, content: bytes):
    return {
        "key": "file",
        "value": {
            "path": path,
            "content": base64.b64encode(content).decode(),
            "encoding": "base64",
        },
    }


def upload_lfs(hub, repo_id, content: bytes, repo_type="dataset"):
    """Batch + PUT + verify like the client; returns the sha256."""
    oid = hashlib.sha256(content).hexdigest()
    prefix = "" if repo_type == "model" else f"{repo_type}s/"
    batch = {
        "operation": "upload",
        "transfers": ["basic"],
        "objects": [{"oid": oid, "size": len(content)}],
    }
    status, _, body = call(
        hub, "POST", f"/{prefix}{repo_id}.git/info/lfs/objects/batch", json_body=batch
    )
    assert status == 200
    (obj,) = json.loads(body)["objects"]
    if "actions" in obj:
        put = urllib.request.Request(obj["actions"]["upload"]["href"], data=content, method="PUT")
        with OPENER.open(put, timeout=10) as response:
            assert response.status == 200
        verify = obj["actions"]["verify"]["href"][len(hub.url) :]
        assert call(hub, "POST", verify, json_body={"oid": oid, "size": len(content)})[0] == 200
    return oid


# ---------------------------------------------------------------------------------------------
# Raw protocol, in process


def test_create_repo_conflict_carries_url(hub):
    status, _, body = create(hub, "raw/create")
    assert status == 200
    url = json.loads(body)["url"]
    assert url == f"{hub.url}/datasets/raw/create"
    status, _, body = create(hub, "raw/create")
    assert status == 409 and json.loads(body)["url"] == url
    assert create(hub, "raw/create", repo_type="model")[0] == 200  # another type, another repo
    assert hub.repo_exists("raw/create", "dataset") and hub.repo_exists("raw/create", "model")


def test_preupload_modes_and_remote_oids(hub):
    create(hub, "raw/pre")
    weights = os.urandom(2048)
    oid = upload_lfs(hub, "raw/pre", weights)
    lfs_op = {"key": "lfsFile", "value": {"path": "w.parquet", "algo": "sha256", "oid": oid}}
    assert commit(hub, "raw/pre", add_file("a.txt", b"hello"), lfs_op)[0] == 200

    def sample(data):
        return base64.b64encode(data[:512]).decode()

    files = [
        {"path": "a.txt", "sample": sample(b"hello"), "size": 5},
        {"path": "w.parquet", "sample": sample(weights), "size": len(weights)},
        {"path": "new.txt", "sample": sample(b"text"), "size": 4},
        {"path": "big.txt", "sample": sample(b"text"), "size": 10 * 1024 * 1024},
        {"path": "bin.dat", "sample": sample(b"\x00\x01"), "size": 2},
        {"path": "scan.nii.gz", "sample": sample(b"x"), "size": 1},
    ]
    status, _, body = call(
        hub, "POST", "/api/datasets/raw/pre/preupload/main", json_body={"files": files}
    )
    assert status == 200
    got = {
        f["path"]: (f["uploadMode"], f["oid"], f["shouldIgnore"]) for f in json.loads(body)["files"]
    }
    assert got == {
        "a.txt": ("regular", git_blob_sha1(b"hello"), False),
        "w.parquet": ("lfs", oid, False),
        "new.txt": ("regular", None, False),
        "big.txt": ("lfs", None, False),
        "bin.dat": ("lfs", None, False),
        "scan.nii.gz": ("lfs", None, False),
    }


def test_lfs_protocol_and_resolve_headers(hub):
    create(hub, "raw/lfs")
    content = os.urandom(5000)
    oid = hashlib.sha256(content).hexdigest()
    batch = {"operation": "upload", "objects": [{"oid": oid, "size": len(content)}]}
    status, _, body = call(
        hub, "POST", "/datasets/raw/lfs.git/info/lfs/objects/batch", json_body=batch
    )
    href = json.loads(body)["objects"][0]["actions"]["upload"]["href"]
    bad = urllib.request.Request(href, data=content[:-1] + b"!", method="PUT")
    with pytest.raises(urllib.error.HTTPError) as err:
        OPENER.open(bad, timeout=10)
    assert err.value.code == 400 and oid not in hub.lfs_objects("raw/lfs", "dataset")
    assert upload_lfs(hub, "raw/lfs", content) == oid
    status, _, body = call(
        hub, "POST", "/datasets/raw/lfs.git/info/lfs/objects/batch", json_body=batch
    )
    assert "actions" not in json.loads(body)["objects"][0]  # already stored: nothing to send
    lfs_op = {
        "key": "lfsFile",
        "value": {"path": "d/x.bin", "algo": "sha256", "oid": oid, "size": 5000},
    }
    status, _, body = commit(hub, "raw/lfs", lfs_op)
    assert status == 200
    head = json.loads(body)["commitOid"]
    assert head == hub.head("raw/lfs", "dataset")

    status, headers, body = call(hub, "HEAD", "/datasets/raw/lfs/resolve/main/d/x.bin")
    assert status == 200 and body == b""
    assert headers["X-Repo-Commit"] == head
    assert headers["ETag"] == f'"{oid}"' and headers["X-Linked-Etag"] == f'"{oid}"'
    assert headers["X-Linked-Size"] == headers["Content-Length"] == "5000"
    status, headers, body = call(
        hub,
        "GET",
        f"/datasets/raw/lfs/resolve/{head}/d%2Fx.bin",
        headers={"Range": "bytes=100-199"},
    )
    assert status == 206 and body == content[100:200]
    assert headers["Content-Range"] == "bytes 100-199/5000"
    status, _, body = call(
        hub, "GET", "/datasets/raw/lfs/resolve/main/d/x.bin", headers={"Range": "bytes=-10"}
    )
    assert status == 206 and body == content[-10:]
    status, headers, _ = call(
        hub, "GET", "/datasets/raw/lfs/resolve/main/d/x.bin", headers={"Range": "bytes=5000-"}
    )
    assert status == 416 and headers["Content-Range"] == "bytes */5000"
    status, headers, body = call(hub, "GET", "/datasets/raw/lfs/resolve/main/.gitattributes")
    assert status == 200 and headers["ETag"] == f'"{git_blob_sha1(body)}"'
    assert "X-Linked-Etag" not in headers

    status, _, body = call(hub, "GET", "/api/datasets/raw/lfs/tree/main/d")
    (entry,) = json.loads(body)
    pointer = lfs_pointer(oid, 5000)
    assert entry == {
        "type": "file",
        "oid": git_blob_sha1(pointer),
        "size": 5000,
        "path": "d/x.bin",
        "lfs": {"oid": oid, "size": 5000, "pointerSize": len(pointer)},
    }


def test_commit_is_atomic_and_checks_lfs_objects(hub):
    create(hub, "raw/atomic")
    head = hub.head("raw/atomic", "dataset")
    missing = {
        "key": "lfsFile",
        "value": {"path": "m.bin", "algo": "sha256", "oid": "0" * 64, "size": 3},
    }
    status, _, body = commit(hub, "raw/atomic", add_file("ok.txt", b"ok"), missing)
    assert status == 422 and "was not uploaded" in json.loads(body)["error"]
    status, headers, _ = commit(
        hub,
        "raw/atomic",
        add_file("ok.txt", b"ok"),
        {"key": "deletedFile", "value": {"path": "nope"}},
    )
    assert status == 404 and headers["X-Error-Code"] == "EntryNotFound"
    assert hub.head("raw/atomic", "dataset") == head
    assert set(hub.files("raw/atomic", "dataset")) == {".gitattributes"}
    assert hub.commit_count("raw/atomic", "dataset") == 0

    status, _, body = commit(
        hub, "raw/atomic", add_file("a/1.txt", b"1"), add_file("a/2.txt", b"2")
    )
    assert status == 200
    second = json.loads(body)["commitOid"]
    assert json.loads(body)["commitUrl"] == f"{hub.url}/datasets/raw/atomic/commit/{second}"
    status, _, body = commit(hub, "raw/atomic", add_file("b.txt", b"b"), parent=head)
    assert status == 412  # stale parentCommit
    assert (
        commit(hub, "raw/atomic", {"key": "deletedFolder", "value": {"path": "a/"}}, parent=second)[
            0
        ]
        == 200
    )
    assert set(hub.files("raw/atomic", "dataset")) == {".gitattributes"}
    status, _, body = call(hub, "GET", "/api/datasets/raw/atomic/commits/main")
    assert [c["title"] for c in json.loads(body)] == [
        "test commit",
        "test commit",
        "initial commit",
    ]
    assert hub.commit_count("raw/atomic", "dataset") == 2


def test_read_errors_trees_paths_info_and_encoded_revisions(hub):
    create(hub, "raw/read")
    commit(
        hub,
        "raw/read",
        add_file("README.md", b"---\nlicense: mit\n---\n# r\n"),
        add_file("d/e/f.txt", b"f"),
    )
    status, _, body = call(hub, "POST", "/api/datasets/raw/read/branch/feat%2Fx", json_body={})
    assert status == 200
    assert call(hub, "POST", "/api/datasets/raw/read/branch/feat%2Fx", json_body={})[0] == 409
    commit(hub, "raw/read", add_file("only-on-branch.txt", b"b"), revision="feat%2Fx")
    commit(hub, "raw/read", add_file("sp ace/\u00e9 #1.txt", b"odd"), revision="feat%2Fx")
    odd = call(hub, "GET", "/datasets/raw/read/resolve/feat%2Fx/sp%20ace/%C3%A9%20%231.txt")
    assert odd[0] == 200 and odd[2] == b"odd"

    def error_code(path, method="GET"):
        status, headers, _ = call(hub, method, path)
        return status, headers.get("X-Error-Code")

    assert error_code("/datasets/raw/nope/resolve/main/x", "HEAD") == (404, "RepoNotFound")
    assert error_code("/datasets/raw/read/resolve/nope/README.md", "HEAD") == (
        404,
        "RevisionNotFound",
    )
    assert error_code("/datasets/raw/read/resolve/main/nope.txt") == (404, "EntryNotFound")
    assert error_code("/datasets/raw/read/resolve/main/only-on-branch.txt") == (
        404,
        "EntryNotFound",
    )
    assert error_code("/datasets/raw/read/resolve/feat%2Fx/only-on-branch.txt")[0] == 200
    assert error_code("/api/datasets/raw/nope") == (404, "RepoNotFound")
    assert error_code("/api/datasets/raw/read/revision/nope") == (404, "RevisionNotFound")
    assert error_code("/api/datasets/raw/read/tree/main/nope") == (404, "EntryNotFound")
    assert error_code("/api/datasets/raw/read/tree/main/README.md") == (404, "EntryNotFound")

    status, _, body = call(hub, "GET", "/api/datasets/raw/read/revision/feat%2Fx?blobs=true")
    info = json.loads(body)
    assert status == 200 and info["id"] == "raw/read" and info["cardData"] == {"license": "mit"}
    assert "only-on-branch.txt" in [s["rfilename"] for s in info["siblings"]]
    assert all("blobId" in s for s in info["siblings"])

    def tree(query=""):
        return [
            (e["type"], e["path"])
            for e in json.loads(call(hub, "GET", f"/api/datasets/raw/read/tree/main{query}")[2])
        ]

    assert tree() == [("directory", "d"), ("file", ".gitattributes"), ("file", "README.md")]
    assert tree("/d%2Fe") == [("file", "d/e/f.txt")]
    assert tree("?recursive=True") == [
        ("directory", "d"),
        ("directory", "d/e"),
        ("file", ".gitattributes"),
        ("file", "README.md"),
        ("file", "d/e/f.txt"),
    ]
    expanded = json.loads(call(hub, "GET", "/api/datasets/raw/read/tree/main?expand=true")[2])
    assert all(set(e["lastCommit"]) == {"id", "title", "date"} for e in expanded)

    form = b"paths=d&paths=README.md&paths=missing&expand=false"
    status, _, body = call(
        hub,
        "POST",
        "/api/datasets/raw/read/paths-info/main",
        body=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert [(e["type"], e["path"]) for e in json.loads(body)] == [
        ("directory", "d"),
        ("file", "README.md"),
    ]
    status, _, body = call(
        hub, "POST", "/api/datasets/raw/read/paths-info/main", json_body={"paths": ["d/e/f.txt"]}
    )
    assert [e["path"] for e in json.loads(body)] == ["d/e/f.txt"]


def test_fail_next_after_and_count(hub):
    create(hub, "raw/fail")
    path = "/api/datasets/raw/fail/preupload/main"
    payload = {"files": [{"path": "a.txt", "sample": "", "size": 0}]}
    hub.fail_next("preupload", count=2, after=1, status=503)
    statuses = [call(hub, "POST", path, json_body=payload)[0] for _ in range(4)]
    assert statuses == [200, 503, 503, 200]
    hub.fail_next("commit", status=500)
    before = hub.stats()
    assert commit(hub, "raw/fail", add_file("x.txt", b"12345"))[0] == 500
    after = hub.stats()
    assert after["regular_bytes_received"] - before["regular_bytes_received"] == 5
    assert hub.commit_count("raw/fail", "dataset") == 0
    assert commit(hub, "raw/fail", add_file("x.txt", b"12345"))[0] == 200
    with pytest.raises(ValueError):
        hub.fail_next("nonsense")
    # the same through the control route another process would use
    assert (
        call(hub, "POST", "/_localhub/fail_next", json_body={"kind": "tree", "status": 418})[0]
        == 200
    )
    assert call(hub, "GET", "/api/datasets/raw/fail/tree/main")[0] == 418
    assert call(hub, "GET", "/api/datasets/raw/fail/tree/main")[0] == 200
    assert json.loads(call(hub, "GET", "/_localhub/stats")[2])["requests"]["tree"] >= 2


def test_quiet_and_restartable_on_a_given_port(capfd):
    port = free_port()
    with LocalHub(port=port) as server:
        assert server.url == f"http://127.0.0.1:{port}"
        call(server, "GET", "/api/datasets/a/b")  # 404
        call(server, "GET", "/nonsense/path")
        call(server, "POST", "/api/repos/create", body=b"not json")
        assert server.unhandled == [("GET", "/nonsense/path")]
    with LocalHub(port=port) as server:  # the port is free again after stop()
        assert create(server, "a/b")[0] == 200
    out, err = capfd.readouterr()
    assert out == "" and err == ""


# ---------------------------------------------------------------------------------------------
# The real clients, in one subprocess


@pytest.fixture(scope="module")
def clients(hub, tmp_path_factory):
    """Run tests/_hub_client_checks.py once against ``hub``; return what it observed."""
    home = tmp_path_factory.mktemp("hf_home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(
        HF_ENDPOINT=hub.url,
        HF_HUB_DISABLE_XET="1",
        HF_UPDATE_DOWNLOAD_COUNTS="0",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_HOME=str(home),
        HF_TOKEN="hf_local_test_token",  # any token is accepted; it is never recorded
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        TOKENIZERS_PARALLELISM="false",
    )
    proc = subprocess.run(
        [sys.executable, str(HERE / "_hub_client_checks.py")],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("HUB_CHECKS_RESULT=")]
    assert proc.returncode == 0 and lines, f"client checks crashed:\n{proc.stderr[-4000:]}"
    result = json.loads(lines[-1].split("=", 1)[1])
    assert "error" not in result, result["error"]
    result["stderr"] = proc.stderr
    return result


def test_clients_create_repo_twice(clients):
    assert clients["create"]["first"] == clients["create"]["again"]
    assert clients["create"]["first"].endswith("/datasets/org/tiny-ct")
    assert clients["create"]["conflict"] == 409


def test_clients_upload_then_load_dataset(clients, hub):
    up = clients["upload"]
    assert up["lfs_bytes"] == up["parquet_bytes"] > 0  # parquet files went through LFS
    assert up["regular_bytes"] == up["readme_bytes"]  # README.md inline, base64
    assert up["commits"] == 1
    assert up["files"] == [
        ".gitattributes",
        "README.md",
        "cfg/test-00000-of-00001.parquet",
        "cfg/train-00000-of-00001.parquet",
    ]
    load = clients["load"]
    assert load["splits"] == ["test", "train"]
    assert load["train"] == {
        "id": [0, 1, 2, 3],
        "text": ["a", "bb", "ccc", "dddd"],
        "label": [0, 1, 0, 1],
    }
    assert load["test"] == {"id": [10], "text": ["z"], "label": [1]}
    card = clients["card"]
    assert card["configs"] == ["cfg"] and card["license"] == "mit" and card["text_has_title"]
    assert card["info_card_license"] == "mit" and card["info_sha"] == up["oid"]


def test_clients_same_folder_again_makes_no_commit_and_sends_nothing(clients):
    again = clients["reupload"]
    assert again["same_oid"]
    assert again["commit_requests"] == again["lfs_puts"] == 0
    assert again["lfs_bytes"] == again["regular_bytes"] == 0
    assert again["commits_listed"][0] == again["commits_listed"][1] == 2  # initial + upload


def test_clients_failed_lfs_upload_leaves_main_and_rerun_resumes(clients, hub):
    fail = clients["lfs_failure"]
    assert "RuntimeError" in fail["error"]["types"]  # "Error while uploading ... to the Hub"
    assert fail["head_unchanged"] and not fail["extra_visible"]
    assert fail["received_during_failure"] == fail["extra_bytes"]  # all 3 PUTs arrived
    assert fail["objects_stored_during_failure"] == 2  # the 2nd PUT was refused (403)
    assert 0 < fail["stored_during_failure"] < fail["extra_bytes"]
    # the re-run sends exactly the object that did not arrive, then one commit on the old head
    assert fail["rerun_lfs_bytes"] == fail["extra_bytes"] - fail["stored_during_failure"]
    assert fail["rerun_commits"] == 1
    assert fail["rerun_parent_is_old_head"] and fail["rerun_oid_is_head"]
    assert fail["extra_committed"] == ["extra/blob-0.bin", "extra/blob-1.bin", "extra/blob-2.bin"]
    files = hub.files("org/tiny-ct", "dataset")
    assert [len(files[f"extra/blob-{i}.bin"]) for i in range(3)] == [40_000, 41_000, 42_000]


def test_clients_retry_one_transient_500(clients):
    transient = clients["transient"]
    assert transient["lfs_puts"] == 2 and transient["stored"] == 20_000
    assert transient["committed"] and transient["seconds"] >= 0.9  # the client's 1 s backoff


def test_clients_failed_commit_changes_nothing(clients):
    failed = clients["commit_failure"]
    assert failed["error"]["status"] == 500
    assert failed["head_unchanged"] and failed["readme_unchanged"]
    assert failed["commits_made_by_failure"] == 0
    assert failed["rerun_lfs_bytes"] == 0  # LFS objects all stored already
    assert failed["rerun_regular_bytes"] > 0 and failed["readme_now"]


def test_clients_stale_parent_commit_is_412(clients):
    parent = clients["parent_commit"]
    assert parent["stale"]["status"] == 412
    assert parent["head_unchanged_by_stale"] and parent["fresh_parent_ok"]


def test_clients_download_resumes_with_range(clients):
    resume = clients["resume"]
    assert resume["content_ok"]
    assert resume["downloads"] == 2 and resume["range_requests"] == 1
    assert resume["bytes_served"] == resume["size"]  # nothing was sent twice
    assert resume["hffs_window_ok"] and resume["hffs_range_requests"] >= 1
    assert resume["hffs_ls"] == [
        "datasets/org/tiny-ct/cfg/test-00000-of-00001.parquet",
        "datasets/org/tiny-ct/cfg/train-00000-of-00001.parquet",
    ]
    assert resume["hffs_text"] == "fresh"


def test_clients_branches_prs_and_errors(clients):
    api = clients["api"]
    assert api["branch_file"] == "on a branch"
    assert not api["branch_file_on_main"] and api["branch_file_on_branch"]
    assert api["refs"] == ["feat/x", "main"]
    assert api["pr_url"].endswith("/datasets/org/tiny-ct/discussions/1")
    assert api["pr_file"] == "in a PR" and not api["pr_file_on_main"]
    assert api["paths_info"] == [["RepoFolder", "cfg"], ["RepoFile", "README.md"]]
    assert api["tree_cfg"] == [
        "cfg/test-00000-of-00001.parquet",
        "cfg/train-00000-of-00001.parquet",
    ]
    assert "EntryNotFoundError" in api["tree_missing"]["types"]
    assert "EntryNotFoundError" in api["missing_file"]["types"]
    assert "RepositoryNotFoundError" in api["missing_repo"]["types"]
    assert "RevisionNotFoundError" in api["missing_revision"]["types"]
    ((name, sha256),) = api["lfs_sibling"]
    assert name == "extra/big.bin" and len(sha256) == 64


def test_clients_tiny_transformers_model(clients, hub):
    model = clients["model"]
    assert model["lfs_bytes"] == model["safetensors_bytes"] > 0
    assert model["config"] == ["BertConfig", 32]
    assert model["tokenizer_ids"] == [2, 6, 7, 3]  # [CLS] w1 w2 [SEP]
    assert model["model_class"] == "BertModel" and model["weights_equal"]
    assert {"config.json", "model.safetensors", "vocab.txt"} <= set(model["snapshot_files"])
    assert model["card_license"] == "apache-2.0" and model["library_name"] == "transformers"
    assert hub.commit_count("org/tiny-bert", "model") == 1


def test_clients_delete_repo_and_no_internet(clients, hub):
    assert clients["delete"] == {"exists": False, "missing_ok": []}
    assert not hub.repo_exists("org/scratch", "dataset")
    assert clients["blocked"] == []  # no DNS lookup or connection left 127.0.0.1
    assert hub.unhandled == []  # the clients called no endpoint the server lacks
    assert "hf_local_test_token" not in clients["stderr"]
