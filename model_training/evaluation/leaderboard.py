r"""Gather evaluation results into the paper's tables and, optionally, a Hub results dataset.

    python -m model_training.evaluation.leaderboard RESULTS... --output DIR [--per-class] \
        [--macro] [--title T] [--push-results ORG/NAME] [--allow-different-n]
    python -m model_training.evaluation.leaderboard RESULTS... --output DIR \
        --layout table1|table3|table4|fig3 [--paper-figures FILE]
    python -m model_training.evaluation.leaderboard RESULTS... --output DIR [--layout grounding]
    python -m model_training.evaluation.leaderboard RESULTS... --output DIR --layout multitask \
        [--grounding-baseline RUN/run_summary.json]

Options: the fields of ``LeaderboardArguments`` (``--help`` lists them), parsed by
transformers' ``HfArgumentParser`` (``--per-class`` and ``--per_class`` are the same option).
RESULTS are positional (before the options, as above) or given with ``--results A B ...``;
both may be mixed. A boolean option takes an optional value (``--macro``, ``--macro false``),
so put RESULTS first, not right after one.

Each RESULTS is a ``results.json`` written by ``python -m model_training.evaluation.evaluate``, a
folder holding one, or a folder whose sub-folders hold one each (``outputs/demo-cpu/eval``).
A model is named by its ``display_name`` (recorded by the evaluator: a Hub id as it is, a
trained checkpoint as ``<run> (SFT+GRPO)``) and sized by its ``model_parameters`` (``8.29B``,
``235K``; old results: the size in the model's name, else ``?``).

``--layout leaderboard`` (default) writes ``DIR/leaderboard.md`` (one row per model: size,
accuracy with and without thinking, micro, in %), ``DIR/leaderboard.png`` (grouped bars) and
``DIR/leaderboard.json`` (the same rows, with macro and per-class accuracies). All results
must be on the same dataset, config and split: a mix is refused, naming the files, since such
numbers are not comparable in one table. So are results of one mode on different numbers of
questions (``n``, e.g. a ``--limit`` run), unless ``--allow-different-n`` (the table then warns).

The paper's layouts (MedReason-R1, arXiv 2510.19626) write ``DIR/<layout>.{md,json,png}``, the
paper's figure (``model_training.evaluation.paper``) in a column beside ours where it has one:

- ``table1``: Model, Size, accuracy with / without think (Table 1). The paper's figures come
  from ``--paper-figures FILE`` (JSON ``{model display name or Hub id: {"think": % or null,
  "no-think": % or null}}``, as the baselines command writes it) and, for models the file does
  not name, from the paper's Table 1 (matched by Hub id or name; our SFT+GRPO model trained on
  ``zoom`` with all three rewards is the paper's MedReason-R1).
- ``table3``: one row per training data config, zoom-in patch vs plain (Table 3). Results on
  the two configs of one dataset and split go together here (other mixes are still refused).
- ``table4``: one row per GRPO reward set, in the paper's order: correctness; + format;
  + validity; all three (Table 4). Every model must record its reward set (``training``).
- ``fig3``: (a) the SFT model's accuracy with vs without think, (b) the reasoning-answer
  consistency of the SFT and SFT+GRPO models (``modes.think.consistency``: evaluate with
  ``--judge``) (Fig. 3): a two-panel figure and the table of its numbers.

``grounding`` (chosen automatically for results of the grounding task, ``task: grounding`` in
results.json) writes ``DIR/grounding.{md,json,png}``: per model and mode, box IoU (mean),
IoU >= 0.5, point-Dice, mask Dice (SAM prompted with the predicted box and points) and oracle
Dice (the same SAM prompted with the true ones), in %. Grounding and classification results are
never mixed in one table.

``multitask`` writes ``DIR/multitask.{md,json,png}``: both tasks' metrics side by side, one row
per model (its classification and grounding results.json files grouped by the evaluated model,
``model`` in results.json), as a multitask run's models against single-task ones: what it was
trained on (classification, grounding or both), classification accuracy with think (micro and
macro), validity and fallback rates, and box IoU, IoU >= 0.5, point-Dice (mask and oracle Dice
where measured), in %; "—" where a model was not evaluated on a task. ``--grounding-baseline``
(a run's ``run_summary.json``, whose ``grounding_baseline`` is the mean-box baseline) adds that
baseline as its own row of the grounding columns. Each task's results must be comparable among
themselves (one dataset, config and split, the same ``n``), as in the other layouts.

A layout refuses (one line, exit status 2) results that do not fit it.

``--push-results ORG/NAME`` publishes one row per (model, mode) as the Parquet dataset repo
``ORG/NAME`` (``data/results.parquet`` and a dataset card). Pushing again merges: rows with the
same (model, mode, dataset, config, split) are replaced, the others kept. A row names the model
by its Hub id or readable name and the dataset by its Hub id or folder name: never a local path.
"""

from __future__ import annotations

import json
import math
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from common.errors import UserError
from common.hub_ids import is_hub_id  # noqa: E402
from common.names import (
    CLASSIFICATION_TASK,  # noqa: E402
    DATA_LICENSE,  # noqa: E402
    GROUNDING_TASK,  # noqa: E402
    MULTITASK,  # noqa: E402
    STAGE_LABELS,  # noqa: E402
)
from common.names import PROMPT_MODES as MODES  # noqa: E402
from hub_cards.publish import PublishError, check_repo_id, push_folder  # noqa: E402

from . import paper  # noqa: E402

MODE_LABELS = {"think": "with think", "no-think": "without think"}
MISSING = "–"  # a mode that was not evaluated
NOT_RUN_SIZE = "?"  # a Table 1 row shown with the paper's figures only
RESULTS_FILE = "results.json"
KEY_COLUMNS = ("model", "mode", "dataset", "config", "split")  # a results-repo row's identity
PARQUET_PATH = "data/results.parquet"
_SIZE = re.compile(r"(?:^|[^a-z0-9.])(\d+(?:\.\d+)?)b(?![a-z0-9])", re.IGNORECASE)
SIZE_UNITS = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))  # 8292166656 -> 8.29B
UNKNOWN_SIZE = "?"

