"""The evaluator core: scoring by hand, and a real run of the tiny model on the synthetic set."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace

import pytest
from datasets import load_dataset

from model_training.evaluation.evaluate import EvaluateArguments, evaluate
from model_training.evaluation.tasks.classification import score
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
        EvaluateArguments(
            str(model),
            str(built_dataset),
            str(tmp_path / "eval"),
            limit=6,
            batch_size=4,
            max_new_tokens=8,
            progress=False,
        )
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


CLASSES = ["emphysema", "pulmonary nodules/masses", "ground-glass opacity"]


@pytest.mark.parametrize(
    ("reply", "answer", "parsed_by", "well_formed"),
    [
        ("<think>dense</think><answer>emphysema</answer>", "emphysema", "tags", True),
        ("<answer>Ground-glass opacity.</answer>", "ground-glass opacity", "tags", False),
        ("<answer>emphysema</answer><answer>pulmonary nodules/masses</answer>",
         "pulmonary nodules/masses", "tags", False),  # the last answer counts
        ("<answer>pneumothorax</answer>", None, None, False),  # tags, but no offered class
        ("The slice shows pulmonary nodules / masses.", "pulmonary nodules/masses", "fallback",
         False),
        ("Emphysema or ground glass opacity.", None, None, False),  # two classes: no fallback
        ("", None, None, False),
        ("<think>unclosed", None, None, False),
    ],
)  # fmt: skip
def test_replies_are_read_with_tags_then_fallback(reply, answer, parsed_by, well_formed):
    from model_training.evaluation.tasks.classification import read_reply

    read = read_reply(reply, CLASSES)
    assert (read["answer"], read["parsed_by"], read["well_formed"]) == (
        answer,
        parsed_by,
        well_formed,
    )


def test_fallback_answers_are_counted_separately():
    rows = [
        {"gold": "a", "answer": "a", "well_formed": True, "parsed_by": "tags"},
        {"gold": "a", "answer": "a", "well_formed": False, "parsed_by": "fallback"},
        {"gold": "b", "answer": "a", "well_formed": False, "parsed_by": "fallback"},
        {"gold": "b", "answer": None, "well_formed": False, "parsed_by": None},
    ]
    metrics = score(rows, ["a", "b"])
    assert metrics["accuracy_micro"] == pytest.approx(2 / 4)
    assert metrics["accuracy_micro_tags_only"] == pytest.approx(1 / 4)
    assert metrics["fallback_rate"] == pytest.approx(2 / 4)
    assert metrics["validity_rate"] == pytest.approx(1 / 4)
    assert metrics["accuracy_macro"] == pytest.approx((1.0 + 0.0) / 2)


def test_evaluation_resumes_and_refuses_foreign_predictions(built_dataset, tmp_path):
    import model_training.evaluation.evaluate as evaluation
    import model_training.evaluation.generation as generation

    model = build_tiny_model(tmp_path / "tiny")
    out = tmp_path / "eval"
    options = EvaluateArguments(
        str(model), str(built_dataset), str(out), mode="no-think", batch_size=2,
        max_new_tokens=6, progress=False,
    )  # fmt: skip
    first = evaluate(replace(options, limit=4))
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 4
    for name in ("per_class_accuracy.png", "confusion_no-think.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a killed run: the last batch and half a line are lost
    (out / "predictions.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:20])
    generated = []
    original = generation.generate_replies

    def counting(model_, processor, rows, *args):
        generated.extend(r["id"] for r in rows)
        return original(model_, processor, rows, *args)

    generation.generate_replies = counting
    try:
        again = evaluate(replace(options, limit=6))
    finally:
        generation.generate_replies = original
    ids = load_dataset(str(built_dataset), "zoom", split="test")["id"][:6]
    assert generated == ids[2:]  # only the missing samples were generated
    assert again["modes"]["no-think"]["n"] == 6
    predictions = load_dataset(
        "parquet", data_files=str(out / "predictions.parquet"), split="train"
    )
    assert predictions["id"] == ids
    assert predictions["output"][:4] == [json.loads(x)["output"] for x in lines]
    assert first["modes"]["no-think"]["n"] == 4

    with pytest.raises(evaluation.EvaluationError, match="--overwrite"):
        evaluate(replace(options, limit=2, max_new_tokens=7))
    evaluate(replace(options, limit=2, max_new_tokens=7, overwrite=True))
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 2


@pytest.mark.skipif(
    importlib.util.find_spec("vllm") is not None, reason="vLLM is installed on this machine"
)
def test_vllm_backend_without_vllm_fails_at_once(tmp_path, capsys):
    from model_training.evaluation.evaluate import main

    argv = ["--model", str(tmp_path / "no-model"), "--dataset", str(tmp_path / "no-dataset"),
            "--output-dir", str(tmp_path / "eval"), "--backend", "vllm"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install -e ".[deepspeed,vllm]"' in err
    assert not (tmp_path / "eval").exists()  # nothing was created or loaded


@pytest.mark.parametrize(
    ("flag", "value"), [("--limit", "0"), ("--limit", "-3"), ("--batch-size", "0"),
                        ("--max-new-tokens", "-1")]
)  # fmt: skip
def test_non_positive_counts_are_refused(tmp_path, capsys, flag, value):
    """issue 10: --limit 0 wrote n = 0 results that a leaderboard then ranked."""
    from model_training.evaluation.evaluate import main

    argv = ["--model", str(tmp_path / "m"), "--dataset", str(tmp_path / "d"),
            "--output-dir", str(tmp_path / "eval"), flag, value]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and flag.lstrip("-").replace("-", "_") in err
    assert not (tmp_path / "eval").exists()
