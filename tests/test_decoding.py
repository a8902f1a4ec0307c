"""One decoding everywhere (issue 18, item 5): greedy with repetition penalty 1.0 unless the user
sets one, whatever the checkpoint's ``generation_config.json`` asks for, the same settings for the
HF and vLLM backends, and recorded in results.json and the resume settings."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from datasets import load_dataset

from model_training.evaluation.decoding import Decoding
from model_training.evaluation.evaluate import EvaluateArguments, EvaluationError, evaluate, main
from model_training.evaluation.generation import load_model
from model_training.evaluation.progress import SETTINGS_FILE

from .decoding_support import argmax_reply, build_penalised_model

ROWS = 4
MAX_NEW_TOKENS = 24


@pytest.fixture(scope="module")
def penalised_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_penalised_model(tmp_path_factory.mktemp("penalised") / "tiny")


def _outputs(out: Path) -> list[str]:
    lines = (out / "predictions.jsonl").read_text().splitlines()
    return [json.loads(line)["output"] for line in lines]


def test_the_evaluator_decodes_greedily_whatever_the_checkpoint_asks(
    penalised_model, built_dataset, tmp_path
):
    out = tmp_path / "eval"
    # batch size 1: no padding, so the comparison with the unpadded argmax loop is exact
    options = EvaluateArguments(
        str(penalised_model), str(built_dataset), str(out), mode="no-think", limit=ROWS,
        batch_size=1, max_new_tokens=MAX_NEW_TOKENS, progress=False,
    )  # fmt: skip
    report = evaluate(options)
    model, processor = load_model(str(penalised_model), device="cpu")
    assert model.generation_config.repetition_penalty == 1.05  # the checkpoint asks for it
    rows = load_dataset(str(built_dataset), "zoom", split="test").select(range(ROWS))
    expected = [argmax_reply(model, processor, row, "no-think", MAX_NEW_TOKENS) for row in rows]
    assert _outputs(out) == expected
    decoding = {"strategy": "greedy", "repetition_penalty": 1.0, "max_new_tokens": MAX_NEW_TOKENS}
    assert report["decoding"] == decoding
    assert json.loads((out / "results.json").read_text())["decoding"] == decoding
    assert json.loads((out / SETTINGS_FILE).read_text())["repetition_penalty"] == 1.0

    # predictions made under another penalty are not mixed in: --overwrite, or another folder
    penalised = replace(options, repetition_penalty=1.05)
    with pytest.raises(EvaluationError, match="repetition_penalty.*--overwrite"):
        evaluate(penalised)
    report = evaluate(replace(penalised, overwrite=True))
    assert report["decoding"]["repetition_penalty"] == 1.05
    assert _outputs(out) != expected  # the penalty is applied, and changes the tiny model's replies


@pytest.mark.parametrize("value", ["0", "-1.2", "nan"])
def test_a_non_positive_repetition_penalty_is_one_line(tmp_path, capsys, value):
    argv = ["--model", str(tmp_path / "m"), "--dataset", str(tmp_path / "d"),
            "--output-dir", str(tmp_path / "eval"), "--repetition-penalty", value]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "--repetition-penalty" in err
    assert not (tmp_path / "eval").exists()


def test_retention_refuses_a_non_positive_repetition_penalty_in_one_line(tmp_path, capsys):
    from model_training.evaluation import retention

    out = tmp_path / "out"
    argv = ["--model", str(tmp_path / "m"), "--output-dir", str(out), "--repetition-penalty", "0"]
    assert retention.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "--repetition-penalty" in err
    assert not out.exists()


def test_both_backends_take_their_settings_from_one_decoding():
    decoding = Decoding(max_new_tokens=40, repetition_penalty=1.1)
    assert decoding.record() == {
        "strategy": "greedy", "repetition_penalty": 1.1, "max_new_tokens": 40
    }  # fmt: skip
    assert decoding.vllm_sampling() == {
        "temperature": 0.0, "repetition_penalty": 1.1, "max_tokens": 40
    }  # fmt: skip
    config = decoding.generation_config()
    assert (config.do_sample, config.num_beams) == (False, 1)
    assert (config.repetition_penalty, config.max_new_tokens) == (1.1, 40)
    # the sampling values a checkpoint ships are replaced by neutral ones (no warning either)
    assert (config.temperature, config.top_p) == (1.0, 1.0)
    assert Decoding(max_new_tokens=40).record()["repetition_penalty"] == 1.0


def test_baselines_pass_the_repetition_penalty_to_the_evaluator(tmp_path):
    from model_training.evaluation import baselines

    options = baselines.BaselinesArguments("b.yaml", "d", "out", repetition_penalty=1.05)
    command = baselines.evaluate_command(options, "m", tmp_path / "m", False)
    assert command[command.index("--repetition-penalty") + 1] == "1.05"
    default = baselines.BaselinesArguments("b.yaml", "d", "out")
    assert "--repetition-penalty" not in baselines.evaluate_command(default, "m", tmp_path, False)
    with pytest.raises(EvaluationError, match="--repetition-penalty"):
        baselines.BaselinesArguments("b.yaml", "d", "out", repetition_penalty=0.0)


def test_the_final_model_carries_the_evaluations_decoding(tmp_path):
    """final/ (what is published) decodes as the evaluator did in a harness that lets the
    checkpoint decide (lmms-eval's qwen2_5_vl passes no repetition penalty)."""
    from transformers import GenerationConfig

    from model_training.evaluation.decoding import Decoding
    from model_training.final_model import write_decoding

    folder = build_penalised_model(tmp_path / "final")
    before = GenerationConfig.from_pretrained(folder)
    write_decoding(folder, Decoding(max_new_tokens=1))
    after = GenerationConfig.from_pretrained(folder)
    assert (after.do_sample, after.repetition_penalty, after.num_beams) == (False, 1.0, 1)
    assert after.eos_token_id == before.eos_token_id and after.pad_token_id == before.pad_token_id
    assert after.max_new_tokens is None  # a harness sets its own length
