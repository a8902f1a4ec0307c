"""Grounding evaluation: hand-written replies scored by the evaluator's own scoring function,
a real evaluator run of the tiny model with a tiny random SAM on a hand-made grounding dataset
(laid out like a built one), the refusal of a SAM that is not there, and the grounding table."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image, ImageDraw

from common.names import GROUNDING_CONFIG
from model_training.evaluation.evaluate import EvaluateArguments, evaluate, main
from model_training.evaluation.leaderboard import LeaderboardArguments, build_leaderboard
from model_training.evaluation.sam import build_tiny_sam, load_segmenter
from model_training.evaluation.tasks.grounding import score, score_reply
from model_training.grounding import Frame, mask_dice
from model_training.tiny_model import CLASS_NAMES, build_tiny_model

SIZE = 128  # the tiny model's processor reads a 128 px slice as 140 px: scale 35/32
ROWS = [  # (class, true box, true points): exact in the model-input frame
    ("emphysema", [32, 32, 64, 96], [[40, 50], [56, 80]]),
    ("pleural effusion/thickening", [64, 0, 96, 64], [[70, 10], [90, 50]]),
    ("emphysema", [16, 64, 48, 112], [[20, 70], [40, 100]]),
]


def _grounding_dataset(root: Path) -> Path:
    """A folder laid out like a built CT-RATE-VQA repo with a ``grounding`` config."""
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "image": datasets.Image(),
            "query": datasets.Value("string"),
            "finding": datasets.Value("string"),
            "answer": datasets.Value("string"),
            "label": datasets.ClassLabel(names=list(CLASS_NAMES)),
            "bbox": datasets.List(datasets.Value("int32")),
            "points": datasets.List(datasets.List(datasets.Value("int32"))),
            "mask": datasets.Image(),
        }
    )
    rows = []
    for i, (name, box, points) in enumerate(ROWS):
        image = Image.new("L", (SIZE, SIZE), 30)
        mask = Image.new("L", (SIZE, SIZE), 0)
        for target, value in ((image, 190), (mask, 255)):
            ImageDraw.Draw(target).ellipse((box[0], box[1], box[2] - 1, box[3] - 1), fill=value)
        rows.append(
            {
                "id": f"case{i}-f0-s3",
                "image": image,
                "query": f"Where is the {name}?",
                "finding": f"There is {name}.",
                "answer": name,
                "label": name,
                "bbox": box,
                "points": points,
                "mask": mask,
            }  # fmt: skip
        )
    (root / GROUNDING_CONFIG).mkdir(parents=True)
    for split in ("train", "test"):
        ds = datasets.Dataset.from_list(rows, features=features)
        ds.to_parquet(root / GROUNDING_CONFIG / f"{split}-00000-of-00001.parquet")
    (root / "README.md").write_text(
        "---\nconfigs:\n- config_name: grounding\n  data_files:\n"
        "  - split: train\n    path: grounding/train-*.parquet\n"
        "  - split: test\n    path: grounding/test-*.parquet\n---\n"
    )
    return root


@pytest.fixture(scope="module")
def parts(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("grounding")
    return {
        "model": str(build_tiny_model(root / "tiny")),
        "sam": str(build_tiny_sam(root / "tiny-sam")),
        "dataset": str(_grounding_dataset(root / "ct-rate-vqa")),
    }


ROW = {"bbox": [10, 10, 30, 30], "points": [[15, 20], [25, 20]]}  # circle: centre (20, 20), r 5
SAME = Frame((64, 64), (64, 64))  # a frame with equal sides: no rescaling


def _reply(box, p1, p2, think: bool = True) -> str:
    answer = json.dumps({"bbox": box, "points_1": p1, "points_2": p2})
    return ("<think>looked</think>" if think else "") + f"<answer>{answer}</answer>"


def test_hand_written_replies_score_as_worked_out_by_hand():
    half_box = score_reply(_reply([20, 10, 40, 30], [15, 20], [25, 20]), ROW, SAME)
    # intersection 10 x 20 = 200, union 400 + 400 - 200 = 600; same circle
    assert half_box["iou"] == pytest.approx(1 / 3) and not half_box["iou_hit"]
    assert half_box["point_dice"] == pytest.approx(1.0) and half_box["well_formed"]
    # MedReasoner's pDice of the same circle: 2 * 25 pi / (25 pi + 1e-5) = 2.0 (less 3e-7)
    assert half_box["medreasoner_pdice"] == pytest.approx(2.0, abs=1e-6)
    shifted = score_reply(_reply([10, 10, 30, 30], [20, 20], [30, 20], think=False), ROW, SAME)
    # two r = 5 circles 5 apart: lens 2 r^2 acos(d / 2r) - (d / 2) sqrt(4 r^2 - d^2)
    lens = 50 * math.acos(0.5) - 2.5 * math.sqrt(75)
    assert shifted["iou"] == 1.0 and shifted["iou_hit"] and not shifted["well_formed"]
    assert shifted["point_dice"] == pytest.approx(2 * lens / (2 * math.pi * 25))
    assert shifted["point_dice"] == pytest.approx(0.391, abs=1e-3)
    # MedReasoner's: 2 lens / (union + 1e-5), lens = 30.709, union = 50 pi - 30.709 = 126.370
    # -> 0.486020 (= 2D / (2 - D) for our D = 0.391002)
    assert shifted["medreasoner_pdice"] == pytest.approx(2 * lens / (50 * math.pi - lens + 1e-5))
    assert shifted["medreasoner_pdice"] == pytest.approx(0.48602, abs=1e-5)
    box_only = score_reply(
        "<answer>{'bbox': [0, 0, 20, 20], 'points_1': [1], 'points_2': [3, 4]}</answer>", ROW, SAME
    )  # single quotes read as JSON (MedReasoner's parser); a one-number point is invalid
    assert box_only["iou"] == pytest.approx(100 / 700) and box_only["points"] is None
    assert box_only["point_dice"] == 0.0 and not box_only["complete"]
    broken = [
        score_reply(text, ROW, SAME)
        for text in (
            "no tags at all",
            "<answer>{bbox: 1</answer>",
            '<answer>{"bbox": [1]}</answer>',
        )
    ]
    assert [b["status"] for b in broken] == ["no_answer", "bad_json", "missing_keys"]
    assert all(b["iou"] == 0.0 and b["point_dice"] == b["medreasoner_pdice"] == 0.0 for b in broken)

    rows = [half_box, shifted, box_only, *broken]
    for row, gold in zip(rows, ["a", "a", "b", "b", "b", "b"], strict=True):
        row["gold"] = gold
    metrics = score(rows, ["a", "b", "c"])
    assert metrics["n"] == 6
    assert metrics["iou_mean"] == pytest.approx((1 / 3 + 1 + 1 / 7) / 6)
    assert metrics["iou_50"] == pytest.approx(1 / 6)
    assert metrics["point_dice_mean"] == pytest.approx((1 + 0.39100) / 6, abs=1e-4)
    assert metrics["medreasoner_pdice_mean"] == pytest.approx((2 + 0.48602) / 6, abs=1e-4)
    assert metrics["format_rate"] == pytest.approx(1 / 6)
    assert metrics["parse_rate"] == pytest.approx(3 / 6)
    assert (metrics["box_rate"], metrics["points_rate"], metrics["complete_rate"]) == (
        pytest.approx(3 / 6), pytest.approx(2 / 6), pytest.approx(2 / 6),
    )  # fmt: skip
    assert metrics["per_class"]["a"]["iou_mean"] == pytest.approx((1 / 3 + 1) / 2)
    assert metrics["per_class"]["b"]["support"] == 4
    assert metrics["per_class"]["b"]["iou_mean"] == pytest.approx(1 / 28)
    assert metrics["per_class"]["c"] == {
        "support": 0, "iou_mean": None, "iou_50": None, "point_dice_mean": None,
        "medreasoner_pdice_mean": None,
    }  # fmt: skip
    assert "mask_dice_mean" not in metrics  # no SAM, no mask Dice


def test_predictions_are_converted_from_the_model_input_frame():
    frame = Frame((128, 128), (140, 140))  # 35 / 32, as the tiny model's processor reads 128 px
    row = {"bbox": ROWS[0][1], "points": ROWS[0][2]}
    exact = score_reply(_reply([35, 35, 70, 105], [44, 55], [61, 88]), row, frame)
    assert exact["box"] == [32, 32, 64, 96] and exact["points"] == [[40, 50], [56, 80]]
    assert exact["iou"] == 1.0 and exact["point_dice"] == pytest.approx(1.0)
    # read in the image frame unconverted, the same box would score 1769 / 2729
    assert score_reply(_reply([35, 35, 70, 105], [44, 55], [61, 88]), row, SAME)["iou"] == (
        pytest.approx(1769 / 2729)
    )


def _run(parts: dict, out: Path, **extra) -> dict:
    return evaluate(
        EvaluateArguments(
            parts["model"], parts["dataset"], str(out), config=GROUNDING_CONFIG,
            batch_size=2, max_new_tokens=6, progress=False, sam_model=parts["sam"], **extra,
        )
    )  # fmt: skip


def test_evaluator_scores_grounding_rows_with_sam(parts, tmp_path):
    out = tmp_path / "eval"
    generated = _run(parts, out, limit=2)  # the tiny model's own replies
    assert generated["task"] == "grounding" and set(generated["modes"]) == {"think", "no-think"}
    assert generated["modes"]["think"]["n"] == 2
    # hand-written replies in the progress file (model-input frame, 140 px): the evaluator
    # resumes from them, so it generates nothing and scores these
    replies = {
        "case0-f0-s3": _reply([35, 35, 70, 105], [44, 55], [61, 88]),  # exact
        "case1-f0-s3": _reply([70, 0, 105, 35], [77, 11], [98, 30]),  # upper half
        "case2-f0-s3": "<answer>none</answer>",
    }
    lines = [
        json.dumps({"id": i, "mode": mode, "gold": ROWS[k][0], "output": text})
        for mode in ("think", "no-think")
        for k, (i, text) in enumerate(replies.items())
    ]
    (out / "predictions.jsonl").write_text("\n".join(lines) + "\n")
    report = _run(parts, out)
    assert json.loads((out / "results.json").read_text()) == report
    assert report["sam_model"] == Path(parts["sam"]).name and report["config"] == GROUNDING_CONFIG
    assert report["prompts"]["task"] == "grounding"
    assert report["decoding"] == {"strategy": "greedy", "repetition_penalty": 1.0,
                                  "max_new_tokens": 6}  # fmt: skip
    think = report["modes"]["think"]
    # row 1: image box [64, 0, 96, 32] (half of [64, 0, 96, 64]): IoU 0.5
    assert think["iou_mean"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert think["iou_50"] == pytest.approx(2 / 3)
    assert think["per_class"]["emphysema"]["iou_mean"] == pytest.approx(0.5)
    assert think["per_class"]["emphysema"]["support"] == 2
    assert think["complete_rate"] == pytest.approx(2 / 3) == think["format_rate"]
    # the mean-box baseline: the mean of the 3 training boxes, [112/3, 32, 208/3, 272/3] px,
    # answered for the 3 test rows (IoU 14080/21248, 1/22, 1/11 by hand)
    baseline = report["mean_box_baseline"]
    assert (baseline["n"], baseline["train_rows"]) == (3, 3)
    assert baseline["box_fraction"] == [0.2917, 0.25, 0.5417, 0.7083]
    assert baseline["iou_mean"] == pytest.approx((14080 / 21248 + 1 / 22 + 1 / 11) / 3)
    assert baseline["iou_50"] == pytest.approx(1 / 3)
    assert set(baseline) == {"n", "train_rows", "box_fraction", "points_fraction", "iou_mean",
                             "iou_50", "point_dice_mean", "medreasoner_pdice_mean"}  # fmt: skip

    # mask Dice: the tiny SAM's own masks for the predicted (and the true) prompts
    predictions = datasets.load_dataset(
        "parquet", data_files=str(out / "predictions.parquet"), split="train"
    )
    assert len(predictions) == 6
    test = datasets.load_dataset(parts["dataset"], GROUNDING_CONFIG, split="test")
    segmenter = load_segmenter(parts["sam"], device="cpu")
    for k, row in enumerate(test):
        truth = np.asarray(row["mask"]) > 0
        (oracle,) = segmenter.masks(row["image"], [(row["bbox"], row["points"])])
        pred = predictions[k]  # think rows first, in dataset order
        assert pred["oracle_dice"] == pytest.approx(mask_dice(oracle, truth))
        if pred["complete"]:
            box, points = json.loads(pred["box"]), json.loads(pred["points"])
            (mask,) = segmenter.masks(row["image"], [(box, points)])
            assert pred["mask_dice"] == pytest.approx(mask_dice(mask, truth))
        else:
            assert pred["mask_dice"] == 0.0
    assert think["mask_dice_mean"] == pytest.approx(np.mean(predictions["mask_dice"][:3]))
    assert think["oracle_dice_mean"] == pytest.approx(np.mean(predictions["oracle_dice"][:3]))
    assert json.loads(predictions[0]["box"]) == [32, 32, 64, 96]
    for name in ("per_class_grounding.png", "grounding_think.png", "grounding_no-think.png"):
        assert Image.open(out / name).size[0] > 300

    # the grounding table, chosen automatically for grounding results
    other = json.loads((out / "results.json").read_text()) | {"display_name": "other model"}
    other["modes"]["think"]["iou_mean"] = 0.25
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "results.json").write_text(json.dumps(other))
    board = build_leaderboard(
        LeaderboardArguments(str(tmp_path / "board"), results=[str(out), str(tmp_path / "other")])
    )
    assert board["layout"] == "grounding" and len(board["rows"]) == 4
    first = board["rows"][0]
    assert (first["mode"], first["iou_mean"], first["iou_50"]) == ("think", 50.0, 66.67)
    assert first["oracle_dice_mean"] == round(100 * think["oracle_dice_mean"], 2)
    assert board["rows"][2]["iou_mean"] == 25.0
    table = (tmp_path / "board" / "grounding.md").read_text()
    assert (
        "| IoU % | IoU>=0.5 % | point-Dice % | MedReasoner pDice % | mask Dice % | oracle Dice % |"
    ) in table
    assert "| other model |" in table and (tmp_path / "board" / "grounding.png").is_file()


def test_grounding_options_are_refused_where_they_do_not_apply(parts, tmp_path, capsys):
    out = str(tmp_path / "eval")
    base = ["--model", parts["model"], "--dataset", parts["dataset"], "--output-dir", out,
            "--config", GROUNDING_CONFIG, "--sam-model", parts["sam"]]  # fmt: skip
    assert main([*base, "--judge", "keyword"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "drop --judge" in err
    assert main([*base[:-2], "--sam-model", str(tmp_path / "no-sam")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--sam-model none" in err
    assert not (tmp_path / "eval").exists()


def test_mean_box_baseline_options(parts, tmp_path, capsys):
    """--baseline-limit 1: the first training row's box and points, answered for that same row
    (the test split holds the training rows here): a perfect score, printed in the report;
    --baseline-split none: no baseline; a split that is not there: one line, nothing written."""
    base = ["--model", parts["model"], "--dataset", parts["dataset"], "--config",
            GROUNDING_CONFIG, "--sam-model", "none", "--limit", "1", "--batch-size", "2",
            "--max-new-tokens", "4", "--no-progress"]  # fmt: skip
    out = tmp_path / "eval"
    assert main([*base, "--output-dir", str(out), "--baseline-limit", "1"]) == 0
    baseline = json.loads((out / "results.json").read_text())["mean_box_baseline"]
    assert baseline == {
        "n": 1, "train_rows": 1, "box_fraction": [0.25, 0.25, 0.5, 0.75],
        "points_fraction": [[0.3164, 0.3945], [0.4414, 0.6289]],  # pixel centres: x + 0.5
        "iou_mean": 1.0, "iou_50": 1.0, "point_dice_mean": pytest.approx(1.0),
        "medreasoner_pdice_mean": pytest.approx(2.0, abs=1e-6),  # MedReasoner's: perfect is 2
    }  # fmt: skip
    printed = capsys.readouterr().out
    assert "mean-box baseline (1 training rows): IoU 100.00 %" in printed
    assert main([*base, "--output-dir", str(out), "--baseline-split", "none"]) == 0
    assert "mean_box_baseline" not in json.loads((out / "results.json").read_text())
    assert "mean-box baseline" not in capsys.readouterr().out
    missing = tmp_path / "missing"
    assert main([*base, "--output-dir", str(missing), "--baseline-split", "validation"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'validation'" in err and "--baseline-split" in err
    assert not missing.exists()


def test_a_sam_not_cached_offline_is_one_line(parts, tmp_path):
    """The default SAM (MedSAM on the Hub) offline and not in the cache: exit 2, one line."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")}
    done = subprocess.run(
        [sys.executable, "-m", "model_training.evaluation.evaluate", "--model", parts["model"],
         "--dataset", parts["dataset"], "--config", GROUNDING_CONFIG, "--output-dir",
         str(tmp_path / "eval")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr  # (and datasets' progress bars)
    assert done.stderr.rstrip().endswith(errors[0])
    assert "flaviagiammarino/medsam-vit-base" in errors[0]
    assert "local SAM checkpoint folder" in errors[0] and "--sam-model none" in errors[0]
    assert not (tmp_path / "eval").exists()


def test_shuffled_images_keep_each_rows_truth(parts, tmp_path, monkeypatch):
    """--image-ablation shuffle (issue 21 item 5): the model sees the other row's slice, the
    replies are scored against the row's own box and points (exact replies score IoU 1)."""
    from .test_image_ablation import record_prompted_images

    seen = record_prompted_images(monkeypatch)
    out = tmp_path / "eval"
    options = EvaluateArguments(
        parts["model"], parts["dataset"], str(out), config=GROUNDING_CONFIG, mode="no-think",
        limit=2, batch_size=2, max_new_tokens=4, progress=False, sam_model=None,
        baseline_split=None, image_ablation="shuffle",
    )  # fmt: skip
    evaluate(options)
    real = datasets.load_dataset(parts["dataset"], GROUNDING_CONFIG, split="test")["image"][:2]
    assert [np.asarray(i).tolist() for i in seen] == [np.asarray(i).tolist() for i in real[::-1]]
    exact = {"case0-f0-s3": _reply([35, 35, 70, 105], [44, 55], [61, 88], think=False),
             "case1-f0-s3": _reply([70, 0, 105, 70], [77, 11], [98, 55], think=False)}  # fmt: skip
    (out / "predictions.jsonl").write_text(
        "".join(
            json.dumps({"id": i, "mode": "no-think", "gold": row[0], "output": exact[i]}) + "\n"
            for i, row in zip(exact, ROWS, strict=False)
        )
    )
    report = evaluate(options)  # resumes: nothing generated, the replies above scored
    assert report["modes"]["no-think"]["iou_mean"] == pytest.approx(1.0)
    assert report["image_ablation"] == {"mode": "shuffle", "seed": 0}
