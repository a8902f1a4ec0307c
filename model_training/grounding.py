"""Grounding (MedReasoner's task) on CT-RATE-VQA: the answer format, the two coordinate frames,
and the geometry that prompts, rewards and evaluation share.

Frames. The dataset stores boxes and points in the *image frame*: pixels of the stored image
(x = column, y = row; a box is ``[x0, y0, x1, y1]`` with end-exclusive pixel corners, as the
classification rows' ``bbox``; a point is the integer ``[x, y]`` of a pixel inside the lesion).
Qwen2.5-VL reads and writes absolute coordinates of its *model-input frame*: the image as its
processor resized it (sides rounded to multiples of 28 within the pixel bounds: a 512 x 512 slice
becomes 504 x 504). :class:`Frame` converts between the two; it is the one place that does, and
the model-input size comes from the processor itself (its ``image_grid_thw``).

Answer (MedReasoner's format, arXiv 2508.08177): ``<think>...</think>`` then
``<answer>{"bbox": [x0, y0, x1, y1], "points_1": [x, y], "points_2": [x, y]}</answer>`` in the
model-input frame. As MedReasoner's parser does, single quotes are read as double quotes.

Answer parsing (``ANSWER_PARSERS``, chosen by name): ``ours`` (the default) reads the LAST
``<answer>`` block with case-insensitive tags; ``medreasoner`` reads the FIRST block with
case-sensitive tags, as MedReasoner's reward does (``re.search(r"<answer>(.*?)</answer>")`` in
verl/utils/reward_score/med_grounding.py). They differ only on a reply with several blocks or
with tags in another case.

Point scores: each point pair is the diameter of a circle. ``circle_dice`` is the true Dice
``2 |A n B| / (|A| + |B|)`` of the predicted and true circles (ours, max 1);
``medreasoner_pdice`` is MedReasoner's ``2 |A n B| / (|A u B| + 1e-5)`` (twice the circles'
IoU, max 2; eval/utils.py compute_pdice), the formula behind the paper's pDice. Per row,
``medreasoner_pdice = 2 D / (2 - D)`` for ``D = circle_dice``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

ANSWER_KEYS = ("bbox", "points_1", "points_2")  # MedReasoner's answer keys
PDICE_UNION_EPS = 1e-5  # code: MedReasoner eval/utils.py compute_pdice, 2 inter / (union + 1e-5)

Box = list[float]  # [x0, y0, x1, y1]
Point = list[float]  # [x, y]


# -- frames ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """The stored image's size and the model input's size (width, height)."""

    image_size: tuple[int, int]
    input_size: tuple[int, int]

    @property
    def scale(self) -> tuple[float, float]:
        """(x, y) factors from the image frame to the model-input frame."""
        return (
            self.input_size[0] / self.image_size[0],
            self.input_size[1] / self.image_size[1],
        )

    def box_to_model(self, box: Box) -> list[int]:
        sx, sy = self.scale
        return [round(box[0] * sx), round(box[1] * sy), round(box[2] * sx), round(box[3] * sy)]

    def box_to_image(self, box: Box) -> Box:
        sx, sy = self.scale
        return [box[0] / sx, box[1] / sy, box[2] / sx, box[3] / sy]

    def point_to_model(self, point: Point) -> list[int]:
        """A pixel's centre (x + 0.5, y + 0.5) in the model-input frame, floored to its pixel."""
        sx, sy = self.scale
        return [math.floor((point[0] + 0.5) * sx), math.floor((point[1] + 0.5) * sy)]

    def point_to_image(self, point: Point) -> Point:
        """The image pixel under a model-input pixel's centre."""
        sx, sy = self.scale
        return [
            min(math.floor((point[0] + 0.5) / sx), self.image_size[0] - 1),
            min(math.floor((point[1] + 0.5) / sy), self.image_size[1] - 1),
        ]


