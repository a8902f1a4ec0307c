"""Reply parsing and the three GRPO rewards on well-formed, malformed and adversarial replies."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.names import CLASSIFICATION_TASK, GROUNDING_TASK
from dataset_builder.class_map import load_class_map
from model_training.answers import completion_text, parse_reply
from model_training.grounding_rewards import GROUNDING_HARD_REWARDS
from model_training.rewards import (
    DEFAULT_REWARD_WEIGHTS,
    DEFAULT_REWARDS,
    REWARDS,
    correctness_reward,
    format_reward,
    get_rewards,
    validity_reward,
)

CLASSES = list(load_class_map().classes)
GOLD = "ground-glass opacity"


def _rewards(reply: object, **task) -> tuple[float | None, float | None, float | None]:
    kwargs = {"answer": [GOLD], "options": [CLASSES], **task}
    return (
        format_reward([reply], **kwargs)[0],
        validity_reward([reply], **kwargs)[0],
        correctness_reward([reply], **kwargs)[0],
    )


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("<think>hazy, vessels visible</think><answer>ground-glass opacity</answer>", (1, 1, 1)),
        ("<think>x</think>\n<answer> Ground-Glass Opacity. </answer>\n", (1, 1, 1)),
        ("<think>dense</think><answer>emphysema</answer>", (1, 1, 0)),
        ("<think>?</think><answer>pneumothorax</answer>", (1, 0, 0)),
        ("<answer>ground-glass opacity</answer>", (0, 1, 1)),
        ("<think>no answer</think>", (0, 0, 0)),
        ("ground-glass opacity", (0, 0, 0)),
        ("", (0, 0, 0)),
        (
            "<think>a</think><answer>emphysema</answer><answer>ground-glass opacity</answer>",
            (0, 1, 1),
        ),
        ("preamble <think>a</think><answer>ground-glass opacity</answer>", (0, 1, 1)),
        ("<think>a</think><answer>ground-glass opacity or emphysema</answer>", (1, 0, 0)),
        ("<answer><think>ground-glass opacity</think></answer>", (0, 0, 0)),
        (None, (0, 0, 0)),
        (
            [
                {
                    "role": "assistant",
                    "content": "<think>t</think><answer>ground-glass opacity</answer>",
                }
            ],
            (1, 1, 1),
        ),
        (
            [
                {
                    "role": "assistant",
                    "content": [{"type": "text", "text": "<answer>emphysema</answer>"}],
                }
            ],
            (0, 1, 0),
        ),
    ],
)
def test_rewards_on_hand_made_replies(reply, expected):
    assert _rewards(reply) == tuple(float(v) for v in expected)
    # the same values on rows that name their task; grounding rows are not theirs to score
    assert _rewards(reply, task=[CLASSIFICATION_TASK]) == tuple(float(v) for v in expected)
    assert _rewards(reply, task=[GROUNDING_TASK]) == (None, None, None)


def test_parse_reply_keeps_think_and_canonical_answer():
    parsed = parse_reply(
        "<think> lobulated  solid </think><answer>PULMONARY nodules/masses</answer>", CLASSES
    )
    assert parsed.think == "lobulated  solid" and parsed.answer == "pulmonary nodules/masses"
    assert parsed.well_formed


def test_registry_and_paper_weights():
    assert DEFAULT_REWARDS == ("format", "validity", "correctness")
    # MedReasoner's grounding rewards share the registry under their own names, and so does
    # our true-Dice variant of points_dice (not one of MedReasoner's)
    assert set(REWARDS) == {*DEFAULT_REWARDS, *GROUNDING_HARD_REWARDS, "points_true_dice"}
    assert "points_true_dice" not in GROUNDING_HARD_REWARDS
    assert DEFAULT_REWARD_WEIGHTS == (1.0, 1.0, 2.0)
    assert get_rewards(["correctness"]) == [correctness_reward]
    with pytest.raises(ValueError, match="unknown reward"):
        get_rewards(["length"])


def test_missing_columns_never_raise():
    assert correctness_reward(["<answer>emphysema</answer>"]) == [0.0]
    assert validity_reward(["<answer>emphysema</answer>"], options=None) == [0.0]
    assert correctness_reward(["<answer>emphysema</answer>"], answer=[None]) == [0.0]


replies = st.one_of(
    st.text(),
    st.lists(
        st.sampled_from(["<think>", "</think>", "<answer>", "</answer>", " ", "\n", *CLASSES]),
        max_size=8,
    ).map("".join),
    st.builds(lambda a, b: f"<think>{a}</think><answer>{b}</answer>", st.text(), st.text()),
    st.none(),
    st.integers(),
    st.lists(st.dictionaries(st.text(), st.text())),
)


tasks = st.sampled_from([{}, {"task": [CLASSIFICATION_TASK]}, {"task": [None]}])


@settings(max_examples=300, deadline=None)
@given(reply=replies, gold=st.one_of(st.sampled_from(CLASSES), st.text(), st.none()), task=tasks)
def test_rewards_never_raise_and_stay_in_range(reply, gold, task):
    kwargs = {"answer": [gold], "options": [CLASSES], **task}
    for reward in get_rewards(DEFAULT_REWARDS):
        values = reward([reply], **kwargs)
        assert len(values) == 1 and values[0] in (0.0, 1.0)
        assert reward([reply], **{**kwargs, "task": [GROUNDING_TASK]}) == [None]
    assert isinstance(completion_text(reply), str)
    # correct implies valid: the gold is one of the options
    if correctness_reward([reply], **kwargs)[0]:
        assert validity_reward([reply], **kwargs)[0] == 1.0
