"""MedReasoner's grounding rewards: hand-worked values, task routing, never raising on junk, a
real TRL GRPO run on mixed-task rows, and the coordinate round trip through the tiny model's real
processor (image frame -> model-input frame -> reply -> rewards -> image frame)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from datasets import Dataset
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from trl import GRPOConfig, GRPOTrainer

from model_training import grounding_rewards as gr
from model_training.configs import GRPORecipe
from model_training.grounding import answer_json, format_answer, frame_for, parse_grounding
from model_training.processor import load_processor
from model_training.rewards import DEFAULT_REWARDS, REWARDS, get_rewards
from model_training.tiny_model import build_tiny_model

SOFT, HARD = gr.GROUNDING_SOFT_REWARDS, gr.GROUNDING_HARD_REWARDS
# the target of every hand-worked case (model-input frame): a 40 x 40 box, diagonal 40 sqrt(2)
# = 56.5685, and two points on a horizontal diameter (centre (20, 20), radius 10)
T_BOX = [0.0, 0.0, 40.0, 40.0]
T_POINTS = [[10, 20], [30, 20]]
ROW = {"task": ["grounding"], "target_bbox": [T_BOX], "target_points": [T_POINTS]}
PERFECT = format_answer(T_BOX, T_POINTS)


def _scores(reply: object, row: dict | None = None) -> dict[str, float | None]:
    return {name: REWARDS[name]([reply], **(row or ROW))[0] for name in HARD}


def _reply(answer: str, think: str = "the lesion sits in the right upper lobe") -> str:
    return f"<think>{think}</think><answer>{answer}</answer>"


def _smooth_exp(x: float, c: float) -> float:
    """MedReasoner's logistic, written out: (L(x) - L(2)) / (L(0) - L(2)) * 0.9 + 0.1 with
    L(v) = 1 / (1 + exp(3 (v - c))) (the 1e-8 of its denominator is below the rounding)."""

    def logistic(v: float) -> float:
        return 1 / (1 + math.exp(3 * (v - c)))

    return (logistic(x) - logistic(2)) / (logistic(0) - logistic(2)) * 0.9 + 0.1


def test_perfect_answer_scores_four_soft_and_eight_hard():
    scores = _scores(_reply(PERFECT))
    assert all(value == 1.0 for value in scores.values()), scores
    assert sum(scores[n] for n in SOFT) == 4.0 and sum(scores[n] for n in HARD) == 8.0
    # the two points in the other order, and as a conversational completion: the same
    swapped = _reply(format_answer(T_BOX, T_POINTS[::-1]))
    assert sum(_scores(swapped).values()) == 8.0
    conversation = [{"role": "assistant", "content": _reply(PERFECT)}]
    assert sum(_scores(conversation).values()) == 8.0
    assert sum(_scores(_reply(PERFECT.replace('"', "'"))).values()) == 8.0  # MedReasoner's quotes


def test_box_with_iou_one_half_and_an_area_penalty():
    # box [0, 0, 40, 20]: inter 800, union 1600 -> IoU 0.5; smooth_log(0.5) =
    # 0.9 log(2.5) / log(4) + 0.1 = 0.9 * 0.660964 + 0.1 = 0.694868. Flags: true points
    # (10, 20), (30, 20) lie on the box's edge y = 20 (inclusive) -> 1.0; A = 800 is not > 0.5 *
    # 1600 -> 0.5. penalize: r (0.7 + 0.3 * (1 + 0.5) / 2) = 0.925 r = 0.642753 -> 0.6428
    scores = _scores(_reply(format_answer([0, 0, 40, 20], T_POINTS)))
    assert scores["bbox_iou"] == pytest.approx(0.6428, abs=1e-9)
    # align: edge L1 (0 + 0 + 0 + 20) / 4 = 5, over the diagonal 5 / 56.5685 = 0.088388;
    # L(v) = 1 / (1 + e^(3 (v - 1))): L(0) = 0.952574, L(2) = 0.047426, L(0.088388) = 0.939051
    # -> (0.939051 - 0.047426) / 0.905148 * 0.9 + 0.1 = 0.986554; * 0.925 = 0.912562 -> 0.9126
    assert _smooth_exp(5 / (40 * math.sqrt(2)), 1.0) == pytest.approx(0.986554, abs=1e-6)
    assert scores["bbox_align"] == pytest.approx(0.9126, abs=1e-9)
    # scale: dlog-area log(800 / 1600) = -ln 2, dlog-aspect log(2 / 1) = ln 2 -> sqrt(2) ln 2 =
    # 0.980258 (cap 1); with c = 0.5: L(0) = 0.817574, L(2) = 0.010987, L(0.980258) = 0.191425
    # -> (0.191425 - 0.010987) / 0.806587 * 0.9 + 0.1 = 0.301335; * 0.925 = 0.278735 -> 0.2787
    assert _smooth_exp(math.sqrt(2) * math.log(2), 0.5) == pytest.approx(0.301335, abs=1e-6)
    assert scores["bbox_scale"] == pytest.approx(0.2787, abs=1e-9)
    # the points are perfect and the format too
    assert [scores[n] for n in ("format_think", "format_seg", "points_dice")] == [1.0, 1.0, 1.0]
    assert scores["points_align"] == scores["points_angle"] == 1.0


def test_shifted_box_misses_a_true_point():
    # box [20, 0, 60, 40]: inter 20 * 40 = 800, union 2400 -> IoU 1/3; smooth_log(1/3) =
    # 0.9 log(2) / log(4) + 0.1 = 0.55. Flags: (10, 20) outside, (30, 20) inside -> 0.5 * 1 =
    # 0.5; same area -> 1.0. 0.55 * (0.7 + 0.3 * 0.75) = 0.50875 -> 0.5088 or 0.5087 (the float
    # 0.50875 rounds either way): within 1e-4
    scores = _scores(_reply(format_answer([20, 0, 60, 40], T_POINTS)))
    assert scores["bbox_iou"] == pytest.approx(0.50875, abs=6e-5)
    # align: (20 + 0 + 20 + 0) / 4 = 10 -> 0.176777 -> L = 0.921988 -> 0.969588 * 0.925 =
    # 0.896869 -> 0.8969; scale: same shape -> distance 0 -> 1.0 * 0.925 = 0.925
    assert scores["bbox_align"] == pytest.approx(0.8969, abs=1e-9)
    assert scores["bbox_scale"] == pytest.approx(0.925, abs=1e-9)


def test_shifted_points_lose_circle_overlap():
    # points (20, 20), (40, 20): circle centre (30, 20), r 10, centre distance d = 10 to the true
    # one. Lens = 2 r^2 acos(d / 2r) - (d / 2) sqrt(4 r^2 - d^2) = 200 pi / 3 - 5 sqrt(300) =
    # 122.837; union = 2 * 100 pi - 122.837 = 505.482. Flags: both points in the true box (x = 40
    # on its edge) -> 1; 20 px apart > 10 -> 1 (no penalty).
    # points_dice, MedReasoner's formula: 2 * 122.837 / (505.482 + 1e-5) = 0.486020; smooth_log
    # = 0.9 log(2.458059) / log(4) + 0.1 = 0.683884 -> 0.6839 (formula changed: was 0.6039)
    # points_true_dice, ours: 2 * 122.837 / (2 * 100 pi) = 0.391002; smooth_log = 0.9
    # log(2.173007) / log(4) + 0.1 = 0.603862 -> 0.6039
    reply = _reply(format_answer(T_BOX, [[20, 20], [40, 20]]))
    scores = _scores(reply)
    lens = 200 * math.pi / 3 - 5 * math.sqrt(300)
    assert gr.smooth_log(2 * lens / (200 * math.pi - lens + 1e-5)) == pytest.approx(
        0.683884, abs=1e-6
    )
    assert scores["points_dice"] == pytest.approx(0.6839, abs=1e-9)
    dice = 2 * lens / (200 * math.pi)
    assert gr.smooth_log(dice) == pytest.approx(0.603862, abs=1e-6)
    assert REWARDS["points_true_dice"]([reply], **ROW) == [pytest.approx(0.6039, abs=1e-9)]
    # order-free L1: same order (5 + 5), swapped (5 + 15): min 10 / 2 = 5 -> 0.088388 ->
    # 0.986554 -> 0.9866; the direction is the same -> |cos| 1 -> 1.0
    assert scores["points_align"] == pytest.approx(0.9866, abs=1e-9)
    assert scores["points_angle"] == 1.0
    assert [scores[n] for n in ("bbox_iou", "bbox_align", "bbox_scale")] == [1.0, 1.0, 1.0]


def test_points_dice_saturates_at_circle_iou_one_half():
    # concentric circles, the true r 10 and the predicted r 10 sqrt(2): inter 100 pi, union
    # 200 pi -> IoU 0.5. points_dice (MedReasoner): 2 * 100 pi / (200 pi + 1e-5) = 1 - 3e-8 ->
    # smooth_log 1.0 -> 1.0 (flags 1: both points inside, 28 px apart). points_true_dice (ours):
    # 2 * 100 pi / (100 pi + 200 pi) = 2/3 -> 0.9 log(3) / log(4) + 0.1 = 0.813233 -> 0.8132
    r = 10 * math.sqrt(2)
    reply = _reply(f'{{"bbox": {T_BOX}, "points_1": [{20 - r}, 20], "points_2": [{20 + r}, 20]}}')
    assert REWARDS["points_dice"]([reply], **ROW) == [1.0]
    assert REWARDS["points_true_dice"]([reply], **ROW) == [pytest.approx(0.8132, abs=1e-9)]
    assert 0.9 * math.log(3) / math.log(4) + 0.1 == pytest.approx(0.813233, abs=1e-6)


def test_point_penalties_spread_outside_and_perpendicular():
    # points (38, 20), (46, 20): 8 px apart (not > 10) -> 0.5; (46, 20) outside the box -> 0.5.
    # Circle centre (42, 20), r 4, d = 22 > 10 + 4: Dice 0 -> smooth_log(0) = 0.1;
    # 0.1 * (0.7 + 0.3 * (0.5 + 0.5) / 2) = 0.085
    scores = _scores(_reply(format_answer(T_BOX, [[38, 20], [46, 20]])))
    assert scores["points_dice"] == pytest.approx(0.085, abs=1e-9)
    # vertical diameter (20, 10), (20, 30): same circle -> MedReasoner's 2 inter / union = 2
    # (less 1e-7) -> smooth_log 0.9 log(7) / log(4) + 0.1 = 1.3633, capped at 1 by penalize -> 1.0
    # (our true Dice 1 -> 1.0 as well), but perpendicular:
    # |cos| = 0 -> smooth_log(0) = 0.1; flags 1, 1 (20 px apart) -> 0.1. Order-free L1: same
    # order (10 + 10) / 2 + (10 + 10) / 2 = 20, swapped the same -> 20 / 2 = 10 -> 0.176777 ->
    # 0.969588 -> 0.9696
    scores = _scores(_reply(format_answer(T_BOX, [[20, 10], [20, 30]])))
    assert scores["points_dice"] == 1.0
    assert scores["points_angle"] == pytest.approx(0.1, abs=1e-9)
    assert scores["points_align"] == pytest.approx(0.9696, abs=1e-9)
    # one point on top of the other: a degenerate circle (Dice 0 -> 0.1), direction |cos| 0
    # (a zero vector) -> 0.1; flags: inside 1, spread 0 px -> 0.5 -> 0.1 * 0.925 = 0.0925
    scores = _scores(_reply(format_answer(T_BOX, [[20, 20], [20, 20]])))
    assert scores["points_dice"] == scores["points_angle"] == pytest.approx(0.0925, abs=1e-9)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        # no <think>: 0; the rest perfect
        (f"<answer>{PERFECT}</answer>", {"format_think": 0.0, "format_seg": 1.0, "bbox_iou": 1.0}),
        # an empty <think>: 0.2
        (_reply(PERFECT, think="  \n"), {"format_think": 0.2, "format_seg": 1.0}),
        # no <answer>: format_seg 0 and nothing to score
        ("<think>r</think> the box is [0, 0, 40, 40]", {"format_think": 1.0, "format_seg": 0.0}),
        # bad JSON, or JSON that is not an object: 0.2
        (_reply('{"bbox": [0, 0, 40, 40], "points_1": [10'), {"format_seg": 0.2}),
        (_reply("[0, 0, 40, 40]"), {"format_seg": 0.2, "bbox_iou": 0.0}),
        # a key missing: 0.4; the box is still scored, as MedReasoner reads it on its own
        (
            _reply('{"bbox": [0, 0, 40, 40], "points_1": [10, 20]}'),
            {"format_seg": 0.4, "bbox_iou": 1.0, "bbox_scale": 1.0, "points_dice": 0.0},
        ),
        # one malformed point (three numbers): 0.6; the box scored, the points not
        (
            _reply('{"bbox": [0, 0, 40, 40], "points_1": [10, 20, 1], "points_2": [30, 20]}'),
            {"format_seg": 0.6, "bbox_iou": 1.0, "points_dice": 0.0, "points_angle": 0.0},
        ),
        # a malformed box (swapped corners) and good points: 0.6
        (
            _reply('{"bbox": [40, 40, 0, 0], "points_1": [10, 20], "points_2": [30, 20]}'),
            {"format_seg": 0.6, "bbox_iou": 0.0, "bbox_align": 0.0, "points_dice": 1.0},
        ),
        # both malformed (a NaN in the box, a string point): 0.4
        (
            _reply('{"bbox": [NaN, 0, 40, 40], "points_1": "10, 20", "points_2": [30, 20]}'),
            {"format_seg": 0.4, "bbox_iou": 0.0, "points_dice": 0.0},
        ),
        (None, {"format_think": 0.0, "format_seg": 0.0, "bbox_iou": 0.0, "points_angle": 0.0}),
    ],
)
def test_malformed_answers_by_hand(reply, expected):
    scores = _scores(reply)
    assert {name: scores[name] for name in expected} == expected


def test_each_reward_scores_only_its_own_task():
    reply = _reply(PERFECT)
    grounding = {**ROW, "answer": ["emphysema"], "options": [["emphysema"]]}
    classification = {"task": ["classification"], "answer": ["emphysema"],
                      "options": [["emphysema"]]}  # fmt: skip
    mixed = {key: grounding[key] + classification.get(key, [None]) for key in grounding}
    for name in HARD:
        assert REWARDS[name]([reply], **classification) == [None]
        assert REWARDS[name]([reply]) == [None]  # no task column: a classification row
        assert REWARDS[name]([reply, reply], **mixed) == [1.0, None]
    answer = "<think>t</think><answer>emphysema</answer>"
    for name in DEFAULT_REWARDS:
        assert REWARDS[name]([answer], **grounding) == [None]
        assert REWARDS[name]([answer], **classification) == [1.0]
        assert REWARDS[name]([answer, answer], **mixed) == [None, 1.0]
    # an unknown task is scored by no one; a grounding row without a usable target neither
    for name in (*DEFAULT_REWARDS, *HARD):
        assert REWARDS[name]([answer], **{**classification, "task": ["segmentation"]}) == [None]
    for target in ({"target_bbox": [[40, 40, 0, 0]]}, {"target_points": [[[1, 2]]]}, {}):
        row = {**ROW, **target} if target else {"task": ["grounding"]}
        assert REWARDS["bbox_iou"]([reply], **row) == [None]


def test_registry_names_and_weights():
    assert SOFT == ("format_think", "format_seg", "bbox_iou", "points_dice")
    assert (*SOFT, "bbox_align", "bbox_scale", "points_align", "points_angle") == HARD
    assert gr.GROUNDING_SOFT_REWARD_WEIGHTS == (1.0,) * 4
    assert gr.GROUNDING_HARD_REWARD_WEIGHTS == (1.0,) * 8
    # get_rewards binds the answer parsing; the functions underneath, and TRL's names, are these
    assert [f.__wrapped__ for f in get_rewards(SOFT)] == [
        gr.format_think_reward, gr.format_seg_reward, gr.bbox_iou_reward, gr.points_dice_reward
    ]  # fmt: skip
    assert [f.__name__ for f in get_rewards(SOFT)] == [f"{n}_reward" for n in SOFT]
    # a recipe naming them parses, with MedReasoner's plain sum as the default weights
    recipe = GRPORecipe(output_dir="o", use_cpu=True, bf16=False, reward_funcs=list(HARD))
    assert recipe.reward_weights == list(gr.GROUNDING_HARD_REWARD_WEIGHTS)


# -- never raising -----------------------------------------------------------------------------

numbers = st.one_of(
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1e308, -1e308, 5e-324, 40, 20]),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=5)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
answers = st.fixed_dictionaries(
    {},
    optional={
        "bbox": st.one_of(st.lists(numbers, min_size=4, max_size=4), json_values),
        "points_1": st.one_of(st.lists(numbers, min_size=2, max_size=2), json_values),
        "points_2": st.one_of(st.lists(numbers, min_size=2, max_size=2), json_values),
        "extra": json_values,
    },
)


def _dumps(value: object) -> str:
    try:
        return json.dumps(value)  # NaN, Infinity and huge integers written as JSON allows
    except (ValueError, OverflowError):
        return repr(value)


replies = st.one_of(
    st.text(),
    st.builds(lambda a: _reply(_dumps(a)), answers),
    st.builds(
        lambda a, t: f"<think>{t}</think><answer>{_dumps(a)}</answer>",
        json_values,
        st.text(max_size=5),
    ),  # fmt: skip
    st.builds(lambda a, b: f"<answer>{a}</answer>{b}</answer>", st.text(), st.text()),
    st.builds(lambda d: _reply("[" * d + "]" * d), st.integers(0, 5000)),  # nested junk
    st.none(),
    st.integers(),
    st.lists(st.dictionaries(st.text(), st.text())),
)
targets = st.builds(
    lambda x0, y0, w, h, p: ([x0, y0, x0 + w, y0 + h], p),
    st.floats(0, 1000),
    st.floats(0, 1000),
    st.floats(0.5, 1000),
    st.floats(0.5, 1000),
    st.lists(st.lists(st.integers(0, 2000), min_size=2, max_size=2), min_size=2, max_size=2),
)


@settings(max_examples=400, deadline=None)
@given(reply=replies, target=targets)
def test_grounding_rewards_never_raise_and_stay_in_range(reply, target):
    row = {"task": ["grounding"], "target_bbox": [target[0]], "target_points": [target[1]]}
    scores = _scores(reply, row)
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in scores.values()), scores
    assert sum(scores.values()) <= 8.0
    # nothing scores above the format terms' verdicts: no answer, no geometry
    if answer_json(reply)[0] == "no_answer":
        assert all(scores[n] == 0.0 for n in HARD if n != "format_think")
    for name in DEFAULT_REWARDS:  # the classification rewards leave grounding rows alone
        assert REWARDS[name]([reply], **row) == [None]


@settings(max_examples=200, deadline=None)
@given(
    box=st.lists(st.floats(-1e6, 1e6), min_size=4, max_size=4),
    points=st.lists(
        st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=2), min_size=2, max_size=2
    ),  # fmt: skip
)
def test_no_box_and_points_beat_the_perfect_answer(box, points):
    scores = _scores(_reply(json.dumps({"bbox": box, "points_1": points[0],
                                        "points_2": points[1]})))  # fmt: skip
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    assert sum(scores.values()) <= sum(_scores(_reply(PERFECT)).values()) == 8.0


# -- TRL: None for rows a function does not score ----------------------------------------------

CPU = {
    "bf16": False,
    "use_cpu": True,
    "gradient_checkpointing": False,
    "report_to": "none",
    "logging_steps": 1,
    "dataloader_num_workers": 0,
    "save_strategy": "no",
    "seed": 0,
}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("grounding_rewards") / "tiny")


def _grpo_logs(tiny_model, tmp_path, rows: list[dict]) -> list[dict]:
    """Two real GRPO steps on text prompts with all seven classification + soft rewards."""
    dataset = Dataset.from_list(
        [
            {"prompt": [{"role": "user", "content": f"question {i}"}], **row}
            for i, row in enumerate(rows)
        ]  # fmt: skip
    )
    names = [*DEFAULT_REWARDS, *SOFT]
    trainer = GRPOTrainer(
        model=str(tiny_model),
        reward_funcs=get_rewards(names),
        args=GRPOConfig(
            output_dir=str(tmp_path),
            max_steps=2,
            per_device_train_batch_size=8,
            num_generations=2,
            max_completion_length=6,
            learning_rate=1e-4,
            **CPU,
        ),  # fmt: skip
        train_dataset=dataset,
        processing_class=load_processor(tiny_model),
    )
    trainer.train()
    return [e for e in trainer.state.log_history if "reward" in e]


def test_trl_accepts_none_for_rows_and_whole_batches(tiny_model, tmp_path):
    grounding = {"task": "grounding", "target_bbox": T_BOX, "target_points": T_POINTS,
                 "answer": "", "options": []}  # fmt: skip
    classification = {"task": "classification", "target_bbox": [0.0] * 4,
                      "target_points": [[0, 0], [0, 0]], "answer": "emphysema",
                      "options": ["emphysema", "atelectasis"]}  # fmt: skip
    # a mixed batch: each function scores its own rows (batch of 8 = all 4 prompts x 2)
    mixed = _grpo_logs(tiny_model, tmp_path / "mixed", [grounding, classification] * 2)
    assert len(mixed) == 2
    for entry in mixed:
        assert all(math.isfinite(entry[f"rewards/{f.__name__}/mean"])
                   for f in get_rewards([*DEFAULT_REWARDS, *SOFT]))  # fmt: skip
        assert math.isfinite(entry["reward"])
    # a classification-only batch: the grounding functions return None for every row; TRL
    # takes their mean as NaN (its log history keeps it as None) and trains on the others
    only = _grpo_logs(tiny_model, tmp_path / "only", [classification] * 4)
    assert len(only) == 2
    for entry in only:
        for name in SOFT:
            mean = entry[f"rewards/{REWARDS[name].__name__}/mean"]
            assert mean is None or math.isnan(mean)
        assert math.isfinite(entry["rewards/format_reward/mean"])
        assert math.isfinite(entry["reward"])


# -- the coordinate round trip through the real processor ----------------------------------------


def _lesion_image(size: tuple[int, int], box: list[int]) -> Image.Image:
    pixels = np.full((size[1], size[0], 3), 40, np.uint8)
    pixels[box[1] : box[3], box[0] : box[2]] = 200
    return Image.fromarray(pixels)


@pytest.mark.parametrize(
    ("image_size", "max_pixels", "input_size"),
    [
        # 500 x 370 (no side a multiple of 28) within the bounds: sides rounded to 504 x 364
        ((500, 370), None, (504, 364)),
        # 900 x 700 = 630000 pixels > the tiny model's 200704: shrunk by sqrt(630000 / 200704)
        # = 1.7717 and floored to multiples of 28: 504 x 392
        ((900, 700), None, (504, 392)),
        # the same with the bound set by the caller (image_max_pixels = 28 * 28 * 100)
        ((500, 370), 28 * 28 * 100, (308, 224)),
    ],
)
def test_coordinates_round_trip_through_the_real_processor(
    tiny_model, image_size, max_pixels, input_size
):
    processor = load_processor(tiny_model, image_max_pixels=max_pixels)
    frame = frame_for(processor, image_size)
    assert frame.input_size == input_size
    box = [101, 57, 163, 140]  # image frame, end-exclusive
    points = [[120, 80], [150, 121]]  # pixels inside the box
    image = _lesion_image(image_size, box)
    messages = [{"role": "user", "content": [{"type": "image"},
                                             {"type": "text", "text": "Ground it."}]}]  # fmt: skip
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[image], return_tensors="np")
    _, grid_h, grid_w = inputs["image_grid_thw"][0]
    patch = processor.image_processor.patch_size
    assert frame.input_size == (grid_w * patch, grid_h * patch)
    merge = processor.image_processor.merge_size
    image_tokens = int((inputs["input_ids"] == processor.tokenizer.convert_tokens_to_ids(
        "<|image_pad|>")).sum())  # fmt: skip
    assert image_tokens == grid_h * grid_w // merge**2

    # the target and a perfect reply in the model-input frame
    target_box = [float(v) for v in frame.box_to_model(box)]
    target_points = [frame.point_to_model(p) for p in points]
    reply = _reply(format_answer(target_box, target_points))
    row = {"task": ["grounding"], "target_bbox": [target_box], "target_points": [target_points]}
    assert sum(REWARDS[n]([reply], **row)[0] for n in SOFT) == 4.0
    assert sum(REWARDS[n]([reply], **row)[0] for n in HARD) == 8.0

    # back to the image frame: the box within 1 px (rounding to a model pixel moves a corner by
    # at most 0.5 / scale image px, and every scale here is >= 0.56)
    parsed = parse_grounding(reply)
    back_box = frame.box_to_image(parsed.box)
    assert max(abs(a - b) for a, b in zip(back_box, box, strict=True)) <= 1.0
    back_points = [frame.point_to_image(p) for p in parsed.points]
    for original, back, model in zip(points, back_points, parsed.points, strict=True):
        assert frame.point_to_model(back) == model  # the same model-input pixel
        for axis in (0, 1):
            scale = frame.scale[axis]
            if scale >= 1:  # an upscaled (or kept) axis: the very pixel comes back
                assert back[axis] == original[axis]
            else:  # several image pixels share a model pixel: one of them, within 1 / scale
                assert abs(back[axis] - original[axis]) < 1 / scale


@pytest.mark.parametrize(("image_size", "input_size"), [((500, 370), (504, 364)),
                                                         ((900, 700), (504, 392))])  # fmt: skip
def test_every_pixel_round_trips_on_kept_axes(image_size, input_size):
    """Exhaustively: a pixel comes back exactly along an axis the processor does not shrink;
    along a shrunk axis (370 -> 364, 900 -> 504, 700 -> 392) it comes back as the image pixel
    under its model pixel's centre (one of the pixels that model pixel covers)."""
    from model_training.grounding import Frame

    frame = Frame(image_size, input_size)
    for axis in (0, 1):
        scale = frame.scale[axis]
        moved = 0
        for p in range(image_size[axis]):
            point = [0, 0]
            point[axis] = p
            model = frame.point_to_model(point)
            back = frame.point_to_image(model)
            assert 0 <= model[axis] < input_size[axis]
            assert frame.point_to_model(back) == model
            assert abs(back[axis] - p) < max(1.0, 1 / scale)
            moved += back[axis] != p
        if scale >= 1:
            assert moved == 0
        else:
            assert moved > 0  # the shrink is real: some pixels cannot come back exactly
