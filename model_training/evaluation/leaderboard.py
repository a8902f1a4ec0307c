r"""Gather evaluation results into the paper's Table 1 and, optionally, a Hub results dataset.

    python -m model_training.evaluation.leaderboard RESULTS... --output DIR [--per-class] \
        [--macro] [--title T] [--push-results ORG/NAME] [--allow-different-n]

Options: the fields of ``LeaderboardArguments`` (``--help`` lists them), parsed by
transformers' ``HfArgumentParser`` (``--per-class`` and ``--per_class`` are the same option).
RESULTS are positional (before the options, as above) or given with ``--results A B ...``;
both may be mixed. A boolean option takes an optional value (``--macro``, ``--macro false``),
so put RESULTS first, not right after one.

Each RESULTS is a ``results.json`` written by ``python -m model_training.evaluation.evaluate``, a
folder holding one, or a folder whose sub-folders hold one each (``outputs/demo-cpu/eval``). Writes
``DIR/leaderboard.md`` (one row per model: size, accuracy with and without thinking, micro, in
%), ``DIR/leaderboard.png`` (grouped bars) and ``DIR/leaderboard.json`` (the same rows, with
macro and per-class accuracies). All results must be on the same dataset, config and split:
a mix is refused, naming the files, since such numbers are not comparable in one table. So are
results of one mode on different numbers of questions (``n``, e.g. a ``--limit`` run), unless
``--allow-different-n`` (the table then warns).

``--push-results ORG/NAME`` publishes one row per (model, mode) as the Parquet dataset repo
``ORG/NAME`` (``data/results.parquet`` and a dataset card). Pushing again merges: rows with the
same (model, mode, dataset, config, split) are replaced, the others kept.
"""

from __future__ import annotations

import json
import math
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from hub_cards.names import DATA_LICENSE  # noqa: E402
from hub_cards.names import PROMPT_MODES as MODES  # noqa: E402
from hub_cards.publish import PublishError, check_repo_id, push_folder  # noqa: E402

MODE_LABELS = {"think": "with think", "no-think": "without think"}
MISSING = "–"  # a mode that was not evaluated
RESULTS_FILE = "results.json"
KEY_COLUMNS = ("model", "mode", "dataset", "config", "split")  # a results-repo row's identity
PARQUET_PATH = "data/results.parquet"
_SIZE = re.compile(r"(?:^|[^a-z0-9.])(\d+(?:\.\d+)?)b(?![a-z0-9])", re.IGNORECASE)


DEFAULT_TITLE = "CT-RATE-VQA leaderboard"


class LeaderboardError(ValueError):
    """Results that cannot be gathered into one table; the message says what to do."""


@dataclass
class LeaderboardArguments:
    """The options of ``python -m model_training.evaluation.leaderboard`` (one field each)."""

    output: str = field(metadata={"help": "folder for leaderboard.{md,png,json}"})
    results: list[str] = field(
        default_factory=list,
        metadata={"help": "results.json files or their folders (also accepted as positionals)"},
    )
    title: str = field(default=DEFAULT_TITLE, metadata={"help": "the table's title"})
    per_class: bool = field(default=False, metadata={"help": "add per-class columns"})
    macro: bool = field(default=False, metadata={"help": "add macro accuracy columns"})
    allow_different_n: bool = field(
        default=False,
        metadata={
            "help": "rank results of one mode on different numbers of questions (n) together"
        },
    )
    push_results: str | None = field(
        default=None, metadata={"help": "merge the rows into this dataset repo (ORG/NAME)"}
    )
    private: bool = field(default=False, metadata={"help": "create the results repo private"})


# -- reading --------------------------------------------------------------------------------


