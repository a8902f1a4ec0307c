"""The stages convert their rows once per node (issue 18): under ``accelerate launch`` with 2
processes, the main process runs the ``datasets`` maps of SFT conversations and GRPO prompts
(``TrainingArguments.main_process_first``) and the other process reads their cache.

Each conversion logs (debug) how many rows the process converted itself; the launched helper
(tests/stage_data_once_helper.py) turns those lines on. A fresh datasets cache makes the main
process convert every row.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from model_training.tiny_model import build_tiny_model

from .hub_server import free_port
from .stage_data_once_helper import ROWS

ROOT = Path(__file__).resolve().parents[1]
CONVERTED = re.compile(
    r"(SFT conversations|GRPO prompts) \((\w+)\): process (\d+) converted (\d+) rows and read "
    r"(\d+) from the datasets cache"
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("once") / "tiny")


def test_two_processes_convert_the_rows_once(built_dataset, tiny, tmp_path):
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
               "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
               "--dynamo_backend", "no", "--main_process_port", str(free_port()),
               "-m", "tests.stage_data_once_helper", str(tmp_path / "out"), str(tiny),
               str(built_dataset)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_DATASETS_CACHE": str(tmp_path / "cache")}
    run = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert run.returncode == 0, run.stderr[-3000:]
    found = sorted(
        (rank, desc, task, int(converted), int(cached))
        for desc, task, rank, converted, cached in CONVERTED.findall(run.stdout + run.stderr)
    )
    expected = [
        (rank, desc, task, *((ROWS, 0) if rank == "0" else (0, ROWS)))
        for rank in ("0", "1")
        for desc in ("GRPO prompts", "SFT conversations")
        for task in ("classification", "grounding")
    ]
    assert found == expected  # process 1 converted nothing: it read process 0's cache
    for stage in ("sft", "grpo"):
        assert (tmp_path / "out" / stage / "training_summary.json").is_file()
