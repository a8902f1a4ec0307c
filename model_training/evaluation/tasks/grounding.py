"""Grounding rows (MedReasoner's task, arXiv 2508.08177; config ``grounding``): box IoU,
point-Dice and SAM mask Dice per prompt mode, against the mean-box baseline.

The replies are kept as they are (``reply_rows``) and scored at the end, when the model's
processor and the SAM are loaded. Per reply (``score_reply``): the ``<answer>`` JSON is parsed
(``grounding.parse_grounding``, the block ``--answer-parsing`` names); its box and points, in
the model-input frame, go to the image frame through ``grounding.frame_for(processor,
image.size)`` (the one conversion), then:

- ``iou``: box IoU with the row's ``bbox`` (0 without a valid box); ``iou_hit``: IoU >= 0.5;
- ``point_dice``: our point-Dice, the true Dice of the two point pairs' circles with the row's
  ``points`` (``grounding.circle_dice``, max 1; 0 without two valid points);
- ``medreasoner_pdice``: MedReasoner's pDice of the same circles, ``2 inter / (union + 1e-5)``
  (``grounding.medreasoner_pdice``, eval/utils.py compute_pdice: max 2.0), the figure the paper
  reports (26.55 %) and the only one of the two comparable with it;
- ``mask_dice`` (with a SAM): the Dice of the row's ``mask`` and the mask a frozen SAM gives for
  the predicted box and both points (0 for a reply without a valid box and two valid points);
- ``oracle_dice`` (per row): the same SAM prompted with the true box and points, the ceiling
  the segmenter allows (MedReasoner does not report it).

Per mode: the means of these over all rows (``iou_mean``, ``iou_50``, ``point_dice_mean``,
``medreasoner_pdice_mean``, ``mask_dice_mean``, ``oracle_dice_mean``), per class (by
``answer``), and the reply rates: ``format_rate`` (``<think>...</think><answer>...</answer>``,
as for classification), ``parse_rate`` (an answer JSON with the three keys), ``box_rate``,
``points_rate`` and ``complete_rate`` (a valid box and two valid points).

The mean-box baseline (``mean_box_baseline``, results.json's ``"mean_box_baseline"``): the mean
box and mean points of ``--baseline-split``'s rows (the training rows; ``--baseline-limit``: the
first N), in fractions of each image's size, answered for every evaluated row.
"""

from __future__ import annotations

import json
from typing import Any

import datasets
import numpy as np

from common.names import GROUNDING_TASK
from common.results_schema import MEAN_BOX_BASELINE

from ...answers import parse_reply
from ...data import image_size, load_vqa
from ...grounding import (
    DEFAULT_ANSWER_PARSING,
    Frame,
    box_iou,
    circle_dice,
    frame_for,
    mask_dice,
    medreasoner_pdice,
    parse_grounding,
)
from ..generation import load_chat_processor
from ..options import EvaluateArguments, EvaluationError
from ..plots import grounding_per_class_bars, grounding_samples
from ..results_header import source_name
from ..sam import Segmenter, SegmenterError, load_segmenter, sam_config
from .base import EvalTask, Evaluated, write_results

IOU_HIT = 0.5  # ours: the common "IoU >= 0.5" hit (Seg-Zero's reward threshold is IoU > 0.5)
SAMPLE_PLOTS = 6  # ours: slices drawn per mode in grounding_<mode>.png
# the per-mode means (a row without a valid prediction counts 0) and their per-class copies
MEAN_METRICS = ("iou_mean", "iou_50", "point_dice_mean", "medreasoner_pdice_mean",
                "mask_dice_mean", "oracle_dice_mean")  # fmt: skip
_ROW_VALUE = {
    "iou_mean": "iou",
    "iou_50": "iou_hit",
    "point_dice_mean": "point_dice",
    "medreasoner_pdice_mean": "medreasoner_pdice",
    "mask_dice_mean": "mask_dice",
    "oracle_dice_mean": "oracle_dice",
}


class GroundingError(EvaluationError):
    """A grounding evaluation that cannot go on; the message says what to change."""


