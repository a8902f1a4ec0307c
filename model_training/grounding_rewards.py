"""MedReasoner's GRPO rewards for the grounding task, as TRL reward functions chosen by name.

MedReasoner (arXiv 2508.08177) scores a reply ``<think>...</think><answer>{"bbox": [...],
"points_1": [x, y], "points_2": [x, y]}</answer>`` against the true box and points with plain
summed terms (verl/utils/reward_score/med_grounding.py in PRIS-CV/MedReasoner, read at commit
558cc78; the constants below are that file's):

- "soft" mode (its default, max 4.0): ``format_think``, ``format_seg``, ``bbox_iou``,
  ``points_dice``, weights 1/1/1/1;
- "hard" mode (max 8.0) adds ``bbox_align`` (edge L1 over the true diagonal through a logistic),
  ``bbox_scale`` (sqrt(dlog-area^2 + dlog-aspect^2) through a logistic), ``points_align``
  (order-free point L1 over the true diagonal through a logistic) and ``points_angle`` (|cos| of
  the two point-pair directions, smoothed).

Every geometric term is ``penalize``-d by two validity flags (1.0 or 0.5 each): the box terms by
"the true points lie in the predicted box" and "0.5 A_true < A_pred < 2 A_true"; the point terms
by "the predicted points lie in the true box" and "the two points are more than 10 px apart".
Nothing here calls a segmentation model (MedReasoner's RL does not either).

Rows. TRL calls ``f(completions, **kwargs)`` with the batch's dataset columns in kwargs. A
grounding row carries ``task == "grounding"``, ``target_bbox`` (4 numbers) and ``target_points``
([[x, y], [x, y]]), both in the MODEL-INPUT frame, the frame the reply is written in. Each
function here scores grounding rows only and returns None for any other row (TRL then leaves
that row out of this function's mean and sum); a grounding row whose target is unusable is not
scored either (None). No function raises, on any completion.

Answer parsing: every function takes ``answer_parsing`` (grounding.ANSWER_PARSERS; a recipe's
``answer_parsing`` field, bound by ``rewards.get_rewards``): ``ours`` (the default) reads the last
``<answer>`` block with case-insensitive tags, ``medreasoner`` the first block with
case-sensitive tags, as MedReasoner's ``re.search``. On a reply whose first block is wrong and
last block right, MedReasoner's parsing scores the wrong one.

``points_dice`` is MedReasoner's formula: smooth_log of ``2 |A n B| / (|A u B| + 1e-5)`` over the
two point circles (grounding.medreasoner_pdice, twice their IoU), then ``penalize``, which caps
it at 1: it saturates once the circles' IoU reaches 0.5. ``points_true_dice`` (ours, not in
either mode) is the same term over the true Dice ``2 |A n B| / (|A| + |B|)``.

Other deviations from MedReasoner's code, to read a reply the way the rest of this project does
(model_training.grounding, shared with evaluation): a box must be finite with x0 < x1 and
y0 < y1 and a point finite. MedReasoner accepts a box with swapped corners as valid
(format_seg 1.0) and scores it: IoU 0 -> smooth_log 0.1, penalised by both failed flags
(position 0.25, area 0.5) to 0.1 (0.7 + 0.3 (0.25 + 0.5) / 2) = 0.0812 (its code, on the box
[40, 40, 0, 0] for the true box [0, 0, 40, 40]); not 0. Here such a box is malformed
(format_seg 0.6, bbox_iou 0). Likewise MedReasoner takes NaN,
infinity and booleans for numbers. Box IoU is computed without MedReasoner's 1e-5 denominator
(so a perfect box scores exactly 1) and a degenerate point circle scores pDice 0 (MedReasoner's
reward adds 1e-5 to each radius: 6e-5).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from common.names import CLASSIFICATION_TASK, GROUNDING_TASK

from .answers import THINK_RE, completion_text
from .grounding import (
    ANSWER_KEYS,
    DEFAULT_ANSWER_PARSING,
    Box,
    Point,
    answer_json,
    box_area,
    box_iou,
    circle_dice,
    medreasoner_pdice,
    point_in_box,
    valid_box,
    valid_point,
)

GROUNDING_SOFT_REWARDS = ("format_think", "format_seg", "bbox_iou", "points_dice")  # paper: soft
GROUNDING_SOFT_REWARD_WEIGHTS = (1.0, 1.0, 1.0, 1.0)  # paper: plain sum (run_rl_*_soft.sh)
GROUNDING_HARD_REWARDS = (  # paper: "hard" mode adds four terms (max 8.0)
    *GROUNDING_SOFT_REWARDS,
    "bbox_align",
    "bbox_scale",
    "points_align",
    "points_angle",
)
GROUNDING_HARD_REWARD_WEIGHTS = (1.0,) * len(GROUNDING_HARD_REWARDS)  # paper: plain sum

# -- MedReasoner's constants (verl/utils/reward_score/med_grounding.py) -------------------------
THINK_EMPTY = 0.2  # MedReasoner: an empty <think> block
SEG_BAD_JSON = 0.2  # MedReasoner: <answer> is not a JSON object
SEG_MISSING = 0.4  # MedReasoner: a key missing, or box and points both malformed
SEG_ONE_MALFORMED = 0.6  # MedReasoner: box or points malformed
SMOOTH_LOG_K = 3.0  # MedReasoner: smooth_log_val(k=3.0)
SMOOTH_FLOOR = 0.1  # MedReasoner: smoothed rewards lie in [0.1, 1] (s * 0.9 + 0.1)
PENALTY_KEEP = 0.7  # MedReasoner: penalize_reward(k=0.7): 0.7 r + 0.3 r mean(v1, v2)
PENALTY_DIGITS = 4  # MedReasoner: round(..., 4)
FLAG_FAIL = 0.5  # MedReasoner: a failed validity flag is 0.5 (a passed one 1.0)
AREA_RATIO = 2.0  # MedReasoner: area valid if 0.5 A_true < A_pred < 2 A_true
POINT_SPREAD_PX = 10.0  # MedReasoner: the two points more than 10 px apart
LOGISTIC_K = 3.0  # MedReasoner: smooth_exp_val(k=3.0), the logistic's steepness
ALIGN_CENTRE = 1.0  # MedReasoner: smooth_exp_val(c=1.0) for the box and point L1 terms
SCALE_CENTRE = 0.5  # MedReasoner: smooth_exp_val(c=0.5) for the box scale term
ALIGN_MAX = 2.0  # MedReasoner: norm_val(max_val=2.0), L1 over the true diagonal, capped
SCALE_MAX = 1.0  # MedReasoner: norm_val(max_val=1.0), the scale distance, capped
LOGISTIC_MAX_INPUT = 2.0  # MedReasoner: smooth_exp_val normalises between inputs 0 and 2
DIAGONAL_EPS = 1e-5  # MedReasoner: norm_val divides by (diagonal + 1e-5)
SCALE_EPS = 1e-6  # MedReasoner: scale_ratio's log((a + 1e-6) / (b + 1e-6))
LOGISTIC_EPS = 1e-8  # MedReasoner: smooth_exp_val's (max - min + 1e-8)
ANGLE_EPS = 1e-8  # MedReasoner: |v| + 1e-8 in the direction cosine

GroundingReward = Callable[..., list[float | None]]


# -- rows ----------------------------------------------------------------------------------------


def row_task(kwargs: dict, i: int) -> str | None:
    """The task of row ``i``: its ``task`` column, classification where the column (or the
    value) is missing (rows built before the grounding task), None for an unknown value."""
    tasks = kwargs.get("task")
    if not isinstance(tasks, Sequence) or isinstance(tasks, str) or i >= len(tasks):
        return CLASSIFICATION_TASK
    task = tasks[i]
    if task is None:
        return CLASSIFICATION_TASK
    return task if task in (CLASSIFICATION_TASK, GROUNDING_TASK) else None


def _column(kwargs: dict, name: str, i: int) -> object:
    values = kwargs.get(name)
    if isinstance(values, Sequence) and not isinstance(values, str) and i < len(values):
        return values[i]
    return None


def _target(kwargs: dict, i: int) -> tuple[Box, list[Point]] | None:
    """Row ``i``'s true box and points (model-input frame), None when unusable."""
    points = _listed(_column(kwargs, "target_points", i))
    if not isinstance(points, list) or len(points) != 2:
        return None
    box = _box({"bbox": _listed(_column(kwargs, "target_bbox", i))})
    pair = _points({"points_1": _listed(points[0]), "points_2": _listed(points[1])})
    return None if box is None or pair is None else (box, pair)


