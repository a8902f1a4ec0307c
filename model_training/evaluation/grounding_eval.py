"""Scoring grounding rows (MedReasoner's task, arXiv 2508.08177) in the evaluator.

``python -m model_training.evaluation.evaluate --config grounding ...`` evaluates a dataset config
whose rows carry the grounding columns (``prompts.GROUNDING_COLUMNS``) with the grounding
prompts; this module scores the replies and writes the report.

Per reply (``score_reply``): the ``<answer>`` JSON is parsed (``grounding.parse_grounding``); its
box and points, in the model-input frame, go to the image frame through
``grounding.frame_for(processor, image.size)`` (the one conversion), then:

- ``iou``: box IoU with the row's ``bbox`` (0 without a valid box); ``iou_hit``: IoU >= 0.5;
- ``point_dice``: MedReasoner's pDice of the two points with the row's ``points`` (0 without two
  valid points);
- ``mask_dice`` (with a SAM): the Dice of the row's ``mask`` and the mask a frozen SAM gives for
  the predicted box and both points (0 for a reply without a valid box and two valid points);
- ``oracle_dice`` (per row): the same SAM prompted with the true box and points, the ceiling
  the segmenter allows (MedReasoner does not report it).

Per mode: the means of these over all rows (``iou_mean``, ``iou_50``, ``point_dice_mean``,
``mask_dice_mean``, ``oracle_dice_mean``), per class (by ``answer``), and the reply rates:
``format_rate`` (``<think>...</think><answer>...</answer>``, as for classification),
``parse_rate`` (an answer JSON with the three keys), ``box_rate``, ``points_rate`` and
``complete_rate`` (a valid box and two valid points).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from common.errors import UserError
from common.names import CLASSIFICATION_TASK, GROUNDING_CONFIG, GROUNDING_TASK

from .. import prompts
from ..answers import parse_reply
from ..grounding import (
    Frame,
    box_iou,
    frame_for,
    mask_dice,
    parse_grounding,
    points_dice,
)
from .plots import grounding_per_class_bars, grounding_samples
from .sam import DEFAULT_SAM_MODEL, Segmenter, SegmenterError, load_segmenter, sam_config

IOU_HIT = 0.5  # ours: the common "IoU >= 0.5" hit (Seg-Zero's reward threshold is IoU > 0.5)
SAMPLE_PLOTS = 6  # ours: slices drawn per mode in grounding_<mode>.png
# the per-mode means (a row without a valid prediction counts 0) and their per-class copies
MEAN_METRICS = ("iou_mean", "iou_50", "point_dice_mean", "mask_dice_mean", "oracle_dice_mean")
_ROW_VALUE = {
    "iou_mean": "iou",
    "iou_50": "iou_hit",
    "point_dice_mean": "point_dice",
    "mask_dice_mean": "mask_dice",
    "oracle_dice_mean": "oracle_dice",
}


class GroundingError(UserError):
    """A grounding evaluation that cannot go on; the message says what to change (the
    evaluator reports it as its own errors: one line, exit status 2)."""


def _error(message: str) -> GroundingError:
    return GroundingError(message)


def dataset_task(columns: Iterable[str], config: str) -> str:
    """The task of a dataset config's rows: grounding when they hold the grounding columns; a
    config named ``grounding`` without them is refused."""
    columns = list(columns)
    task = prompts.task_of(columns)
    if task == CLASSIFICATION_TASK and config == GROUNDING_CONFIG:
        missing = [c for c in prompts.GROUNDING_COLUMNS if c not in columns]
        raise _error(
            f"config {config!r} lacks the grounding columns {', '.join(missing)}: rebuild the "
            "dataset with python -m dataset_builder build (it writes the grounding config)"
        )
    return task


def check_options(task: str, sam_model: str | None, judge: str | None) -> None:
    """Refuse options that do not apply to ``task``, and a SAM that cannot be read, before
    anything is written."""
    if task == GROUNDING_TASK:
        if judge is not None:
            raise _error(
                "--judge scores classification answers; it does not apply to a grounding "
                "config: drop --judge"
            )
        if sam_model is not None:
            try:
                sam_config(sam_model)
            except SegmenterError as err:
                raise _error(str(err)) from None
    elif sam_model not in (None, DEFAULT_SAM_MODEL):
        raise _error(
            f"--sam-model applies to grounding configs (config {GROUNDING_CONFIG!r}); this "
            "config is a classification one: drop --sam-model"
        )


def reply_rows(rows: list[dict], replies: list[str], mode: str) -> list[dict]:
    """The progress rows of one batch of grounding rows (scored in ``write_report``)."""
    return [
        {"id": row["id"], "mode": mode, "gold": row["answer"], "output": reply}
        for row, reply in zip(rows, replies, strict=True)
    ]


def score_reply(reply: object, row: dict, frame: Frame) -> dict:
    """The scored fields of one reply to grounding ``row`` (box and points in the image frame;
    ``box_model``/``points_model``: as the model wrote them)."""
    grounded = parse_grounding(reply)
    box = frame.box_to_image(grounded.box) if grounded.box is not None else None
    points = (
        [frame.point_to_image(p) for p in grounded.points] if grounded.points is not None else None
    )
    iou = box_iou(box, list(row["bbox"])) if box is not None else 0.0
    return {
        "status": grounded.status,
        "well_formed": parse_reply(reply, []).well_formed,
        "box_model": grounded.box,
        "points_model": grounded.points,
        "box": box,
        "points": points,
        "complete": box is not None and points is not None,
        "iou": iou,
        "iou_hit": iou >= IOU_HIT,
        "point_dice": points_dice(points, [list(p) for p in row["points"]])
        if points is not None
        else 0.0,
    }


def true_mask(row: dict) -> np.ndarray:
    """The row's ``mask`` (0/255 image) as a boolean array."""
    return np.asarray(row["mask"].convert("L")) > 0