LAYOUTS = ("leaderboard", "table1", "table3", "table4", "fig3", "grounding", "multitask")
GROUNDING_LAYOUT = "grounding"  # the grounding task's table (results with task: grounding)
MULTITASK_LAYOUT = "multitask"  # both tasks per model: a multitask model vs single-task ones
MULTITASK_MODE = "think"  # ours: the multitask table compares the think mode (the demos' mode)
NOT_EVALUATED = "—"  # multitask: a task the model was not evaluated on
BASELINE_LABEL = "mean-box baseline"  # the grounding baseline row (run_summary.grounding_baseline)
# the multitask table's classification columns: results.json metric -> column heading (in %)
CLASSIFICATION_COLUMNS = {
    "accuracy_micro": "accuracy",
    "accuracy_macro": "macro accuracy",
    "validity_rate": "validity",
    "fallback_rate": "fallback",
}
# the grounding table's columns: results.json metric -> column heading (values in %)
GROUNDING_COLUMNS = {
    "iou_mean": "IoU",
    "iou_50": "IoU>=0.5",
    "point_dice_mean": "point-Dice",
    "mask_dice_mean": "mask Dice",
    "oracle_dice_mean": "oracle Dice",
}
DEFAULT_LAYOUT = "leaderboard"  # ours: the one-table leaderboard
DEFAULT_TITLE = "CT-RATE-VQA leaderboard"
LAYOUT_TITLES = {
    "leaderboard": DEFAULT_TITLE,
    "table1": "Table 1: accuracy on CT-RATE-VQA, ours beside the paper's",
    "table3": "Table 3: SFT with vs without the zoom-in patch",
    "table4": "Table 4: GRPO reward ablations (SFT + RL)",
    "fig3": "Fig. 3: forcing reasoning after SFT, and reasoning-answer consistency",
    "grounding": "CT-RATE-VQA grounding leaderboard",
    "multitask": "Multitask vs single-task models: classification and grounding",
}
PAPER_SOURCE = "MedReason-R1 (Li et al. 2025, arXiv 2510.19626)"
SFT_ONLY, SFT_GRPO = ("sft",), ("sft", "grpo")  # training.stages of the two Fig. 3 models


class LeaderboardError(UserError):
    """Results that cannot be gathered into one table; the message says what to do."""


@dataclass
class LeaderboardArguments:
    """The options of ``python -m model_training.evaluation.leaderboard`` (one field each)."""

    output: str = field(metadata={"help": "folder for leaderboard.{md,png,json}"})
    results: list[str] = field(
        default_factory=list,
        metadata={"help": "results.json files or their folders (also accepted as positionals)"},
    )
    title: str | None = field(
        default=None,
        metadata={"help": f"the table's title (default: the layout's, e.g. {DEFAULT_TITLE!r})"},
    )
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
    layout: Literal[
        "leaderboard", "table1", "table3", "table4", "fig3", "grounding", "multitask"
    ] = field(
        default=DEFAULT_LAYOUT,
        metadata={
            "help": "leaderboard: one row per model; table1, table3, table4, fig3: the paper's "
            "Table 1, Table 3 (zoom vs plain), Table 4 (reward sets), Fig. 3 (think after SFT, "
            "consistency), each beside the paper's figures; grounding: box IoU, IoU>=0.5, "
            "point-Dice, mask and oracle Dice per model and mode (automatic for grounding "
            "results); multitask: both tasks' metrics per model (classification and grounding "
            "results together)"
        },
    )
    paper_figures: str | None = field(
        default=None,
        metadata={
            "help": 'table1: JSON file {model display name or Hub id: {"think": %, '
            '"no-think": %}} (null: no figure) of the paper\'s figures to show beside ours'
        },
    )
    grounding_baseline: str | None = field(
        default=None,
        metadata={
            "help": "multitask: a run's run_summary.json whose grounding_baseline (the mean-box "
            "baseline) is shown as its own row"
        },
    )


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


def _read_json(path: Path, name: str, fix: str) -> object:
    """``path``'s JSON; unreadable: one line naming it (``name``) and what to do (``fix``)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise LeaderboardError(f"{name} could not be read as JSON ({err}); {fix}") from None


def load_results(path: str | Path) -> dict:
    """One ``results.json``, checked for the keys the leaderboard needs."""
    path = Path(path)
    results = _read_json(path, f"{path}", "re-run the evaluation")
    keys = ("model", "config", "split", "modes")
    missing = [k for k in keys if k not in results] if isinstance(results, dict) else list(keys)
    if missing or not isinstance(results["modes"], dict):
        raise LeaderboardError(
            f"{path} is not a results.json of `python -m model_training.evaluation.evaluate` "
            f"(missing {missing}); re-run the evaluation"
        )
    if results.get("task", CLASSIFICATION_TASK) not in (CLASSIFICATION_TASK, GROUNDING_TASK):
        raise LeaderboardError(
            f"{path}: unknown task {results['task']!r} (expected {CLASSIFICATION_TASK} or "
            f"{GROUNDING_TASK}); re-evaluate, or correct the file"
        )
    if results.get("task") == GROUNDING_TASK:
        return _checked_grounding(path, results)
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
    parameters = results.get("model_parameters")
    if parameters is not None and not (_is_number(parameters) and parameters >= 0):
        raise LeaderboardError(
            f"{path}: model_parameters must be a parameter count or null, not {parameters!r}; "
            "re-evaluate, or correct the file"
        )
    if not isinstance(results.get("training") or {}, dict) or not isinstance(
        results.get("display_name") or "", str
    ):
        raise LeaderboardError(
            f"{path}: training must be an object (or null) and display_name a string (or "
            "null); re-evaluate, or correct the file"
        )
    return results


def _checked_grounding(path: Path, results: dict) -> dict:
    """A grounding results.json: every mode has n and numeric (or, for mask and oracle Dice
    without a SAM, absent) grounding metrics."""
    for mode, metrics in results["modes"].items():
        if not isinstance(metrics, dict) or not all(
            _is_number(metrics.get(k)) for k in ("n", "iou_mean", "iou_50", "point_dice_mean")
        ):
            raise LeaderboardError(
                f"{path}: grounding mode {mode!r} lacks a numeric n, iou_mean, iou_50 or "
                "point_dice_mean; re-evaluate"
            )
        for key in ("mask_dice_mean", "oracle_dice_mean"):
            if key in metrics and not _is_number(metrics[key]):
                raise LeaderboardError(
                    f"{path}: grounding mode {mode!r} has a non-numeric {key} "
                    f"({metrics[key]!r}); re-evaluate, or correct the file"
                )
    return results


def _task(results: dict) -> str:
    return str(results.get("task", CLASSIFICATION_TASK))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def human_size(parameters: int) -> str:
    """A parameter count, readable: 8292166656 -> ``8.29B``, 234848 -> ``235K``, 512 -> ``512``."""
    for scale, unit in SIZE_UNITS:
        if parameters >= scale * 0.9995:  # 999,600 reads 1.00M, not 1e+03K
            return f"{parameters / scale:.3g}{unit}"
    return str(parameters)


def model_size(results: dict) -> str:
    """The size of the evaluated model: its parameter count as the evaluator read it from the
    checkpoint (``model_parameters``), else ``model_size``, else (old results) the size in the
    model's name (``...-7B-...`` -> 7B), else ``?``."""
    if _is_number(results.get("model_parameters")):
        return human_size(int(results["model_parameters"]))
    if results.get("model_size"):
        return str(results["model_size"])
    match = _SIZE.search(Path(str(results["model"])).name)
    return f"{match.group(1)}B" if match else UNKNOWN_SIZE


