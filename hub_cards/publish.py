"""Publish a folder (a built dataset, a trained checkpoint) to the Hub with ``huggingface_hub``.

- Endpoint and auth follow the Hub's conventions: ``HF_ENDPOINT``, ``HF_TOKEN`` or the cached
  login. For an endpoint other than the public Hub, Xet uploads are switched off (a self-hosted
  Hub speaks LFS).
- Bytes go first, in batches (``preupload_lfs_files``): objects that reached the server stay
  there, so an interrupted push re-run sends only what is missing. Then ONE commit makes the new
  state visible: nothing half-written ever shows on the branch. Unchanged files are skipped by
  the client; a push with nothing changed makes no commit and sends no bytes.
- Remote Parquet shards that the push no longer holds are deleted in the same commit, so a
  rebuilt dataset with fewer shards (or fewer configs) does not keep stale ones.
- What goes up is what the card declares: a dataset push sends the build's own top-level files
  and the files of the configs its card's ``configs:`` lists, nothing else in the folder (what
  it leaves out is in the report, ``PushReport.left_out``). A model repo and a Space never go up
  without their card (its license and research-only notice).
- No pushed file names a local path (``hub_cards.local_paths``): a text file that does is
  refused, naming the file and the path, before anything is sent.
- The token never appears in logs, errors or files: it is only handed to ``HfApi``.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import yaml
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    DatasetCard,
    HfApi,
    constants,
    metadata_load,
)

from common.build_status import build_problem
from common.errors import UserError
from common.hub_ids import spelling_problem
from common.names import DATA_LICENSE, MANIFEST_NAME, PICKLE_SUFFIXES

from .local_paths import local_path_problem

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
HUB_PROBE_SECONDS = 10  # ours: one request, no retries, before anything is written or pushed
DEFAULT_BATCH_BYTES = 2 * 1024**3  # bytes uploaded per batch before the next one starts
CARD_NAME = "README.md"  # a repo's card (a Space's: its configuration too)
# what every card we publish says (the model card's RESEARCH_NOTICE, the Space's README)
NOTICE_MARKER = "not a medical device"


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
    left_out: list[str] = field(default_factory=list)  # files of the folder not pushed

    def left_out_line(self) -> str | None:
        """One line saying what of the folder was not pushed (by top folder), or None."""
        if not self.left_out:
            return None
        groups = Counter(f"{f.split('/')[0]}/" if "/" in f else f for f in self.left_out)
        parts = ", ".join(f"{name} ({count})" for name, count in sorted(groups.items()))
        return f"left out {len(self.left_out)} file(s) that the card does not declare: {parts}"


def check_repo_id(repo_id: str) -> str:
    """``ORG/NAME`` or ``NAME``; refuse anything that could name a path outside the Hub repo
    (``common.hub_ids.spelling_problem``)."""
    problem = spelling_problem(repo_id)
    if problem is not None:
        raise PublishError(f"repo id {repo_id!r} is not valid: {problem}")
    return repo_id


def hub_endpoint(endpoint: str | None = None) -> str:
    """The Hub a push goes to: ``endpoint``, else ``HF_ENDPOINT`` as set now, else
    huggingface_hub's default."""
    return (endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def hub_problem(
    repo_id: str, option: str, repo_type: str = "model", endpoint: str | None = None
) -> str | None:
    """Why nothing could be pushed to ``repo_id`` (``option`` names it) because the Hub does not
    answer, as one line, or None: one request to its repo API, ``HUB_PROBE_SECONDS`` at most, no
    retries, made before a command writes or trains anything. Any HTTP answer (404 for a repo
    not made yet, 401 for a private one) is an answer: access is checked by the push itself."""
    url = f"{hub_endpoint(endpoint)}/api/{repo_type}s/{repo_id}"
    try:
        with urllib.request.urlopen(url, timeout=HUB_PROBE_SECONDS):  # noqa: S310 (the Hub's URL)
            return None
    except urllib.error.HTTPError:
        return None
    except (OSError, ValueError) as err:  # URLError, refused, timed out, a malformed endpoint
        reason = getattr(err, "reason", None) or err
        return (
            f"{option} {repo_id}: the Hub at {hub_endpoint(endpoint)} does not answer "
            f"({reason}); nothing was written or pushed: check the connection and HF_ENDPOINT, "
            "then re-run"
        )


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
    only: Iterable[str] | None = None,
    source_folders: Iterable[str | Path] = (),
) -> PushReport:
    """Create the repo if needed and make ``revision`` hold the folder's files (``only``: those
    of them, relative to ``folder``; ``space_sdk``: the SDK a new Space repo is created with;
    ``source_folders``: the local folders ``folder`` was copied from, whose paths must not be
    published either). Refused before anything is sent: a text file naming a local path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PublishError(f"{folder} is not a folder")
    check_repo_id(repo_id)
    every = folder_files(folder, ignore)
    wanted = None if only is None else set(only)
    files = every if wanted is None else [f for f in every if f in wanted]
    problem = local_path_problem(folder, files, source_folders)
    if problem is not None:
        raise PublishError(problem)
    endpoint = hub_endpoint(endpoint)
    _use_lfs_for(endpoint)
    revision = revision or constants.DEFAULT_REVISION
    api = HfApi(endpoint=endpoint, token=token)
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
        left_out=sorted(set(every) - set(files)),
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


def push_dataset(folder: str | Path, repo_id: str, **kwargs) -> PushReport:
    """Publish a built CT-RATE-VQA folder: its own top-level files and the files of the configs
    its card declares (``declared_files``); refuse one whose build did not complete."""
    folder = Path(folder)
    if not (folder / MANIFEST_NAME).is_file():
        raise PublishError(
            f"{folder} has no {MANIFEST_NAME}: it is not a built CT-RATE-VQA "
            "folder (run `python -m dataset_builder build` first)"
        )
    problem = build_problem(folder)
    if problem is not None:
        raise PublishError(f"{problem} before pushing")
    files = folder_files(folder, kwargs.get("ignore", DEFAULT_IGNORE))
    return push_folder(
        folder, repo_id, repo_type="dataset", only=declared_files(folder, files), **kwargs
    )


def _data_file_patterns(data_files: object) -> list[tuple[str, str]]:
    """(split, pattern) pairs of a card config's ``data_files``, in any of the forms the Hub
    documents: a pattern, a list of patterns, a list of ``{split, path}`` (``path`` one pattern
    or a list), or a mapping of split to pattern(s)."""

    def listed(value: object) -> list[str]:
        return [value] if isinstance(value, str) else [str(v) for v in value or []]

    if isinstance(data_files, str | None) or (
        isinstance(data_files, list) and all(isinstance(v, str) for v in data_files)
    ):
        return [("train", pattern) for pattern in listed(data_files)]
    if isinstance(data_files, dict):
        return [(str(split), p) for split, value in data_files.items() for p in listed(value)]
    return [(str(entry.get("split", "train")), p) for entry in data_files if isinstance(entry, dict)
            for p in listed(entry.get("path"))]  # fmt: skip


def declared_files(folder: Path, files: list[str]) -> list[str]:
    """Of ``files`` (relative to ``folder``), those a dataset repo publishes: the build's own
    top-level files (``dataset_card.REPO_FILES``) and every file the ``data_files`` patterns
    of the card's ``configs:`` match (globs relative to the repo root, ``*`` within a folder,
    as the Hub's dataset viewer and ``load_dataset`` read them). A card that declares no
    config, or a config whose patterns match no file, is refused."""
    from .dataset_card import REPO_FILES

    readme = folder / CARD_NAME
    if not readme.is_file():
        raise PublishError(f"{folder} has no {CARD_NAME} (its dataset card): rebuild the folder")
    try:
        configs = DatasetCard.load(readme).data.to_dict().get("configs") or []
    except (OSError, ValueError, yaml.YAMLError) as err:
        raise PublishError(
            f"{readme} cannot be read as a dataset card ({type(err).__name__}); rebuild the folder"
        ) from None
    if not isinstance(configs, list) or not configs:
        raise PublishError(f"{readme} declares no configs: rebuild the folder")
    present = set(files)
    declared = {name for name in REPO_FILES if name in present}
    for config in configs:
        name = config.get("config_name", "default") if isinstance(config, dict) else config
        if not isinstance(config, dict) or not config.get("data_files"):
            raise PublishError(f"{readme} declares config {name!r} without data_files: rebuild")
        for split, pattern in _data_file_patterns(config["data_files"]):
            try:  # a pattern leaving the folder (absolute, "..") matches nothing of it
                matched = [p for p in folder.glob(pattern) if p.is_relative_to(folder)]
            except (NotImplementedError, ValueError):
                matched = []
            found = {p.relative_to(folder).as_posix() for p in matched} & present
            if not found:
                raise PublishError(
                    f"{readme} declares config {name!r} ({split}: {pattern}), but no file "
                    f"in {folder} matches it: rebuild the folder"
                )
            declared |= found
    return [f for f in files if f in declared]


def model_card_problem(folder: Path) -> str | None:
    """Why ``folder``'s README.md is not a model card that may go up (missing, unreadable,
    without our license or research-only notice), or None."""
    readme = folder / CARD_NAME
    how = (
        "a model repo goes up only with its card (license, research-only notice, results): "
        "push a run's final/ folder (`python -m model_training.run` writes it with its card), "
        "or write one with hub_cards.model_card.write_model_card"
    )
    if not readme.is_file():
        return f"{folder} has no {CARD_NAME}: {how}"
    return _card_problem(readme, how)


def _card_problem(readme: Path, how: str) -> str | None:
    """Why ``readme`` lacks the license or the research-only notice every card of ours has."""
    try:
        meta = metadata_load(readme) or {}
        text = readme.read_text(encoding="utf-8")
    except (OSError, ValueError, yaml.YAMLError) as err:
        return f"{readme} cannot be read ({type(err).__name__}): {how}"
    if meta.get("license") != DATA_LICENSE:
        return f"{readme} declares license {meta.get('license')!r}, not {DATA_LICENSE}: {how}"
    if NOTICE_MARKER not in " ".join(text.lower().split()):
        return f"{readme} has no research-only notice ('{NOTICE_MARKER}'): {how}"
    return None


def push_model(folder: str | Path, repo_id: str, **kwargs) -> PushReport:
    """Publish a checkpoint folder with its card: safetensors weights only, never pickle
    files, never without README.md (license and research-only notice)."""
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
    problem = model_card_problem(folder)
    if problem is not None:
        raise PublishError(problem)
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
    meta = _space_front_matter(folder / CARD_NAME)
    app_file = meta.get("app_file")
    if meta.get("sdk") != SPACE_SDK or not app_file or not (folder / str(app_file)).is_file():
        raise PublishError(
            f"{folder / CARD_NAME} must declare sdk: {SPACE_SDK} and an app_file that exists "
            f"in {folder} (got sdk={meta.get('sdk')!r}, app_file={app_file!r})"
        )
    how = (
        f"a Space goes up only with its card: give its {CARD_NAME} license {DATA_LICENSE} and "
        "the research-only notice, as space/README.md has them"
    )
    problem = _card_problem(folder / CARD_NAME, how)
    if problem is not None:
        raise PublishError(problem)
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
        return push_folder(
            root, repo_id, repo_type="space", space_sdk=SPACE_SDK, source_folders=[folder],
            **kwargs,
        )  # fmt: skip
