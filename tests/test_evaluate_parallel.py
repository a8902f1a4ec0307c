"""Data-parallel evaluation: the shard plan, and real ``accelerate launch`` runs of 2 processes
(gloo on the CPU) checked against a one-process run of the tiny model.

On the CPU, ``accelerate launch --cpu --num_processes 2`` starts one process (accelerate's simple
launcher); ``--multi_gpu`` starts two through torchrun, which run on the CPU with gloo here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from datasets import load_dataset

from model_training.evaluation.evaluate import EvaluateArguments, evaluate
from model_training.evaluation.progress import (
    PROGRESS_FILE,
    SETTINGS_FILE,
    plan_batches,
    progress_file,
    read_progress,
    shard,
)
from model_training.evaluation.sam import build_tiny_sam
from model_training.tiny_model import build_tiny_model

from .hub_server import free_port

ROOT = Path(__file__).resolve().parents[1]
ARGS = {"limit": 8, "batch_size": 2, "max_new_tokens": 8}  # 8 batches of 2 over both modes


def test_shards_are_whole_batches_of_the_one_process_plan():
    ids = [f"r{i}" for i in range(7)]
    done = {("think", "r1"): {}, ("no-think", "r6"): {}}
    batches = plan_batches(ids, ("think", "no-think"), done, 3)
    assert batches == [
        ("think", [0, 2, 3]), ("think", [4, 5, 6]), ("no-think", [0, 1, 2]),
        ("no-think", [3, 4, 5]),
    ]  # fmt: skip
    shards = [shard(batches, rank, 3) for rank in range(3)]
    assert shards == [[batches[0], batches[3]], [batches[1]], [batches[2]]]
    assert shard(batches, 0, 1) == batches


def launch(processes: int, model: Path, dataset: Path, out: Path, *extra: str):
    """``accelerate launch`` of the evaluator (model_training.evaluation.evaluate), one thread
    a process."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
               "--num_processes", str(processes), "--num_machines", "1", "--mixed_precision",
               "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
               "-m", "model_training.evaluation.evaluate", "--model", str(model),
               "--dataset", str(dataset),
               "--limit", str(ARGS["limit"]), "--batch-size", str(ARGS["batch_size"]),
               "--max-new-tokens", str(ARGS["max_new_tokens"]), "--output-dir", str(out),
               *extra]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny")


@pytest.fixture(scope="module")
def reference(tiny: Path, built_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-process evaluation (plain call, one thread like the launched processes)."""
    out = tmp_path_factory.mktemp("one") / "eval"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        evaluate(EvaluateArguments(str(tiny), str(built_dataset), str(out), progress=False, **ARGS))
    finally:
        torch.set_num_threads(threads)
    return out


def predictions(out: Path) -> list[dict]:
    return load_dataset(
        "parquet", data_files=str(out / "predictions.parquet"), split="train"
    ).to_list()


def test_two_processes_give_the_one_process_results(tiny, built_dataset, reference, tmp_path):
    out = tmp_path / "eval"
    run = launch(2, tiny, built_dataset, out)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("think: accuracy") == 2  # think and no-think, printed once
    assert json.loads((out / "results.json").read_text()) == json.loads(
        (reference / "results.json").read_text()
    )
    assert predictions(out) == predictions(reference)
    assert not (out / PROGRESS_FILE).exists()
    ids = load_dataset(str(built_dataset), "zoom", split="test")["id"][: ARGS["limit"]]
    batches = plan_batches(ids, ("think", "no-think"), {}, ARGS["batch_size"])
    for rank in range(2):
        rows = [json.loads(line) for line in progress_file(out, rank, 2).read_text().splitlines()]
        expected = [(mode, ids[i]) for mode, rows_ in shard(batches, rank, 2) for i in rows_]
        assert [(r["mode"], r["id"]) for r in rows] == expected


def test_two_processes_resume_killed_runs_and_share_refusals(
    tiny, built_dataset, reference, tmp_path
):
    out = tmp_path / "eval"
    out.mkdir()
    shutil.copy(reference / SETTINGS_FILE, out / SETTINGS_FILE)
    lines = (reference / PROGRESS_FILE).read_text().splitlines()
    # a killed one-process run and a killed 2-process rank, each with a cut last line
    (out / PROGRESS_FILE).write_text("\n".join(lines[:3]) + "\n" + lines[3][:25])
    rank1 = progress_file(out, 1, 2)
    rank1.write_text("\n".join(lines[9:12]) + "\n" + lines[12][:30])
    kept = {(r["mode"], r["id"]) for r in map(json.loads, lines[:3] + lines[9:12])}

    run = launch(2, tiny, built_dataset, out)
    assert run.returncode == 0, run.stderr[-3000:]
    generated = progress_file(out, 0, 2).read_text().splitlines()
    generated += rank1.read_text().splitlines()[3:]  # the cut line was dropped, not kept
    keys = [(r["mode"], r["id"]) for r in map(json.loads, generated)]
    assert len(keys) == len(set(keys)) == 16 - len(kept)  # only the missing rows
    assert set(keys) | kept == set(read_progress(reference))
    assert json.loads((out / "results.json").read_text()) == json.loads(
        (reference / "results.json").read_text()
    )
    assert predictions(out) == predictions(reference)

    refused = launch(2, tiny, built_dataset, out, "--max-new-tokens", "9")  # other settings
    assert refused.returncode != 0  # and no process is left waiting for the main one
    assert (refused.stdout + refused.stderr).count("error: ") == 1
    assert "--overwrite" in refused.stderr


def test_two_processes_evaluate_grounding_rows_as_one(tiny, built_dataset, tmp_path):
    """The grounding config under ``accelerate launch`` with 2 processes: the same replies,
    box IoU / point-Dice and the SAM's oracle Dice (a tiny random SAM) as one process."""
    sam = build_tiny_sam(tmp_path / "tiny-sam")
    extra = {"config": "grounding", "sam_model": str(sam)}
    one = tmp_path / "one"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        evaluate(
            EvaluateArguments(
                str(tiny), str(built_dataset), str(one), progress=False, **ARGS, **extra
            )
        )
    finally:
        torch.set_num_threads(threads)
    out = tmp_path / "two"
    run = launch(2, tiny, built_dataset, out, "--config", "grounding", "--sam-model", str(sam))
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    reference = json.loads((one / "results.json").read_text())
    assert results["task"] == "grounding" and results == reference
    think = results["modes"]["think"]
    assert think["n"] == ARGS["limit"] and think["oracle_dice_mean"] is not None
    assert predictions(out) == predictions(one)
    assert all(progress_file(out, rank, 2).is_file() for rank in range(2))