def model_label(results: dict) -> str:
    return str(results.get("display_name") or results["model"])


def _is_local(name: str) -> bool:
    """Whether a recorded model or dataset is a local path rather than a Hub id."""
    return not is_hub_id(name, namespaced=True)


def public_name(name: str, label: str | None = None) -> str:
    """A model or dataset as a published row names it: a Hub id as it is; a local path by
    ``label`` (a readable name) or by its folder's name: never a local path."""
    if not _is_local(name):
        return name
    chosen = label if label and not Path(label).is_absolute() and "/" not in label else None
    return chosen or Path(name).name or name


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


def check_comparable(
    loaded: list[tuple[Path, dict]], allow_different_n: bool = False, across_configs: bool = False
) -> dict:
    """The common dataset, config and split; refuse a mix, the same model twice, or (unless
    ``allow_different_n``) one mode on different numbers of questions. With ``across_configs``
    (Table 3) the configs may differ: ``config`` is then the list of them."""
    groups: dict[tuple, list[str]] = {}
    for path, results in loaded:
        config = None if across_configs else results["config"]
        key = (str(results.get("dataset")), config, results["split"])
        groups.setdefault(key, []).append(str(path))
    if len(groups) > 1:
        what = "datasets/splits" if across_configs else "datasets/configs/splits"
        detail = "; ".join(
            f"dataset {d!r}{'' if across_configs else f' config {c!r}'} split {s!r}: "
            f"{', '.join(files)}"
            for (d, c, s), files in groups.items()
        )
        raise LeaderboardError(
            f"the results are on different {what} and are not comparable ({detail}); make one "
            f"{'table' if across_configs else 'leaderboard'} per dataset"
            f"{'' if across_configs else ', config'} and split"
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
    if across_configs:
        config = list(dict.fromkeys(results["config"] for _, results in loaded))
    if not allow_different_n:
        check_same_n(loaded)
    revisions = sorted({str(r["dataset_revision"]) for _, r in loaded if r.get("dataset_revision")})
    return {"dataset": dataset, "config": config, "split": split, "dataset_revision": revisions}


def table_rows(loaded: list[tuple[Path, dict]]) -> list[dict]:
    """One row per model, in input order; accuracies in % (None for a mode not evaluated)."""
    rows = []
    for path, results in loaded:
        row = {
            "model": model_label(results),
            "size": model_size(results),
            "model_parameters": results.get("model_parameters"),
            "source": str(path),
        }
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


# -- the paper's layouts --------------------------------------------------------------------


def check_options(options: LeaderboardArguments) -> None:
    """Refuse options that do not apply to the chosen layout (before anything is read)."""
    if options.layout not in LAYOUTS:
        raise LeaderboardError(f"--layout {options.layout!r}: use one of {', '.join(LAYOUTS)}")
    if options.grounding_baseline is not None and options.layout != MULTITASK_LAYOUT:
        raise LeaderboardError(
            f"--grounding-baseline applies to --layout {MULTITASK_LAYOUT} only (not "
            f"{options.layout}): drop it, or add --layout {MULTITASK_LAYOUT}"
        )
    if options.paper_figures is not None and options.layout != "table1":
        raise LeaderboardError(
            f"--paper-figures applies to --layout table1 only (not {options.layout}): drop it, "
            "or add --layout table1"
        )
    for name in ("per_class", "macro"):
        if getattr(options, name) and options.layout != DEFAULT_LAYOUT:
            raise LeaderboardError(
                f"--{name.replace('_', '-')} applies to --layout leaderboard only (the paper's "
                f"layouts show micro accuracy, as the paper does): drop it"
            )


def load_paper_figures(path: str | Path) -> dict[str, dict[str, float | None]]:
    """The ``--paper-figures`` file: {model display name or Hub id: {"think": % or None,
    "no-think": % or None}}; anything else is refused, naming the file."""
    path = Path(path)
    shape = '{model display name or Hub id: {"think": %, "no-think": %}}'
    try:
        figures = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise LeaderboardError(
            f"--paper-figures {path} could not be read as JSON ({err}); pass a JSON file {shape}"
        ) from None
    if not isinstance(figures, dict):
        raise LeaderboardError(f"--paper-figures {path} must be a JSON object {shape}")
    for name, entry in figures.items():
        if not (
            isinstance(entry, dict)
            and set(entry) <= set(MODES)
            and all(v is None or (_is_number(v) and 0 <= v <= 100) for v in entry.values())
        ):
            raise LeaderboardError(
                f"--paper-figures {path}: {name!r} maps to {entry!r}; give "
                '{"think": %, "no-think": %} with accuracies in % (0-100) or null'
            )
    return {name: {mode: entry.get(mode) for mode in MODES} for name, entry in figures.items()}


def _accuracy(results: dict, mode: str) -> float | None:
    metrics = results["modes"].get(mode)
    return _pct(metrics["accuracy_micro"]) if metrics else None


def _training(results: dict) -> dict:
    return results.get("training") or {}


def _stages(results: dict) -> tuple[str, ...]:
    return tuple(_training(results).get("stages") or ())


def _stage_text(results: dict) -> str:
    stages = _stages(results)
    return "+".join(STAGE_LABELS.get(s, s) for s in stages) if stages else "not recorded"


def _reward_set(results: dict) -> tuple[str, ...] | None:
    names = _training(results).get("reward_funcs")
    return tuple(sorted(map(str, names))) if isinstance(names, list) and names else None


def _is_medreason(results: dict) -> bool:
    """Whether the model was trained as MedReason-R1 was: SFT then GRPO with all three rewards,
    on the zoom config."""
    return (
        _stages(results) == SFT_GRPO
        and _training(results).get("dataset_config") == paper.ZOOM
        and _reward_set(results) == tuple(sorted(paper.TABLE4_THINK[-1][0]))
    )


def paper_row(
    results: dict, figures: dict[str, dict[str, float | None]]
) -> tuple[str | None, float | None, float | None]:
    """(the paper's row, its accuracy with think, without think) for a model: the
    ``--paper-figures`` entry under its display name or Hub id; else the paper's Table 1 row with
    that Hub id or name; else, for our model trained as MedReason-R1, that row."""
    label, model = model_label(results), str(results["model"])
    for key in (label, model):
        if key in figures:
            return key, figures[key]["think"], figures[key]["no-think"]
    for row in paper.TABLE1:
        names = {row.name.lower(), *(hub_id.lower() for hub_id in row.hub_ids)}
        if label.lower() in names or model.lower() in names:
            return row.name, row.think, row.no_think
    if _is_medreason(results):
        row = paper.MEDREASON_R1
        return f"{row.name} (trained as it was)", row.think, row.no_think
    return None, None, None


def _cells(values: list[object]) -> str:
    return (
        "| "
        + " | ".join(
            _fmt(v) if v is None or isinstance(v, float) else str(v).replace("|", "\\|")
            for v in values
        )
        + " |"
    )


def _table(head: list[str], rows: list[list[object]], text_columns: int) -> list[str]:
    align = "|" + "---|" * text_columns + "---:|" * (len(head) - text_columns)
    return [_cells(head), align, *(_cells(row) for row in rows)]


def _header(title: str, meta: dict, rows: int, source: str) -> list[str]:
    configs = meta["config"] if isinstance(meta["config"], list) else [meta["config"]]
    revision = (
        f", revision `{', '.join(meta['dataset_revision'])}`" if meta["dataset_revision"] else ""
    )
    return [
        f"# {title}",
        "",
        f"Dataset `{meta['dataset']}`, config{'s' if len(configs) > 1 else ''} "
        f"{', '.join(f'`{c}`' for c in configs)}, split `{meta['split']}`{revision}; "
        f"{rows} model{'s' if rows != 1 else ''}.",
        "",
        f'Accuracy in % (micro: correct answers / all questions). "paper" columns: {source}; '
        f"{MISSING} where the paper gives no figure or a mode was not evaluated.",
        "",
    ]


def _hbars(ax, labels: list[str], series: Series) -> None:
    """Grouped horizontal bars on ``ax``, one group per label; paper series hatched."""
    height = 0.8 / len(series)
    for i, (name, values, is_paper) in enumerate(series):
        ys = [j + (i - (len(series) - 1) / 2) * height for j in range(len(labels))]
        bars = ax.barh(
            ys,
            [math.nan if v is None else v for v in values],
            height,
            label=name,
            hatch="//" if is_paper else None,
            alpha=0.55 if is_paper else 1.0,
        )
        ax.bar_label(bars, labels=[_fmt(v) for v in values], padding=2, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 110)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")


Series = list[tuple[str, list[float | None], bool]]  # (name, values, is the paper's)
Layout = tuple[list[dict], list[str], Callable[[Path], None]]  # rows, markdown lines, draw(png)


def _figure(
    title: str,
    labels: list[str],
    series: Series,
    path: str | Path,
    xlabel: str = "accuracy % (micro)",
    bar_height: float = 0.5,
) -> Path:
    """Grouped horizontal bars (``_hbars``) in a figure sized to them, saved to ``path``."""
    height = 1.4 + bar_height * len(labels) * len(series) / 2
    fig, ax = plt.subplots(figsize=(8, height), dpi=100)
    _hbars(ax, labels, series)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def table1(loaded: list[tuple[Path, dict]], meta: dict, title: str, figures: dict) -> Layout:
    """The paper's Table 1: Model, Size, accuracy with / without think, the paper's beside."""
    rows = []
    for path, results in loaded:
        row_name, think, no_think = paper_row(results, figures)
        rows.append(
            {
                "model": model_label(results),
                "size": model_size(results),
                "model_parameters": results.get("model_parameters"),
                "think": _accuracy(results, "think"),
                "paper_think": think,
                "no_think": _accuracy(results, "no-think"),
                "paper_no_think": no_think,
                "paper_row": row_name,
                "source": str(path),
            }
        )
    matched = {r["paper_row"] for r in rows}
    for name, figure in figures.items():  # a --paper-figures entry without results: not run
        if name not in matched:
            rows.append(
                {"model": f"{name} (not run)", "size": NOT_RUN_SIZE, "model_parameters": None,
                 "think": None, "paper_think": figure["think"], "no_think": None,
                 "paper_no_think": figure["no-think"], "paper_row": name, "source": None}
            )  # fmt: skip
    head = ["Model", "Size", "with think", "with think (paper)", "without think",
            "without think (paper)", "paper's row"]  # fmt: skip
    keys = ["model", "size", "think", "paper_think", "no_think", "paper_no_think"]
    table = _table(head, [[r[k] for k in keys] + [r["paper_row"] or MISSING] for r in rows], 2)
    source = f"{PAPER_SOURCE}, Table 1" + (", and --paper-figures" if figures else "")
    draw = partial(
        _figure,
        title,
        [f"{r['model']} ({r['size']})" for r in rows],
        [("with think", [r["think"] for r in rows], False),
         ("with think (paper)", [r["paper_think"] for r in rows], True),
         ("without think", [r["no_think"] for r in rows], False),
         ("without think (paper)", [r["paper_no_think"] for r in rows], True)],
    )  # fmt: skip
    return rows, [*_header(title, meta, len(rows), source), *table], draw


def table3(loaded: list[tuple[Path, dict]], meta: dict, title: str, figures: dict) -> Layout:
    """The paper's Table 3: one row per training data config (zoom-in patch vs plain)."""
    by_config: dict[str, tuple[Path, dict]] = {}
    for path, results in loaded:
        config = str(_training(results).get("dataset_config") or results["config"])
        if config not in paper.TABLE3_LABELS:
            raise LeaderboardError(
                f"{path}: table3 compares models trained on the {' and '.join(paper.TABLE3_LABELS)}"
                f" configs; {model_label(results)} was trained on {config!r}"
            )
        if config in by_config:
            raise LeaderboardError(
                f"table3 has one row per training config, and {by_config[config][0]} and {path} "
                f"were both trained on {config!r}: pass one of them"
            )
        by_config[config] = (path, results)
    rows = []
    for config, label in paper.TABLE3_LABELS.items():
        if config not in by_config:
            continue
        path, results = by_config[config]
        sft_only = _stages(results) == SFT_ONLY  # the paper's Table 3 models are SFT models
        rows.append(
            {
                "training_data": label,
                "training_config": config,
                "evaluated_on": results["config"],
                "model": model_label(results),
                "stages": _stage_text(results),
                "think": _accuracy(results, "think"),
                "no_think": _accuracy(results, "no-think"),
                "paper_no_think": paper.TABLE3_NO_THINK[config] if sft_only else None,
                "source": str(path),
            }
        )
    head = ["Training data", "Model", "Training", "Evaluated on", "with think", "without think",
            "without think (paper)"]  # fmt: skip
    keys = ["training_data", "model", "stages", "evaluated_on", "think", "no_think",
            "paper_no_think"]  # fmt: skip
    table = _table(head, [[r[k] for k in keys] for r in rows], 4)
    note = [
        "",
        "The paper's figures are for SFT models answering without think; they are shown "
        "beside SFT models only.",
    ]
    draw = partial(
        _figure,
        title,
        [f"{r['training_data']}\n{r['model']}" for r in rows],
        [("with think", [r["think"] for r in rows], False),
         ("without think", [r["no_think"] for r in rows], False),
         ("without think (paper)", [r["paper_no_think"] for r in rows], True)],
    )  # fmt: skip
    source = f"{PAPER_SOURCE}, Table 3"
    return rows, [*_header(title, meta, len(rows), source), *table, *note], draw


def table4(loaded: list[tuple[Path, dict]], meta: dict, title: str, figures: dict) -> Layout:
    """The paper's Table 4: one row per GRPO reward set, in the paper's order."""
    by_set: dict[tuple[str, ...], tuple[Path, dict]] = {}
    for path, results in loaded:
        rewards = _reward_set(results)
        if rewards is None:
            raise LeaderboardError(
                f"{path}: {model_label(results)} records no GRPO reward set "
                "(training.reward_funcs); table4 compares models trained with GRPO: evaluate "
                "their checkpoint folders (outputs/<run>/grpo or final) with this evaluator"
            )
        if rewards in by_set:
            raise LeaderboardError(
                f"table4 has one row per reward set, and {by_set[rewards][0]} and {path} were "
                f"both trained with {' + '.join(rewards)}: pass one of them"
            )
        by_set[rewards] = (path, results)
    paper_sets = {
        tuple(sorted(names)): (label, value) for names, label, value in paper.TABLE4_THINK
    }
    order = [s for s in paper_sets if s in by_set] + [s for s in by_set if s not in paper_sets]
    rows = []
    for rewards in order:
        path, results = by_set[rewards]
        label, value = paper_sets.get(rewards, (" + ".join(rewards), None))
        weights = _training(results).get("reward_weights")
        names = _training(results)["reward_funcs"]
        rows.append(
            {
                "rewards": label,
                "reward_funcs": list(names),
                "reward_weights": weights,
                "weights": ", ".join(f"{n} {w:g}" for n, w in zip(names, weights, strict=True))
                if isinstance(weights, list) and len(weights) == len(names)
                else ", ".join(names),
                "model": model_label(results),
                "stages": _stage_text(results),
                "think": _accuracy(results, "think"),
                "paper_think": value if _stages(results) == SFT_GRPO else None,
                "no_think": _accuracy(results, "no-think"),
                "source": str(path),
            }
        )
    head = ["Rewards", "Weights", "Model", "Training", "with think", "with think (paper)",
            "without think"]  # fmt: skip
    keys = ["rewards", "weights", "model", "stages", "think", "paper_think", "no_think"]
    table = _table(head, [[r[k] for k in keys] for r in rows], 4)
    note = [
        "",
        "The paper's figures are for SFT + GRPO models answering with think; they are shown "
        "beside SFT+GRPO models only.",
    ]
    draw = partial(
        _figure,
        title,
        [f"{r['rewards']}\n{r['model']}" for r in rows],
        [("with think", [r["think"] for r in rows], False),
         ("with think (paper)", [r["paper_think"] for r in rows], True),
         ("without think", [r["no_think"] for r in rows], False)],
    )  # fmt: skip
    source = f"{PAPER_SOURCE}, Table 4"
    return rows, [*_header(title, meta, len(rows), source), *table, *note], draw


def _consistency(path: Path, results: dict) -> float:
    value = results["modes"].get("think", {}).get("consistency")
    if not _is_number(value):
        raise LeaderboardError(
            f"{path}: {model_label(results)} has no reasoning-answer consistency "
            "(modes.think.consistency): evaluate it with --judge MODEL_OR_URL (and the think mode)"
        )
    return round(100.0 * float(value), 2)


def fig3(loaded: list[tuple[Path, dict]], meta: dict, title: str, figures: dict) -> Layout:
    """The paper's Fig. 3: (a) the SFT model with vs without think; (b) the consistency of the
    SFT and SFT+GRPO models. Needs one of each, told apart by their recorded training stages."""
    found: dict[tuple[str, ...], list[tuple[Path, dict]]] = {SFT_ONLY: [], SFT_GRPO: []}
    for path, results in loaded:
        if _stages(results) not in found:
            raise LeaderboardError(
                f"{path}: fig3 compares an SFT model with an SFT+GRPO model, and "
                f"{model_label(results)} was trained with {_stage_text(results)} "
                "(training.stages): pass the evaluations of a run's sft and grpo (or final) models"
            )
        found[_stages(results)].append((path, results))
    for stages, entries in found.items():
        if len(entries) != 1:
            name = "+".join(STAGE_LABELS[s] for s in stages)
            raise LeaderboardError(
                f"fig3 needs exactly one {name} model, got {len(entries)}"
                + (f" ({', '.join(str(p) for p, _ in entries)})" if entries else "")
                + ": pass the evaluations of one run's sft and grpo (or final) models"
            )
    (sft_path, sft), (rl_path, rl) = found[SFT_ONLY][0], found[SFT_GRPO][0]
    missing = [m for m in MODES if m not in sft["modes"]]
    if missing:
        raise LeaderboardError(
            f"{sft_path}: fig3 (a) needs the SFT model with and without think, and it was not "
            f"evaluated in {', '.join(missing)}: evaluate it with --mode both"
        )
    consistency = {"SFT": _consistency(sft_path, sft), "SFT+GRPO": _consistency(rl_path, rl)}
    rows = [
        {"panel": "a", "model": model_label(sft), "measure": f"accuracy % ({MODE_LABELS[m]})",
         "ours": _accuracy(sft, m), "paper": paper.FIG3A_SFT[m], "source": str(sft_path)}
        for m in ("think", "no-think")
    ] + [
        {"panel": "b", "model": model_label(results), "measure": f"consistency % ({name})",
         "ours": consistency[name], "paper": paper.FIG3B_CONSISTENCY[name], "source": str(path)}
        for name, (path, results) in (("SFT", (sft_path, sft)), ("SFT+GRPO", (rl_path, rl)))
    ]  # fmt: skip
    head = ["Panel", "Model", "Measure", "ours", "paper"]
    table = _table(head, [[r[k] for k in ("panel", "model", "measure", "ours", "paper")]
                          for r in rows], 3)  # fmt: skip
    note = [
        "",
        "(a) The SFT model forced to reason first (with think) vs answering directly. (b) The "
        "share of answers that the judge, reading only the <think> text, names the same class.",
    ]

    def draw(path: Path) -> None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.2), dpi=100)
        for ax, panel, xlabel in ((axes[0], "a", "accuracy %"), (axes[1], "b", "consistency %")):
            chosen = [r for r in rows if r["panel"] == panel]
            _hbars(ax, [r["measure"].split("(")[1].rstrip(")") for r in chosen],
                   [("ours", [r["ours"] for r in chosen], False),
                    ("paper", [r["paper"] for r in chosen], True)])  # fmt: skip
            ax.set_xlabel(xlabel)
        axes[0].set_title(f"(a) SFT: {model_label(sft)}", fontsize=9)
        axes[1].set_title("(b) reasoning-answer consistency", fontsize=9)
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)

    source = f"{PAPER_SOURCE}, Fig. 3"
    return rows, [*_header(title, meta, 2, source), *table, *note], draw