def frame_for(processor: Any, image_size: tuple[int, int]) -> Frame:
    """The frame of an image of ``image_size`` (width, height) under ``processor`` (a Qwen2-VL /
    Qwen2.5-VL processor or image processor): the size its ``image_grid_thw`` gives."""
    from PIL import Image

    image_processor = getattr(processor, "image_processor", processor)
    blank = Image.new("RGB", tuple(image_size))
    grid = image_processor(images=[blank], return_tensors="np")["image_grid_thw"][0]
    patch = int(image_processor.patch_size)
    return Frame(tuple(image_size), (int(grid[2]) * patch, int(grid[1]) * patch))


# -- the answer ----------------------------------------------------------------------------------


def format_answer(box: Box, points: list[Point]) -> str:
    """The JSON inside ``<answer>`` (model-input frame)."""
    return json.dumps(
        {
            "bbox": [int(v) for v in box],
            "points_1": [int(v) for v in points[0]],
            "points_2": [int(v) for v in points[1]],
        }  # fmt: skip
    )


@dataclass(frozen=True)
class AnswerParser:
    """Which ``<answer>`` block of a reply is read: ``pattern`` finds the blocks, ``block``
    indexes them (0: the first, -1: the last)."""

    pattern: re.Pattern[str]
    block: int


ANSWER_PARSERS = {
    # ours: the last block, tags in any case (a model that restates its answer is read at its end)
    "ours": AnswerParser(re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE), -1),
    # code: MedReasoner med_grounding.py, re.search(r"<answer>(.*?)</answer>", s, re.DOTALL)
    "medreasoner": AnswerParser(re.compile(r"<answer>(.*?)</answer>", re.DOTALL), 0),
}
DEFAULT_ANSWER_PARSING = "ours"
ANSWER_PARSING_HELP = (
    "grounding: which <answer> block is read: 'ours' (the last block, tags in any case) or "
    "'medreasoner' (the first block, case-sensitive tags, as MedReasoner's med_grounding.py)"
)


def answer_parsing_problem(name: object) -> str | None:
    """None for a known answer parsing, else the one-line reason it is refused."""
    if name in ANSWER_PARSERS:
        return None
    return f"answer_parsing={name!r}: choose one of {', '.join(ANSWER_PARSERS)}"


def answer_json(reply: object, parsing: str = DEFAULT_ANSWER_PARSING) -> tuple[str, Any]:
    """(status, value) of the ``<answer>`` block ``parsing`` reads (``ANSWER_PARSERS``):
    ("no_answer", None) without one, ("bad_json", None) when it is not a JSON object, else
    ("ok", the dict)."""
    if not isinstance(reply, str):
        return "no_answer", None
    parser = ANSWER_PARSERS[parsing]
    blocks = parser.pattern.findall(reply)
    if not blocks:
        return "no_answer", None
    text = blocks[parser.block].strip().replace("'", '"')
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return "bad_json", None
    return ("ok", value) if isinstance(value, dict) else ("bad_json", None)


def valid_box(value: object) -> Box | None:
    """Four finite numbers with x0 < x1 and y0 < y1, else None."""
    if not isinstance(value, list) or len(value) != 4 or not all(_number(v) for v in value):
        return None
    box = [float(v) for v in value]
    return box if box[0] < box[2] and box[1] < box[3] else None


def valid_point(value: object) -> Point | None:
    """Two finite numbers, else None."""
    if not isinstance(value, list) or len(value) != 2 or not all(_number(v) for v in value):
        return None
    return [float(v) for v in value]


def _number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond the float range
        return False


@dataclass(frozen=True)
class Grounding:
    """What a reply grounds: box and points (None when missing or malformed)."""

    status: str  # "ok", "no_answer", "bad_json", "missing_keys"
    box: Box | None = None
    points: list[Point] | None = None  # both points, or None


