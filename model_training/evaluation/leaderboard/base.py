"""What every layout shares: the command's options, the ``Layout`` interface, the ``Table`` a
layout renders, the error, and the Markdown helpers (figures: ``evaluation.plots``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import UserError
from common.names import STAGE_LABELS
from common.results_schema import revision_text

from ..plots import percent_text

Loaded = list[tuple[Path, dict]]  # (results.json, its checked content), in the order given
MODE_LABELS = {"think": "with think", "no-think": "without think"}
BASELINE_LABEL = "mean-box baseline"  # the grounding results' mean_box_baseline, as a row
DEFAULT_LAYOUT = "leaderboard"  # ours: one row per model (grounding results: grounding)


class LeaderboardError(UserError):
    """Results that cannot be gathered into one table; the message says what to do."""


@dataclass
class LeaderboardArguments:
    """The options of ``python -m model_training.evaluation.leaderboard`` (one field each)."""

    output: str = field(metadata={"help": "folder for <layout>.{md,png,json}"})
    results: list[str] = field(
        default_factory=list,
        metadata={"help": "results.json files or their folders (also accepted as positionals)"},
    )
    title: str | None = field(default=None, metadata={"help": "default: the layout's title"})
    per_class: bool = field(default=False, metadata={"help": "add per-class columns"})
    macro: bool = field(default=False, metadata={"help": "add macro accuracy columns"})
    allow_different_n: bool = field(
        default=False, metadata={"help": "rank results of one mode on different n together"}
    )
    push_results: str | None = field(
        default=None, metadata={"help": "merge the rows into this dataset repo (ORG/NAME)"}
    )
    private: bool = field(default=False, metadata={"help": "create the results repo private"})
    layout: str = field(
        default=DEFAULT_LAYOUT,
        metadata={"help": "a layout named above (grounding results: grounding by default)"},
    )
    paper_figures: str | None = field(
        default=None,
        metadata={"help": 'table1: the paper\'s figures, {model: {"think": %, "no-think": %}}'},
    )


@dataclass
class Table:
    """What a layout renders: the JSON's keys besides its rows (the data compared), the rows,
    the Markdown lines, and ``draw(png_path)``."""

    head: dict
    rows: list[dict]
    lines: list[str]
    draw: Callable[[Path], object]


@dataclass(frozen=True)
class Layout:
    """A table registered in ``layouts.LAYOUTS``: ``render(loaded, title, options)`` refuses
    results that do not fit (``LeaderboardError``), else returns the ``Table`` to write."""

    name: str
    title: str  # the default title
    metric: str  # what the numbers are, for the JSON
    render: Callable[[Loaded, str, LeaderboardArguments], Table]
    tasks: tuple[str, ...]  # the results' tasks it takes (all of them: each model on both)
    default_for: str | None = None  # the task whose results get this layout without --layout
    options: tuple[str, ...] = ()  # options that apply to this layout only


def pct(value: float | None) -> float | None:
    """A fraction in %, rounded as tables show it; None stays None."""
    return None if value is None else round(100.0 * float(value), 2)


def cells(values: list[object]) -> str:
    """A Markdown table line; None and floats as % text (``percent_text``)."""
    shown = [percent_text(v) if v is None or isinstance(v, float) else str(v) for v in values]
    return "| " + " | ".join(s.replace("|", "\\|") for s in shown) + " |"


def markdown_table(head: list[str], rows: list[list[object]], text_columns: int) -> list[str]:
    align = "|" + "---|" * text_columns + "---:|" * (len(head) - text_columns)
    return [cells(head), align, *(cells(row) for row in rows)]


def data_line(meta: dict) -> str:
    """``Dataset `D`, config `C`, split `S`, revision `R``` (configs: ``configs `A`, `B```)."""
    configs = meta["config"] if isinstance(meta["config"], list) else [meta["config"]]
    shown = f"config{'s' if len(configs) > 1 else ''} {', '.join(f'`{c}`' for c in configs)}"
    split = f"split `{meta['split']}`{revision_text(meta['dataset_revision'])}"
    return f"Dataset `{meta['dataset']}`, {shown}, {split}"


def training(results: dict) -> dict:
    return results.get("training") or {}


def stages(results: dict) -> tuple[str, ...]:
    return tuple(training(results).get("stages") or ())


def stage_text(results: dict) -> str:
    names = stages(results)
    return "+".join(STAGE_LABELS.get(s, s) for s in names) if names else "not recorded"


def accuracy(results: dict, mode: str) -> float | None:
    metrics = results["modes"].get(mode)
    return pct(metrics["accuracy_micro"]) if metrics else None
