r"""How much GRPO adds to SFT on the grounding demo, seed by seed (issue 12).

One seed's before/after figures say little on the CPU demo: its 199 test rows are slices of 27
findings, so one changed answer moves a whole finding's slices. This script runs the demo
recipe (or any grounding recipe) once per seed, each in its own folder, resumed when run again,
and prints each seed's box IoU / IoU >= 0.5 / point-Dice after SFT and after GRPO, then the mean
and spread of GRPO's gain over the seeds (from each run's run_summary.json; nothing is timed).

    python benchmarks/grounding_seeds.py [--recipe recipes/demo-grounding-cpu.yaml] \
        [--seeds 0,1,2,3] [--output-dir outputs/grounding-seeds] [run overrides ...]

Arguments after the options are passed to ``python -m model_training.run`` unchanged (e.g.
``--grpo.learning_rate 5e-5``). About 4.5 minutes a seed on 2 CPU cores for the demo recipe.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from common.errors import UserError, user_errors

METRICS = ("iou_mean", "iou_50", "point_dice_mean")  # run_summary's grounding metrics
LABELS = ("after SFT", "after GRPO")  # run_summary's grounding_evaluations keys compared
MODE = "think"  # the demo's evaluation mode


def run_seed(recipe: str, out: Path, seed: int, extra: list[str]) -> dict:
    """Train and evaluate one seed (resumed if its folder exists); its run_summary.json."""
    folder = out / f"seed{seed}"
    command = [sys.executable, "-m", "model_training.run", "--config", recipe,
               "--output_dir", str(folder), "--seed", str(seed), *extra]  # fmt: skip
    if folder.is_dir():
        command.append("--resume")
    subprocess.run(command, check=True)
    return json.loads((folder / "run_summary.json").read_text())


def seed_row(summary: dict) -> dict[str, dict[str, float]]:
    """{label: {metric: value in %}} of one run's grounding evaluations."""
    evaluations = summary.get("grounding_evaluations") or {}
    missing = [label for label in LABELS if MODE not in (evaluations.get(label) or {})]
    if missing:
        raise UserError(f"the run has no {MODE} grounding evaluation {missing}: is the recipe "
                        "a grounding one (task: grounding) with SFT and GRPO?")  # fmt: skip
    return {label: {m: 100 * evaluations[label][MODE][m] for m in METRICS} for label in LABELS}


@user_errors
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="recipes/demo-grounding-cpu.yaml")
    parser.add_argument("--seeds", default="0,1,2,3", help="comma-separated seeds")
    parser.add_argument("--output-dir", default="outputs/grounding-seeds")
    options, extra = parser.parse_known_args(argv)
    try:
        seeds = [int(s) for s in options.seeds.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds {options.seeds!r}: write integers, e.g. 0,1,2") from None
    if not seeds or not Path(options.recipe).is_file():
        raise UserError(f"need seeds and an existing --recipe (got {options.recipe})")
    out = Path(options.output_dir)
    rows = {seed: seed_row(run_seed(options.recipe, out, seed, extra)) for seed in seeds}
    head = "seed  " + "  ".join(f"{lab} IoU / IoU>=0.5 / point-Dice" for lab in LABELS)
    print(f"\n{options.recipe}, {MODE}, test rows (%)\n{head}")
    for seed, row in rows.items():
        cells = ["  ".join(f"{row[lab][m]:5.1f}" for m in METRICS) for lab in LABELS]
        print(f"{seed:>4}  " + "    ".join(cells))
    for metric in METRICS:
        gains = [row[LABELS[1]][metric] - row[LABELS[0]][metric] for row in rows.values()]
        spread = statistics.stdev(gains) if len(gains) > 1 else 0.0
        better = sum(g > 0 for g in gains)
        print(f"GRPO - SFT {metric}: mean {statistics.mean(gains):+.1f} points, sd {spread:.1f}, "
              f"higher in {better} of {len(gains)} seeds")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
