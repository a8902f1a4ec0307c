"""The results.json schema, read and checked in one place (``common.results_schema``): a file
that does not fit is refused in one line naming the file and the field, by the leaderboard and
the model card alike."""

from __future__ import annotations

import json

import pytest

from common.errors import UserError
from common.results_schema import (
    ResultsError,
    ablation_mode,
    check_results,
    model_label,
    read_results,
    revision_text,
)
from hub_cards.model_card import model_card

GROUNDING = {"model": "org/m", "config": "grounding", "split": "test", "task": "grounding",
             "modes": {"think": {"n": 4, "iou_mean": 0.5, "iou_50": 0.5,
                                 "point_dice_mean": 0.25}}}  # fmt: skip
CLASSIFICATION = {"model": "org/m", "config": "zoom", "split": "test",
                  "modes": {"think": {"n": 4, "accuracy_micro": 0.5, "per_class": {}}}}  # fmt: skip
_THINK = CLASSIFICATION["modes"]["think"]
_BOX = GROUNDING["modes"]["think"]
_BASELINE = {"n": 4, "train_rows": 8, "iou_mean": 0.1, "iou_50": 0.0, "point_dice_mean": 0.2}


@pytest.mark.parametrize(
    ("results", "names"),
    [
        ({"model": "m"}, ["missing", "'config'", "'modes'"]),
        (CLASSIFICATION | {"task": "segmentation"}, ["unknown task", "'segmentation'"]),
        ({**CLASSIFICATION, "modes": {"think": {"n": 4}}}, ["'think'", "accuracy_micro"]),
        ({**CLASSIFICATION, "modes": {"think": {"accuracy_micro": 0.5, "per_class": {"a": 1}}}},
         ["'think'", "per_class"]),
        (CLASSIFICATION | {"model_parameters": -1}, ["model_parameters"]),
        (CLASSIFICATION | {"training": "sft"}, ["training"]),
        ({**GROUNDING, "modes": {"think": {"n": 4, "iou_mean": 0.5}}}, ["'think'", "iou_50"]),
        ({**GROUNDING, "modes": {"think": {**GROUNDING["modes"]["think"],
                                           "mask_dice_mean": "x"}}}, ["mask_dice_mean"]),
        (GROUNDING | {"mean_box_baseline": {"n": 4, "iou_mean": None}}, ["mean_box_baseline"]),
        # values out of range (issue 20): counts, fractions, pDice, wherever they appear
        ({**CLASSIFICATION, "modes": {"think": {**_THINK, "n": -5}}}, ["'think'", "n is -5"]),
        ({**CLASSIFICATION, "modes": {"think": {**_THINK, "n": 4.5}}}, ["n is 4.5", "count"]),
        ({**CLASSIFICATION, "modes": {"think": {**_THINK, "accuracy_micro": 1.2}}},
         ["accuracy_micro is 1.2", "[0, 1]"]),
        ({**CLASSIFICATION, "modes": {"think": {**_THINK, "validity_rate": -0.5}}},
         ["validity_rate"]),
        ({**CLASSIFICATION, "modes": {"think": {**_THINK, "consistency_judged": True}}},
         ["consistency_judged"]),
        ({**CLASSIFICATION, "modes": {"think": {**_THINK, "per_class": {
            "emphysema": {"accuracy": 0.5, "support": -1}}}}},
         ["per_class['emphysema']", "support"]),
        ({**CLASSIFICATION, "modes": {"think": {**_THINK, "per_class": {
            "emphysema": {"accuracy": None, "support": 1}}}}}, ["per_class['emphysema']"]),
        ({**GROUNDING, "modes": {"think": {**_BOX, "medreasoner_pdice_mean": 2.5}}},
         ["medreasoner_pdice_mean is 2.5", "[0, 2]"]),
        ({**GROUNDING, "modes": {"think": {**_BOX, "per_class": {"a": {"support": 1,
            "iou_mean": 7.0}}}}}, ["per_class['a']", "iou_mean is 7.0"]),
        (GROUNDING | {"mean_box_baseline": {**_BASELINE, "train_rows": -8}},
         ["mean_box_baseline", "train_rows is -8"]),
        (CLASSIFICATION | {"model_parameters": 1.5}, ["model_parameters"]),
        ({**CLASSIFICATION, "modes": {}}, ["modes", "none"]),
        ({**CLASSIFICATION, "modes": {"reasoning": _THINK}}, ["modes", "'reasoning'"]),
        # the image ablation (issue 21 item 5): a known mode, an integer seed or null
        (CLASSIFICATION | {"image_ablation": {"mode": "grey", "seed": None}},
         ["image_ablation", "'grey'", "none | blank | shuffle"]),
        (CLASSIFICATION | {"image_ablation": {"mode": "shuffle", "seed": "0"}},
         ["image_ablation", "an integer or null"]),
        (CLASSIFICATION | {"image_ablation": {"mode": ["blank"], "seed": True}},
         ["image_ablation"]),
        (GROUNDING | {"image_ablation": "blank"}, ["image_ablation", "'blank'"]),
    ],
)  # fmt: skip
def test_a_file_that_does_not_fit_is_refused_naming_it_and_the_field(tmp_path, results, names):
    path = tmp_path / "run" / "results.json"
    path.parent.mkdir()
    path.write_text(json.dumps(results))
    with pytest.raises(ResultsError) as err:
        read_results(path)
    message = str(err.value)
    assert isinstance(err.value, UserError) and "\n" not in message
    for name in (str(path), *names):
        assert name in message, message


