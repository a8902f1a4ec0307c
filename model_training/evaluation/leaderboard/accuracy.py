"""``leaderboard`` (the default for classification results): one row per model, its size and
micro accuracy with and without thinking; ``--macro`` and ``--per-class`` add columns."""

from __future__ import annotations

from functools import partial

from common.names import CLASSIFICATION_TASK
from common.names import PROMPT_MODES as MODES
from common.results_schema import model_label, model_size

from ..plots import MISSING, bar_figure
from .base import (
    DEFAULT_LAYOUT,
    MODE_LABELS,
    Layout,
    LeaderboardArguments,
    Loaded,
    Table,
    data_line,
    markdown_table,
    pct,
)
from .reader import check_comparable

SUFFIXES = [(m, m.replace("-", "_")) for m in MODES]  # a mode and its JSON key suffix


def table_rows(loaded: Loaded) -> list[dict]:
    """One row per model, in input order; accuracies in % (None for a mode not evaluated)."""
    rows = []
    for path, results in loaded:
        row = {
            "model": model_label(results),
            "size": model_size(results),
            "model_parameters": results.get("model_parameters"),
            "source": str(path),
        }
        for mode, suffix in SUFFIXES:
            metrics = results["modes"].get(mode) or {}
            for kind in ("micro", "macro"):
                row[f"accuracy_{kind}_{suffix}"] = pct(metrics.get(f"accuracy_{kind}"))
            row[f"n_{suffix}"] = metrics.get("n")
            per_class = metrics.get("per_class", {})
            row[f"per_class_{suffix}"] = {c: pct(v["accuracy"]) for c, v in per_class.items()}
        rows.append(row)
    return rows


def markdown(
    rows: list[dict], meta: dict, title: str, per_class: bool = False, macro: bool = False
) -> list[str]:
    """The Markdown leaderboard: header naming the data and the metric, then the table."""
    kinds = {"micro": "accuracy", "macro": "macro accuracy"} if macro else {"micro": "accuracy"}
    classes = list(dict.fromkeys(c for r in rows for _, s in SUFFIXES for c in r[f"per_class_{s}"]))
    classes = classes if per_class else []
    head = ["model", "size", *(f"{name} % ({MODE_LABELS[m]})" for name in kinds.values()
                               for m, _ in SUFFIXES),
            *(f"{c} % ({MODE_LABELS[m]})" for c in classes for m, _ in SUFFIXES)]  # fmt: skip
    body = [[r["model"], r["size"], *(r[f"accuracy_{k}_{s}"] for k in kinds for _, s in SUFFIXES),
             *(r[f"per_class_{s}"].get(c) for c in classes for _, s in SUFFIXES)]
            for r in rows]  # fmt: skip
    counts = sorted({row[f"n_{s}"] for row in rows for _, s in SUFFIXES if row[f"n_{s}"]})
    n = f" ({counts[0]} questions per mode)" if len(counts) == 1 else ""
    notes = [
        f"# {title}",
        "",
        f"{data_line(meta)}{n}.",
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
    return [*notes, "", *markdown_table(head, body, 2)]


def render(loaded: Loaded, title: str, options: LeaderboardArguments) -> Table:
    meta = check_comparable(loaded, options.allow_different_n)
    rows = table_rows(loaded)
    series = [
        (MODE_LABELS[m], [r[f"accuracy_micro_{s}"] for r in rows], False) for m, s in SUFFIXES
    ]
    labels = [f"{r['model']} ({r['size']})" for r in rows]
    draw = partial(bar_figure, title, labels, series, xlabel="accuracy % (micro)", bar=0.6)
    return Table(meta, rows, markdown(rows, meta, title, options.per_class, options.macro), draw)


LEADERBOARD = Layout(
    DEFAULT_LAYOUT, "CT-RATE-VQA leaderboard", "accuracy %, micro (macro also given)", render,
    (CLASSIFICATION_TASK,), default_for=CLASSIFICATION_TASK, options=("per_class", "macro"),
)  # fmt: skip
