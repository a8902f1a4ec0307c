"""A results dataset repo on the Hub: one row per (model, prompt mode) of evaluation results.

``results_rows`` turns a checked ``results.json`` (``common.results_schema``) into rows;
``push_results`` merges rows into the Parquet dataset repo ``ORG/NAME``
(``data/results.parquet`` and a dataset card) in one commit. Pushing again merges: rows with the
same (model, mode, dataset, config, split) are replaced, the others kept. A row names the model
by its Hub id or readable name and the dataset by its Hub id or folder name: never a local path.
A repo that holds files of another kind is refused, untouched.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from common.hub_ids import is_hub_id
from common.names import DATA_LICENSE, GROUNDING_TASK
from common.results_schema import GROUNDING_REQUIRED, GROUNDING_SAM, model_size, task_of

from .publish import CARD_NAME, PublishError, PushReport, check_repo_id, push_folder

KEY_COLUMNS = ("model", "mode", "dataset", "config", "split")  # a row's identity
PARQUET_PATH = "data/results.parquet"
GROUNDING_MEANS = tuple(k for k in (*GROUNDING_REQUIRED, *GROUNDING_SAM) if k != "n")


class ResultsRepoError(PublishError):
    """Rows or a repo that cannot be pushed as results; the message says what to do."""


def public_name(name: str, label: str | None = None) -> str:
    """A model or dataset as a published row names it: a Hub id as it is; a local path by
    ``label`` (a readable name) or by its folder's name: never a local path."""
    if is_hub_id(name, namespaced=True):
        return name
    chosen = label if label and not Path(label).is_absolute() and "/" not in label else None
    return chosen or Path(name).name or name