def test_fitting_files_are_returned_as_read(tmp_path):
    baseline = _BASELINE
    # the edges of every range, and a grounding class without rows (its means are null)
    edges = {**GROUNDING, "modes": {"think": {**_BOX, "iou_mean": 1.0, "medreasoner_pdice_mean":
             1.99, "per_class": {"a": {"support": 0, "iou_mean": None}}}}}  # fmt: skip
    for results in (CLASSIFICATION, GROUNDING | {"mean_box_baseline": baseline}, edges,
                    {**CLASSIFICATION, "modes": {"think": {**_THINK, "n": 0}}}):  # fmt: skip
        path = tmp_path / "results.json"
        path.write_text(json.dumps(results))
        assert read_results(path) == results
    path.write_text("{not json")
    with pytest.raises(ResultsError, match="could not be read as JSON"):
        read_results(path)


def test_the_model_card_checks_its_results_with_the_schema():
    training = {"base_model": "org/base", "stages": []}
    assert "### Grounding" in model_card(training, GROUNDING).text
    broken = {**CLASSIFICATION, "modes": {"think": {"accuracy_micro": "52%"}}}
    with pytest.raises(ResultsError, match="the model card's results: mode 'think'"):
        model_card(training, broken)
    with pytest.raises(ResultsError, match="accuracy_micro"):
        check_results(broken, "x")


def test_revision_text():
    assert revision_text(None) == revision_text([]) == ""
    assert revision_text("abc") == ", revision `abc`"
    assert revision_text(["a", "b"]) == ", revision `a, b`"


def test_an_ablated_evaluation_is_told_apart():
    """Results written before the ablation read as the real images, under the model's own name;
    an ablated evaluation's name says which images it saw, so no table merges the two."""
    assert ablation_mode(CLASSIFICATION) == "none" and model_label(CLASSIFICATION) == "org/m"
    labels = {model_label(check_results(CLASSIFICATION | {"image_ablation": {"mode": mode,
              "seed": seed}}, "x")) for mode, seed in (("none", None), ("blank", None),
                                                      ("shuffle", 0))}  # fmt: skip
    assert labels == {"org/m", "org/m [blank images]", "org/m [shuffled images]"}
