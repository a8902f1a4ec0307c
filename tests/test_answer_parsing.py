"""issue 21 item 2: which <answer> block is read (grounding.ANSWER_PARSERS), in the GRPO
rewards and in the grounding evaluation, worked by hand; unknown names refused in one line."""

from __future__ import annotations

import pytest

from model_training.configs import ConfigError, GRPORecipe
from model_training.evaluation.options import EvaluateArguments, EvaluationError
from model_training.evaluation.tasks.grounding import score_reply
from model_training.grounding import ANSWER_PARSERS, Frame, format_answer, parse_grounding
from model_training.grounding_rewards import GROUNDING_SOFT_REWARDS as SOFT
from model_training.grounding_rewards import penalize, smooth_log
from model_training.rewards import get_rewards

# the hand-worked target of test_grounding_rewards: a 40 x 40 box, points (10, 20), (30, 20)
T_BOX = [0.0, 0.0, 40.0, 40.0]
T_POINTS = [[10, 20], [30, 20]]
ROW = {"task": ["grounding"], "target_bbox": [T_BOX], "target_points": [T_POINTS]}
# the first block is wrong: box [0, 0, 40, 20] and points (38, 20), (46, 20); the last is right
WRONG = format_answer([0, 0, 40, 20], [[38, 20], [46, 20]])
RIGHT = format_answer(T_BOX, T_POINTS)
TWO_BLOCKS = f"<think>r</think><answer>{WRONG}</answer> on reflection <answer>{RIGHT}</answer>"


def _soft(reply: str, parsing: str) -> list[float]:
    return [f([reply], **ROW)[0] for f in get_rewards(SOFT, parsing)]


def test_two_answer_blocks_scored_both_ways():
    # ours reads the last block, the perfect answer: 1 + 1 + 1 + 1 = 4.0
    assert _soft(TWO_BLOCKS, "ours") == [1.0, 1.0, 1.0, 1.0]
    # medreasoner reads the first. format_think 1, format_seg 1 (well formed). bbox_iou: inter
    # 800, union 1600 -> IoU 0.5 -> smooth_log = 0.9 log(2.5) / log(4) + 0.1 = 0.694868; true
    # points on the box edge -> 1, area 800 not > 0.5 * 1600 -> 0.5: * (0.7 + 0.3 * 0.75) =
    # 0.642753 -> 0.6428. points_dice: circle centre (42, 20), r 4, d 22 > 10 + 4: disjoint ->
    # 0 -> smooth_log 0.1; (46, 20) outside -> 0.5, 8 px apart -> 0.5: 0.1 * (0.7 + 0.3 * 0.5)
    # = 0.085. Total 1 + 1 + 0.6428 + 0.085 = 2.7278
    scores = _soft(TWO_BLOCKS, "medreasoner")
    assert scores == pytest.approx([1.0, 1.0, 0.6428, 0.085], abs=1e-9)
    assert sum(scores) == pytest.approx(2.7278, abs=1e-9)


def test_tag_case_matters_to_medreasoner_only():
    upper = f"<think>r</think><ANSWER>{RIGHT}</ANSWER>"
    assert _soft(upper, "ours") == [1.0, 1.0, 1.0, 1.0]
    # re.search(r"<answer>(.*?)</answer>") finds nothing: format_seg 0, nothing scored
    assert _soft(upper, "medreasoner") == [1.0, 0.0, 0.0, 0.0]
    assert parse_grounding(upper, "medreasoner").status == "no_answer"


def test_evaluation_reads_the_block_it_is_told():
    row = {"bbox": T_BOX, "points": T_POINTS}
    frame = Frame((40, 40), (40, 40))  # the model-input frame is the image frame
    ours = score_reply(TWO_BLOCKS, row, frame)  # the default: ours
    assert ours["iou"] == 1.0 and ours["point_dice"] == pytest.approx(1.0)
    first = score_reply(TWO_BLOCKS, row, frame, "medreasoner")
    # IoU 800 / 1600 = 0.5; the point circles are disjoint: 0 in both point figures
    assert first["iou"] == 0.5 and first["point_dice"] == first["medreasoner_pdice"] == 0.0
    assert [p.block for p in ANSWER_PARSERS.values()] == [-1, 0]  # ours the last, MR the first


def test_unknown_parsings_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="answer_parsing='last'") as err:
        GRPORecipe(output_dir="o", use_cpu=True, bf16=False, reward_funcs=list(SOFT),
                   answer_parsing="last")  # fmt: skip
    assert "\n" not in str(err.value)
    # a parsing only the grounding rewards read, with none of them: refused
    with pytest.raises(ConfigError, match="names none"):
        GRPORecipe(output_dir="o", use_cpu=True, bf16=False, answer_parsing="medreasoner")
    with pytest.raises(EvaluationError, match="--answer-parsing='last'") as err:
        EvaluateArguments(model="m", dataset="d", output_dir="o", answer_parsing="last")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="choose one of ours, medreasoner"):
        get_rewards(SOFT, "last")
    recipe = GRPORecipe(output_dir="o", use_cpu=True, bf16=False, reward_funcs=list(SOFT),
                        answer_parsing="medreasoner")  # fmt: skip
    assert recipe.answer_parsing == "medreasoner"


def test_medreasoner_scores_a_box_with_swapped_corners_0_0812_not_0():
    # MedReasoner accepts [40, 40, 0, 0] as a box: IoU 0 -> smooth_log 0.1; the true points are
    # not inside it (0.5 * 0.5 = 0.25) and its area 0 is not > 800 (0.5): penalize = 0.1 (0.7 +
    # 0.3 (0.25 + 0.5) / 2) = 0.08125 -> 0.0812. Ours refuses the box: bbox_iou 0
    assert penalize(smooth_log(0.0), 0.25, 0.5) == 0.0812
    swapped = ('<think>r</think><answer>{"bbox": [40, 40, 0, 0], "points_1": [10, 20], '
               '"points_2": [30, 20]}</answer>')  # fmt: skip
    assert _soft(swapped, "medreasoner") == [1.0, 0.6, 0.0, 1.0]
