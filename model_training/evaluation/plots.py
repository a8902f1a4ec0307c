"""Plots of an evaluation: per-class accuracy bars and a confusion matrix per prompt mode; for
grounding, per-class IoU / Dice bars and predicted vs true boxes and points on sample slices.
And the one bar-chart helper (``grouped_bars``, ``bar_figure``) that these and the leaderboard's
figures draw with."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

INVALID = "(no valid answer)"  # the confusion matrix's last column
MISSING = "–"  # a value not measured (e.g. a mode not evaluated), in figures and tables
Series = list[tuple[str, list[float | None], bool]]  # (legend, a value per label, a reference)


def percent_text(value: float | None) -> str:
    """A % value as figures and tables print it: ``52.18``; ``–`` for None."""
    return MISSING if value is None else f"{value:.2f}"


def grouped_bars(ax, labels: list[str], series: Series, *, horizontal: bool = True) -> None:
    """Bars in %, one group per label and one bar per series; a reference series (e.g. a
    paper's figures) hatched and lighter; None: no bar. Horizontal bars carry their values."""
    width = 0.8 / len(series)
    places = np.arange(len(labels))
    for i, (name, values, reference) in enumerate(series):
        at = places + (i - (len(series) - 1) / 2) * width
        heights = [math.nan if v is None else v for v in values]
        style = {"label": name, "hatch": "//" if reference else None}
        style["alpha"] = 0.55 if reference else 1.0
        if horizontal:
            bars = ax.barh(at, heights, width, **style)
            ax.bar_label(bars, labels=[percent_text(v) for v in values], padding=2, fontsize=7)
        else:
            ax.bar(at, heights, width, **style)
    if horizontal:
        ax.set_yticks(places, labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 110)
        ax.grid(axis="x", alpha=0.3)
    else:
        ax.set_xticks(places, labels, rotation=30, ha="right", fontsize=7)
        ax.set_ylim(0, 100)
    ax.legend(fontsize=7, loc="lower right" if horizontal else "best")


def bar_figure(
    title: str, labels: list[str], series: Series, path: str | Path, xlabel: str, bar: float = 0.5
) -> Path:
    """Horizontal ``grouped_bars`` in a figure sized to them (``bar``: inches a bar), saved."""
    fig, ax = plt.subplots(figsize=(8, 1.4 + bar * len(labels) * len(series) / 2), dpi=100)
    grouped_bars(ax, labels, series)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def bar_panels(
    title: str, panels: list[tuple[str, str, list[str], Series]], path: str | Path
) -> Path:
    """Horizontal ``grouped_bars`` panels side by side, each (title, xlabel, labels, series)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.2), dpi=100)
    for ax, (subtitle, xlabel, labels, series) in zip(np.atleast_1d(axes), panels, strict=True):
        grouped_bars(ax, labels, series)
        ax.set_xlabel(xlabel)
        ax.set_title(subtitle, fontsize=9)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def _class_labels(metrics: dict) -> list[str]:
    return [f"{c}\n(n={v['support']})" for c, v in metrics["per_class"].items()]


def per_class_bars(results: dict, path: str | Path) -> Path:
    """Grouped bars: accuracy (%) per class, one bar per mode, with the support in labels."""
    modes = results["modes"]
    first = next(iter(modes.values()))
    classes = list(first["per_class"])
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(classes)), 4), dpi=100)
    series: Series = [
        (f"{mode} (micro {100 * m['accuracy_micro']:.1f} %)",
         [100 * m["per_class"][c]["accuracy"] for c in classes], False)
        for mode, m in modes.items()
    ]  # fmt: skip
    grouped_bars(ax, _class_labels(first), series, horizontal=False)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{Path(str(results['model'])).name}: per-class accuracy", fontsize=9)
    return _save(fig, path)


def confusion_matrix(rows: list[dict], classes: list[str]) -> np.ndarray:
    """Counts, gold class (rows) x answered class (columns; the last one: no valid answer)."""
    index = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes) + 1), dtype=int)
    for row in rows:
        if row["gold"] in index:
            matrix[index[row["gold"]], index.get(row["answer"], len(classes))] += 1
    return matrix


def confusion_plot(rows: list[dict], classes: list[str], title: str, path: str | Path) -> Path:
    matrix = confusion_matrix(rows, classes)
    fig, ax = plt.subplots(figsize=(1.0 * len(classes) + 3, 0.8 * len(classes) + 2), dpi=100)
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            color = "white" if count > matrix.max() / 2 else "black"
            ax.text(j, i, str(count), ha="center", va="center", color=color, fontsize=8)
    ax.set_xticks(range(len(classes) + 1), [*classes, INVALID], rotation=40, ha="right", fontsize=7)
    ax.set_yticks(range(len(classes)), classes, fontsize=7)
    ax.set_xlabel("answer")
    ax.set_ylabel("gold")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


# -- grounding --------------------------------------------------------------------------------

GROUNDING_BAR_METRICS = {  # per-class figures of a grounding evaluation, in this order
    "iou_mean": "box IoU",
    "point_dice_mean": "point-Dice (ours)",
    "mask_dice_mean": "mask Dice (SAM)",
}
TRUE_COLOUR, PREDICTED_COLOUR = "lime", "red"


def grounding_per_class_bars(results: dict, path: str | Path) -> Path:
    """One panel per metric (box IoU, point Dice, mask Dice when measured): per-class means in
    %, one bar per mode, with the support in the labels."""
    modes = results["modes"]
    first = next(iter(modes.values()))
    metrics = [m for m in GROUNDING_BAR_METRICS if m in first]
    classes = list(first["per_class"])
    fig, axes = plt.subplots(
        len(metrics), 1, figsize=(max(6, 1.1 * len(classes)), 2.6 * len(metrics)), dpi=100,
        squeeze=False,
    )  # fmt: skip
    for ax, metric in zip(axes[:, 0], metrics, strict=True):
        series: Series = [
            (f"{mode} (all {100 * m[metric]:.1f} %)",
             [100 * (m["per_class"][c].get(metric) or 0.0) for c in classes], False)
            for mode, m in modes.items()
        ]  # fmt: skip
        grouped_bars(ax, _class_labels(first), series, horizontal=False)
        ax.set_ylabel(f"{GROUNDING_BAR_METRICS[metric]} (%)", fontsize=8)
        if ax is not axes[-1, 0]:
            ax.set_xticks(ax.get_xticks(), [])
    axes[0, 0].set_title(f"{Path(str(results['model'])).name}: per-class grounding", fontsize=9)
    return _save(fig, path)


def _draw_box(ax, box: list[float], colour: str, style: str) -> None:
    from matplotlib.patches import Rectangle

    x0, y0, x1, y1 = box  # end-exclusive pixel corners: pixel i spans [i - 0.5, i + 0.5]
    ax.add_patch(
        Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=colour,
                  linestyle=style, linewidth=1.2)
    )  # fmt: skip


def grounding_samples(samples: list[dict], title: str, path: str | Path) -> Path:
    """Sample slices (image frame), each with the true box, points and mask outline (green) and
    the predicted box, points and SAM mask (red) where there are. A sample: {image, title,
    true_box, true_points, true_mask, box, points, mask} (None where missing)."""
    columns = min(3, max(1, len(samples)))
    rows = max(1, -(-len(samples) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.4 * rows), dpi=100,
                             squeeze=False)  # fmt: skip
    for ax in axes.flat:
        ax.axis("off")
    for ax, sample in zip(axes.flat, samples, strict=False):
        ax.imshow(np.asarray(sample["image"].convert("L")), cmap="gray")
        if sample.get("true_mask") is not None:
            ax.contour(sample["true_mask"].astype(float), levels=[0.5], colors=TRUE_COLOUR,
                       linewidths=0.6)  # fmt: skip
        if sample.get("mask") is not None and sample["mask"].any():
            overlay = np.zeros((*sample["mask"].shape, 4))
            overlay[sample["mask"]] = (1.0, 0.0, 0.0, 0.35)
            ax.imshow(overlay)
        _draw_box(ax, sample["true_box"], TRUE_COLOUR, "-")
        ax.scatter(*zip(*sample["true_points"], strict=True), c=TRUE_COLOUR, marker="+", s=40)
        if sample.get("box") is not None:
            _draw_box(ax, sample["box"], PREDICTED_COLOUR, "--")
        if sample.get("points") is not None:
            ax.scatter(*zip(*sample["points"], strict=True), c=PREDICTED_COLOUR, marker="x", s=30)
        width, height = sample["image"].size
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylim(height - 0.5, -0.5)  # the image's extent, rows downwards
        ax.set_title(sample["title"], fontsize=7)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)