PAPER_LAYOUTS = {"table1": table1, "table3": table3, "table4": table4, "fig3": fig3}


# -- the grounding table --------------------------------------------------------------------


def _layout_for(layout: str, loaded: list[tuple[Path, dict]]) -> str:
    """The layout to write: grounding for grounding results (automatic from the default);
    refuses a mix of tasks and a layout of the other task."""
    tasks: dict[str, list[str]] = {}
    for path, results in loaded:
        tasks.setdefault(_task(results), []).append(str(path))
    if len(tasks) > 1:
        detail = "; ".join(f"{t}: {', '.join(files)}" for t, files in tasks.items())
        raise LeaderboardError(
            f"the results are of different tasks ({detail}); make one table per task"
        )
    grounding = GROUNDING_TASK in tasks
    if grounding and layout not in (DEFAULT_LAYOUT, GROUNDING_LAYOUT):
        raise LeaderboardError(
            f"--layout {layout} shows classification accuracy; these are grounding results: "
            f"use --layout {GROUNDING_LAYOUT} (or no --layout)"
        )
    if not grounding and layout == GROUNDING_LAYOUT:
        raise LeaderboardError(
            f"--layout {GROUNDING_LAYOUT} needs grounding results (evaluated on the grounding "
            "config); these are classification results: drop --layout"
        )
    return GROUNDING_LAYOUT if grounding else layout


