"""Image reliance (issue 21 item 5): real minus ablated figures, per mode and class, beside
chance (classification) or the mean-box baseline (grounding); the leaderboard's ``reliance``
layout, the model card's section, and the run's refusals of what it fills in itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.image_reliance import RelianceError, image_reliance, reliance_rows
from hub_cards.model_card import model_card
from model_training.evaluation.leaderboard import main as leaderboard
from model_training.run_recipe import RecipeError, parse_run

CLASSES = ("emphysema", "atelectasis", "consolidation", "ground-glass opacity",
           "pulmonary nodules/masses", "bronchiectasis", "pleural effusion")  # fmt: skip
BLANK = {"mode": "blank", "seed": None}
SHUFFLE = {"mode": "shuffle", "seed": 0}


def _classification(hits: dict[str, int], support: int = 10, **extra) -> dict:
    """Results of a model answering ``hits[c]`` of ``support`` rows right in class c (the other
    classes have no rows), both modes alike."""
    n = support * len(hits)
    per_class = {c: {"accuracy": hits.get(c, 0) / support if c in hits else 0.0,
                     "support": support if c in hits else 0} for c in CLASSES}  # fmt: skip
    metrics = {"n": n, "accuracy_micro": sum(hits.values()) / n, "accuracy_macro": 0.5,
               "per_class": per_class, "format_rate": 1.0, "validity_rate": 1.0}  # fmt: skip
    return {"model": "runs/demo/grpo", "display_name": "demo (SFT+GRPO)", "dataset": "org/d",
            "config": "zoom", "split": "test", "modes": {"think": metrics}, **extra}  # fmt: skip


def _grounding(iou: float, dice: float, pdice: float, **extra) -> dict:
    metrics = {"n": 20, "iou_mean": iou, "iou_50": iou / 2, "point_dice_mean": dice,
               "medreasoner_pdice_mean": pdice}  # fmt: skip
    return {"model": "org/m", "dataset": "org/d", "config": "grounding", "split": "test",
            "task": "grounding", "modes": {"think": metrics, "no-think": metrics},
            **extra}  # fmt: skip


REAL = _classification({"emphysema": 8, "atelectasis": 6})  # 14 / 20 = 70 %
BLANKED = _classification({"emphysema": 9, "atelectasis": 0}, image_ablation=BLANK)  # 45 %
BASELINE = {"n": 20, "iou_mean": 0.05, "iou_50": 0.0, "point_dice_mean": 0.02,
            "medreasoner_pdice_mean": 0.03}  # fmt: skip


def test_classification_reliance_per_mode_and_class_beside_chance():
    record = image_reliance(REAL, BLANKED)
    think = record["modes"]["think"]
    assert think["n"] == 20
    assert think["accuracy_micro"] == pytest.approx(
        {"real": 0.70, "ablated": 0.45, "reliance": 0.25})  # fmt: skip
    # per class with rows: emphysema 80 % -> 90 % (-10 points), atelectasis 60 % -> 0 %
    assert think["per_class"]["emphysema"]["reliance"] == pytest.approx(-0.1)
    assert think["per_class"]["atelectasis"] == pytest.approx(
        {"real": 0.6, "ablated": 0.0, "reliance": 0.6})  # fmt: skip
    assert set(think["per_class"]) == {"emphysema", "atelectasis"}  # classes with rows only
    assert record["without_image"] == {"accuracy_micro": pytest.approx(1 / 7)}
    assert record["image_ablation"] == BLANK and record["model"] == "demo (SFT+GRPO)"
    # the answers' validity beside it (here unchanged), with no "without the image" figure
    assert think["validity_rate"] == {"real": 1.0, "ablated": 1.0, "reliance": 0.0}
    rows = reliance_rows([record])
    assert [r["figure"] for r in rows] == ["accuracy", "valid answers"]
    assert rows[1]["without_image"] is None


def test_grounding_reliance_beside_the_mean_box_baseline():
    real = _grounding(0.30, 0.20, 0.26, mean_box_baseline=BASELINE)
    shuffled = _grounding(0.10, 0.05, 0.06, image_ablation=SHUFFLE)
    record = image_reliance(real, shuffled)
    assert set(record["modes"]) == {"think", "no-think"}
    think = record["modes"]["think"]
    assert think["iou_mean"] == pytest.approx({"real": 0.3, "ablated": 0.1, "reliance": 0.2})
    assert think["iou_50"] == pytest.approx({"real": 0.15, "ablated": 0.05, "reliance": 0.1})
    assert think["medreasoner_pdice_mean"]["reliance"] == pytest.approx(0.2)
    assert record["without_image"] == {k: v for k, v in BASELINE.items() if k != "n"}
    rows = reliance_rows([record])
    assert [(r["mode"], r["figure"]) for r in rows][:4] == [
        ("think", "box IoU"), ("think", "IoU >= 0.5"), ("think", "point-Dice (ours)"),
        ("think", "MedReasoner pDice")]  # fmt: skip
    assert rows[0]["reference"] == "mean-box baseline" and rows[0]["without_image"] == 0.05


@pytest.mark.parametrize(
    ("real", "ablated", "message"),
    [
        (BLANKED, BLANKED, "compares an evaluation with the real images"),
        (REAL, REAL, "compares an evaluation with the real images"),
        (REAL, {**BLANKED, "display_name": "other"}, "different models or rows"),
        (REAL, {**BLANKED, "split": "train"}, "different models or rows"),
        (REAL, _classification({"emphysema": 1}, support=3, image_ablation=BLANK),
         "on 20 rows with the real images and on 3 with blank images"),
    ],
)  # fmt: skip
def test_evaluations_that_do_not_compare_are_refused(real, ablated, message):
    with pytest.raises(RelianceError, match=message):
        image_reliance(real, ablated)


def _write(folder: Path, results: dict) -> str:
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(results))
    return str(folder / "results.json")


def test_reliance_layout_rows_and_refusals(tmp_path, capsys):
    shuffled = _classification({"emphysema": 2, "atelectasis": 2}, image_ablation=SHUFFLE)
    named = (("grpo", REAL), ("blank", BLANKED), ("shuffle", shuffled))
    real, blank, shuffle = (_write(tmp_path / name, results) for name, results in named)
    out = tmp_path / "board"
    assert leaderboard([real, blank, shuffle, "--output", str(out), "--layout", "reliance",
                        "--per-class"]) == 0  # fmt: skip
    board = json.loads((out / "reliance.json").read_text())
    first = board["rows"][0]
    assert (first["figure"], first["real"], first["reference"]) == ("accuracy", 0.7, "chance")
    assert first["ablated"] == pytest.approx({"blank": 0.45, "shuffle": 0.2})
    assert first["reliance"] == pytest.approx({"blank": 0.25, "shuffle": 0.5})
    md = (out / "reliance.md").read_text()
    assert "| demo (SFT+GRPO) | classification | think | accuracy | 70.00 | 45.00 | 20.00 | " \
           "25.00 | 50.00 | 14.29 | chance |" in md  # fmt: skip
    assert "| accuracy: atelectasis | 60.00 | 0.00 | 20.00 | 60.00 | 40.00 |" in md
    capsys.readouterr()

    def refused(files: list[str], *words: str) -> None:
        assert leaderboard([*files, "--output", str(tmp_path / "no"), "--layout",
                            "reliance"]) == 2  # fmt: skip
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        for word in words:
            assert word in err, err
        assert not (tmp_path / "no").exists()

    refused([real], "none of these results is ablated")
    refused([blank], blank, "pass its evaluation without --image-ablation too")
    other = _write(tmp_path / "other", {**REAL, "display_name": "other"})
    refused([real, blank, other], other, "no evaluation of the same model with ablated images")


def test_model_card_reports_image_reliance():
    training = {"base_model": "Qwen/Qwen2.5-VL-7B-Instruct", "stages": []}
    shuffled = _classification({"emphysema": 2, "atelectasis": 2}, image_ablation=SHUFFLE)
    text = model_card(training, REAL, ablated=[BLANKED, shuffled]).text
    assert "### Does the model look at the image?" in text
    assert "| classification | think | accuracy | 70.0 | 45.0 | 20.0 | 25.0 | 50.0 | " \
           "14.29 | chance |" in text  # fmt: skip
    assert "| classification | think | accuracy: atelectasis | 60.0 | 0.0 | 20.0 | 60.0 |" in text
    assert "Does the model look" not in model_card(training, REAL).text  # no ablation, no section


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--eval.image_ablation", "blank"], "set those instead"),
        (["--eval.ablation_seed", "3"], "set those instead"),
        (["--eval_image_ablations", "dark"], "give each of blank, shuffle at most once"),
        (["--eval_image_ablations", "blank", "blank"], "at most once"),
        (["--eval_image_ablations", "blank", "--eval_ablation_seed", "4"], "seeds the shuffle"),
    ],
)
def test_run_refuses_ablation_settings_it_fills_in_or_cannot_use(argv, message):
    with pytest.raises(RecipeError, match=message):
        parse_run(argv)


def test_run_plans_the_final_models_ablations():
    plan = parse_run(["--eval_image_ablations", "shuffle", "--eval_ablation_seed", "5"])
    assert plan.run.eval_image_ablations == ["shuffle"]
    assert parse_run([]).run.eval_image_ablations == ["blank", "shuffle"]  # the default: both
    assert parse_run(["--eval_image_ablations", "none"]).run.eval_image_ablations == []
    from model_training.run import planned_steps

    steps = {s.step: s.command for s in planned_steps(plan)}
    command = steps["eval/grpo-shuffle"]
    assert command[command.index("--image-ablation") + 1] == "shuffle"
    assert command[command.index("--ablation-seed") + 1] == "5"
    assert "--image-ablation" not in steps["eval/grpo"] and "eval/sft-shuffle" not in steps