def find_results(paths: list[str | Path]) -> list[Path]:
    """``results.json`` files from files or folders (a folder: its own, or its sub-folders')."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_file():
            found.append(path)
        elif (path / RESULTS_FILE).is_file():
            found.append(path / RESULTS_FILE)
        elif path.is_dir() and sorted(path.glob(f"*/{RESULTS_FILE}")):
            found.extend(sorted(path.glob(f"*/{RESULTS_FILE}")))
        else:
            raise LeaderboardError(
                f"{path} is neither a {RESULTS_FILE} file nor a folder holding one: pass the "
                "--output-dir of `python -m model_training.evaluation.evaluate` (or its "
                "results.json)"
            )
    return found


def load_results(path: str | Path) -> dict:
    """One ``results.json``, checked for the keys the leaderboard needs."""
    path = Path(path)
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise LeaderboardError(
            f"{path} could not be read as JSON ({err}); re-run the evaluation"
        ) from None
    keys = ("model", "config", "split", "modes")
    missing = [k for k in keys if k not in results] if isinstance(results, dict) else list(keys)
    if missing or not isinstance(results["modes"], dict):
        raise LeaderboardError(
            f"{path} is not a results.json of `python -m model_training.evaluation.evaluate` "
            f"(missing {missing}); re-run the evaluation"
        )
    for mode, metrics in results["modes"].items():
        if not isinstance(metrics, dict) or "accuracy_micro" not in metrics:
            raise LeaderboardError(f"{path}: mode {mode!r} has no accuracy_micro; re-evaluate")
        values = {k: metrics[k] for k in ("accuracy_micro", "accuracy_macro", "n") if k in metrics}
        per_class = metrics.get("per_class", {})
        if not isinstance(per_class, dict) or not all(
            isinstance(v, dict) for v in per_class.values()
        ):
            raise LeaderboardError(f"{path}: mode {mode!r} has a malformed per_class; re-evaluate")
        values |= {f"per_class[{c!r}]": v.get("accuracy") for c, v in per_class.items()}
        for key, value in values.items():
            if not _is_number(value):
                raise LeaderboardError(
                    f"{path}: mode {mode!r} has a non-numeric {key} ({value!r}); re-evaluate, "
                    "or correct the file"
                )
    return results


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def model_size(results: dict) -> str:
    """``results["model_size"]``, else the size in the model's name (``...-7B-...`` -> 7B)."""
    if results.get("model_size"):
        return str(results["model_size"])
    match = _SIZE.search(Path(str(results["model"])).name)
    return f"{match.group(1)}B" if match else "?"


def model_label(results: dict) -> str:
    return str(results.get("display_name") or results["model"])


# -- the table ------------------------------------------------------------------------------


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100.0 * float(value), 2)


def check_same_n(loaded: list[tuple[Path, dict]]) -> None:
    """Refuse results of one mode on different numbers of questions (``n``)."""
    for mode in sorted({m for _, results in loaded for m in results["modes"]}):
        counts: dict[object, list[str]] = {}
        for path, results in loaded:
            if mode in results["modes"]:
                counts.setdefault(results["modes"][mode].get("n"), []).append(str(path))
        if len(counts) > 1:
            detail = "; ".join(f"n = {n}: {', '.join(files)}" for n, files in counts.items())
            raise LeaderboardError(
                f"mode {mode!r} was evaluated on different numbers of questions ({detail}); "
                "evaluate every model on the same rows (same --limit), or pass "
                "--allow-different-n to rank them anyway"
            )


def check_comparable(loaded: list[tuple[Path, dict]], allow_different_n: bool = False) -> dict:
    """The common dataset, config and split; refuse a mix, the same model twice, or (unless
    ``allow_different_n``) one mode on different numbers of questions."""
    groups: dict[tuple, list[str]] = {}
    for path, results in loaded:
        key = (str(results.get("dataset")), results["config"], results["split"])
        groups.setdefault(key, []).append(str(path))
    if len(groups) > 1:
        detail = "; ".join(
            f"dataset {d!r} config {c!r} split {s!r}: {', '.join(files)}"
            for (d, c, s), files in groups.items()
        )
        raise LeaderboardError(
            f"the results are on different datasets/configs/splits and are not comparable "
            f"({detail}); make one leaderboard per dataset, config and split"
        )
    seen: dict[str, Path] = {}
    for path, results in loaded:
        label = model_label(results)
        if label in seen:
            raise LeaderboardError(
                f"model {label!r} appears twice ({seen[label]} and {path}); pass one of them, "
                'or tell them apart with a "display_name" key in results.json'
            )
        seen[label] = path
    dataset, config, split = next(iter(groups))
    if not allow_different_n:
        check_same_n(loaded)
    revisions = sorted({str(r["dataset_revision"]) for _, r in loaded if r.get("dataset_revision")})
    return {"dataset": dataset, "config": config, "split": split, "dataset_revision": revisions}


