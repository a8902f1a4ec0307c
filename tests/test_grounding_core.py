"""model_training.grounding: the answer parser, the frames and the geometry, by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model_training.grounding import (
    Frame,
    box_iou,
    circle_dice,
    format_answer,
    mask_dice,
    medreasoner_pdice,
    parse_grounding,
    point_in_box,
)


def test_box_iou_by_hand():
    assert box_iou([0, 0, 2, 2], [1, 1, 3, 3]) == pytest.approx(1 / 7)  # 1 / (4 + 4 - 1)
    assert box_iou([0, 0, 4, 4], [0, 0, 4, 4]) == 1.0
    assert box_iou([0, 0, 1, 1], [2, 2, 3, 3]) == 0.0
    assert box_iou([0, 0, 4, 2], [0, 0, 2, 2]) == pytest.approx(0.5)
    assert box_iou([2, 2, 2, 5], [0, 0, 4, 4]) == 0.0  # a degenerate box covers nothing
    assert point_in_box([4, 0], [0, 0, 4, 4]) and not point_in_box([4.5, 0], [0, 0, 4, 4])


def test_circle_dice_by_hand():
    # ours, the true Dice 2 inter / (A1 + A2). Identical circles: 1; concentric r=1 in r=2:
    # 2 * pi / (pi + 4 pi) = 0.4
    assert circle_dice([[0, 0], [2, 0]], [[0, 0], [2, 0]]) == pytest.approx(1.0)
    assert circle_dice([[0, 0], [2, 0]], [[-1, 0], [3, 0]]) == pytest.approx(0.4)
    assert circle_dice([[0, 0], [2, 0]], [[10, 0], [12, 0]]) == 0.0  # apart
    assert circle_dice([[1, 1], [1, 1]], [[0, 0], [2, 0]]) == 0.0  # a point is no circle
    # two unit circles one radius apart: lens = 2 acos(1/2) - (1/2) sqrt(3)
    lens = 2 * math.acos(0.5) - 0.5 * math.sqrt(3)
    assert circle_dice([[-1, 0], [1, 0]], [[0, 0], [2, 0]]) == pytest.approx(lens / math.pi)


def test_medreasoner_pdice_by_hand():
    # MedReasoner's compute_pdice, 2 inter / (union + 1e-5). Identical pairs, r = 10: inter =
    # union = 100 pi = 314.159265 -> 628.318531 / 314.159275 = 1.99999994 (a perfect answer: 2.0)
    assert medreasoner_pdice([[0, 0], [20, 0]], [[0, 0], [20, 0]]) == pytest.approx(
        2 * 100 * math.pi / (100 * math.pi + 1e-5), abs=1e-12
    )
    assert medreasoner_pdice([[0, 0], [20, 0]], [[0, 0], [20, 0]]) == pytest.approx(2.0, abs=1e-7)
    # concentric r=1 in r=2: inter pi, union 4 pi -> 2 pi / (4 pi + 1e-5) = 0.5 (ours: 0.4)
    assert medreasoner_pdice([[0, 0], [2, 0]], [[-1, 0], [3, 0]]) == pytest.approx(0.5, abs=1e-6)
    # two unit circles one radius apart (each centre on the other's edge): lens =
    # 2 pi / 3 - sqrt(3) / 2 = 1.228370, union = 2 pi - 1.228370 = 5.054815 -> 2 * 1.228370 /
    # 5.054815 = 0.486020 (ours: 1.228370 / pi = 0.391002; 2D / (2 - D) = 0.486020)
    lens = 2 * math.pi / 3 - math.sqrt(3) / 2
    half = medreasoner_pdice([[-1, 0], [1, 0]], [[0, 0], [2, 0]])
    assert half == pytest.approx(2 * lens / (2 * math.pi - lens + 1e-5), abs=1e-12)
    assert half == pytest.approx(0.486020, abs=1e-5)
    d = circle_dice([[-1, 0], [1, 0]], [[0, 0], [2, 0]])
    assert half == pytest.approx(2 * d / (2 - d), abs=1e-5)
    # disjoint circles: 0; a degenerate pair (one point twice): 0, as compute_pdice
    assert medreasoner_pdice([[0, 0], [2, 0]], [[10, 0], [12, 0]]) == 0.0
    assert medreasoner_pdice([[1, 1], [1, 1]], [[0, 0], [2, 0]]) == 0.0


def test_mask_dice_by_hand():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2] = True  # 8 pixels
    b[1:3] = True  # 8 pixels, 4 shared
    assert mask_dice(a, b) == pytest.approx(0.5)
    assert mask_dice(a, a) == 1.0 and mask_dice(a, ~a) == 0.0
    assert mask_dice(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        ("no tags", "no_answer"),
        ("<answer>[1, 2]</answer>", "bad_json"),
        ("<answer>{bbox: 1}</answer>", "bad_json"),
        ('<answer>{"bbox": [1, 2, 3, 4]}</answer>', "missing_keys"),
        (None, "no_answer"),
    ],
)
def test_unreadable_answers(reply, status):
    assert parse_grounding(reply).status == status


def test_answers_round_trip_and_single_quotes_are_read():
    text = format_answer([10, 20, 30, 40], [[12, 22], [28, 38]])
    parsed = parse_grounding(f"<think>r</think><answer>{text}</answer>")
    assert parsed.status == "ok" and parsed.box == [10, 20, 30, 40]
    assert parsed.points == [[12, 22], [28, 38]]
    single = parse_grounding("<answer>{'bbox': [1, 2, 3, 4], 'points_1': [1, 2], "
                             "'points_2': [2, 3]}</answer>")  # fmt: skip
    assert single.box == [1, 2, 3, 4] and single.points == [[1, 2], [2, 3]]
    # malformed parts are None, the rest kept: a swapped box, a point with three numbers
    bad = parse_grounding('<answer>{"bbox": [3, 2, 1, 4], "points_1": [1, 2, 3], '
                          '"points_2": [2, 3]}</answer>')  # fmt: skip
    assert bad.status == "ok" and bad.box is None and bad.points is None
    nan = parse_grounding('<answer>{"bbox": [NaN, 2, 3, 4], "points_1": [1, 2], '
                          '"points_2": [2, 3]}</answer>')  # fmt: skip
    assert nan.box is None and nan.points == [[1, 2], [2, 3]]


def test_frames_convert_both_ways():
    frame = Frame((500, 370), (504, 364))
    box = [100, 50, 300, 200]
    assert frame.box_to_model(box) == [101, 49, 302, 197]  # round(100 * 504 / 500) ...
    back = frame.box_to_image(frame.box_to_model(box))
    assert all(abs(a - b) < 1 for a, b in zip(back, box, strict=True))
    for point in ([0, 0], [499, 369], [123, 45]):
        assert frame.point_to_image(frame.point_to_model(point)) == point
    identity = Frame((504, 504), (504, 504))
    assert identity.box_to_model(box) == box and identity.point_to_model([7, 9]) == [7, 9]