def segment_row(row: dict, scored: list[dict], segmenter: Segmenter) -> list[np.ndarray | None]:
    """Set ``mask_dice`` of each scored reply to ``row`` and ``oracle_dice`` (true box and
    points); return the predicted masks (None for an incomplete reply)."""
    oracle = (list(row["bbox"]), [list(p) for p in row["points"]])
    complete = [s for s in scored if s["complete"]]
    masks = segmenter.masks(row["image"], [oracle, *((s["box"], s["points"]) for s in complete)])
    truth = true_mask(row)
    oracle_dice = mask_dice(masks[0], truth)
    predicted = dict(zip(map(id, complete), masks[1:], strict=True))
    out: list[np.ndarray | None] = []
    for s in scored:
        mask = predicted.get(id(s))
        s["mask_dice"] = mask_dice(mask, truth) if mask is not None else 0.0
        s["oracle_dice"] = oracle_dice
        out.append(mask)
    return out


def _mean(values: list[float]) -> float:
    return float(sum(values) / len(values)) if values else 0.0


def _means(rows: list[dict], names: list[str]) -> dict:
    """The means of ``names`` over ``rows`` (None for no rows)."""
    return {n: _mean([float(r[_ROW_VALUE[n]]) for r in rows]) if rows else None for n in names}


def score(rows: list[dict], classes: list[str]) -> dict:
    """Metrics of one mode from scored rows ({gold, status, well_formed, iou, ...})."""
    n = len(rows)
    names = [n_ for n_, key in _ROW_VALUE.items() if rows and all(key in r for r in rows)]

    def rate(test) -> float:
        return sum(bool(test(r)) for r in rows) / n if n else 0.0

    per_class = {}
    for name in classes:
        mine = [r for r in rows if r["gold"] == name]
        per_class[name] = {"support": len(mine), **_means(mine, names)}
    return {
        "n": n,
        **_means(rows, names),
        "per_class": per_class,
        "format_rate": rate(lambda r: r["well_formed"]),
        "parse_rate": rate(lambda r: r["status"] == "ok"),
        "box_rate": rate(lambda r: r["box"] is not None),
        "points_rate": rate(lambda r: r["points"] is not None),
        "complete_rate": rate(lambda r: r["complete"]),
    }


