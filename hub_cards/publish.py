"""Publish a folder (a built dataset, a trained checkpoint) to the Hub with ``huggingface_hub``.

- Endpoint and auth follow the Hub's conventions: ``HF_ENDPOINT``, ``HF_TOKEN`` or the cached
  login. For an endpoint other than the public Hub, Xet uploads are switched off (a self-hosted
  Hub speaks LFS).
- Bytes go first, in batches (``preupload_lfs_files``): objects that reached the server stay
  there, so an interrupted push re-run sends only what is missing. Then ONE commit makes the new
  state visible: nothing half-written ever shows on the branch. Unchanged files are skipped by
  the client; a push with nothing changed makes no commit and sends no bytes.
- Remote Parquet shards that the folder no longer has are deleted in the same commit, so a
  rebuilt dataset with fewer shards does not keep stale ones under its ``configs`` globs.
- The token never appears in logs, errors or files: it is only handed to ``HfApi``.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import yaml
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    constants,
    metadata_load,
)

from common.errors import UserError
from common.hub_ids import spelling_problem
from common.names import MANIFEST_NAME

logger = logging.getLogger(__name__)

PUBLIC_ENDPOINT = "https://huggingface.co"
DEFAULT_IGNORE = (
    ".build_cache/*",
    ".cache/*",
    ".git/*",
    "*.tmp",
    "*.tmp[0-9]*",
    ".*.staging/*",
    "__pycache__/*",
)
STALE_PATTERNS = ("*.parquet",)  # remote files of these kinds that the folder lacks are removed
DEFAULT_BATCH_BYTES = 2 * 1024**3  # bytes uploaded per batch before the next one starts


class PublishError(UserError):
    """A folder or repo id that cannot be published; the message says what to do."""


@dataclass
class PushReport:
    repo_id: str
    repo_type: str
    revision: str
    commit: str | None  # None when nothing changed
    url: str
    files: int = 0
    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def check_repo_id(repo_id: str) -> str:
    """``ORG/NAME`` or ``NAME``; refuse anything that could name a path outside the Hub repo
    (``common.hub_ids.spelling_problem``)."""
    problem = spelling_problem(repo_id)
    if problem is not None:
        raise PublishError(f"repo id {repo_id!r} is not valid: {problem}")
    return repo_id


def _endpoint(endpoint: str | None) -> str:
    return (endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _use_lfs_for(endpoint: str) -> None:
    """Self-hosted Hub servers speak LFS, not Xet: switch Xet off for them."""
    if endpoint != PUBLIC_ENDPOINT:
        constants.HF_HUB_DISABLE_XET = True


def folder_files(folder: Path, ignore: tuple[str, ...] = DEFAULT_IGNORE) -> list[str]:
    """Relative POSIX paths of the files to publish; refuse links that leave the folder."""
    root = folder.resolve()
    out = []
    for path in sorted(folder.rglob("*")):
        if not (path.is_file() or path.is_symlink()):
            continue
        relative = path.relative_to(folder).as_posix()
        if any(fnmatch.fnmatch(relative, pattern) for pattern in ignore):
            continue
        target = path.resolve()
        if not target.is_relative_to(root):
            raise PublishError(
                f"{path} points outside {folder} (to {target}); refusing to "
                "publish it: copy the file into the folder instead"
            )
        if not target.is_file():
            raise PublishError(f"{path} is a broken link; remove it or rebuild the folder")
        out.append(relative)
    if not out:
        raise PublishError(f"{folder} holds no files to publish")
    return out


def _scrub(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text


def push_folder(
    folder: str | Path,
    repo_id: str,
    *,
    repo_type: str = "dataset",
    private: bool = False,
    gated: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    ignore: tuple[str, ...] = DEFAULT_IGNORE,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    token: str | None = None,
    endpoint: str | None = None,
    space_sdk: str | None = None,
) -> PushReport:
    """Create the repo if needed and make ``revision`` hold the folder's files
    (``space_sdk``: the SDK a new Space repo is created with)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PublishError(f"{folder} is not a folder")
    check_repo_id(repo_id)
    endpoint = _endpoint(endpoint)
    _use_lfs_for(endpoint)
    revision = revision or constants.DEFAULT_REVISION
    api = HfApi(endpoint=endpoint, token=token)
    files = folder_files(folder, ignore)
    try:
        url = str(
            api.create_repo(
                repo_id, repo_type=repo_type, private=private, exist_ok=True, space_sdk=space_sdk
            )
        )
        if gated:
            api.update_repo_settings(repo_id, repo_type=repo_type, gated="manual")
        if revision != constants.DEFAULT_REVISION:
            api.create_branch(repo_id, repo_type=repo_type, branch=revision, exist_ok=True)
        remote = set(api.list_repo_files(repo_id, repo_type=repo_type, revision=revision))
        additions = [
            CommitOperationAdd(path_in_repo=f, path_or_fileobj=str(folder / f)) for f in files
        ]
        for batch in _batches(additions, batch_bytes):
            api.preupload_lfs_files(
                repo_id, additions=batch, repo_type=repo_type, revision=revision
            )
        stale = sorted(
            p
            for p in remote - set(files)
            if any(fnmatch.fnmatch(PurePosixPath(p).name, s) for s in STALE_PATTERNS)
        )
        operations = [*additions, *(CommitOperationDelete(path_in_repo=p) for p in stale)]
        head = api.repo_info(repo_id, repo_type=repo_type, revision=revision).sha
        info = api.create_commit(
            repo_id,
            operations=operations,
            repo_type=repo_type,
            revision=revision,
            commit_message=commit_message or f"Upload {folder.name} with medreason-r1",
            parent_commit=head,
        )
    except PublishError:
        raise
    except Exception as err:  # report without the token, keep the original type visible
        raise PublishError(
            f"pushing {folder} to {repo_id} failed: {type(err).__name__}: "
            f"{_scrub(str(err), token)}; re-run the same command to resume"
        ) from None
    changed = [
        a.path_in_repo for a in additions if a._remote_oid is None or a._remote_oid != a._local_oid
    ]
    committed = info.oid != head
    return PushReport(
        repo_id=repo_id,
        repo_type=repo_type,
        revision=revision,
        commit=info.oid if committed else None,
        url=url,
        files=len(files),
        changed=changed if committed else [],
        deleted=stale if committed else [],
    )


