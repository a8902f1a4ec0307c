"""The evaluation commands' user errors (issue 20): one line, exit status 2, no traceback, and
nothing written, checked before any generation: an output folder that is a file, a checkpoint
without its processor, a judge that cannot run, a push to a Hub that does not answer, options
that would be accepted and ignored, a build the manifest calls incomplete, results.json values
out of range."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from common.names import MANIFEST_NAME
from model_training.evaluation import baselines, evaluate, leaderboard, retention
from model_training.evaluation.evaluate import EvaluateArguments, load_split
from model_training.evaluation.judge import check_judge
from model_training.evaluation.options import EvaluationError
from model_training.tiny_model import build_tiny_model

from .hub_server import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny")


def _one_line(capsys: pytest.CaptureFixture, *names: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: ") and "Traceback" not in err, err
    assert sum(line.startswith("error: ") for line in lines) == 1, err
    for name in names:
        assert name in lines[-1], lines[-1]
    return lines[-1]


def _status(main, argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exit_:  # argparse's usage errors
        return int(exit_.code)


def _results(folder: Path, **think: object) -> Path:
    metrics = {"n": 4, "accuracy_micro": 0.5, "per_class": {"emphysema": {"accuracy": 0.5,
               "support": 4}}} | think  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    results = {"model": f"org/{folder.name}", "dataset": "org/d", "config": "zoom",
               "split": "test", "modes": {"think": metrics}}  # fmt: skip
    (folder / "results.json").write_text(json.dumps(results))
    return folder


# -- 1. an output folder that is a file (or lies inside one) ---------------------------------


def _commands(tmp_path: Path, out: str) -> dict[str, tuple]:
    spec = tmp_path / "baselines.yaml"
    spec.write_text("models:\n- name: m\n  path: m\n")
    return {
        "evaluate": (evaluate.main, ["--model", "m", "--dataset", "d", "--output-dir", out]),
        "retention": (retention.main, ["--model", "m", "--output-dir", out]),
        "leaderboard": (leaderboard.main, [str(_results(tmp_path / "r")), "--output", out]),
        "baselines": (baselines.main, ["--baselines", str(spec), "--dataset", "d", "--out", out]),
    }


@pytest.mark.parametrize("command", ["evaluate", "retention", "leaderboard", "baselines"])
@pytest.mark.parametrize("inside", [False, True], ids=["is-a-file", "inside-a-file"])
def test_an_output_folder_that_is_a_file_is_refused(tmp_path, capsys, command, inside):
    notes = tmp_path / "notes.txt"
    notes.write_text("the user's")
    out = notes / "eval" if inside else notes
    main, argv = _commands(tmp_path, str(out))[command]
    assert _status(main, argv) == 2
    line = _one_line(capsys, str(out), "--out")
    assert ("lies inside" if inside else "is a file") in line
    assert notes.read_text() == "the user's" and sorted(p.name for p in tmp_path.iterdir()) == [
        "baselines.yaml", "notes.txt", "r"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("command", "foreign"),
    [("evaluate", "notes.txt"), ("evaluate", "results/"), ("retention", "notes.txt"),
     ("retention", "results/"), ("leaderboard", "notes.txt"), ("baselines", "notes.txt")],
)  # fmt: skip
def test_an_output_folder_holding_a_users_files_is_refused(tmp_path, capsys, command, foreign):
    """A folder holding a file (for the evaluator and retention also a folder) the command did
    not write is refused before anything is read or written: the command would overwrite or
    mix with the user's files. Each command's own file names are accepted (the evaluator
    resumes from them); the leaderboard leaves folders beside its tables alone."""
    out = tmp_path / "shared"
    out.mkdir()
    own = {"evaluate": "results.json", "retention": "retention.json",
           "leaderboard": "grounding.md", "baselines": "paper_figures.json"}[command]  # fmt: skip
    (out / own).write_text("an earlier output of the command")
    user = out / foreign.rstrip("/")
    user.mkdir() if foreign.endswith("/") else user.write_text("the user's")
    main, argv = _commands(tmp_path, str(out))[command]
    assert _status(main, argv) == 2
    line = _one_line(capsys, str(out), f"holds {foreign}, which this command did not write")
    assert "--out" in line
    assert sorted(p.name for p in out.iterdir()) == sorted([own, user.name])
    assert (out / own).read_text() == "an earlier output of the command"


def test_the_leaderboard_writes_beside_folders_it_leaves_alone(tmp_path):
    """paper_tables keeps a table's evaluations in a folder beside it: the leaderboard writes
    its own files there and touches nothing in the folder."""
    out = tmp_path / "table"
    (out / "eval").mkdir(parents=True)
    (out / "eval" / "results.json").write_text("kept")
    assert leaderboard.main([str(_results(tmp_path / "r")), "--output", str(out)]) == 0
    assert (out / "eval" / "results.json").read_text() == "kept"
    assert {p.suffix for p in out.iterdir() if p.is_file()} == {".md", ".json", ".png"}


def test_as_the_user_sees_it_exit_2_and_no_traceback(tmp_path):
    """One subprocess: the evaluator's command line as typed, its output folder a file."""
    notes = tmp_path / "eval"
    notes.write_text("the user's")
    argv = ["--model", "m", "--dataset", "d", "--output-dir", str(notes)]
    run = subprocess.run(
        [sys.executable, "-m", "model_training.evaluation.evaluate", *argv],
        capture_output=True, text=True, cwd=REPO_ROOT, check=False,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("error: --output-dir ")
    assert "Traceback" not in run.stderr and notes.read_text() == "the user's"


# -- 2. a checkpoint whose processor cannot be loaded: refused before anything is written -----


@pytest.mark.parametrize(
    ("removed", "says"),
    [
        (("preprocessor_config.json", "tokenizer.json", "tokenizer_config.json",
          "chat_template.jinja"), "processor could not be loaded"),
        (("preprocessor_config.json",), "preprocessor_config.json"),
        (("tokenizer.json", "tokenizer_config.json"), "tokenizer"),
        (("chat_template.jinja",), "chat template"),
        (("model.safetensors",), "holds no weights"),
    ],
    ids=["no-processor", "no-image-processor", "no-tokenizer", "no-chat-template", "no-weights"],
)  # fmt: skip
def test_a_checkpoint_missing_files_is_refused_before_anything_is_written(
    tiny, built_dataset, tmp_path, capsys, removed, says
):
    model = tmp_path / "model"
    shutil.copytree(tiny, model)
    for name in removed:
        (model / name).unlink()
    out = tmp_path / "eval"
    assert evaluate.main(["--model", str(model), "--dataset", str(built_dataset),
                          "--output-dir", str(out), "--limit", "2"]) == 2  # fmt: skip
    _one_line(capsys, str(model), says)
    assert not out.exists()  # no eval_settings.json left behind


# -- 3. the judge, checked before generation ------------------------------------------------


@pytest.mark.parametrize(
    ("judge", "says"),
    [
        ("./no/such/judge", "no such folder"),
        (f"http://127.0.0.1:{free_port()}/v1", "does not answer"),
        ("TINY", "not a causal language model"),
    ],
    ids=["missing-folder", "unreachable-url", "not-a-causal-lm"],
)
def test_a_judge_that_cannot_run_is_refused_before_generation(
    tiny, built_dataset, tmp_path, capsys, judge, says
):
    judge = str(tiny) if judge == "TINY" else judge
    out = tmp_path / "eval"
    argv = ["--model", str(tiny), "--dataset", str(built_dataset), "--output-dir", str(out),
            "--limit", "2", "--judge", judge]  # fmt: skip
    assert evaluate.main(argv) == 2
    _one_line(capsys, f"--judge {judge}", says)
    assert not out.exists()  # nothing was generated: the judge runs after every reply


class _Models(BaseHTTPRequestHandler):
    """An OpenAI-compatible server's model list (GET /v1/models), or 404 elsewhere."""

    def do_GET(self):  # noqa: N802
        body = json.dumps({"data": [{"id": "judge-20b"}]}).encode()
        self.send_response(200 if self.path == "/v1/models" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_judge_endpoint_is_asked_once_for_its_models():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Models)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        check_judge(f"{url}/v1")  # serves judge-20b
        check_judge(f"{url}/v1", "judge-20b")
        with pytest.raises(EvaluationError, match="does not serve --judge-model other"):
            check_judge(f"{url}/v1", "other")
        with pytest.raises(EvaluationError, match="answered HTTP 404"):
            check_judge(f"{url}/api")  # not the OpenAI base URL
    finally:
        server.shutdown()


# -- 4. a push to a Hub that does not answer --------------------------------------------------


def test_a_push_to_an_unreachable_hub_is_refused_before_writing(tmp_path):
    results = _results(tmp_path / "a")
    out = tmp_path / "board"
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    run = subprocess.run(
        [sys.executable, "-m", "model_training.evaluation.leaderboard", str(results),
         "--output", str(out), "--push-results", "org/results"],
        capture_output=True, text=True, cwd=REPO_ROOT, env=env, check=False, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith("error: --push-results org/results: the Hub at ") and "answer" in line
    assert not out.exists()


# -- 5. no option accepted and ignored --------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--split", "val", "--chartqa-split", "test"], "--chartqa-split test"),
        (["--split", "val", "--textvqa-split", "train"], "--textvqa-split train"),
        (["--benchmark", "chartqa", "--textvqa-dataset", "org/tv"], "--textvqa-dataset"),
        (["--benchmark", "textvqa", "--chartqa-question-column", "q"], "--chartqa-question-column"),
    ],
)
def test_retention_refuses_options_it_would_ignore(tmp_path, capsys, extra, says):
    out = tmp_path / "out"
    assert _status(retention.main, ["--model", "m", "--output-dir", str(out), *extra]) == 2
    _one_line(capsys, says)
    assert not out.exists()