def table_rows(loaded: list[tuple[Path, dict]]) -> list[dict]:
    """One row per model, in input order; accuracies in % (None for a mode not evaluated)."""
    rows = []
    for path, results in loaded:
        row = {"model": model_label(results), "size": model_size(results), "source": str(path)}
        for mode in MODES:
            metrics = results["modes"].get(mode)
            suffix = mode.replace("-", "_")
            for kind in ("micro", "macro"):
                value = metrics.get(f"accuracy_{kind}") if metrics else None
                row[f"accuracy_{kind}_{suffix}"] = _pct(value)
            row[f"n_{suffix}"] = metrics.get("n") if metrics else None
            per_class = (metrics or {}).get("per_class", {})
            row[f"per_class_{suffix}"] = {c: _pct(v["accuracy"]) for c, v in per_class.items()}
        rows.append(row)
    return rows


def _fmt(value: float | None) -> str:
    return MISSING if value is None else f"{value:.2f}"


def _classes(rows: list[dict]) -> list[str]:
    classes: list[str] = []
    for row in rows:
        for mode in MODES:
            for name in row[f"per_class_{mode.replace('-', '_')}"]:
                if name not in classes:
                    classes.append(name)
    return classes


def markdown(
    rows: list[dict], meta: dict, title: str, per_class: bool = False, macro: bool = False
) -> str:
    """The Markdown leaderboard: header naming the data and the metric, then the table."""
    suffixes = [(m, m.replace("-", "_")) for m in MODES]
    head = ["model", "size"] + [f"accuracy % ({MODE_LABELS[m]})" for m, _ in suffixes]
    if macro:
        head += [f"macro accuracy % ({MODE_LABELS[m]})" for m, _ in suffixes]
    classes = _classes(rows) if per_class else []
    head += [f"{c} % ({MODE_LABELS[m]})" for c in classes for m, _ in suffixes]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for row in rows:
        cells = [row["model"].replace("|", "\\|"), row["size"]]
        cells += [_fmt(row[f"accuracy_micro_{s}"]) for _, s in suffixes]
        if macro:
            cells += [_fmt(row[f"accuracy_macro_{s}"]) for _, s in suffixes]
        cells += [_fmt(row[f"per_class_{s}"].get(c)) for c in classes for _, s in suffixes]
        lines.append("| " + " | ".join(cells) + " |")
    revision = (
        f", revision `{', '.join(meta['dataset_revision'])}`" if meta["dataset_revision"] else ""
    )
    counts = sorted({row[f"n_{s}"] for row in rows for _, s in suffixes if row[f"n_{s}"]})
    n = f" ({counts[0]} questions per mode)" if len(counts) == 1 else ""
    notes = [
        f"# {title}",
        "",
        f"Dataset `{meta['dataset']}`, config `{meta['config']}`, split `{meta['split']}`"
        f"{revision}{n}.",
        "",
        "Accuracy is **micro** accuracy in % (correct answers / all questions)"
        + (", macro is the mean of the per-class accuracies" if macro else "")
        + f"; {MISSING} marks a mode that was not evaluated.",
    ]
    if len(counts) > 1:
        notes += [
            "",
            f"**Warning:** the models were evaluated on different numbers of questions "
            f"({', '.join(map(str, counts))}); see leaderboard.json.",
        ]
    return "\n".join([*notes, "", *lines, ""])