def _listed(value: object) -> object:
    """Dataset columns can arrive as tuples or arrays: a plain list where one is a sequence."""
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return list(value)
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) else value


# -- MedReasoner's shaping -------------------------------------------------------------------------


def smooth_log(x: float) -> float:
    """0.9 * log(3x + 1) / log(4) + 0.1: 0 -> 0.1, 1 -> 1 (MedReasoner's smooth_log_val)."""
    scaled = math.log(SMOOTH_LOG_K * x + 1) / math.log(SMOOTH_LOG_K + 1)
    return scaled * (1 - SMOOTH_FLOOR) + SMOOTH_FLOOR


def smooth_exp(x: float, centre: float) -> float:
    """A decreasing logistic 1 / (1 + exp(3 (x - c))) rescaled so that x = 0 gives ~1 and
    x = 2 gives 0.1 (MedReasoner's smooth_exp_val)."""

    def logistic(v: float) -> float:
        return 1.0 / (1 + math.exp(LOGISTIC_K * (v - centre)))

    low, high = logistic(LOGISTIC_MAX_INPUT), logistic(0.0)
    scaled = (logistic(x) - low) / (high - low + LOGISTIC_EPS)
    return scaled * (1 - SMOOTH_FLOOR) + SMOOTH_FLOOR


