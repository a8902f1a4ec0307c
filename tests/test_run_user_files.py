"""issue 20, ``python -m model_training.run``: nothing of the user's is deleted (a step folder
holding a file the run did not write is refused), one driver per output_dir (a lock that a
killed driver leaves blocks nothing), and bad input is one line with exit status 2 before
anything runs: an output_dir that is a file, a value of the wrong type or out of range (in the
recipe, a section, the command line, a stage script), an unreachable Hub for --push-to-hub."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from common.folder_lock import FolderLock
from model_training import grpo, sft
from model_training import run as run_module
from model_training.run_files import LOCK_FILE, check_step_folder, remove_own
from model_training.run_recipe import RecipeError, parse_run
from model_training.run_state import STATE_FILE

from .hub_server import free_port
from .test_run import TINY_RUN, write_recipe

REPO = Path(__file__).parents[1]


@pytest.fixture
def recipe(tmp_path) -> Path:
    """A run recipe whose inputs do not exist: everything here is refused before they are read."""
    return write_recipe(
        tmp_path / "recipe.yaml",
        {**TINY_RUN, "output_dir": str(tmp_path / "run"), "tiny_model_if_missing": False,
         "model_name_or_path": str(tmp_path / "tiny"), "dataset_name": str(tmp_path / "ds")},
    )  # fmt: skip


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


def _earlier_run(run_dir: Path, steps: dict[str, str]) -> None:
    """An earlier run's state: each step done, its folder holding what it wrote."""
    records = {}
    for step, status in steps.items():
        folder = run_dir / step
        (folder / "checkpoint-1").mkdir(parents=True)
        (folder / "checkpoint-1" / "trainer_state.json").write_text("{}")
        (
            folder / "results.json" if step.startswith("eval/") else folder / "config.json"
        ).write_text("{}")
        records[step] = {"key": "k", "inputs": "i", "status": status}
        if status == "done":
            records[step]["files"] = sorted(
                p.relative_to(folder).as_posix() + "/" * p.is_dir() for p in folder.rglob("*")
            )
    (run_dir / STATE_FILE).write_text(json.dumps(records))


@pytest.mark.parametrize(
    ("step", "status", "stage"),
    [
        ("sft", "done", "sft"),
        ("sft", "running", "sft"),
        ("eval/base", "done", "eval"),
        ("final", "done", "eval"),
    ],  # fmt: skip
)
def test_overwrite_never_deletes_a_users_file(recipe, tmp_path, capsys, step, status, stage):
    """--overwrite deleted OUT/sft/my_notes.txt (the whole folder went). A step that finished
    lists its files; one killed with its driver ('running') is judged by the names its program
    writes."""
    run_dir = tmp_path / "run"
    _earlier_run(run_dir, {step: status})
    notes = run_dir / step / "my_notes.txt"
    notes.write_text("mine")
    before = sorted(run_dir.rglob("*"))
    assert run_module.main(["--config", str(recipe), "--overwrite", "--stage", stage]) == 2
    assert str(notes) in _one_line(capsys) and notes.read_text() == "mine"
    assert sorted(run_dir.rglob("*")) == before  # nothing was deleted or written
    # without the user's file, the step's own files go and nothing else
    notes.unlink()
    (run_dir / "my_notes.txt").write_text("beside the steps: never touched")
    state = run_module.RunState(run_dir)
    check_step_folder(state.steps[step], step, run_dir / step)
    remove_own(state.steps[step], step, run_dir / step)
    assert not (run_dir / step).exists() and (run_dir / "my_notes.txt").is_file()


def test_run_level_files_of_another_are_refused(recipe, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / STATE_FILE).write_text("my own notes")  # not a run state: never overwritten
    assert run_module.main(["--config", str(recipe), "--resume"]) == 2
    assert "is not the state of a model_training.run run" in _one_line(capsys)
    (run_dir / STATE_FILE).unlink()
    (run_dir / "recipes").mkdir()
    (run_dir / "recipes" / "sft.yaml").write_text("mine")
    assert run_module.main(["--config", str(recipe)]) == 2
    assert "recipes/sft.yaml was not written by this run" in _one_line(capsys)
    assert (run_dir / "recipes" / "sft.yaml").read_text() == "mine"


