"""benchmarks/grounding_seeds.py: one real tiny grounding run per seed through the run driver,
each seed's SFT and GRPO figures printed as its run_summary.json holds them, resumed when run
again; bad seeds are refused in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from model_training.grounding_rewards import GROUNDING_SOFT_REWARDS

from .test_run import TINY_RUN, write_recipe

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "grounding_seeds.py"


def _script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True,
        timeout=900, check=False,
    )  # fmt: skip


def test_two_seeds_are_run_printed_and_resumed(tmp_path, built_dataset):
    recipe = write_recipe(
        tmp_path / "recipe.yaml",
        {"model_name_or_path": str(tmp_path / "tiny"), "dataset_name": str(built_dataset),
         **TINY_RUN, "output_dir": str(tmp_path / "unused"), "task": "grounding",
         "eval": {**{k: v for k, v in TINY_RUN["eval"].items() if k != "judge"}, "mode": "think",
                  "sam_model": "none", "max_new_tokens": 16},
         "eval_base_model": False,
         "grpo": {**TINY_RUN["grpo"], "max_completion_length": 16,
                  "reward_funcs": list(GROUNDING_SOFT_REWARDS),
                  "reward_weights": [1.0] * len(GROUNDING_SOFT_REWARDS)}},
    )  # fmt: skip
    out = tmp_path / "seeds"
    args = ["--recipe", str(recipe), "--seeds", "0,1", "--output-dir", str(out)]
    run = _script(*args)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    for seed in (0, 1):
        summary = json.loads((out / f"seed{seed}" / "run_summary.json").read_text())
        evaluations = summary["grounding_evaluations"]
        expected = "    ".join(
            "  ".join(f"{100 * evaluations[label]['think'][m]:5.1f}"
                      for m in ("iou_mean", "iou_50", "point_dice_mean"))
            for label in ("after SFT", "after GRPO")
        )  # fmt: skip
        assert f"{seed:>4}  {expected}" in lines
        sft = (out / f"seed{seed}" / "recipes" / "sft.yaml").read_text()
        assert f"seed: {seed}" in sft  # each seed trained with its own seed
    assert sum(line.startswith("GRPO - SFT") for line in lines) == 3
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("seed*/eval/*/results.json")}
    again = _script(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # resumed: nothing redone


def test_bad_seeds_are_refused_in_one_line(tmp_path):
    run = _script("--seeds", "one,two", "--output-dir", str(tmp_path))
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "--seeds" in run.stderr
    assert not any(tmp_path.iterdir())
