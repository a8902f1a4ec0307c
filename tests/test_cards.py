"""Cards and result files are generated from data and read back by huggingface_hub."""

from __future__ import annotations

import json

import pytest
import yaml
from huggingface_hub import DatasetCard, ModelCard
from huggingface_hub._eval_results import parse_eval_result_entries

from hub_cards.benchmark import EVAL_FILE
from hub_cards.dataset_card import card_data_from_manifest
from hub_cards.model_card import (
    EVAL_RESULTS_DIR,
    EVAL_RESULTS_FILE,
    eval_result_entries,
    model_index_results,
    write_model_card,
)

CLASSES = ["nodule", "emphysema"]


def _results() -> dict:
    per_class = {
        "think": {"nodule": (0.5, 10), "emphysema": (1.0, 2)},
        "no-think": {"nodule": (0.4, 10), "emphysema": (0.5, 2)},
    }
    modes = {}
    for mode, classes in per_class.items():
        correct = sum(acc * n for acc, n in classes.values())
        modes[mode] = {
            "n": 12,
            "accuracy_micro": correct / 12,
            "accuracy_macro": sum(acc for acc, _ in classes.values()) / 2,
            "per_class": {c: {"accuracy": a, "support": n} for c, (a, n) in classes.items()},
            "format_rate": 0.9,
            "validity_rate": 0.95,
        }
    return {
        "model": "org/model",
        "dataset": "org/ct-rate-vqa",
        "config": "zoom",
        "split": "test",
        "dataset_revision": "a" * 40,
        "modes": modes,
    }


TRAINING = {
    "base_model": "Qwen/Qwen2.5-VL-7B-Instruct",
    "datasets": ["org/ct-rate-vqa"],
    "stages": [{"name": "sft", "hyperparameters": {"learning_rate": 1e-5, "epochs": 2}}],
    "trainable_scope": "llm_mlp",
    "trainable_parameters": 1000,
    "total_parameters": 5000,
    "plots": ["loss.png"],
}


def test_eval_results_yaml_round_trip(tmp_path):
    results = _results()
    card = write_model_card(tmp_path, TRAINING, results)
    raw = yaml.safe_load((tmp_path / EVAL_RESULTS_DIR / EVAL_RESULTS_FILE).read_text())
    assert parse_eval_result_entries(raw) == eval_result_entries(results, "org/ct-rate-vqa")
    assert [e["value"] for e in raw] == [pytest.approx(58.33), pytest.approx(41.67)]
    assert all(
        e["dataset"]["id"] == "org/ct-rate-vqa" and e["dataset"]["task_id"] == "zoom" for e in raw
    )
    loaded = ModelCard.load(tmp_path / "README.md")
    assert loaded.data.eval_results == model_index_results(results, "org/ct-rate-vqa")
    assert loaded.data.license == "cc-by-nc-sa-4.0"
    assert loaded.data.base_model == TRAINING["base_model"]
    assert "research only" in loaded.text.lower() and "clinical" in loaded.text
    assert "| nodule | 10 | 50.0 | 40.0 |" in card.text
    assert "**macro average**" in card.text and "1,000 of 5,000" in card.text


def test_results_on_a_local_build_are_reported_but_not_attached(tmp_path):
    """A local dataset folder is no Hub Benchmark: no model-index, no .eval_results, and the
    card names the build by its folder name only, saying why nothing is attached."""
    local = tmp_path / "outputs" / "ct-rate-vqa-demo"
    local.mkdir(parents=True)
    results = {**_results(), "dataset": str(local)}
    training = {**TRAINING, "datasets": []}
    card = write_model_card(tmp_path / "final", training, results)
    assert not (tmp_path / "final" / EVAL_RESULTS_DIR).exists()
    loaded = ModelCard.load(tmp_path / "final" / "README.md")
    assert loaded.data.eval_results is None and loaded.data.datasets is None
    assert "a local build of CT-RATE-VQA (`ct-rate-vqa-demo`)" in card.text
    assert "card_dataset_id" in card.text and str(tmp_path) not in card.text
    assert "| nodule | 10 | 50.0 | 40.0 |" in card.text  # the figures are still reported

    # naming the Hub repo the build was pushed to attaches the same results to it
    write_model_card(tmp_path / "named", training, results, dataset_id="org/ct-rate-vqa")
    raw = yaml.safe_load((tmp_path / "named" / EVAL_RESULTS_DIR / EVAL_RESULTS_FILE).read_text())
    assert {e["dataset"]["id"] for e in raw} == {"org/ct-rate-vqa"}
    named = ModelCard.load(tmp_path / "named" / "README.md")
    assert named.data.datasets == ["org/ct-rate-vqa"] and named.data.eval_results
    with pytest.raises(ValueError, match="not a Hub repo id"):
        write_model_card(tmp_path / "bad", training, results, dataset_id="ct-rate-vqa-demo")


