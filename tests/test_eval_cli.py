"""The evaluator's command line (one options dataclass, HfArgumentParser) and its user errors:
one line, exit status 2, no files left behind."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from transformers import Qwen2Config, Qwen2ForCausalLM

from common.cli_options import parse_options
from common.names import CLASSIFICATION_TASK
from model_training import prompts
from model_training.evaluation import evaluate as evaluation
from model_training.evaluation import options as evaluator_options
from model_training.evaluation.evaluate import EvaluateArguments, evaluate, main
from model_training.evaluation.progress import SETTINGS_FILE, source_name
from model_training.evaluation.tasks import TASKS
from model_training.tiny_model import build_tiny_model

PROG = "python -m model_training.evaluation.evaluate"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny")


def _argv(model: str | Path, dataset: str | Path, out: Path, *extra: str) -> list[str]:
    return ["--model", str(model), "--dataset", str(dataset), "--output-dir", str(out), *extra]


def _one_line_error(capsys: pytest.CaptureFixture, *names: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    for name in names:
        assert name in err
    return err


def test_dashed_and_underscored_options_are_the_same():
    """The driver's command line (model_training/run.py) parses as before."""
    driver = ["--model", "m", "--dataset", "d", "--config", "plain", "--split", "validation",
              "--mode", "think", "--max-new-tokens", "12", "--output-dir", "o", "--limit", "3",
              "--batch-size", "5", "--overwrite"]  # fmt: skip
    options, rest = parse_options(EvaluateArguments, driver, PROG, None, positionals=True)
    assert rest == []
    assert options == EvaluateArguments(
        "m", "d", "o", config="plain", split="validation", mode="think", limit=3, batch_size=5,
        max_new_tokens=12, overwrite=True,
    )  # fmt: skip
    underscored = ["--" + a[2:].replace("-", "_") if a[:2] == "--" else a for a in driver]
    assert parse_options(EvaluateArguments, underscored, PROG, None)[0] == options
    assert options.modes == ("think",)
    both = [*driver[:8], "--mode", "both", *driver[10:]]
    assert parse_options(EvaluateArguments, both, PROG, None)[0].modes == ("think", "no-think")


def test_defaults_are_the_evaluators():
    options = EvaluateArguments("m", "d", "o")
    assert (options.batch_size, options.max_new_tokens, options.mode) == (
        evaluator_options.DEFAULT_BATCH_SIZE,
        evaluator_options.DEFAULT_MAX_NEW_TOKENS,
        evaluator_options.DEFAULT_MODE,
    )
    assert options.modes == prompts.MODES


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for f in dataclasses.fields(EvaluateArguments):
        assert f.metadata.get("help"), f.name
        assert f"--{f.name.replace('_', '-')}" in text or f"--{f.name}" in text
    assert "(default: 16)" in text  # the default of --batch-size


@pytest.mark.parametrize(
    "argv",
    [["--mode", "sideways"], ["--bogus", "1"], ["stray"], ["--limit", "many"]],
)
def test_usage_errors_are_one_line(tmp_path, capsys, argv):
    out = tmp_path / "eval"
    with pytest.raises(SystemExit) as exit_:
        code = main(_argv(tmp_path / "m", tmp_path / "d", out, *argv))
        raise SystemExit(code)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "usage:" not in err
    assert not out.exists()


def _not_a_model(root: Path) -> Path:
    folder = root / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("not a checkpoint")
    return folder


def _text_only_model(root: Path) -> Path:
    config = Qwen2Config(
        vocab_size=128, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
    )  # fmt: skip
    folder = root / "qwen2-text"
    Qwen2ForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (_not_a_model, "without config.json"),
        (lambda root: root / "no" / "such" / "model", "does not exist"),
        (_text_only_model, "'qwen2' model, which does not read images"),
    ],
    ids=["folder-not-a-model", "missing-path", "text-only-model"],
)
def test_wrong_models_are_refused_in_one_line_leaving_no_files(
    built_dataset, tmp_path, capsys, make, says
):
    model = make(tmp_path)
    capsys.readouterr()  # the text model's save
    out = tmp_path / "eval"
    assert main(_argv(model, built_dataset, out, "--limit", "2")) == 2
    _one_line_error(capsys, str(model), says)
    assert not out.exists()


