"""The leaderboard's command line (HfArgumentParser, positional RESULTS kept) and its refusals:
results of one mode on different n, and non-numeric accuracies (one line, exit 2)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from model_training.evaluation.leaderboard import LeaderboardArguments, main

CLASSES = ("emphysema", "ground-glass opacity")


def _write(folder: Path, model: str, n: int = 40, micro: object = 0.5) -> Path:
    metrics = {"n": n, "accuracy_micro": micro, "accuracy_macro": 0.5,
               "per_class": {c: {"accuracy": 0.5, "support": n // 2} for c in CLASSES}}  # fmt: skip
    results = {"model": model, "dataset": "org/ct-rate-vqa", "config": "zoom", "split": "test",
               "modes": {"think": metrics, "no-think": dict(metrics, n=40)}}  # fmt: skip
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(results))
    return folder / "results.json"


def _one_line(capsys: pytest.CaptureFixture, *names: str) -> None:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    for name in names:
        assert name in err, err


def test_positional_and_option_results_and_dashed_flags(tmp_path, capsys):
    a = _write(tmp_path / "a", "org/a-7B")
    b = _write(tmp_path / "b", "org/b-3B")
    out = tmp_path / "board"
    assert main([str(a), "--output", str(out), "--per-class", "--results", str(b)]) == 0
    board = json.loads((out / "leaderboard.json").read_text())
    assert [r["model"] for r in board["rows"]] == ["org/a-7B", "org/b-3B"]
    assert "emphysema % (with think)" in (out / "leaderboard.md").read_text()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main([str(a), "--output", str(out), "--bogus"])
    assert exit_.value.code == 2
    _one_line(capsys, "--bogus")


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for f in dataclasses.fields(LeaderboardArguments):
        assert f.metadata.get("help") and f"--{f.name.replace('_', '-')}" in text


def test_different_n_on_one_mode_is_refused_unless_allowed(tmp_path, capsys):
    full = _write(tmp_path / "full", "org/a-7B", n=40)
    cut = _write(tmp_path / "cut", "org/b-7B", n=8)  # a --limit 8 run
    out = tmp_path / "board"
    assert main([str(full), str(cut), "--output", str(out)]) == 2
    _one_line(capsys, "'think'", "n = 40", "n = 8", str(full), str(cut), "--allow-different-n")
    assert not (out / "leaderboard.md").exists()
    assert main([str(full), str(cut), "--output", str(out), "--allow-different-n"]) == 0
    assert "different numbers of questions" in (out / "leaderboard.md").read_text()


@pytest.mark.parametrize("micro", ["52%", None, [0.5], True])
def test_non_numeric_accuracy_names_the_file(tmp_path, capsys, micro):
    good = _write(tmp_path / "good", "org/a-7B")
    bad = _write(tmp_path / "bad", "org/b-7B", micro=micro)
    assert main([str(good), str(bad), "--output", str(tmp_path / "board")]) == 2
    _one_line(capsys, str(bad), "accuracy_micro")