def grounding_rows(loaded: list[tuple[Path, dict]]) -> list[dict]:
    """One row per (model, mode), in input order; metrics in % (None: not measured)."""
    rows = []
    for path, results in loaded:
        for mode in MODES:
            metrics = results["modes"].get(mode)
            if metrics is None:
                continue
            rows.append(
                {
                    "model": model_label(results),
                    "size": model_size(results),
                    "model_parameters": results.get("model_parameters"),
                    "mode": mode,
                    "n": metrics["n"],
                    **{key: _pct(metrics.get(key)) for key in GROUNDING_COLUMNS},
                    "sam_model": results.get("sam_model"),
                    "source": str(path),
                }
            )
    return rows


def grounding_markdown(rows: list[dict], meta: dict, title: str) -> str:
    head = ["model", "size", "mode", *GROUNDING_COLUMNS.values()]
    table = _table(
        [f"{h} %" if i >= 3 else h for i, h in enumerate(head)],
        [
            [r["model"], r["size"], MODE_LABELS[r["mode"]], *(r[k] for k in GROUNDING_COLUMNS)]
            for r in rows
        ],
        text_columns=3,
    )
    sams = sorted({str(r["sam_model"]) for r in rows if r["sam_model"]})
    counts = sorted({r["n"] for r in rows})
    revision = (
        f", revision `{', '.join(meta['dataset_revision'])}`" if meta["dataset_revision"] else ""
    )
    notes = [
        f"# {title}",
        "",
        f"Dataset `{meta['dataset']}`, config `{meta['config']}`, split `{meta['split']}`"
        f"{revision} ({', '.join(map(str, counts))} rows per mode).",
        "",
        "In %: box IoU (mean over rows; 0 without a valid box), share of rows with IoU >= 0.5, "
        "point-Dice (MedReasoner's pDice), mask Dice of the SAM mask prompted with the "
        "predicted box and points, and oracle Dice (the same SAM prompted with the true box and "
        f"points); SAM: {', '.join(f'`{s}`' for s in sams) or 'none'}; {MISSING}: not measured.",
        "",
    ]
    return "\n".join([*notes, *table, ""])