def _frames(processor: Any):
    cache: dict[tuple[int, int], Frame] = {}

    def frame(size: tuple[int, int]) -> Frame:
        if size not in cache:
            try:
                cache[size] = frame_for(processor, size)
            except (KeyError, TypeError, AttributeError) as err:
                raise _error(
                    "grounding needs the model's image processor to give its input size "
                    f"(image_grid_thw, as Qwen2-VL / Qwen2.5-VL's): {type(err).__name__}: {err}"
                ) from None
        return cache[size]

    return frame


def write_report(
    output_dir: Path,
    ds: datasets.Dataset,
    modes: tuple[str, ...],
    done: dict[tuple, dict],
    settings: dict,
    revision: str | None,
    sam_model: str | None,
    trust_remote_code: bool = False,
) -> dict:
    """Score the grounding predictions (boxes, points, SAM masks) and write results.json,
    predictions.parquet, per_class_grounding.png and grounding_<mode>.png; return the report."""
    from .evaluate import check_complete, load_chat_processor, report_header

    classes = ds.features["label"].names
    check_complete(done, modes, ds["id"], output_dir)
    frame = _frames(load_chat_processor(settings["model"], trust_remote_code))
    try:
        segmenter = load_segmenter(sam_model) if sam_model is not None else None
    except SegmenterError as err:
        raise _error(str(err)) from None
    scored: dict[str, list[dict]] = {mode: [] for mode in modes}
    samples: dict[str, list[dict]] = {mode: [] for mode in modes}
    for index in range(len(ds)):
        row = ds[index]
        replies = [done[(mode, row["id"])] for mode in modes]
        rows = [
            {**reply, **score_reply(reply["output"], row, frame(row["image"].size))}
            for reply in replies
        ]
        masks = segment_row(row, rows, segmenter) if segmenter else [None] * len(rows)
        for mode, scored_row, mask in zip(modes, rows, masks, strict=True):
            scored[mode].append(scored_row)
            if len(samples[mode]) < SAMPLE_PLOTS:
                samples[mode].append(_sample(row, scored_row, mask))
    results = {mode: score(scored[mode], classes) for mode in modes}
    report = {
        **report_header(settings, revision, GROUNDING_TASK),
        "sam_model": sam_model,
        "iou_hit_threshold": IOU_HIT,
        "modes": results,
    }
    (output_dir / "results.json").write_text(json.dumps(report, indent=1))
    predictions = [_prediction(r) for mode in modes for r in scored[mode]]
    datasets.Dataset.from_list(predictions).to_parquet(output_dir / "predictions.parquet")
    grounding_per_class_bars(report, output_dir / "per_class_grounding.png")
    for mode in modes:
        grounding_samples(
            samples[mode],
            f"{mode}: true (green) vs predicted (red)",
            output_dir / f"grounding_{mode}.png",
        )
    return report


def _sample(row: dict, scored: dict, mask: np.ndarray | None) -> dict:
    return {
        "image": row["image"],
        "title": f"{row['id']} ({row['answer']}) IoU {scored['iou']:.2f}",
        "true_box": list(row["bbox"]),
        "true_points": [list(p) for p in row["points"]],
        "true_mask": true_mask(row),
        "box": scored["box"],
        "points": scored["points"],
        "mask": mask,
    }


def _prediction(row: dict) -> dict:
    """A predictions.parquet row: JSON-safe, the same columns for every row."""
    out = {k: row.get(k) for k in ("id", "mode", "gold", "output", "status", "well_formed")}
    for key in ("box_model", "points_model", "box", "points"):
        out[key] = json.dumps(row.get(key)) if row.get(key) is not None else None
    for key in ("complete", "iou", "iou_hit", "point_dice", "mask_dice", "oracle_dice"):
        out[key] = row.get(key)
    return out


def print_report(report: dict) -> None:
    for mode, metrics in report["modes"].items():
        masks = (
            f", mask Dice {100 * metrics['mask_dice_mean']:.2f} % (oracle "
            f"{100 * metrics['oracle_dice_mean']:.2f} %)"
            if "mask_dice_mean" in metrics
            else ""
        )
        print(
            f"{mode}: IoU {100 * metrics['iou_mean']:.2f} %, IoU>=0.5 "
            f"{100 * metrics['iou_50']:.2f} %, point Dice {100 * metrics['point_dice_mean']:.2f} %"
            f"{masks}, n = {metrics['n']}"
        )