def test_retention_split_options_each_alone_are_used():
    both = retention.RetentionArguments("m", "o", split="val")
    assert [b.split for b in both.benchmarks()] == ["val", "val"]
    own = retention.RetentionArguments("m", "o", chartqa_split="val")
    assert [b.split for b in own.benchmarks()] == ["val", "validation"]


def test_evaluate_refuses_options_it_would_ignore(tmp_path):
    with pytest.raises(EvaluationError, match="--judge judges the think mode"):
        EvaluateArguments("m", "d", "o", mode="no-think", judge="keyword")
    with pytest.raises(EvaluationError, match="--revision main applies to a Hub dataset id"):
        load_split(EvaluateArguments("m", str(tmp_path), "o", revision="main"))


def test_leaderboard_refuses_private_without_a_push(tmp_path, capsys):
    out = tmp_path / "board"
    assert leaderboard.main([str(_results(tmp_path / "a")), "--output", str(out), "--private"]) == 2
    _one_line(capsys, "--private", "--push-results")
    assert not out.exists()


# -- 6. results.json values out of range ------------------------------------------------------


@pytest.mark.parametrize(
    ("think", "field"),
    [({"n": -5}, "n is -5"), ({"accuracy_micro": 1.5}, "accuracy_micro is 1.5"),
     ({"format_rate": -0.1}, "format_rate"), ({"n": 4.5}, "n is 4.5")],
)  # fmt: skip
def test_the_leaderboard_refuses_values_out_of_range(tmp_path, capsys, think, field):
    bad = _results(tmp_path / "bad", **think)
    out = tmp_path / "board"
    assert leaderboard.main([str(_results(tmp_path / "good")), str(bad), "--output", str(out)]) == 2
    _one_line(capsys, str(bad / "results.json"), field)
    assert not out.exists()