def plot(rows: list[dict], title: str, path: str | Path) -> Path:
    """Grouped horizontal bars: micro accuracy with and without thinking, per model."""
    path = Path(path)
    height = 0.38
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.6 * len(rows)), dpi=100)
    for i, mode in enumerate(MODES):
        key = f"accuracy_micro_{mode.replace('-', '_')}"
        values = [row[key] for row in rows]
        ys = [j + (i - 0.5) * height for j in range(len(rows))]
        bars = ax.barh(
            ys, [math.nan if v is None else v for v in values], height, label=MODE_LABELS[mode]
        )
        ax.bar_label(bars, labels=[_fmt(v) for v in values], padding=2, fontsize=7)
        for y, value in zip(ys, values, strict=True):
            if value is None:  # no bar: say the mode was not evaluated
                ax.text(1, y, MISSING, va="center", fontsize=7)
    ax.set_yticks(range(len(rows)), [f"{r['model']} ({r['size']})" for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 105)
    ax.set_xlabel("accuracy % (micro)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def build_leaderboard(options: LeaderboardArguments) -> dict:
    """Write ``leaderboard.{md,png,json}`` into ``options.output``; the JSON's content."""
    files = find_results(options.results)
    if not files:
        raise LeaderboardError("no results given: pass results.json files or their folders")
    loaded = [(path, load_results(path)) for path in files]
    meta = check_comparable(loaded, options.allow_different_n)
    rows = table_rows(loaded)
    output = Path(options.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "leaderboard.md").write_text(
        markdown(rows, meta, options.title, options.per_class, options.macro)
    )
    plot(rows, options.title, output / "leaderboard.png")
    board = {
        **meta,
        "title": options.title,
        "metric": "accuracy %, micro (macro also given)",
        "rows": rows,
    }
    (output / "leaderboard.json").write_text(json.dumps(board, indent=1, ensure_ascii=False))
    return board


# -- the results dataset repo ---------------------------------------------------------------


def class_column(name: str) -> str:
    """A name-safe column: ``ground-glass opacity`` -> ``accuracy_ground_glass_opacity``."""
    return "accuracy_" + (re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_") or "class")


def results_rows(results: dict) -> list[dict]:
    """One row per (model, mode) of a ``results.json``, for a results dataset repo.

    Accuracies and rates are fractions in [0, 1], as in ``results.json``; per-class accuracies
    are one column each (``class_column``)."""
    rows = []
    for mode, metrics in results["modes"].items():
        row = {
            "model": str(results["model"]),
            "model_size": model_size(results),
            "mode": mode,
            "dataset": str(results.get("dataset")),
            "config": results["config"],
            "split": results["split"],
            "dataset_revision": results.get("dataset_revision"),
            "n": metrics.get("n"),
            "accuracy_micro": metrics.get("accuracy_micro"),
            "accuracy_macro": metrics.get("accuracy_macro"),
            "format_rate": metrics.get("format_rate"),
            "validity_rate": metrics.get("validity_rate"),
        }
        for name, values in metrics.get("per_class", {}).items():
            column = class_column(name)
            if column in row:
                raise LeaderboardError(
                    f"class {name!r} of {results['model']} gives column {column!r} twice; "
                    "rename the class"
                )
            row[column] = values["accuracy"]
        rows.append(row)
    return rows


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


def _existing_rows(repo_id: str, token: str | None, endpoint: str | None) -> list[dict]:
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
        for f in remote - {".gitattributes", "README.md", PARQUET_PATH}
        if f.endswith(".parquet") or PARQUET_PATH not in remote
    )
    if foreign:
        raise LeaderboardError(
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
| `model`, `model_size` | the evaluated checkpoint (Hub id or path) and its size |
| `mode` | `think` (reason in `<think>` first) or `no-think` |
| `dataset`, `config`, `split`, `dataset_revision` | the data evaluated on |
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
):
    """Merge ``rows`` into the results dataset repo ``repo_id`` and push it (one commit).

    The folder pushed (``folder``, or a temporary one) holds ``data/results.parquet`` and
    ``README.md``. Returns ``hub_cards.publish.PushReport``."""
    import datasets

    if not rows:
        raise LeaderboardError("no result rows to push")
    check_repo_id(repo_id)
    try:
        old = _existing_rows(repo_id, token, endpoint)
    except LeaderboardError:
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
        (root / "README.md").write_text(results_card(merged, repo_id))
        return push_folder(
            root,
            repo_id,
            repo_type="dataset",
            private=private,
            token=token,
            endpoint=endpoint,
            commit_message=f"Update results ({len(rows)} rows) with medreason-r1",
        )


# -- command line ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    from hub_cards.cli_options import parse_options

    options, positionals = parse_options(
        LeaderboardArguments,
        argv,
        "python -m model_training.evaluation.leaderboard",
        __doc__,
        positionals=True,
    )
    options.results = [*positionals, *options.results]
    try:
        board = build_leaderboard(options)
        print((Path(options.output) / "leaderboard.md").read_text())
        if options.push_results:
            files = find_results(options.results)
            rows = [r for f in files for r in results_rows(load_results(f))]
            report = push_results(rows, options.push_results, private=options.private)
            state = f"commit {report.commit}" if report.commit else "unchanged, no commit"
            print(f"results of {len(board['rows'])} models pushed to {report.url} ({state})")
    except (LeaderboardError, PublishError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
