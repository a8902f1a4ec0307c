"""Plots of an evaluation: per-class accuracy bars and a confusion matrix per prompt mode; for
grounding, per-class IoU / Dice bars and predicted vs true boxes and points on sample slices."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

INVALID = "(no valid answer)"  # the confusion matrix's last column


def per_class_bars(results: dict, path: str | Path) -> Path:
    """Grouped bars: accuracy (%) per class, one bar per mode, with the support in labels."""
    modes = list(results["modes"])
    first = results["modes"][modes[0]]
    classes = list(first["per_class"])
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(classes)), 4), dpi=100)
    width = 0.8 / len(modes)
    x = np.arange(len(classes))
    for i, mode in enumerate(modes):
        values = [100 * results["modes"][mode]["per_class"][c]["accuracy"] for c in classes]
        micro = 100 * results["modes"][mode]["accuracy_micro"]
        ax.bar(x + i * width, values, width, label=f"{mode} (micro {micro:.1f} %)")
    labels = [f"{c}\n(n={first['per_class'][c]['support']})" for c in classes]
    ax.set_xticks(x + width * (len(modes) - 1) / 2, labels, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{Path(str(results['model'])).name}: per-class accuracy", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


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
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


# -- grounding --------------------------------------------------------------------------------

GROUNDING_BAR_METRICS = {  # per-class figures of a grounding evaluation, in this order
    "iou_mean": "box IoU",
    "point_dice_mean": "point Dice",
    "mask_dice_mean": "mask Dice (SAM)",
}
TRUE_COLOUR, PREDICTED_COLOUR = "lime", "red"


def grounding_per_class_bars(results: dict, path: str | Path) -> Path:
    """One panel per metric (box IoU, point Dice, mask Dice when measured): per-class means in
    %, one bar per mode, with the support in the labels."""
    modes = list(results["modes"])
    first = results["modes"][modes[0]]
    metrics = [m for m in GROUNDING_BAR_METRICS if m in first]
    classes = list(first["per_class"])
    x = np.arange(len(classes))
    width = 0.8 / len(modes)
    fig, axes = plt.subplots(
        len(metrics), 1, figsize=(max(6, 1.1 * len(classes)), 2.6 * len(metrics)), dpi=100,
        squeeze=False,
    )  # fmt: skip
    for ax, metric in zip(axes[:, 0], metrics, strict=True):
        for i, mode in enumerate(modes):
            per_class = results["modes"][mode]["per_class"]
            values = [100 * (per_class[c].get(metric) or 0.0) for c in classes]
            overall = 100 * results["modes"][mode][metric]
            ax.bar(x + i * width, values, width, label=f"{mode} (all {overall:.1f} %)")
        ax.set_ylabel(f"{GROUNDING_BAR_METRICS[metric]} (%)", fontsize=8)
        ax.set_ylim(0, 100)
        ax.legend(fontsize=7)
        ax.set_xticks(x + width * (len(modes) - 1) / 2, [])
    labels = [f"{c}\n(n={first['per_class'][c]['support']})" for c in classes]
    axes[-1, 0].set_xticks(
        x + width * (len(modes) - 1) / 2, labels, rotation=30, ha="right", fontsize=7
    )
    axes[0, 0].set_title(f"{Path(str(results['model'])).name}: per-class grounding", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


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
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