def test_a_missing_dataset_is_named(tiny, tmp_path, capsys):
    missing = tmp_path / "no-dataset"
    out = tmp_path / "eval"
    assert main(_argv(tiny, missing, out)) == 2
    _one_line_error(capsys, str(missing), "does not exist")
    assert not out.exists()


def test_a_missing_config_or_split_lists_those_there(tiny, built_dataset, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(_argv(tiny, built_dataset, out, "--config", "axial")) == 2
    _one_line_error(capsys, str(built_dataset), "'axial'", "zoom", "--config")
    assert main(_argv(tiny, built_dataset, out, "--split", "dev")) == 2
    _one_line_error(capsys, str(built_dataset), "'dev'", "test", "--split")
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        (["--sam-model", "some/sam"], "--sam-model"),
        (["--baseline-split", "validation"], "--baseline-split"),
        (["--baseline-limit", "8"], "--baseline-limit"),
    ],
)
def test_grounding_options_are_refused_on_classification_configs(
    tiny, built_dataset, tmp_path, capsys, extra, flag
):
    """Accepted and ignored would be a bug: the grounding task's options, on a zoom config."""
    out = tmp_path / "eval"
    assert main(_argv(tiny, built_dataset, out, *extra)) == 2
    err = capsys.readouterr().err  # (after datasets' progress bars, if it builds its cache)
    (line,) = [line for line in err.splitlines() if line.startswith("error: ")]
    assert err.rstrip().endswith(line) and "Traceback" not in err
    assert flag in line and "grounding" in line and f"drop {flag}" in line
    assert not out.exists()
    # its defaults, and none, are no request: nothing to refuse (checked before any output)
    for options in (EvaluateArguments("m", "d", "o", baseline_split=None, sam_model="none"),
                    EvaluateArguments("m", "d", "o")):  # fmt: skip
        TASKS[CLASSIFICATION_TASK].check_options(options)


def test_the_same_model_spelt_two_ways_resumes(tiny, built_dataset, tmp_path, monkeypatch):
    """``./outputs/x/final/`` and ``outputs/x/final`` are one model, not "another model"."""
    monkeypatch.chdir(tiny.parent.parent)
    spelt = f"./{tiny.parent.name}/{tiny.name}/"
    options = EvaluateArguments(
        spelt, str(built_dataset), str(tmp_path / "eval"), mode="no-think", limit=2,
        batch_size=2, max_new_tokens=2, progress=False,
    )  # fmt: skip
    first = evaluate(options)
    settings = json.loads((tmp_path / "eval" / SETTINGS_FILE).read_text())
    assert settings["model"] == f"{tiny.parent.name}/{tiny.name}"  # normalised
    again = evaluate(dataclasses.replace(options, model=f"{tiny.parent.name}/{tiny.name}"))
    assert again == first
    absolute = evaluate(dataclasses.replace(options, model=str(tiny)))
    assert absolute["modes"] == first["modes"]
    with pytest.raises(evaluation.EvaluationError, match="--overwrite"):  # another model
        evaluate(dataclasses.replace(options, model=str(build_tiny_model(tmp_path / "other"))))


def test_hub_ids_are_kept_as_given():
    assert source_name("Qwen/Qwen2.5-VL-3B-Instruct") == "Qwen/Qwen2.5-VL-3B-Instruct"


def test_vllm_options_without_the_vllm_backend_are_refused(tmp_path, capsys):
    """An option accepted and ignored is a bug: vLLM's settings need --backend vllm."""
    argv = ["--model", str(tmp_path / "m"), "--dataset", str(tmp_path / "d"),
            "--output-dir", str(tmp_path / "eval"), "--tensor-parallel-size", "4"]  # fmt: skip
    assert evaluation.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--tensor-parallel-size applies to --backend vllm" in err
    assert not (tmp_path / "eval").exists()
