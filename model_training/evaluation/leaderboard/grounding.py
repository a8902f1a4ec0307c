"""``grounding`` (the default for grounding results): per model and mode, box IoU (mean),
IoU >= 0.5, our point-Dice, MedReasoner's pDice, mask Dice and oracle Dice, in %; then the
mean-box baseline the results carry (``mean_box_baseline``), as its own row."""

from __future__ import annotations

from functools import partial

from common.names import GROUNDING_TASK
from common.names import PROMPT_MODES as MODES
from common.results_schema import model_label, model_size

from ..plots import MISSING, bar_figure
from .base import (
    MODE_LABELS,
    Layout,
    LeaderboardArguments,
    Loaded,
    Table,
    data_line,
    markdown_table,
    pct,
)
from .reader import baseline_label, baseline_record, check_comparable, mean_box_baselines

# the grounding metrics shown: results.json metric -> column heading (values in %)
GROUNDING_COLUMNS = {"iou_mean": "IoU", "iou_50": "IoU>=0.5", "point_dice_mean": "point-Dice",
                     "medreasoner_pdice_mean": "MedReasoner pDice",
                     "mask_dice_mean": "mask Dice", "oracle_dice_mean": "oracle Dice"}  # fmt: skip
ANY_MODE = "—"  # the baseline's mode: it answers every row alike


def grounding_rows(loaded: Loaded) -> list[dict]:
    """One row per (model, mode), in input order; metrics in % (None: not measured)."""
    return [
        {"model": model_label(results), "size": model_size(results),
         "model_parameters": results.get("model_parameters"), "mode": mode, "n": metrics["n"],
         **{key: pct(metrics.get(key)) for key in GROUNDING_COLUMNS},
         "sam_model": results.get("sam_model"), "source": str(path)}
        for path, results in loaded
        for mode, metrics in ((m, results["modes"].get(m)) for m in MODES) if metrics
    ]  # fmt: skip


def render(loaded: Loaded, title: str, options: LeaderboardArguments) -> Table:
    meta = check_comparable(loaded, options.allow_different_n)
    rows = grounding_rows(loaded)
    baselines = mean_box_baselines(loaded, options.allow_different_n)
    shown = [
        [r["model"], r["size"], MODE_LABELS[r["mode"]], *(r[k] for k in GROUNDING_COLUMNS)]
        for r in rows
    ] + [
        [baseline_label(b, baselines), "", ANY_MODE, *(pct(b.get(k)) for k in GROUNDING_COLUMNS)]
        for b in baselines
    ]
    head = ["model", "size", "mode", *(f"{h} %" for h in GROUNDING_COLUMNS.values())]
    sams = sorted({str(r["sam_model"]) for r in rows if r["sam_model"]})
    counts = sorted({r["n"] for r in rows})
    notes = [
        f"# {title}",
        "",
        f"{data_line(meta)} ({', '.join(map(str, counts))} rows per mode).",
        "",
        "In %: box IoU (mean over rows; 0 without a valid box), share of rows with IoU >= 0.5, "
        "point-Dice (ours: the true Dice of the two point circles, max 100), MedReasoner pDice "
        "(MedReasoner's 2 inter / union of the same circles, max 200: the figure comparable "
        "with the paper's 26.55), mask Dice of the SAM mask prompted with the "
        "predicted box and points, and oracle Dice (the same SAM prompted with the true box and "
        f"points); SAM: {', '.join(f'`{s}`' for s in sams) or 'none'}; {MISSING}: not measured."
        + (" The mean-box baseline answers every row with the mean box and points of the "
           "grounding training rows." if baselines else ""),
        "",
    ]  # fmt: skip
    labels = [f"{row[0]} ({row[1]}), {row[2]}" if row[1] else row[0] for row in shown]
    series = [(name, [row[3 + i] for row in shown], False)
              for i, name in enumerate(GROUNDING_COLUMNS.values())]  # fmt: skip
    draw = partial(bar_figure, title, labels, series, xlabel="%", bar=0.45)
    head_json = {**meta, "grounding_baseline": baseline_record(baselines)}
    return Table(head_json, rows, [*notes, *markdown_table(head, shown, 3)], draw)


GROUNDING = Layout(
    "grounding", "CT-RATE-VQA grounding leaderboard",
    "grounding %: box IoU (mean), IoU>=0.5, point-Dice (ours), MedReasoner pDice, mask Dice, "
    "oracle Dice", render,
    (GROUNDING_TASK,), default_for=GROUNDING_TASK,
)  # fmt: skip