def penalize(reward: float, valid1: float, valid2: float) -> float:
    """clip(0.7 r + 0.3 r mean(v1, v2), 0, 1) rounded to 4 decimals (MedReasoner)."""
    value = PENALTY_KEEP * reward + (1 - PENALTY_KEEP) * reward * (valid1 + valid2) / 2
    return round(min(max(value, 0.0), 1.0), PENALTY_DIGITS)


def _flag(ok: bool) -> float:
    return 1.0 if ok else FLAG_FAIL


def points_in_box_flag(points: list[Point], box: Box) -> float:
    """The product of the two points' flags: 1.0, 0.5 or 0.25 (MedReasoner's position flag)."""
    return _flag(point_in_box(points[0], box)) * _flag(point_in_box(points[1], box))


def area_flag(predicted: Box, true: Box) -> float:
    true_area = box_area(true)
    return _flag(true_area / AREA_RATIO < box_area(predicted) < AREA_RATIO * true_area)


def spread_flag(points: list[Point]) -> float:
    return _flag(math.dist(points[0], points[1]) > POINT_SPREAD_PX)


def _over_diagonal(distance: float, box: Box) -> float:
    """A distance over the box's diagonal, clipped to [0, 2] (MedReasoner's norm_val)."""
    diagonal = math.hypot(box[2] - box[0], box[3] - box[1])
    return max(min(distance / (diagonal + DIAGONAL_EPS), ALIGN_MAX), 0.0)


def box_scale_distance(predicted: Box, true: Box) -> float:
    """sqrt(dlog-area^2 + dlog-aspect^2) of two boxes (MedReasoner's scale_ratio)."""
    w1, h1 = predicted[2] - predicted[0], predicted[3] - predicted[1]
    w2, h2 = true[2] - true[0], true[3] - true[1]
    d_area = math.log((w1 * h1 + SCALE_EPS) / (w2 * h2 + SCALE_EPS))
    d_aspect = math.log((w1 / h1 + SCALE_EPS) / (w2 / h2 + SCALE_EPS))
    return math.hypot(d_area, d_aspect)


def points_l1(predicted: list[Point], true: list[Point]) -> float:
    """Order-free mean L1 of the two point pairs (MedReasoner's seg_point_align_reward)."""

    def l1(a: Point, b: Point) -> float:
        return (abs(a[0] - b[0]) + abs(a[1] - b[1])) / 2

    same = l1(predicted[0], true[0]) + l1(predicted[1], true[1])
    swapped = l1(predicted[0], true[1]) + l1(predicted[1], true[0])
    return min(same, swapped) / 2


def points_direction(predicted: list[Point], true: list[Point]) -> float:
    """|cos| of the angle between the two pairs' directions (0 and 180 degrees: 1)."""
    gx, gy = true[1][0] - true[0][0], true[1][1] - true[0][1]
    px, py = predicted[1][0] - predicted[0][0], predicted[1][1] - predicted[0][1]
    norms = (math.hypot(gx, gy) + ANGLE_EPS) * (math.hypot(px, py) + ANGLE_EPS)
    return abs((gx * px + gy * py) / norms)


