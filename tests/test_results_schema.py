"""The results.json schema, read and checked in one place (``common.results_schema``): a file
that does not fit is refused in one line naming the file and the field, by the leaderboard and
the model card alike."""

from __future__ import annotations

import json

import pytest

from common.errors import UserError
from common.results_schema import ResultsError, check_results, read_results, revision_text
from hub_cards.model_card import model_card

GROUNDING = {"model": "org/m", "config": "grounding", "split": "test", "task": "grounding",
             "modes": {"think": {"n": 4, "iou_mean": 0.5, "iou_50": 0.5,
                                 "point_dice_mean": 0.25}}}  # fmt: skip
CLASSIFICATION = {"model": "org/m", "config": "zoom", "split": "test",
                  "modes": {"think": {"n": 4, "accuracy_micro": 0.5, "per_class": {}}}}  # fmt: skip


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
    baseline = {"n": 4, "train_rows": 8, "iou_mean": 0.1, "iou_50": 0.0, "point_dice_mean": 0.2}
    for results in (CLASSIFICATION, GROUNDING | {"mean_box_baseline": baseline}):
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
