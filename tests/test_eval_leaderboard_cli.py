"""The leaderboard's command line (HfArgumentParser, positional RESULTS kept) and its refusals:
results of one mode on different n, and non-numeric accuracies (one line, exit 2); every layout
through the command line prints and writes its own files (issue 19's bug: grounding results)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from model_training.evaluation.leaderboard import LeaderboardArguments, main
from model_training.evaluation.leaderboard.layouts import LAYOUTS

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


# -- every layout through the command line: the files it prints are the files it wrote -------


def _results(folder: Path, model: str, task: str = "classification", **extra) -> Path:
    """A results.json with both modes (think with a judged consistency) of one model."""
    if task == "grounding":
        metrics = {"n": 40, "iou_mean": 0.3, "iou_50": 0.25, "point_dice_mean": 0.2}
    else:
        metrics = {"n": 40, "accuracy_micro": 0.5, "accuracy_macro": 0.5, "per_class": {},
                   "validity_rate": 0.9, "fallback_rate": 0.0, "consistency": 0.9}  # fmt: skip
    results = {"model": model, "dataset": "org/ct-rate-vqa", "split": "test", "task": task,
               "config": "grounding" if task == "grounding" else "zoom",
               "modes": {"think": metrics, "no-think": metrics}, **extra}  # fmt: skip
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(results))
    return folder / "results.json"


def _trained(stages: list[str], config: str = "zoom", rewards: tuple[str, ...] = ()) -> dict:
    return {"stages": stages, "dataset_config": config,
            **({"reward_funcs": list(rewards), "reward_weights": [1.0] * len(rewards)}
               if rewards else {})}  # fmt: skip


def _layout_inputs(root: Path) -> dict[str, tuple[list[str], list[Path]]]:
    """{layout: (its options, results that fit it)}."""
    sft = _results(root / "sft", "runs/zoom/sft", display_name="zoom (SFT)",
                   training=_trained(["sft"]))  # fmt: skip
    two = ("correctness", "format")
    rl = _results(root / "grpo", "runs/zoom/grpo", display_name="zoom (SFT+GRPO)",
                  training=_trained(["sft", "grpo"], rewards=two))  # fmt: skip
    plain = _results(root / "plain", "runs/plain/sft", display_name="plain (SFT)",
                     training=_trained(["sft"], "plain"))  # fmt: skip
    plain_data = json.loads(plain.read_text()) | {"config": "plain"}
    plain.write_text(json.dumps(plain_data))
    only = _results(root / "grpo-correctness", "runs/c/grpo", display_name="c (SFT+GRPO)",
                    training=_trained(["sft", "grpo"], rewards=("correctness",)))  # fmt: skip
    ground = [_results(root / f"{m}-grounding", f"org/{m}", "grounding") for m in ("a", "b")]
    mixed = _results(root / "sft-grounding", "runs/zoom/sft", "grounding",
                     display_name="zoom (SFT)", training=_trained(["sft"]))  # fmt: skip
    blank = {"image_ablation": {"mode": "blank", "seed": None}}
    ablated = [_results(root / "sft-blank", "runs/zoom/sft", display_name="zoom (SFT)", **blank),
               _results(root / "a-grounding-blank", "org/a", "grounding", **blank)]  # fmt: skip
    return {
        "leaderboard": (["--macro"], [sft, rl]),
        "table1": ([], [sft, rl]),
        "table3": ([], [sft, plain]),
        "table4": ([], [rl, only]),
        "fig3": ([], [sft, rl]),
        "grounding": ([], ground),
        "multitask": ([], [sft, mixed, *ground]),
        "reliance": (["--per-class"], [sft, ground[0], *ablated]),
    }


def _wrote(out: Path, layout: str) -> str:
    return "wrote " + ", ".join(str(out / f"{layout}.{ext}") for ext in ("md", "json", "png"))


def test_every_layout_prints_and_writes_its_own_files(tmp_path, capsys):
    assert set(_layout_inputs(tmp_path / "listed")) == set(LAYOUTS)  # every layout is tried
    for layout, (options, files) in _layout_inputs(tmp_path / "results").items():
        out = tmp_path / layout
        assert main([*map(str, files), "--output", str(out), "--layout", layout, *options]) == 0
        printed = capsys.readouterr().out
        md = (out / f"{layout}.md").read_text()
        assert printed == f"{md}\n{_wrote(out, layout)}\n", layout
        assert sorted(p.name for p in out.iterdir()) == [
            f"{layout}.json", f"{layout}.md", f"{layout}.png"
        ]  # fmt: skip
        board = json.loads((out / f"{layout}.json").read_text())
        assert board["layout"] == layout and board["files"]["md"] == str(out / f"{layout}.md")
        assert (out / f"{layout}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_grounding_results_get_the_grounding_files_by_default(tmp_path, capsys):
    """The bug of issue 19: two grounding results with the default layout wrote
    OUT/grounding.{md,json,png}, then failed on the missing OUT/leaderboard.md."""
    _, files = _layout_inputs(tmp_path / "results")["grounding"]
    out = tmp_path / "in-process"
    assert main([*map(str, files), "--output", str(out)]) == 0
    md = (out / "grounding.md").read_text()
    assert capsys.readouterr().out == f"{md}\n{_wrote(out, 'grounding')}\n"
    assert sorted(p.name for p in out.iterdir()) == [
        "grounding.json", "grounding.md", "grounding.png"
    ]  # fmt: skip
    out = tmp_path / "command"
    done = subprocess.run(
        [sys.executable, "-m", "model_training.evaluation.leaderboard", *map(str, files),
         "--output", str(out)],
        capture_output=True, text=True, cwd=Path(__file__).parents[1], check=False,
    )  # fmt: skip
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert done.stdout == f"{(out / 'grounding.md').read_text()}\n{_wrote(out, 'grounding')}\n"
    assert not (out / "leaderboard.md").exists()


def test_a_layout_of_the_other_task_or_mixed_tasks_is_refused(tmp_path, capsys):
    inputs = _layout_inputs(tmp_path / "results")
    grounding, classification = inputs["grounding"][1], inputs["table1"][1]
    out = str(tmp_path / "out")
    assert main([*map(str, grounding), "--output", out, "--layout", "table1"]) == 2
    _one_line(capsys, "--layout table1 takes classification", "--layout grounding")
    assert main([*map(str, classification), "--output", out, "--layout", "grounding"]) == 2
    _one_line(capsys, "--layout grounding takes grounding", "--layout leaderboard")
    assert main([str(grounding[0]), str(classification[0]), "--output", out]) == 2
    _one_line(capsys, "different tasks", str(grounding[0]), str(classification[0]))
    assert main([*map(str, grounding), "--output", out, "--per-class"]) == 2
    _one_line(capsys, "--per-class applies to --layout leaderboard or reliance only (not grounding")
    assert not Path(out).exists()