def grounding_plot(rows: list[dict], title: str, path: str | Path) -> Path:
    """Grouped horizontal bars: the grounding metrics of each (model, mode)."""
    labels = [f"{r['model']} ({r['size']}), {MODE_LABELS[r['mode']]}" for r in rows]
    series: Series = [
        (name, [r[key] for r in rows], False) for key, name in GROUNDING_COLUMNS.items()
    ]
    return _figure(title, labels, series, path, xlabel="%", bar_height=0.45)


# -- the multitask table --------------------------------------------------------------------


def _trained_on(entries: list[tuple[Path, dict]]) -> tuple[str | None, str]:
    """(what a model was trained on: classification, grounding or both; None when its results
    record no training, e.g. a base model) and where that was read. The results' training
    record names the task when the evaluator records it (``training.task``, as a stage's
    training_summary.json does); otherwise it is inferred from the tasks the model was
    evaluated on, since a run evaluates its models on the task(s) it trains."""
    names = {CLASSIFICATION_TASK: "classification", GROUNDING_TASK: "grounding", MULTITASK: "both"}
    training = next((_training(r) for _, r in entries if _training(r)), {})
    if not training:
        return None, "no training recorded"
    task = training.get("task")
    if task is not None:
        if task not in names:
            raise LeaderboardError(
                f"{entries[0][0]}: training.task {task!r} is none of {', '.join(names)}; "
                "re-evaluate, or correct the file"
            )
        return names[task], "training record"
    tasks = {_task(r) for _, r in entries}
    return ("both" if len(tasks) > 1 else names[tasks.pop()]), "evaluated tasks"


def load_grounding_baseline(path: str | Path) -> dict:
    """The mean-box baseline of ``--grounding-baseline``: a run's run_summary.json (its
    ``grounding_baseline``) or that object itself, with numeric n, iou_mean, iou_50 and
    point_dice_mean."""
    path = Path(path)
    raw = _read_json(
        path, f"--grounding-baseline {path}", "pass a grounding run's run_summary.json"
    )
    baseline = raw.get("grounding_baseline", raw) if isinstance(raw, dict) else None
    keys = ("n", "iou_mean", "iou_50", "point_dice_mean")
    if not isinstance(baseline, dict) or not all(_is_number(baseline.get(k)) for k in keys):
        raise LeaderboardError(
            f"--grounding-baseline {path} holds no mean-box baseline (numeric {', '.join(keys)}): "
            "pass the run_summary.json of a run that evaluated grounding"
        )
    return baseline


