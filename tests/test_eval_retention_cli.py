"""The retention command line (HfArgumentParser, the evaluator's defaults) and its user errors."""

from __future__ import annotations

import dataclasses

import pytest

from common.cli_options import parse_options
from model_training.evaluation import options as evaluator_options
from model_training.evaluation import retention

PROG = "python -m model_training.evaluation.retention"


def test_options_dashed_and_underscored_and_shared_defaults():
    argv = ["--model", "m", "--output-dir", "o", "--benchmark", "textvqa",
            "--textvqa-dataset", "d", "--textvqa_question_column", "prompt",
            "--batch-size", "3", "--no-progress"]  # fmt: skip
    options, rest = parse_options(retention.RetentionArguments, argv, PROG, None, positionals=True)
    assert rest == [] and options.batch_size == 3 and options.progress is False
    (bench,) = options.benchmarks()
    assert bench == retention.Benchmark("textvqa", "d", "validation", "image", "prompt", "answers")
    default = retention.RetentionArguments("m", "o")
    assert default.batch_size == evaluator_options.DEFAULT_BATCH_SIZE  # declared once
    assert [b.name for b in default.benchmarks()] == ["chartqa", "textvqa"]


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        retention.main(["--help"])
    text = capsys.readouterr().out
    for f in dataclasses.fields(retention.RetentionArguments):
        assert f.metadata.get("help") and f"--{f.name.replace('_', '-')}" in text


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--limit", "0"], "--limit=0"),
        (["--chartqa-dataset", "./no/such/chartqa"], "does not exist"),
    ],
)
def test_user_errors_are_one_line(tmp_path, capsys, extra, says):
    from model_training.tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny") if "--limit" not in extra else tmp_path / "m"
    capsys.readouterr()  # the model's save
    out = tmp_path / "out"
    argv = ["--model", str(model), "--output-dir", str(out), "--benchmark", "chartqa", *extra]
    assert retention.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and says in err, err
    assert not out.exists()


def test_a_model_that_does_not_exist_is_one_line(tmp_path, capsys):
    out = tmp_path / "out"
    assert retention.main(["--model", str(tmp_path / "nope"), "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "nope") in err and not out.exists()
