"""ChartQA relaxed accuracy, TextVQA VQA accuracy and the weighted average, worked by hand."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from model_training.evaluation.vqa_metrics import (
    chartqa_accuracy,
    normalise_vqa_answer,
    parse_number,
    process_punctuation,
    relaxed_correctness,
    textvqa_accuracy,
    vqa_accuracy,
    weighted_average,
)

# -- ChartQA ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "target", "correct"),
    [
        ("104", "100", True),  # 4 % off
        ("105", "100", True),  # 5 % off: the bound is inclusive
        ("94.9", "100", False),  # 5.1 % off
        ("106", "100", False),
        ("-0.97", "-1", True),  # relative to |target|
        ("1,000", "1000", True),  # thousands separator
        ("1000", "1,000", True),
        ("12,345.6", "12345.6", True),
        ("$1,000.", "1000", True),  # currency sign, trailing period
        (" 17 ", "17", True),
        ("(17)", "17", True),
        (".5", "0.5", True),  # a leading period is a decimal point
        ("1,0", "10", False),  # not a thousands separator: compared as text
        ("45%", "45", True),  # ChartQA's gold answers carry no "%"
        ("45 %", "45", True),
        ("45%", "0.45", True),  # ... or the percent applied
        ("0.45", "45%", True),
        ("45%", "46%", True),  # 2.2 % off
        ("45%", "50", False),
        ("0", "0", True),  # gold 0: the prediction must be 0
        ("0.0", "0", True),
        ("0.01", "0", False),
        ("none", "0", False),
        ("Yes", "yes", True),  # text: exact match after normalisation
        ("  New   York. ", "new york", True),
        ("New York City", "new york", False),
        ("yes", "no", False),
        ("", "0", False),
        ("", "", True),
    ],
)
def test_relaxed_correctness(prediction, target, correct):
    assert relaxed_correctness(prediction, target) is correct


def test_relaxed_correctness_tolerance_is_a_parameter():
    assert not relaxed_correctness("109", "100")
    assert relaxed_correctness("109", "100", tolerance=0.1)
    assert not relaxed_correctness("101", "100", tolerance=0.0)


def test_parse_number():
    assert parse_number("1,234,567") == (1234567.0, False)
    assert parse_number("12.5%") == (12.5, True)
    assert parse_number("-3") == (-3.0, False)
    for text in ("inf", "nan", "1e999", "twelve", "1.2.3", "1,00", "12 apples", ""):
        assert parse_number(text) is None, text


def test_chartqa_accuracy_over_rows_and_list_targets():
    preds = ["104", "red", "45%", "7"]
    targets = [["100"], ["Red"], "45", ["8", "7"]]  # a list: any gold string counts
    assert chartqa_accuracy(preds, targets) == pytest.approx(4 / 4)
    assert chartqa_accuracy(["1", "2"], [["1"], ["3"]]) == pytest.approx(0.5)
    assert chartqa_accuracy([], []) == 0.0
    with pytest.raises(ValueError, match="2 predictions for 1"):
        chartqa_accuracy(["1", "2"], ["1"])


# -- TextVQA ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agreeing", "expected"),
    [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (7, 1.0), (10, 1.0)],
)
def test_vqa_accuracy_official_values(agreeing, expected):
    # leave-one-out over the 10 humans: k agree -> (k*min((k-1)/3,1) + (10-k)*min(k/3,1)) / 10
    answers = ["stop"] * agreeing + [f"other {i}" for i in range(10 - agreeing)]
    assert vqa_accuracy("stop", answers) == pytest.approx(expected)


def test_vqa_accuracy_normalises_like_the_official_script():
    # number words -> digits (and "none" -> "0")
    assert vqa_accuracy("two", ["2"] * 10) == pytest.approx(1.0)
    assert vqa_accuracy("none", ["0"] * 4 + ["zero"] * 6) == pytest.approx(1.0)
    # articles and case
    assert vqa_accuracy("The Coca Cola", ["coca cola"] * 3 + ["coke"] * 7) == pytest.approx(0.9)
    # punctuation and a final period
    assert vqa_accuracy("stop!", ["stop"] * 10) == pytest.approx(1.0)
    assert vqa_accuracy("Stop.", ["stop"] * 10) == pytest.approx(1.0)
    # thousands separator and decimal point
    assert vqa_accuracy("1,000", ["1000"] * 10) == pytest.approx(1.0)
    assert vqa_accuracy("3.5", ["3.5"] * 10) == pytest.approx(1.0)
    assert vqa_accuracy("35", ["3.5"] * 10) == 0.0
    # contractions
    assert vqa_accuracy("dont", ["don't"] * 10) == pytest.approx(1.0)
    assert vqa_accuracy("yes", ["no"] * 10) == 0.0
    assert vqa_accuracy("yes", []) == 0.0


def test_answer_normalisation_steps():
    assert normalise_vqa_answer("The Coca-Cola Company!") == "coca cola company"
    assert normalise_vqa_answer("  A  Dog\n") == "dog"
    assert normalise_vqa_answer("3.") == "3"
    assert normalise_vqa_answer("mcdonald's") == "mcdonald 's"
    assert normalise_vqa_answer("Ten") == "10"
    # processPunctuation alone: a mark touching a space is deleted, else it becomes a space,
    # and a comma between digits deletes every mark
    assert process_punctuation("coca-cola") == "coca cola"
    assert process_punctuation("wait - what") == "wait  what"
    assert process_punctuation("1,000-2") == "10002"
    assert process_punctuation("a.b 3.5 end.") == "ab 3.5 end"


def test_textvqa_accuracy_is_the_mean():
    answers = [["a b"] * 10, ["x"] * 2 + ["y"] * 8, ["z"] * 10]
    assert textvqa_accuracy(["a b", "x", "q"], answers) == pytest.approx((1.0 + 0.6 + 0.0) / 3)
    assert textvqa_accuracy([], []) == 0.0
    with pytest.raises(ValueError):
        textvqa_accuracy(["a"], [])


# -- across benchmarks -----------------------------------------------------------------------


def test_weighted_average_by_sample_counts():
    assert weighted_average({"chartqa": (0.5, 100), "textvqa": (1.0, 300)}) == pytest.approx(
        (50 + 300) / 400
    )
    assert weighted_average({"chartqa": (0.7, 10)}) == pytest.approx(0.7)
    assert weighted_average({"chartqa": (0.7, 10), "empty": (0.0, 0)}) == pytest.approx(0.7)
    assert weighted_average({}) == 0.0


# -- properties ------------------------------------------------------------------------------

NUMERIC_LIKE = st.one_of(
    st.text(),
    st.from_regex(r"\s?[$(]?-?[0-9]{1,7}(,[0-9]{3})?(\.[0-9]{0,3})?\s?%?[).]?\s?", fullmatch=True),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
)


@given(NUMERIC_LIKE, NUMERIC_LIKE)
def test_relaxed_correctness_never_raises(prediction, target):
    assert relaxed_correctness(prediction, target) in (True, False)
    assert 0.0 <= chartqa_accuracy([prediction], [target]) <= 1.0


@given(st.text(), st.lists(st.text(), max_size=10))
def test_vqa_accuracy_is_in_unit_interval(prediction, answers):
    assert 0.0 <= vqa_accuracy(prediction, answers) <= 1.0


@given(st.text())
def test_a_prediction_every_human_gave_scores_one(prediction):
    assert vqa_accuracy(prediction, [prediction] * 10) == pytest.approx(1.0)


@given(st.dictionaries(st.text(), st.tuples(st.floats(0, 1), st.integers(0, 10_000))))
def test_weighted_average_stays_between_the_scores(scores):
    value = weighted_average(scores)
    weighted = [s for s, n in scores.values() if n > 0]
    if weighted:
        assert min(weighted) - 1e-9 <= value <= max(weighted) + 1e-9
    else:
        assert value == 0.0