def _task_meta(loaded: list[tuple[Path, dict]], allow_different_n: bool) -> dict[str, dict]:
    """{task: its common dataset, config and split}; each task's results comparable among
    themselves, both tasks present, on one dataset and split, evaluated in the think mode."""
    by_task: dict[str, list[tuple[Path, dict]]] = {}
    for path, results in loaded:
        by_task.setdefault(_task(results), []).append((path, results))
    if len(by_task) < 2:
        (task,) = by_task
        raise LeaderboardError(
            f"--layout {MULTITASK_LAYOUT} compares models on both tasks, and these results are "
            f"all {task}: add the other task's results (a multitask run's eval/<model>-grounding)"
            f", or use --layout {DEFAULT_LAYOUT}"
        )
    for path, results in loaded:
        if MULTITASK_MODE not in results["modes"]:
            raise LeaderboardError(
                f"{path}: the multitask table compares the {MULTITASK_MODE} mode, and "
                f"{model_label(results)} was evaluated in {', '.join(results['modes'])} only: "
                f"evaluate it in the {MULTITASK_MODE} mode"
            )
    meta = {task: check_comparable(entries, allow_different_n) for task, entries in by_task.items()}
    places = {(m["dataset"], m["split"]) for m in meta.values()}
    if len(places) > 1:
        detail = "; ".join(f"{t}: dataset {m['dataset']!r} split {m['split']!r}"
                           for t, m in meta.items())  # fmt: skip
        raise LeaderboardError(
            f"the two tasks' results are on different datasets/splits ({detail}); make one "
            "table per dataset and split"
        )
    return {task: meta[task] for task in (CLASSIFICATION_TASK, GROUNDING_TASK)}


def multitask_rows(loaded: list[tuple[Path, dict]], baseline: dict | None = None) -> list[dict]:
    """One row per evaluated model (``model`` in results.json), in input order: what it was
    trained on and both tasks' metrics in the think mode, in % (None: a task not evaluated, or
    a metric not measured); then the mean-box baseline's row, if given."""
    by_model: dict[str, list[tuple[Path, dict]]] = {}
    for path, results in loaded:
        by_model.setdefault(str(results["model"]), []).append((path, results))
    rows = []
    for entries in by_model.values():
        by_task = {_task(results): (path, results) for path, results in entries}
        first = entries[0][1]
        trained_on, read_from = _trained_on(entries)
        row = {
            "model": model_label(first),
            "size": model_size(first),
            "trained_on": trained_on,
            "trained_on_from": read_from,
            "tasks_evaluated": [t for t in (CLASSIFICATION_TASK, GROUNDING_TASK) if t in by_task],
        }
        for task, columns in ((CLASSIFICATION_TASK, CLASSIFICATION_COLUMNS),
                              (GROUNDING_TASK, GROUNDING_COLUMNS)):  # fmt: skip
            metrics = by_task[task][1]["modes"][MULTITASK_MODE] if task in by_task else {}
            row |= {key: _pct(metrics.get(key)) for key in columns}
            row[f"n_{task}"] = metrics.get("n")
        row["sources"] = {task: str(path) for task, (path, _) in by_task.items()}
        rows.append(row)
    if baseline is not None:
        rows.append(
            {"model": BASELINE_LABEL, "size": "", "trained_on": None,
             "trained_on_from": "the grounding training rows' mean box and points",
             "tasks_evaluated": [GROUNDING_TASK],
             **{key: None for key in CLASSIFICATION_COLUMNS}, f"n_{CLASSIFICATION_TASK}": None,
             **{key: _pct(baseline.get(key)) for key in GROUNDING_COLUMNS},
             f"n_{GROUNDING_TASK}": baseline["n"], "sources": {}}
        )  # fmt: skip
    return rows


def _multitask_columns(rows: list[dict]) -> list[tuple[str, str, str]]:
    """(task, results key, heading) of the columns shown: mask and oracle Dice only where
    some row has them (a SAM was given)."""
    columns = [(CLASSIFICATION_TASK, k, h) for k, h in CLASSIFICATION_COLUMNS.items()]
    return columns + [
        (GROUNDING_TASK, key, heading)
        for key, heading in GROUNDING_COLUMNS.items()
        if key in ("iou_mean", "iou_50", "point_dice_mean") or any(r[key] is not None for r in rows)
    ]


def multitask_markdown(rows: list[dict], meta: dict[str, dict], title: str) -> str:
    columns = _multitask_columns(rows)
    head = ["model", "size", "trained on", *(f"{h} %" for _, _, h in columns)]

    def cell(row: dict, task: str, key: str) -> str:
        if task not in row["tasks_evaluated"]:
            return NOT_EVALUATED
        return _fmt(row[key])

    lines = [_cells(head), "|---|---|---|" + "---:|" * len(columns)]
    for row in rows:
        cells = [row["model"].replace("|", "\\|"), row["size"], row["trained_on"] or NOT_EVALUATED]
        lines.append("| " + " | ".join([*cells, *(cell(row, t, k) for t, k, _ in columns)]) + " |")
    sam = any(key == "mask_dice_mean" for _, key, _ in columns)
    described = []
    for task, info in meta.items():
        counts = sorted({r[f"n_{task}"] for r in rows if r[f"n_{task}"] is not None})
        revision = f", revision `{', '.join(info['dataset_revision'])}`" if info[
            "dataset_revision"] else ""  # fmt: skip
        described.append(
            f"- {task}: dataset `{info['dataset']}`, config `{info['config']}`, split "
            f"`{info['split']}`{revision} ({', '.join(map(str, counts))} rows)"
        )
    notes = [
        f"# {title}",
        "",
        *described,
        "",
        f"In %, {MODE_LABELS[MULTITASK_MODE]}: classification accuracy (micro; macro: the mean of "
        "the per-class accuracies), validity (replies naming a valid class in the answer tags) "
        "and fallback (answers read from untagged text); box IoU (mean), IoU >= 0.5, "
        "point-Dice" + (" and mask / oracle Dice (SAM)" if sam else "") + ". "
        f"{NOT_EVALUATED}: the model was not evaluated on that task; {MISSING}: not measured.",
        "",
        '"trained on": the task of its training as its results record it, else the task(s) it '
        f"was evaluated on (a run evaluates the task(s) it trains); {NOT_EVALUATED} for a model "
        f"with no training recorded. The {BASELINE_LABEL} answers every grounding row with the "
        "mean box and points of the grounding training rows.",
        "",
    ]
    return "\n".join([*notes, *lines, ""])


def multitask_plot(rows: list[dict], title: str, path: str | Path) -> Path:
    """Grouped horizontal bars: classification accuracy and box IoU per model."""
    labels = [f"{r['model']} ({r['trained_on'] or NOT_EVALUATED})" if r["size"] else r["model"]
              for r in rows]  # fmt: skip
    series: Series = [
        (f"accuracy ({MODE_LABELS[MULTITASK_MODE]})", [r["accuracy_micro"] for r in rows], False),
        (f"box IoU ({MODE_LABELS[MULTITASK_MODE]})", [r["iou_mean"] for r in rows], False),
    ]
    return _figure(title, labels, series, path, xlabel="%")  # 2 series: 0.5 in a model