HOLDER = """
import subprocess, sys, time
from common.folder_lock import FolderLock
lock = FolderLock(sys.argv[1], "model_training.run").acquire()
step = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], pass_fds=(lock.fd,))
lock.add_child(step.pid)
print(step.pid, flush=True)
time.sleep(120)
"""


def test_one_driver_per_output_dir_and_killed_ones_block_nothing(recipe, tmp_path, capsys):
    """Two drivers trained into one sft/ at once. The second is refused, naming the live
    process: the driver, or the step a SIGKILLed driver left running; once they are gone,
    --resume goes on (here to the next refusal: a foreign sft/ folder)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with FolderLock(run_dir / LOCK_FILE, "model_training.run"):  # this very process
        assert run_module.main(["--config", str(recipe)]) == 2
        assert f"in use by another model_training.run (process {os.getpid()}" in _one_line(capsys)
    driver = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run_dir / LOCK_FILE)], stdout=subprocess.PIPE,
        text=True, cwd=REPO,
    )  # fmt: skip
    step = int(driver.stdout.readline())
    try:
        assert run_module.main(["--config", str(recipe), "--resume"]) == 2
        assert f"(process {driver.pid}, since" in _one_line(capsys)
        driver.kill()  # SIGKILL: its step still runs, and still holds the lock
        driver.wait()
        assert run_module.main(["--config", str(recipe), "--resume"]) == 2
        assert f"(process {step}, a step it started" in _one_line(capsys)
    finally:
        os.kill(step, signal.SIGKILL)
        driver.kill()
        driver.stdout.close()
    (run_dir / "sft").mkdir()
    (run_dir / "sft" / "x").write_text("")
    for _ in range(50):  # the killed step's descriptor closes as it exits
        if run_module.main(["--config", str(recipe), "--resume"]) == 2:
            err = _one_line(capsys)
            if "in use" not in err:
                break
    assert "exists but this run did not write it" in err
    assert (run_dir / LOCK_FILE).exists() is False


def test_output_dir_that_is_a_file(recipe, tmp_path):
    """It gave a traceback; now one line, exit 2, as a user sees it, and nothing written."""
    file = tmp_path / "out"
    file.write_text("mine")
    done = subprocess.run(
        [sys.executable, "-m", "model_training.run", "--config", str(recipe), "--output_dir",
         str(file)], capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: output_dir {file} is a file")
    assert file.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == [
        "out", "recipe.yaml"]  # fmt: skip
    with pytest.raises(RecipeError, match="lies under .*out, which is a file"):
        parse_run(["--config", str(recipe), "--output_dir", str(file / "run")])


def test_a_run_refused_after_its_start_leaves_nothing(recipe, tmp_path, capsys):
    assert run_module.main(["--config", str(recipe), "--stage", "grpo"]) == 2
    assert "--stage sft first" in _one_line(capsys) and not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("edit", "argv", "message"),
    [
        (
            {"sft": {"num_train_epochs": "two"}},
            [],
            r"recipe\.yaml, 'sft' section: num_train_epochs: 'two' is not a number",
        ),
        ({"sft": {"max_steps": 1.5}}, [], r"'sft' section: max_steps: 1\.5 is not an integer"),
        ({"grpo": {"reward_funcs": {"format": 1}}}, [], r"'grpo' section: reward_funcs: \{"),
        ({"learning_rate": True}, [], r"recipe\.yaml: learning_rate: True is not a number"),
        ({"eval": {"limit": "four"}}, [], r"'eval' section: limit: 'four' is not an integer"),
        ({"num_processes": [2]}, [], r"recipe\.yaml: num_processes: \[2\] is not an integer"),
        ({}, ["--sft.learning_rate", "abc"], r"command line: .*--learning_rate.*'abc'"),
        ({}, ["--sft.max_steps", "-3"], r"sft stage: max_steps=-3 is out of range: it must be -1"),
        ({}, ["--sft.max_steps", "0"], "max_steps=0 is out of range"),
        ({}, ["--save_total_limit", "0"], "sft stage: save_total_limit=0 is out of range"),
        ({}, ["--grpo.learning_rate=-1e-6"], "grpo stage: learning_rate=-1e-06"),
        ({}, ["--max_grad_norm", "-1"], "max_grad_norm=-1.0 is out of range"),
        ({}, ["--grpo.temperature", "0"], "grpo stage: temperature=0.0"),
        ({}, ["--sft.logging_steps", "nan"], "logging_steps=nan"),
        ({"grpo": {"save_steps": -2}}, [], "grpo stage: save_steps=-2"),
        ({}, ["--push-to-hub", "org/a b"], "push_to_hub 'org/a b' is not a Hub repo id"),
        ({}, ["--push-to-hub", "org/x", "--stage", "sft"], "--stage sft does not write"),
    ],
)
def test_wrong_types_and_ranges_are_one_line(tmp_path, recipe, capsys, edit, argv, message):
    """A type error printed 152 lines of usage; a negative max_steps trained by epochs."""
    content = yaml.safe_load(recipe.read_text())
    for key, value in edit.items():
        content[key] = {**content[key], **value} if isinstance(value, dict) else value
    write_recipe(recipe, content)
    with pytest.raises(RecipeError, match=message):
        parse_run(["--config", str(recipe), *argv])
    if edit == {"sft": {"num_train_epochs": "two"}} or argv[:1] == ["--sft.max_steps"]:
        assert run_module.main(["--config", str(recipe), *argv]) == 2  # as the user sees it
        _one_line(capsys)


def test_a_list_field_reads_a_string_as_the_command_line_does(recipe):
    content = yaml.safe_load(recipe.read_text())
    content["grpo"]["reward_funcs"] = "format correctness"  # was iterated letter by letter
    content["grpo"]["reward_weights"] = [1.0, 2.0]
    plan = parse_run(["--config", str(write_recipe(recipe, content))])
    assert plan.stages["grpo"].training.reward_funcs == ["format", "correctness"]


def test_stage_scripts_read_types_and_ranges_in_one_line(tmp_path, capsys):
    stage = tmp_path / "stage.yaml"
    base = {"output_dir": str(tmp_path / "out"), "use_cpu": True, "bf16": False}
    cases = [
        (sft.main, {"num_train_epochs": "two"}, [], f"recipe {stage}: num_train_epochs: 'two'"),
        (sft.main, {"max_steps": -3}, [], "model_training.sft: max_steps=-3 is out of range"),
        (grpo.main, {}, ["--learning_rate", "abc"], "command line: argument --learning_rate"),
        (grpo.main, {"save_total_limit": 0}, [], "model_training.grpo: save_total_limit=0"),
        (sft.main, {"lerning_rate": 1}, [], "unknown field(s) ['lerning_rate']"),
    ]
    for main, fields, flags, expected in cases:
        stage.write_text(yaml.safe_dump({**base, **fields}))
        assert main(["--config", str(stage), *flags]) == 2
        assert expected in _one_line(capsys)
    assert not (tmp_path / "out").exists()


def test_push_to_an_unreachable_hub_is_refused_before_anything_runs(
    recipe, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nobody listens
    assert run_module.main(["--config", str(recipe), "--push-to-hub", "org/tiny"]) == 2
    err = _one_line(capsys)
    assert "--push-to-hub org/tiny: the Hub at http://127.0.0.1:" in err
    assert "does not answer" in err
    assert not (tmp_path / "run").exists()
    # a push that fails at the end (its PublishError) is one line that says what is kept
    plan = parse_run(["--config", str(recipe), "--push-to-hub", "org/tiny"])
    (tmp_path / "final").mkdir()
    with pytest.raises(RecipeError, match="--push-to-hub org/tiny: .*hub_cards push-model"):
        run_module.publish(plan, {"final_model": str(tmp_path / "final")})