def parse_grounding(reply: object, parsing: str = DEFAULT_ANSWER_PARSING) -> Grounding:
    status, value = answer_json(reply, parsing)
    if status != "ok":
        return Grounding(status)
    if not all(key in value for key in ANSWER_KEYS):
        return Grounding("missing_keys")
    box = valid_box(value["bbox"])
    p1, p2 = valid_point(value["points_1"]), valid_point(value["points_2"])
    return Grounding("ok", box, [p1, p2] if p1 is not None and p2 is not None else None)


# -- geometry (any one frame) --------------------------------------------------------------------


def box_area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (end-exclusive corners)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, w) * max(0.0, h)
    union = box_area(a) + box_area(b) - inter
    return inter / union if union > 0 else 0.0


def point_in_box(point: Point, box: Box) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def _circle(points: list[Point]) -> tuple[float, float, float]:
    """(cx, cy, r) of the circle whose diameter is the segment between two points."""
    (x1, y1), (x2, y2) = points
    return (x1 + x2) / 2, (y1 + y2) / 2, math.hypot(x2 - x1, y2 - y1) / 2


def _lens_area(r1: float, r2: float, d: float) -> float:
    """Area of the intersection of two circles with radii r1, r2 and centre distance d."""
    if d >= r1 + r2:
        return 0.0
    if d <= abs(r1 - r2):
        return math.pi * min(r1, r2) ** 2
    a1 = r1 * r1 * math.acos(max(-1.0, min(1.0, (d * d + r1 * r1 - r2 * r2) / (2 * d * r1))))
    a2 = r2 * r2 * math.acos(max(-1.0, min(1.0, (d * d + r2 * r2 - r1 * r1) / (2 * d * r2))))
    k = (-d + r1 + r2) * (d + r1 - r2) * (d - r1 + r2) * (d + r1 + r2)
    return a1 + a2 - 0.5 * math.sqrt(max(0.0, k))


def _circles(predicted: list[Point], true: list[Point]) -> tuple[float, float, float] | None:
    """(intersection, area 1, area 2) of the two point pairs' circles; None when either is
    degenerate (both points the same)."""
    x1, y1, r1 = _circle(predicted)
    x2, y2, r2 = _circle(true)
    if r1 <= 0 or r2 <= 0:
        return None
    inter = _lens_area(r1, r2, math.hypot(x2 - x1, y2 - y1))
    return inter, math.pi * r1 * r1, math.pi * r2 * r2


def circle_dice(predicted: list[Point], true: list[Point]) -> float:
    """Our point-Dice: the true Dice 2 |A n B| / (|A| + |B|) of the circles whose diameters are
    the predicted and the true point pairs (1 for a perfect answer; 0 for a degenerate circle).
    Not MedReasoner's pDice: see ``medreasoner_pdice``."""
    circles = _circles(predicted, true)
    if circles is None:
        return 0.0
    inter, a1, a2 = circles
    return 2 * inter / (a1 + a2)


def medreasoner_pdice(predicted: list[Point], true: list[Point]) -> float:
    """MedReasoner's pDice (eval/utils.py compute_pdice; its points_dice reward): 2 |A n B| /
    (|A u B| + 1e-5) of the same circles: twice their IoU, so a perfect answer scores 2.0 (less
    1e-7 for circles of radius >= 10 px), concentric circles of radii 1 and 2 (IoU 1/4) 0.5,
    disjoint ones 0 (0 for a degenerate circle, as compute_pdice; MedReasoner's reward adds 1e-5
    to each radius, which gives such a pair 6e-5 instead)."""
    circles = _circles(predicted, true)
    if circles is None:
        return 0.0
    inter, a1, a2 = circles
    return 2 * inter / (a1 + a2 - inter + PDICE_UNION_EPS)


def mask_dice(predicted: np.ndarray, true: np.ndarray) -> float:
    """2 |P n G| / (|P| + |G|) of two boolean masks (1.0 when both are empty)."""
    p, g = np.asarray(predicted, bool), np.asarray(true, bool)
    total = int(p.sum()) + int(g.sum())
    return 1.0 if total == 0 else 2.0 * int((p & g).sum()) / total
