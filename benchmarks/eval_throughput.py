"""Evaluator throughput (one run each; noisy machines).

Batch mode (default): the evaluator's own loop (``evaluate.run_batches``, the loop
``evaluate.evaluate`` runs: batches planned as it plans them, chat template, processor, greedy
``generate`` with left padding, the task's reply rows) over the same test rows with batch size 1
and with a larger batch; prints samples/s for each and their ratio.

    python benchmarks/eval_throughput.py                       # tiny model, synthetic data
    python benchmarks/eval_throughput.py --model outputs/demo-cpu/final \
        --dataset outputs/ct-rate-vqa-demo --samples 64 --batch-size 16
Target (issue 5): >= 4x at batch 16 with the tiny model on CPU.

Data-parallel mode (``--data-parallel N``): ``evaluate.evaluate`` over the same rows under the
real launcher, with 1 process (``accelerate launch --cpu --num_processes 1``) and with N
(``accelerate launch --multi_gpu --num_processes N``: torchrun; on the CPU it runs with gloo),
each process on the CPU with one thread (OMP_NUM_THREADS=1, torch.set_num_threads(1),
CUDA hidden). Times one warm evaluation (model load, generation, gathering, results and plots),
prints samples/s for each, their ratio, and whether the predictions are identical.

    python benchmarks/eval_throughput.py --data-parallel 2 --cases 40 --samples 256 \
        --batch-size 8 --max-new-tokens 128
Target (issue 9): >= 1.7x with 2 processes on 2 idle cores. The gathering, results and plots
run on the main process alone (~0.3 s here): give the tiny model enough rows and tokens that
generation dominates, as it does for real models.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import datasets
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.names import PROMPT_MODES  # noqa: E402
from model_training.evaluation.evaluate import (  # noqa: E402
    EvaluateArguments,
    evaluate,
    process_state,
    run_batches,
)
from model_training.evaluation.generation import hf_generator, load_model  # noqa: E402
from model_training.evaluation.options import DEFAULT_BATCH_SIZE, DEFAULT_CONFIG  # noqa: E402
from model_training.evaluation.progress import plan_batches  # noqa: E402
from model_training.evaluation.tasks import TASKS, dataset_task  # noqa: E402
from model_training.tiny_model import build_tiny_model  # noqa: E402


def predict(model, processor, ds, config, mode, batch_size, max_new_tokens) -> list[dict]:
    """The prediction rows of ``ds`` in ``mode``, made by the loop ``evaluate`` runs."""
    task = TASKS[dataset_task(ds.column_names, config)]
    batches = plan_batches(ds["id"], (mode,), {}, batch_size)  # ids may repeat: by index
    rows: list[dict] = []
    generate = hf_generator(model, processor, max_new_tokens)
    run_batches(generate, task.reply_rows, ds, batches, rows.extend, progress=False)
    return rows


def samples_per_second(model, processor, ds, config, mode, batch_size, max_new_tokens) -> float:
    start = time.perf_counter()
    rows = predict(model, processor, ds, config, mode, batch_size, max_new_tokens)
    assert len(rows) == len(ds)
    return len(ds) / (time.perf_counter() - start)


def launch_command(processes: int, argv: list[str]) -> list[str]:
    """This script under ``accelerate launch`` with ``processes`` CPU processes."""
    launcher = ["--cpu"] if processes == 1 else ["--multi_gpu"]  # --cpu starts one process
    return [sys.executable, "-m", "accelerate.commands.launch", *launcher, "--num_processes",
            str(processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend",
            "no", "--main_process_port", str(free_port()), __file__, *argv]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def worker(args: argparse.Namespace) -> None:
    """One launched process: a warm-up evaluation, then one timed evaluation of the rows."""
    torch.set_num_threads(1)
    state = process_state()
    out = Path(args.worker)
    options = EvaluateArguments(args.model, args.dataset, str(out / "eval"), args.config,
                                args.split, args.mode, args.samples, args.batch_size,
                                args.max_new_tokens, overwrite=True, progress=False)  # fmt: skip
    evaluate(replace(options, output_dir=str(out / "warm-up"), limit=2 * state.num_processes,
                     batch_size=2, max_new_tokens=4))  # fmt: skip
    state.wait_for_everyone()
    start = time.perf_counter()
    evaluate(options)
    state.wait_for_everyone()
    seconds = time.perf_counter() - start
    if state.is_main_process:
        report = {"processes": state.num_processes, "threads": torch.get_num_threads(),
                  "seconds": seconds, "samples_per_s": args.samples / seconds}  # fmt: skip
        (out / "timing.json").write_text(json.dumps(report))


def data_parallel(args: argparse.Namespace, model_path: str, dataset: str, work: Path) -> None:
    """Time 1 and ``args.data_parallel`` launched processes; print both and the speed-up."""
    rows = len(datasets.load_dataset(dataset, args.config, split=args.split))
    if rows < args.samples:
        raise SystemExit(f"{dataset} ({args.split}) has {rows} rows, fewer than --samples")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    timings, outputs = {}, {}
    for processes in (1, args.data_parallel):
        out = work / f"processes-{processes}"
        argv = ["--worker", str(out), "--model", model_path, "--dataset", dataset, "--config",
                args.config, "--split",
                args.split, "--samples", str(args.samples), "--batch-size", str(args.batch_size),
                "--max-new-tokens", str(args.max_new_tokens), "--mode", args.mode]  # fmt: skip
        run = subprocess.run(launch_command(processes, argv), env=env, capture_output=True,
                             text=True, check=False)  # fmt: skip
        if run.returncode:
            raise SystemExit(f"{processes} process(es) failed:\n{run.stderr[-3000:]}")
        timings[processes] = json.loads((out / "timing.json").read_text())
        outputs[processes] = datasets.Dataset.from_parquet(
            str(out / "eval" / "predictions.parquet")
        )["output"]
    one, many = timings[1], timings[args.data_parallel]
    print(f"model {model_path}, {args.samples} samples ({args.split}), batch {args.batch_size}, "
          f"max_new_tokens {args.max_new_tokens}, {one['threads']} thread a process, "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    print(f"1 process:         {one['samples_per_s']:7.2f} samples/s")
    print(f"{args.data_parallel} processes:       {many['samples_per_s']:7.2f} samples/s")
    print(f"speed-up:          {many['samples_per_s'] / one['samples_per_s']:7.2f}x "
          "(target >= 1.7x with 2 processes)")  # fmt: skip
    print(f"predictions identical: {outputs[1] == outputs[args.data_parallel]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="checkpoint (default: build the tiny one)")
    parser.add_argument("--dataset", default=None, help="built CT-RATE-VQA (default: synthetic)")
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--mode", default="think", choices=PROMPT_MODES)
    parser.add_argument(
        "--data-parallel",
        type=int,
        default=None,
        metavar="N",
        help="compare 1 and N launched CPU processes (one thread each) instead of batch sizes",
    )
    parser.add_argument("--split", default=None, help="default: test; train with --data-parallel")
    parser.add_argument(
        "--cases", type=int, default=12, help="synthetic cases built when --dataset is not given"
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # a launched process
    args = parser.parse_args(argv)
    if args.worker is not None:
        worker(args)
        return 0
    args.split = args.split or ("train" if args.data_parallel else "test")

    work = Path(tempfile.mkdtemp(prefix="eval-throughput-"))
    model_path = args.model or str(build_tiny_model(work / "tiny"))
    dataset = args.dataset
    if dataset is None:
        dataset = str(work / "ct-rate-vqa")
        command = [sys.executable, "-m", "dataset_builder", "build", "--synthetic", str(args.cases),
                   "--synthetic-size", "128", "--synthetic-slices", "24", "--out", dataset,
                   "--no-progress"]  # fmt: skip
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    if args.data_parallel:
        data_parallel(args, model_path, dataset, work)
        return 0
    ds = datasets.load_dataset(dataset, args.config, split=args.split)
    if len(ds) < args.samples:
        ds = datasets.concatenate_datasets([ds] * (args.samples // len(ds) + 1))
    ds = ds.select(range(args.samples))
    model, processor = load_model(model_path)
    torch.manual_seed(0)
    predict(model, processor, ds.select(range(2)), args.config, args.mode, 2, 4)  # warm-up
    timed = (model, processor, ds, args.config, args.mode)
    one = samples_per_second(*timed, 1, args.max_new_tokens)
    many = samples_per_second(*timed, args.batch_size, args.max_new_tokens)
    print(f"model {model_path}, {args.samples} samples, max_new_tokens {args.max_new_tokens}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    print(f"one at a time:     {one:7.2f} samples/s")
    print(f"batch {args.batch_size:<3}:        {many:7.2f} samples/s")
    print(f"speed-up:          {many / one:7.2f}x (target >= 4x at batch 16)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