def _batches(additions: list[CommitOperationAdd], limit: int) -> list[list[CommitOperationAdd]]:
    batches: list[list[CommitOperationAdd]] = [[]]
    size = 0
    for addition in additions:
        if batches[-1] and size + addition.upload_info.size > limit:
            batches.append([])
            size = 0
        batches[-1].append(addition)
        size += addition.upload_info.size
    return batches


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")  # never published


def push_dataset(folder: str | Path, repo_id: str, **kwargs) -> PushReport:
    """Publish a built CT-RATE-VQA folder; refuse one whose build did not complete."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST_NAME
    if not manifest_path.is_file():
        raise PublishError(
            f"{folder} has no {MANIFEST_NAME}: it is not a built CT-RATE-VQA "
            "folder (run `python -m dataset_builder build` first)"
        )
    try:
        status = json.loads(manifest_path.read_text()).get("status")
    except ValueError as err:
        raise PublishError(f"{manifest_path} is not valid JSON ({err}); rebuild") from None
    if status != "complete":
        raise PublishError(
            f"{manifest_path} says the build is {status!r}, not complete: "
            "re-run the build (it resumes) before pushing"
        )
    return push_folder(folder, repo_id, repo_type="dataset", **kwargs)


def push_model(folder: str | Path, repo_id: str, **kwargs) -> PushReport:
    """Publish a checkpoint folder: safetensors weights only, never pickle files."""
    folder = Path(folder)
    files = folder_files(folder, kwargs.get("ignore", DEFAULT_IGNORE)) if folder.is_dir() else []
    pickles = [f for f in files if f.endswith(PICKLE_SUFFIXES)]
    if pickles:
        raise PublishError(
            f"{folder} holds pickle-based files {pickles}; only safetensors "
            "weights are published: re-save with save_pretrained()"
        )
    if not any(f.endswith(".safetensors") for f in files) or "config.json" not in files:
        raise PublishError(
            f"{folder} is not a checkpoint folder (it needs config.json and "
            "*.safetensors weights written by save_pretrained())"
        )
    return push_folder(folder, repo_id, repo_type="model", **kwargs)


SPACE_SDK = "gradio"  # ours: the Space's app is a Gradio app (space/app.py)
# what space/app.py imports
SPACE_PACKAGES = ("common", "hub_cards", "dataset_builder", "model_training")


def _space_front_matter(readme: Path) -> dict:
    """The YAML front matter of a Space's README.md, read by huggingface_hub."""
    if not readme.is_file():
        return {}
    try:
        return metadata_load(readme) or {}
    except (ValueError, yaml.YAMLError) as err:
        raise PublishError(f"{readme}: its YAML front matter cannot be read ({err})") from None


def push_space(folder: str | Path, repo_id: str, **kwargs) -> PushReport:
    """Publish a Gradio Space folder (app.py, README.md with sdk/app_file) together with the
    project packages its app imports, so that the Space runs the builder's and the evaluator's
    own code."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PublishError(f"{folder} is not a folder")
    meta = _space_front_matter(folder / "README.md")
    app_file = meta.get("app_file")
    if meta.get("sdk") != SPACE_SDK or not app_file or not (folder / str(app_file)).is_file():
        raise PublishError(
            f"{folder / 'README.md'} must declare sdk: {SPACE_SDK} and an app_file that exists "
            f"in {folder} (got sdk={meta.get('sdk')!r}, app_file={app_file!r})"
        )
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    with tempfile.TemporaryDirectory(prefix="medreason-space-") as staging:
        root = Path(staging) / folder.resolve().name
        shutil.copytree(folder, root, ignore=ignore)
        for package in SPACE_PACKAGES:
            spec = importlib.util.find_spec(package)
            if spec is None or not spec.submodule_search_locations:
                raise PublishError(f"package {package} is not importable: pip install -e . first")
            shutil.copytree(
                next(iter(spec.submodule_search_locations)), root / package, ignore=ignore
            )
        return push_folder(root, repo_id, repo_type="space", space_sdk=SPACE_SDK, **kwargs)