def score_reply(
    reply: object, row: dict, frame: Frame, parsing: str = DEFAULT_ANSWER_PARSING
) -> dict:
    """The scored fields of one reply to grounding ``row`` (box and points in the image frame;
    ``box_model``/``points_model``: as the model wrote them; the ``<answer>`` block ``parsing``
    names, grounding.ANSWER_PARSERS)."""
    grounded = parse_grounding(reply, parsing)
    box = frame.box_to_image(grounded.box) if grounded.box is not None else None
    points = (
        [frame.point_to_image(p) for p in grounded.points] if grounded.points is not None else None
    )
    iou = box_iou(box, list(row["bbox"])) if box is not None else 0.0
    true_points = [list(p) for p in row["points"]]
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
        "point_dice": circle_dice(points, true_points) if points is not None else 0.0,
        "medreasoner_pdice": medreasoner_pdice(points, true_points) if points is not None else 0.0,
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


def mean_box_baseline(train: datasets.Dataset, test: datasets.Dataset) -> dict:
    """The trivial grounding baseline the models must beat: the mean box and the mean of each
    point over the ``train`` rows (in fractions of each image's size), answered for every row
    of ``test``; its box IoU, IoU >= 0.5 rate, our point-Dice and MedReasoner's pDice (image
    frame). Both datasets hold
    ``image`` (undecoded), ``bbox`` and ``points``."""

    def fractions(image: dict, box: list, points: list) -> np.ndarray:
        """Box corners and point centres (a point is a pixel: x + 0.5) over the image size."""
        w, h = image_size(image)
        centres = [v + 0.5 for p in points for v in p]
        return np.array([*box, *centres], float) / np.array([w, h] * 4, float)

    mean = np.mean(
        [fractions(*row) for row in zip(train["image"], train["bbox"], train["points"],
                                        strict=True)], axis=0
    )  # fmt: skip
    ious, dices, pdices = [], [], []
    for image, box, points in zip(test["image"], test["bbox"], test["points"], strict=True):
        w, h = image_size(image)
        guess = mean * np.array([w, h] * 4, float)
        ious.append(box_iou([float(v) for v in guess[:4]], list(box)))
        true_points = [[p[0] + 0.5, p[1] + 0.5] for p in points]
        guess_points = [[float(v) for v in guess[4:6]], [float(v) for v in guess[6:]]]
        dices.append(circle_dice(guess_points, true_points))
        pdices.append(medreasoner_pdice(guess_points, true_points))
    n = len(ious)
    return {
        "n": n,
        "train_rows": len(train),
        "box_fraction": [round(float(v), 4) for v in mean[:4]],
        "points_fraction": [[round(float(v), 4) for v in mean[i : i + 2]] for i in (4, 6)],
        "iou_mean": float(np.mean(ious)) if n else 0.0,
        "iou_50": float(np.mean([v >= IOU_HIT for v in ious])) if n else 0.0,
        "point_dice_mean": float(np.mean(dices)) if n else 0.0,
        "medreasoner_pdice_mean": float(np.mean(pdices)) if n else 0.0,
    }


def _frames(processor: Any):
    cache: dict[tuple[int, int], Frame] = {}

    def frame(size: tuple[int, int]) -> Frame:
        if size not in cache:
            try:
                cache[size] = frame_for(processor, size)
            except (KeyError, TypeError, AttributeError) as err:
                raise GroundingError(
                    "grounding needs the model's image processor to give its input size "
                    f"(image_grid_thw, as Qwen2-VL / Qwen2.5-VL's): {type(err).__name__}: {err}"
                ) from None
        return cache[size]

    return frame


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
    for key in ("complete", "iou", "iou_hit", "point_dice", "medreasoner_pdice", "mask_dice",
                "oracle_dice"):  # fmt: skip
        out[key] = row.get(key)
    return out


PER_CLASS_PLOT = "per_class_grounding.png"
SAMPLES_PLOT = "grounding_{mode}.png"  # true vs predicted boxes of a few rows


