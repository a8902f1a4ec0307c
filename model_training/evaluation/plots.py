"""Plots of an evaluation: per-class accuracy bars and a confusion matrix per prompt mode."""

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
