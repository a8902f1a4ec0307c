"""The retention command end to end: the tiny model on tiny local ChartQA- and TextVQA-like sets."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
from PIL import Image

from model_training.evaluation import retention
from model_training.evaluation.vqa_metrics import chartqa_accuracy, textvqa_accuracy
from model_training.tiny_model import build_tiny_model


def _images(n: int) -> list[Image.Image]:
    return [Image.new("RGB", (64 + 8 * i, 56), (40 * i % 256, 90, 160)) for i in range(n)]


def _write(folder, split: str, columns: dict, features: datasets.Features) -> str:
    folder.mkdir(parents=True)
    ds = datasets.Dataset.from_dict(columns, features=features)
    ds.to_parquet(folder / f"{split}-00000-of-00001.parquet")  # the Hub's shard naming
    return str(folder)


@pytest.fixture(scope="module")
def tiny_benchmarks(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("retention")
    chartqa = _write(
        root / "chartqa",
        "test",
        {
            "image": _images(4),
            "query": ["What is the peak?", "Which bar is red?", "How many?", "Share in 2019?"],
            "label": [["104"], ["Blue"], ["3"], ["45"]],
        },
        datasets.Features(
            {
                "image": datasets.Image(),
                "query": datasets.Value("string"),
                "label": datasets.List(datasets.Value("string")),
            }
        ),
    )
    textvqa = _write(
        root / "textvqa",
        "validation",
        {
            "image": _images(3),
            "question": ["what brand is this?", "what number is shown?", "what does it say?"],
            "answers": [["nike"] * 10, ["7"] * 4 + ["seven"] * 6, ["stop"] * 3 + ["go"] * 7],
        },
        datasets.Features(
            {
                "image": datasets.Image(),
                "question": datasets.Value("string"),
                "answers": datasets.List(datasets.Value("string")),
            }
        ),
    )
    return {"chartqa": chartqa, "textvqa": textvqa, "model": build_tiny_model(root / "tiny")}


def test_scored_text_reads_answer_tags():
    assert retention.scored_text("<think>hm</think><answer> 42 </answer>") == "42"
    assert retention.scored_text("<answer>a</answer> <answer>b</answer>") == "b"
    assert retention.scored_text(" just 42 ") == "just 42"
    assert retention.scored_text(None) == ""


def test_prompt_is_the_question_then_the_short_answer_instruction():
    (message,) = retention.prompt_messages(" What is it? ")
    assert message["content"][0] == {"type": "image"}
    assert message["content"][1]["text"] == (
        "What is it?\nAnswer the question using a single word or phrase."
    )


def test_retention_end_to_end(tiny_benchmarks, tmp_path):
    out = tmp_path / "out"
    code = retention.main(
        [
            "--model",
            str(tiny_benchmarks["model"]),
            "--benchmark",
            "both",
            "--chartqa-dataset",
            tiny_benchmarks["chartqa"],
            "--textvqa-dataset",
            tiny_benchmarks["textvqa"],
            "--limit",
            "3",
            "--batch-size",
            "2",
            "--max-new-tokens",
            "4",
            "--output-dir",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    report = json.loads((out / "retention.json").read_text())
    assert report["model"] == Path(tiny_benchmarks["model"]).name  # never a local path
    assert report["decoding"] == {"strategy": "greedy", "repetition_penalty": 1.0,
                                  "max_new_tokens": 4}  # fmt: skip
    assert set(report["benchmarks"]) == {"chartqa", "textvqa"}
    chart, text = report["benchmarks"]["chartqa"], report["benchmarks"]["textvqa"]
    assert chart["dataset"] == Path(tiny_benchmarks["chartqa"]).name and chart["split"] == "test"
    assert text["dataset"] == Path(tiny_benchmarks["textvqa"]).name
    assert text["split"] == "validation"
    assert chart["n"] == 3 and text["n"] == 3

    predictions = datasets.load_dataset(
        "parquet", data_files=str(out / "retention_predictions.parquet"), split="train"
    ).to_list()
    assert len(predictions) == 6
    by_benchmark = {
        name: [p for p in predictions if p["benchmark"] == name] for name in ("chartqa", "textvqa")
    }
    for rows in by_benchmark.values():
        assert [r["index"] for r in rows] == [0, 1, 2]
        for r in rows:
            assert r["answer"] == retention.scored_text(r["output"])
    chart_rows, text_rows = by_benchmark["chartqa"], by_benchmark["textvqa"]
    assert chart_rows[1]["gold"] == ["Blue"] and text_rows[1]["gold"][0] == "7"
    # the reported scores are the metrics recomputed from the predictions
    assert chart["relaxed_accuracy"] == pytest.approx(
        chartqa_accuracy([r["answer"] for r in chart_rows], [r["gold"] for r in chart_rows])
    )
    assert text["vqa_accuracy"] == pytest.approx(
        textvqa_accuracy([r["answer"] for r in text_rows], [r["gold"] for r in text_rows])
    )
    for name, key in (("chartqa", "relaxed_accuracy"), ("textvqa", "vqa_accuracy")):
        rows = by_benchmark[name]
        assert report["benchmarks"][name][key] == pytest.approx(
            sum(r["score"] for r in rows) / len(rows)
        )
    assert report["weighted_average"] == pytest.approx(
        (3 * chart["relaxed_accuracy"] + 3 * text["vqa_accuracy"]) / 6
    )


def test_one_benchmark_and_renamed_columns(tiny_benchmarks, tmp_path):
    renamed = tmp_path / "renamed"
    ds = datasets.load_dataset(tiny_benchmarks["textvqa"], split="validation")
    _write(
        renamed,
        "validation",
        ds.rename_columns({"question": "prompt", "answers": "gold"}).to_dict(),
        datasets.Features(
            {
                "image": datasets.Image(),
                "prompt": datasets.Value("string"),
                "gold": datasets.List(datasets.Value("string")),
            }
        ),
    )
    report = retention.retention(
        retention.RetentionArguments(
            str(tiny_benchmarks["model"]),
            str(tmp_path / "out"),
            benchmark="textvqa",
            textvqa_dataset=str(renamed),
            textvqa_question_column="prompt",
            textvqa_answer_column="gold",
            limit=2,
            batch_size=2,
            max_new_tokens=2,
            progress=False,
        )
    )
    assert set(report["benchmarks"]) == {"textvqa"}
    assert report["weighted_average"] == pytest.approx(
        report["benchmarks"]["textvqa"]["vqa_accuracy"]
    )

    wrong = retention.Benchmark("textvqa", str(renamed), "validation", "image", "question", "gold")
    with pytest.raises(ValueError, match="no column"):
        retention.load_benchmark(wrong)