class Grounding(EvalTask):
    name = GROUNDING_TASK
    output_files = (PER_CLASS_PLOT, SAMPLES_PLOT.format(mode="*"))

    def check_inputs(self, options: EvaluateArguments) -> None:
        """The SAM must be readable and the baseline split must exist (one line each)."""
        if options.sam_model is not None:
            try:
                sam_config(options.sam_model)
            except SegmenterError as err:
                raise GroundingError(str(err)) from None
        if options.baseline_split is None:
            return
        splits = datasets.get_dataset_split_names(
            options.dataset, options.config, revision=options.revision
        )
        if options.baseline_split not in splits:
            raise GroundingError(
                f"dataset {options.dataset} (config {options.config!r}) has no split "
                f"{options.baseline_split!r} for the mean-box baseline; its splits are "
                f"{', '.join(splits)}: pass --baseline-split SPLIT, or none for no baseline"
            )

    def reply_rows(self, rows: list[dict], replies: list[str], mode: str) -> list[dict]:
        """The replies as they are (scored in ``write_report``, with the processor and SAM)."""
        return [
            {"id": row["id"], "mode": mode, "gold": row["answer"], "output": reply}
            for row, reply in zip(rows, replies, strict=True)
        ]

    def write_report(self, evaluated: Evaluated) -> dict:
        """Score the replies (boxes, points, SAM masks) and the mean-box baseline, and write
        results.json, predictions.parquet, per_class_grounding.png and grounding_<mode>.png."""
        ds, modes, options = evaluated.ds, evaluated.modes, evaluated.options
        classes = ds.features["label"].names
        frame = _frames(load_chat_processor(evaluated.settings["model"], options.trust_remote_code))
        try:
            segmenter = load_segmenter(options.sam_model) if options.sam_model is not None else None
        except SegmenterError as err:
            raise GroundingError(str(err)) from None
        parsing = options.answer_parsing
        scored: dict[str, list[dict]] = {mode: [] for mode in modes}
        samples: dict[str, list[dict]] = {mode: [] for mode in modes}
        for index in range(len(ds)):
            row = ds[index]
            rows = [
                {**reply, **score_reply(reply["output"], row, frame(row["image"].size), parsing)}
                for reply in (evaluated.done[(mode, row["id"])] for mode in modes)
            ]
            masks = segment_row(row, rows, segmenter) if segmenter else [None] * len(rows)
            for mode, scored_row, mask in zip(modes, rows, masks, strict=True):
                scored[mode].append(scored_row)
                if len(samples[mode]) < SAMPLE_PLOTS:
                    samples[mode].append(_sample(row, scored_row, mask))
        report = {
            **evaluated.header(self.name),
            "sam_model": None if options.sam_model is None else source_name(options.sam_model),
            "iou_hit_threshold": IOU_HIT,
            "answer_parsing": options.answer_parsing,
            "modes": {mode: score(scored[mode], classes) for mode in modes},
        }
        if options.baseline_split is not None:
            train = load_vqa(options.dataset, options.config, options.baseline_split,
                             options.baseline_limit, options.revision, task=self.name,
                             allow_incomplete_build=options.allow_incomplete_build,
                             incomplete_option="--allow-incomplete-build")  # fmt: skip
            test = ds.cast_column("image", datasets.Image(decode=False))
            report[MEAN_BOX_BASELINE] = mean_box_baseline(train, test)
        predictions = [_prediction(r) for mode in modes for r in scored[mode]]
        write_results(evaluated.output_dir, report, predictions)
        grounding_per_class_bars(report, evaluated.output_dir / PER_CLASS_PLOT)
        for mode in modes:
            grounding_samples(
                samples[mode],
                f"{mode}: true (green) vs predicted (red)",
                evaluated.output_dir / SAMPLES_PLOT.format(mode=mode),
            )
        return report

    def print_report(self, report: dict) -> None:
        for mode, metrics in report["modes"].items():
            masks = (
                f", mask Dice {100 * metrics['mask_dice_mean']:.2f} % (oracle "
                f"{100 * metrics['oracle_dice_mean']:.2f} %)"
                if "mask_dice_mean" in metrics
                else ""
            )
            print(
                f"{mode}: IoU {100 * metrics['iou_mean']:.2f} %, IoU>=0.5 "
                f"{100 * metrics['iou_50']:.2f} %, point-Dice (ours) "
                f"{100 * metrics['point_dice_mean']:.2f} %{_pdice(metrics)}{masks}, "
                f"n = {metrics['n']}"
            )
        baseline = report.get(MEAN_BOX_BASELINE)
        if baseline:
            print(
                f"mean-box baseline ({baseline['train_rows']} training rows): IoU "
                f"{100 * baseline['iou_mean']:.2f} %, IoU>=0.5 {100 * baseline['iou_50']:.2f} %, "
                f"point-Dice (ours) {100 * baseline['point_dice_mean']:.2f} %"
                f"{_pdice(baseline)}, n = {baseline['n']}"
            )


def _pdice(metrics: dict) -> str:
    """MedReasoner's pDice, where the results have it (results written before it lack it)."""
    value = metrics.get("medreasoner_pdice_mean")
    return "" if value is None else f", MedReasoner pDice {100 * value:.2f} %"
