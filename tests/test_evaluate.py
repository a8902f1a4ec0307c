"""The evaluator core: scoring by hand, and a real run of the tiny model on the synthetic set."""

from __future__ import annotations

import json

import pytest
from datasets import load_dataset

from model_training.evaluate import evaluate, score
from model_training.tiny_model import build_tiny_model


def test_macro_and_micro_on_an_unbalanced_toy_set():
    rows = (
        [{"gold": "a", "answer": "a", "well_formed": True}] * 8
        + [{"gold": "a", "answer": None, "well_formed": False}] * 2
        + [{"gold": "b", "answer": "a", "well_formed": True}] * 2
    )
    metrics = score(rows, ["a", "b", "c"])
    assert metrics["n"] == 12
    assert metrics["accuracy_micro"] == pytest.approx(8 / 12)
    assert metrics["accuracy_macro"] == pytest.approx((0.8 + 0.0) / 2)  # c has no support
    assert metrics["per_class"]["a"] == {"accuracy": 0.8, "support": 10}
    assert metrics["per_class"]["c"]["support"] == 0
    assert metrics["format_rate"] == pytest.approx(10 / 12)
    assert metrics["validity_rate"] == pytest.approx(10 / 12)


def test_evaluate_writes_results_and_predictions(built_dataset, tmp_path):
    model = build_tiny_model(tmp_path / "tiny")
    report = evaluate(
        str(model),
        str(built_dataset),
        tmp_path / "eval",
        limit=6,
        batch_size=4,
        max_new_tokens=8,
        progress=False,
    )
    saved = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert saved == report and set(saved["modes"]) == {"think", "no-think"}
    classes = load_dataset(str(built_dataset), "zoom", split="test").features["label"].names
    for metrics in saved["modes"].values():
        assert metrics["n"] == 6 and set(metrics["per_class"]) == set(classes)
        assert 0.0 <= metrics["accuracy_micro"] <= 1.0
    predictions = load_dataset(
        "parquet", data_files=str(tmp_path / "eval" / "predictions.parquet"), split="train"
    )
    assert len(predictions) == 12
    assert set(predictions.column_names) >= {"id", "gold", "output", "answer", "correct"}
