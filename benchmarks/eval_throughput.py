"""Evaluator throughput: batched versus one-at-a-time generation (one run; noisy machines).

Runs the evaluator's own prediction loop (``model_training.evaluate.predict``: chat template,
processor, greedy ``generate`` with left padding, reply parsing) over the same test rows with
batch size 1 and with a larger batch, and prints samples/s for each and their ratio.

    python benchmarks/eval_throughput.py                       # tiny model, synthetic data
    python benchmarks/eval_throughput.py --model outputs/demo-cpu/final \
        --dataset outputs/ct-rate-vqa-demo --samples 64 --batch-size 16
Target (issue 5): >= 4x at batch 16 with the tiny model on CPU.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import datasets
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model_training.evaluate import load_model, predict  # noqa: E402
from model_training.tiny_model import build_tiny_model  # noqa: E402


def samples_per_second(model, processor, ds, mode, batch_size, max_new_tokens) -> float:
    start = time.perf_counter()
    rows = predict(model, processor, ds, mode, batch_size, max_new_tokens, progress=False)
    assert len(rows) == len(ds)
    return len(ds) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="checkpoint (default: build the tiny one)")
    parser.add_argument("--dataset", default=None, help="built CT-RATE-VQA (default: synthetic)")
    parser.add_argument("--config", default="zoom")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--mode", default="think", choices=("think", "no-think"))
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="eval-throughput-"))
    model_path = args.model or str(build_tiny_model(work / "tiny"))
    dataset = args.dataset
    if dataset is None:
        dataset = str(work / "ct-rate-vqa")
        command = [sys.executable, "-m", "dataset_builder", "build", "--synthetic", "12",
                   "--synthetic-size", "128", "--synthetic-slices", "24", "--out", dataset,
                   "--no-progress"]  # fmt: skip
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    ds = datasets.load_dataset(dataset, args.config, split="test")
    if len(ds) < args.samples:
        ds = datasets.concatenate_datasets([ds] * (args.samples // len(ds) + 1))
    ds = ds.select(range(args.samples))
    model, processor = load_model(model_path)
    torch.manual_seed(0)
    predict(model, processor, ds.select(range(2)), args.mode, 2, 4, progress=False)  # warm-up
    one = samples_per_second(model, processor, ds, args.mode, 1, args.max_new_tokens)
    many = samples_per_second(model, processor, ds, args.mode, args.batch_size, args.max_new_tokens)
    print(f"model {model_path}, {args.samples} samples, max_new_tokens {args.max_new_tokens}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    print(f"one at a time:     {one:7.2f} samples/s")
    print(f"batch {args.batch_size:<3}:        {many:7.2f} samples/s")
    print(f"speed-up:          {many / one:7.2f}x (target >= 4x at batch 16)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