def _finite(value: float) -> float:
    """A geometric term that overflowed to NaN (huge coordinates) counts as the worst, 0."""
    return value if math.isfinite(value) else 0.0


# -- the terms of one reply (None: not scored) ----------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A completion's text and its ``<answer>`` block as ``grounding.answer_json`` reads it."""

    text: str
    status: str
    value: Any


def _format_think(reply: Reply) -> float:
    think = THINK_RE.search(reply.text)
    if think is None:
        return 0.0
    return 1.0 if think.group(1).strip() else THINK_EMPTY


def _format_seg(reply: Reply) -> float:
    if reply.status == "no_answer":
        return 0.0
    if reply.status != "ok":
        return SEG_BAD_JSON
    if not all(key in reply.value for key in ANSWER_KEYS):
        return SEG_MISSING
    malformed = (_box(reply.value) is None) + (_points(reply.value) is None)
    return (1.0, SEG_ONE_MALFORMED, SEG_MISSING)[malformed]


def _box(answer: dict) -> Box | None:
    """The answer's box if valid (read whether or not the point keys are there, as
    MedReasoner)."""
    return valid_box(answer.get("bbox"))


def _points(answer: dict) -> list[Point] | None:
    """The answer's two points if both are valid (read whether or not the box is there)."""
    pair = [valid_point(answer.get(key)) for key in ANSWER_KEYS[1:]]
    return None if pair[0] is None or pair[1] is None else pair


def _box_term(
    reply: Reply, target: tuple[Box, list[Point]], term: Callable[[Box, Box], float]
) -> float:
    """A box term, penalised by the true points in the predicted box and the area ratio."""
    box = _box(reply.value) if reply.status == "ok" else None
    if box is None:
        return 0.0
    true_box, true_points = target
    try:
        value = _finite(term(box, true_box))
        return penalize(value, points_in_box_flag(true_points, box), area_flag(box, true_box))
    except ArithmeticError:  # a float overflow on huge coordinates: the worst
        return 0.0


def _points_term(
    reply: Reply,
    target: tuple[Box, list[Point]],
    term: Callable[[list[Point], Box, list[Point]], float],
) -> float:
    """A point term, penalised by the predicted points in the true box and their spread."""
    points = _points(reply.value) if reply.status == "ok" else None
    if points is None:
        return 0.0
    true_box, true_points = target
    try:
        value = _finite(term(points, true_box, true_points))
        return penalize(value, points_in_box_flag(points, true_box), spread_flag(points))
    except ArithmeticError:
        return 0.0


def _bbox_iou(box: Box, true: Box) -> float:
    return smooth_log(box_iou(box, true))


def _bbox_align(box: Box, true: Box) -> float:
    edges = sum(abs(a - b) for a, b in zip(box, true, strict=True)) / 4
    return smooth_exp(_over_diagonal(edges, true), ALIGN_CENTRE)


def _bbox_scale(box: Box, true: Box) -> float:
    distance = box_scale_distance(box, true)  # infinite for huge boxes: the cap, the worst
    capped = min(distance, SCALE_MAX) if math.isfinite(distance) else SCALE_MAX
    return smooth_exp(capped, SCALE_CENTRE)


def _points_dice(points: list[Point], true_box: Box, true: list[Point]) -> float:
    return smooth_log(_finite(medreasoner_pdice(points, true)))


def _points_true_dice(points: list[Point], true_box: Box, true: list[Point]) -> float:
    return smooth_log(_finite(circle_dice(points, true)))


def _points_align(points: list[Point], true_box: Box, true: list[Point]) -> float:
    return smooth_exp(_over_diagonal(points_l1(points, true), true_box), ALIGN_CENTRE)


def _points_angle(points: list[Point], true_box: Box, true: list[Point]) -> float:
    return smooth_log(_finite(points_direction(points, true)))


# -- TRL reward functions -------------------------------------------------------------------------


def _per_row(
    completions: list, kwargs: dict, score: Callable[[Reply, tuple], float], parsing: str
) -> list[float | None]:
    """``score(reply, target)`` for each grounding row with a usable target, None otherwise."""
    out: list[float | None] = []
    for i, completion in enumerate(completions):
        target = _target(kwargs, i) if row_task(kwargs, i) == GROUNDING_TASK else None
        if target is None:
            out.append(None)
            continue
        text = completion_text(completion)
        out.append(score(Reply(text, *answer_json(text, parsing)), target))
    return out