def test_model_card_without_results(tmp_path):
    card = write_model_card(tmp_path, TRAINING)
    assert "Not evaluated yet" in card.text
    assert not (tmp_path / EVAL_RESULTS_DIR).exists()


def test_dataset_card_and_eval_yaml_round_trip(built_dataset):
    manifest = json.loads((built_dataset / "build_manifest.json").read_text())
    card = DatasetCard.load(built_dataset / "README.md")
    assert card.data.to_dict() == card_data_from_manifest(manifest).to_dict()
    spec = yaml.safe_load((built_dataset / EVAL_FILE).read_text())
    assert spec["evaluation_framework"] == "inspect-ai"
    assert {t["id"] for t in spec["tasks"]} == {"zoom", "plain"}
    assert all(t["split"] == "test" and t["config"] == f"{t['id']}_inspect" for t in spec["tasks"])


def _grounding_results() -> dict:
    modes = {
        mode: {"n": 12, "iou_mean": iou, "iou_50": hit, "point_dice_mean": pd,
               "mask_dice_mean": md, "oracle_dice_mean": od}
        for mode, (iou, hit, pd, md, od) in {
            "think": (0.4321, 0.5, 0.25, 0.375, 0.8125),
            "no-think": (0.1, 0.0, 0.05, 0.2, 0.8125),
        }.items()
    }  # fmt: skip
    return {"model": "org/model", "dataset": "org/ct-rate-vqa", "config": "grounding",
            "split": "test", "task": "grounding", "sam_model": "org/sam",
            "modes": modes}  # fmt: skip


def test_grounding_and_multitask_cards_report_both_tasks(tmp_path):
    """Grounding metrics go into the card's text; only classification, the task the
    Benchmark's eval.yaml declares, is attached as model-index and .eval_results."""
    card = write_model_card(tmp_path / "g", TRAINING, _grounding_results())
    assert (
        "### Grounding" in card.text
        and "| think | 12 | 43.21 | 50.0 | 25.0 | 37.5 | 81.25 |" in (card.text)
    )
    assert "`org/sam`" in card.text and "### Lesion classification" not in card.text
    assert "comparable with the paper's only when the SAM above is MedSAM2" in card.text
    assert ModelCard.load(tmp_path / "g" / "README.md").data.eval_results is None
    assert not (tmp_path / "g" / EVAL_RESULTS_DIR).exists()

    both = write_model_card(tmp_path / "m", TRAINING, [_results(), _grounding_results()])
    assert "### Lesion classification" in both.text and "### Grounding" in both.text
    assert "| nodule | 10 | 50.0 | 40.0 |" in both.text
    raw = yaml.safe_load((tmp_path / "m" / EVAL_RESULTS_DIR / EVAL_RESULTS_FILE).read_text())
    assert {e["dataset"]["task_id"] for e in raw} == {"zoom"}  # classification only
    assert "declares the classification tasks only" in both.text


def test_grounding_card_names_both_point_figures(tmp_path):
    """issue 21: our point-Dice and MedReasoner's pDice in their own columns, and which one is
    comparable with the paper's 26.55; results without the pDice key show no such column."""
    results = _grounding_results()
    for metrics, pdice in zip(results["modes"].values(), (0.4, 0.1026), strict=True):
        metrics["medreasoner_pdice_mean"] = pdice  # any numbers: the card copies them
    card = write_model_card(tmp_path / "g", TRAINING, results)
    assert "| point-Dice % (ours, true Dice) | MedReasoner pDice % (2 inter / union) |" in card.text
    assert "| think | 12 | 43.21 | 50.0 | 25.0 | 40.0 | 37.5 | 81.25 |" in card.text
    assert "comparable with the paper's pDice (26.55)" in card.text
    old = write_model_card(tmp_path / "old", TRAINING, _grounding_results())
    assert "MedReasoner pDice" not in old.text