# -- 7. a build its manifest calls incomplete -------------------------------------------------


@pytest.fixture
def incomplete(built_dataset, tmp_path) -> Path:
    """The built dataset (linked, not copied) with a manifest that says the build is running."""
    folder = tmp_path / "incomplete"
    shutil.copytree(built_dataset, folder, copy_function=os.symlink)
    manifest = json.loads((built_dataset / MANIFEST_NAME).read_text())
    (folder / MANIFEST_NAME).unlink()
    (folder / MANIFEST_NAME).write_text(json.dumps({**manifest, "status": "in_progress"}))
    return folder


def test_an_incomplete_build_is_refused_unless_allowed(tiny, incomplete, tmp_path, capsys):
    out = tmp_path / "eval"
    argv = ["--model", str(tiny), "--dataset", str(incomplete), "--output-dir", str(out)]
    assert evaluate.main([*argv, "--limit", "2"]) == 2
    _one_line(capsys, str(incomplete / MANIFEST_NAME), "'in_progress'", "--allow-incomplete-build")
    assert not out.exists()
    spec = tmp_path / "baselines.yaml"
    spec.write_text(f"models:\n- name: tiny\n  path: {tiny}\n")
    board = tmp_path / "table"
    assert baselines.main(["--baselines", str(spec), "--dataset", str(incomplete),
                           "--out", str(board)]) == 2  # fmt: skip
    _one_line(capsys, "--allow-incomplete-build")
    assert not board.exists()
    options = EvaluateArguments(str(tiny), str(incomplete), str(out), limit=2,
                                allow_incomplete_build=True)  # fmt: skip
    assert len(load_split(options)) == 2