def class_column(name: str) -> str:
    """A name-safe column: ``ground-glass opacity`` -> ``accuracy_ground_glass_opacity``."""
    return "accuracy_" + (re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_") or "class")


def results_rows(results: dict) -> list[dict]:
    """One row per (model, mode) of a ``results.json``, for a results dataset repo.

    Accuracies and rates are fractions in [0, 1], as in ``results.json``; per-class accuracies
    are one column each (``class_column``); grounding rows carry the grounding means instead
    (and ``iou_<class>``). The model and the dataset are named by their Hub ids or readable
    names (``public_name``), never by local paths."""
    rows = []
    model = public_name(str(results["model"]), results.get("display_name"))
    for mode, metrics in results["modes"].items():
        row = {
            "model": model,
            "model_size": model_size(results),
            "model_parameters": results.get("model_parameters"),
            "mode": mode,
            "dataset": public_name(str(results.get("dataset"))),
            "config": results["config"],
            "split": results["split"],
            "dataset_revision": results.get("dataset_revision"),
            "n": metrics.get("n"),
            "accuracy_micro": metrics.get("accuracy_micro"),
            "accuracy_macro": metrics.get("accuracy_macro"),
            "format_rate": metrics.get("format_rate"),
            "validity_rate": metrics.get("validity_rate"),
        }
        if task_of(results) == GROUNDING_TASK:
            rows.append(_grounding_row(row, metrics))
            continue
        for name, values in metrics.get("per_class", {}).items():
            column = class_column(name)
            if column in row:
                raise ResultsRepoError(
                    f"class {name!r} of {model} gives column {column!r} twice; rename the class"
                )
            row[column] = values["accuracy"]
        rows.append(row)
    return rows


def _grounding_row(row: dict, metrics: dict) -> dict:
    """A grounding row: the grounding means (fractions) instead of accuracies, and
    ``iou_<class>`` per class."""
    row = {k: v for k, v in row.items() if not k.startswith("accuracy_") and k != "validity_rate"}
    row |= {"task": GROUNDING_TASK, **{key: metrics.get(key) for key in GROUNDING_MEANS}}
    row["parse_rate"] = metrics.get("parse_rate")
    for name, values in metrics.get("per_class", {}).items():
        row["iou_" + class_column(name).removeprefix("accuracy_")] = values.get("iou_mean")
    return row


def merge_rows(old: list[dict], new: list[dict]) -> list[dict]:
    """``old`` with rows of the same (model, mode, dataset, config, split) replaced by ``new``;
    other new rows appended. Every row gets every column (None where a row lacks it)."""
    merged = {tuple(r.get(k) for k in KEY_COLUMNS): r for r in old}
    for row in new:
        merged[tuple(row.get(k) for k in KEY_COLUMNS)] = row
    columns: list[str] = []
    for row in merged.values():
        columns += [c for c in row if c not in columns]
    return [{c: row.get(c) for c in columns} for row in merged.values()]


def existing_rows(repo_id: str, token: str | None, endpoint: str | None) -> list[dict]:
    """The rows already in the repo; [] when the repo does not exist yet.

    Refuses a repo that holds files of another kind (a dataset's Parquet shards would be deleted
    by the push, its card replaced)."""
    import pyarrow.parquet as pq
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    api = HfApi(endpoint=endpoint, token=token)
    try:
        remote = set(api.list_repo_files(repo_id, repo_type="dataset"))
    except GatedRepoError:
        raise
    except RepositoryNotFoundError:
        return []
    foreign = sorted(
        f
        for f in remote - {".gitattributes", CARD_NAME, PARQUET_PATH}
        if f.endswith(".parquet") or PARQUET_PATH not in remote
    )
    if foreign:
        raise ResultsRepoError(
            f"dataset repo {repo_id} exists and is not a results repo of this tool (it holds "
            f"{', '.join(foreign[:5])}{' ...' if len(foreign) > 5 else ''}); pushing would "
            "replace its card and delete its Parquet files: choose another --push-results repo"
        )
    if PARQUET_PATH not in remote:
        return []
    path = hf_hub_download(
        repo_id, PARQUET_PATH, repo_type="dataset", token=token, endpoint=endpoint
    )
    return pq.read_table(path).to_pylist()


def results_card(rows: list[dict], repo_id: str) -> str:
    """The results dataset's card: YAML (configs, license, tags) and the column glossary."""
    import yaml

    header = {
        "license": DATA_LICENSE,
        "pretty_name": f"{repo_id.split('/')[-1]} results",
        "tags": ["medreason-r1", "ct-rate-vqa", "leaderboard", "evaluation-results", "medical"],
        "configs": [{"config_name": "default", "data_files": PARQUET_PATH}],
    }
    overall = {"accuracy_micro", "accuracy_macro"}
    classes = {c for r in rows for c in r if c.startswith("accuracy_")} - overall
    return f"""---
{yaml.safe_dump(header, sort_keys=False).strip()}
---

# {repo_id} results

Evaluation results on CT-RATE-VQA written by `python -m model_training.evaluation.leaderboard
--push-results {repo_id}` (medreason-r1), one row per (model, prompt mode); {len(rows)} rows.
A new push replaces the rows with the same (model, mode, dataset, config, split).

| column | meaning |
|---|---|
| `model`, `model_size` | the evaluated checkpoint (Hub id or readable name) and its size |
| `model_parameters` | its parameter count, read from its weights (empty if unknown) |
| `mode` | `think` (reason in `<think>` first) or `no-think` |
| `dataset`, `config`, `split`, `dataset_revision` | the data evaluated on (Hub id or folder name) |
| `n` | number of questions |
| `accuracy_micro` | correct answers / all questions |
| `accuracy_macro` | mean of the per-class accuracies (classes present in the split) |
| `format_rate` | share of replies with the expected `<think>`/`<answer>` format |
| `validity_rate` | share of replies naming one of the valid classes |
| `accuracy_<class>` | accuracy on one class ({len(classes)} columns) |

All rates and accuracies are fractions in [0, 1].

```python
from datasets import load_dataset
rows = load_dataset("{repo_id}", split="train")
```

**For research only.** The results come from data derived from ReXGroundingCT and CT-RATE
(CC BY-NC-SA 4.0); the models evaluated are not medical devices and must never be used for
clinical decisions.
"""


def push_results(
    rows: list[dict],
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    folder: str | Path | None = None,
) -> PushReport:
    """Merge ``rows`` into the results dataset repo ``repo_id`` and push it (one commit).

    The folder pushed (``folder``, or a temporary one) holds ``data/results.parquet`` and
    ``README.md``."""
    import datasets

    if not rows:
        raise ResultsRepoError("no result rows to push")
    check_repo_id(repo_id)
    try:
        old = existing_rows(repo_id, token, endpoint)
    except ResultsRepoError:
        raise
    except Exception as err:  # report without the token; say what to do
        message = str(err).replace(token, "***") if token else str(err)
        raise PublishError(
            f"reading the existing results of {repo_id} failed ({type(err).__name__}: "
            f"{message}); nothing was pushed: check access to the repo (HF_TOKEN) and re-run"
        ) from None
    merged = merge_rows(old, rows)
    with tempfile.TemporaryDirectory(prefix="medreason-results-") as tmp:
        root = Path(folder) if folder else Path(tmp)
        (root / "data").mkdir(parents=True, exist_ok=True)
        datasets.Dataset.from_list(merged).to_parquet(root / PARQUET_PATH)
        (root / CARD_NAME).write_text(results_card(merged, repo_id))
        return push_folder(
            root,
            repo_id,
            repo_type="dataset",
            private=private,
            token=token,
            endpoint=endpoint,
            commit_message=f"Update results ({len(rows)} rows) with medreason-r1",
        )