def build_multitask(options: LeaderboardArguments, loaded: list[tuple[Path, dict]]) -> dict:
    """Write ``multitask.{md,png,json}`` into ``options.output``; the JSON's content."""
    meta = _task_meta(loaded, options.allow_different_n)
    baseline = None
    if options.grounding_baseline is not None:
        baseline = load_grounding_baseline(options.grounding_baseline)
        counts = {r["modes"][MULTITASK_MODE]["n"] for _, r in loaded if _task(r) == GROUNDING_TASK}
        if baseline["n"] not in counts and not options.allow_different_n:
            raise LeaderboardError(
                f"--grounding-baseline {options.grounding_baseline} was measured on "
                f"{baseline['n']} rows and the grounding results on {sorted(counts)}: pass the "
                "run_summary.json of a run evaluated on the same rows (same eval_limit)"
            )
    rows = multitask_rows(loaded, baseline)
    title = options.title or LAYOUT_TITLES[MULTITASK_LAYOUT]
    output = Path(options.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / f"{MULTITASK_LAYOUT}.md").write_text(multitask_markdown(rows, meta, title))
    multitask_plot(rows, title, output / f"{MULTITASK_LAYOUT}.png")
    board = {
        "layout": MULTITASK_LAYOUT,
        "title": title,
        "mode": MULTITASK_MODE,
        "tasks": meta,
        "metric": "%: classification accuracy (micro, macro), validity, fallback; grounding box "
        "IoU (mean), IoU>=0.5, point-Dice, mask Dice, oracle Dice; null: not evaluated",
        "grounding_baseline": baseline,
        "rows": rows,
    }
    (output / f"{MULTITASK_LAYOUT}.json").write_text(
        json.dumps(board, indent=1, ensure_ascii=False)
    )
    return board


def build_leaderboard(options: LeaderboardArguments) -> dict:
    """Write ``<layout>.{md,png,json}`` into ``options.output``; the JSON's content."""
    check_options(options)
    figures = load_paper_figures(options.paper_figures) if options.paper_figures else {}
    files = find_results(options.results)
    if not files:
        raise LeaderboardError("no results given: pass results.json files or their folders")
    loaded = [(path, load_results(path)) for path in files]
    if options.layout == MULTITASK_LAYOUT:
        return build_multitask(options, loaded)
    layout = _layout_for(options.layout, loaded)
    for name in ("per_class", "macro"):
        if getattr(options, name) and layout == GROUNDING_LAYOUT:
            raise LeaderboardError(
                f"--{name.replace('_', '-')} applies to classification results; the grounding "
                "table shows the per-mode means (per-class figures: each results.json): drop it"
            )
    meta = check_comparable(loaded, options.allow_different_n, across_configs=layout == "table3")
    title = options.title or LAYOUT_TITLES[layout]
    output = Path(options.output)
    if layout == GROUNDING_LAYOUT:
        rows = grounding_rows(loaded)
        output.mkdir(parents=True, exist_ok=True)
        (output / f"{layout}.md").write_text(grounding_markdown(rows, meta, title))
        grounding_plot(rows, title, output / f"{layout}.png")
        board = {
            **meta,
            "layout": layout,
            "title": title,
            "metric": "grounding %: box IoU (mean), IoU>=0.5, point-Dice, mask Dice, oracle Dice",
            "rows": rows,
        }
    elif layout == DEFAULT_LAYOUT:
        rows = table_rows(loaded)
        output.mkdir(parents=True, exist_ok=True)
        (output / "leaderboard.md").write_text(
            markdown(rows, meta, title, options.per_class, options.macro)
        )
        plot(rows, title, output / "leaderboard.png")
        board = {
            **meta,
            "title": title,
            "metric": "accuracy %, micro (macro also given)",
            "rows": rows,
        }
    else:
        rows, lines, draw = PAPER_LAYOUTS[layout](loaded, meta, title, figures)
        output.mkdir(parents=True, exist_ok=True)
        (output / f"{layout}.md").write_text("\n".join([*lines, ""]))
        draw(output / f"{layout}.png")
        board = {
            **meta,
            "layout": layout,
            "title": title,
            "metric": "accuracy % (micro); consistency %",
            "paper": PAPER_SOURCE,
            "rows": rows,
        }
    (output / f"{layout}.json").write_text(json.dumps(board, indent=1, ensure_ascii=False))
    return board


# -- the results dataset repo ---------------------------------------------------------------


def class_column(name: str) -> str:
    """A name-safe column: ``ground-glass opacity`` -> ``accuracy_ground_glass_opacity``."""
    return "accuracy_" + (re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_") or "class")


def results_rows(results: dict) -> list[dict]:
    """One row per (model, mode) of a ``results.json``, for a results dataset repo.

    Accuracies and rates are fractions in [0, 1], as in ``results.json``; per-class accuracies
    are one column each (``class_column``). The model and the dataset are named by their Hub ids
    or readable names (``public_name``), never by local paths."""
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
        if _task(results) == GROUNDING_TASK:
            rows.append(_grounding_result_row(row, metrics))
            continue
        for name, values in metrics.get("per_class", {}).items():
            column = class_column(name)
            if column in row:
                raise LeaderboardError(
                    f"class {name!r} of {model} gives column {column!r} twice; rename the class"
                )
            row[column] = values["accuracy"]
        rows.append(row)
    return rows


def _grounding_result_row(row: dict, metrics: dict) -> dict:
    """A grounding results-repo row: the grounding means (fractions) instead of accuracies,
    and ``iou_<class>`` per class."""
    row = {k: v for k, v in row.items() if not k.startswith("accuracy_")}
    row |= {"task": GROUNDING_TASK, "format_rate": metrics.get("format_rate")}
    row |= {key: metrics.get(key) for key in GROUNDING_COLUMNS}
    row.pop("validity_rate", None)
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
    from common.cli_options import parse_options

    options, positionals = parse_options(
        LeaderboardArguments,
        argv,
        "python -m model_training.evaluation.leaderboard",
        __doc__,
        positionals=True,
    )
    options.results = [*positionals, *options.results]
    try:
        build_leaderboard(options)
        print((Path(options.output) / f"{options.layout}.md").read_text())
        if options.push_results:
            files = find_results(options.results)
            rows = [r for f in files for r in results_rows(load_results(f))]
            report = push_results(rows, options.push_results, private=options.private)
            state = f"commit {report.commit}" if report.commit else "unchanged, no commit"
            print(f"results of {len(files)} models pushed to {report.url} ({state})")
    except (LeaderboardError, PublishError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