def format_think_reward(
    completions: list, answer_parsing: str = DEFAULT_ANSWER_PARSING, **kwargs
) -> list[float | None]:
    """1 for a <think> block with text, 0.2 for an empty one, 0 without (MedReasoner)."""
    return _per_row(completions, kwargs, lambda r, _: _format_think(r), answer_parsing)


def format_seg_reward(
    completions: list, answer_parsing: str = DEFAULT_ANSWER_PARSING, **kwargs
) -> list[float | None]:
    """1 for a well-formed answer JSON; 0.6 / 0.4 / 0.2 / 0 as it degrades (MedReasoner)."""
    return _per_row(completions, kwargs, lambda r, _: _format_seg(r), answer_parsing)


def bbox_iou_reward(
    completions: list, answer_parsing: str = DEFAULT_ANSWER_PARSING, **kwargs
) -> list[float | None]:
    """smooth_log(IoU) of the box, penalised (MedReasoner's bbox_iou)."""
    score = functools.partial(_box_term, term=_bbox_iou)
    return _per_row(completions, kwargs, score, answer_parsing)


def points_dice_reward(
    completions: list, answer_parsing: str = DEFAULT_ANSWER_PARSING, **kwargs
) -> list[float | None]:
    """smooth_log of MedReasoner's pDice 2 inter / (union + 1e-5) of the two point circles,
    penalised and capped at 1 (MedReasoner's points_dice)."""
    score = functools.partial(_points_term, term=_points_dice)
    return _per_row(completions, kwargs, score, answer_parsing)


def points_true_dice_reward(
    completions: list, answer_parsing: str = DEFAULT_ANSWER_PARSING, **kwargs
) -> list[float | None]:
    """smooth_log of the true circle Dice 2 inter / (A1 + A2) of the two point circles,
    penalised (ours: points_dice over a Dice)."""
    score = functools.partial(_points_term, term=_points_true_dice)
    return _per_row(completions, kwargs, score, answer_parsing)


def bbox_align_reward(
    completions: list, answer_parsing: str = DEFAULT_ANSWER_PARSING, **kwargs
) -> list[float | None]:
    """Mean edge L1 over the true diagonal through a logistic, penalised (hard mode)."""
    score = functools.partial(_box_term, term=_bbox_align)
    return _per_row(completions, kwargs, score, answer_parsing)


def bbox_scale_reward(
    completions: list, answer_parsing: str = DEFAULT_ANSWER_PARSING, **kwargs
) -> list[float | None]:
    """sqrt(dlog-area^2 + dlog-aspect^2) through a logistic, penalised (hard mode)."""
    score = functools.partial(_box_term, term=_bbox_scale)
    return _per_row(completions, kwargs, score, answer_parsing)


def points_align_reward(
    completions: list, answer_parsing: str = DEFAULT_ANSWER_PARSING, **kwargs
) -> list[float | None]:
    """Order-free point L1 over the true diagonal through a logistic, penalised (hard mode)."""
    score = functools.partial(_points_term, term=_points_align)
    return _per_row(completions, kwargs, score, answer_parsing)


def points_angle_reward(
    completions: list, answer_parsing: str = DEFAULT_ANSWER_PARSING, **kwargs
) -> list[float | None]:
    """smooth_log(|cos|) of the two pairs' directions, penalised (hard mode)."""
    score = functools.partial(_points_term, term=_points_angle)
    return _per_row(completions, kwargs, score, answer_parsing)


GROUNDING_REWARDS: dict[str, GroundingReward] = {
    "format_think": format_think_reward,
    "format_seg": format_seg_reward,
    "bbox_iou": bbox_iou_reward,
    "points_dice": points_dice_reward,
    "points_true_dice": points_true_dice_reward,  # ours: points_dice over the true circle Dice
    "bbox_align": bbox_align_reward,
    "bbox_scale": bbox_scale_reward,
    "points_align": points_align_reward,
    "points_angle": points_angle_reward,
}


def with_answer_parsing(function: GroundingReward, parsing: str) -> GroundingReward:
    """``function`` reading the ``<answer>`` block as ``parsing`` says (its name and docstring
    kept: TRL logs a reward under its ``__name__``)."""

    @functools.wraps(function)
    def reward(completions: list, **kwargs) -> list[float | None]:
        return function(completions, answer_parsing=parsing, **kwargs)

    return reward
