r"""Evaluate a checkpoint on CT-RATE-VQA: accuracy per class, macro and micro, per prompt mode
(classification configs); box IoU, point-Dice and SAM mask Dice (the grounding config).

    python -m model_training.evaluation.evaluate --model PATH_OR_REPO --dataset PATH_OR_REPO \
        [--config zoom] [--split test] [--mode think|no-think|both] [--limit N] --output-dir DIR
    accelerate launch --num_processes 8 -m model_training.evaluation.evaluate ...  # data parallel
    python -m model_training.evaluation.evaluate --backend vllm [--tensor-parallel-size N] ...

Options: the fields of ``EvaluateArguments`` (``--help`` lists them), parsed by transformers'
``HfArgumentParser``; ``--max-new-tokens`` and ``--max_new_tokens`` are the same option.
``evaluate(EvaluateArguments(...))`` runs the same evaluation from Python. A user error (a
path that is not a model or dataset, a checkpoint without weights or processor, a judge that
cannot run, an output folder that is a file, a bad option) exits with status 2 and one line,
before ``--output-dir`` is created and before any reply is generated. A built folder whose
``build_manifest.json`` says the build is incomplete is refused unless
``--allow-incomplete-build``.

Tasks: the dataset config's columns name the task (``tasks.TASKS``: classification or
grounding), looked up once; the task refuses the options of other tasks, keeps the rows of each
reply, scores them and writes the report (``tasks/classification.py``, ``tasks/grounding.py``).

Writes into DIR: ``results.json`` (the schema ``hub_cards.model_card`` reads),
``predictions.parquet`` (one row per sample and mode) and the task's plots
(``per_class_accuracy.png`` and ``confusion_<mode>.png``; ``per_class_grounding.png`` and
``grounding_<mode>.png``). Batched generation with left padding. Resumable: every finished batch
is appended to ``predictions.jsonl``; a re-run with the same model, dataset, prompts and
decoding generates only the samples still missing.

Image ablation (``--image-ablation``, ``image_ablation.py``): does the model look at the image?
``blank`` prompts each row with a uniform mid-grey image of its image's size and mode;
``shuffle`` with another evaluated row's image (a permutation seeded with ``--ablation-seed``
that keeps no row's own image, the same whatever the process count). Only the prompted image
changes: the gold answer (and the grounding box, points, mask and SAM image) stay the row's.
results.json records ``"image_ablation": {"mode": ..., "seed": ...}``; predictions made with
one ablation are never resumed with another.

Decoding (``decoding.Decoding``, the same on both backends and in the Space): greedy, at most
``--max-new-tokens`` tokens, repetition penalty ``--repetition-penalty`` (default 1.0: none, as
in GRPO's rollouts), whatever the checkpoint's ``generation_config.json`` asks for (the
Qwen2.5-VL-Instruct one asks for 1.05 and sampling). results.json records it: ``"decoding":
{"strategy": "greedy", "repetition_penalty": ..., "max_new_tokens": ...}``.

Data parallel: under ``accelerate launch`` the missing samples are cut into batches (as one
process would cut them) and process r of n takes batches r, r + n, ...; it generates on its own
device (bf16 on CUDA, fp32 on CPU) and appends to its own ``predictions.rank<r>-of-<n>.jsonl``.
Every process reads all progress files before it starts, so a run resumes from any earlier run,
whatever its process count. The main process alone writes the results and runs the judge. The
results equal a one-process run's. On a machine without CUDA, start N CPU processes (gloo) with
``accelerate launch --multi_gpu --num_processes N``: ``--cpu`` makes accelerate start only one.

Backends: ``hf`` (transformers ``generate``) or ``vllm`` (``vllm.LLM``, one process; vLLM
parallelises itself: ``--tensor-parallel-size``). With vLLM, ``--batch-size`` is the number of
prompts handed to vLLM at a time (their predictions are saved before the next): use hundreds.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import datasets
import torch
from accelerate import PartialState
from accelerate.utils import broadcast_object_list, parse_flag_from_env
from tqdm.auto import tqdm

from common.build_status import check_build_complete
from common.cli_options import parse_options
from common.errors import UserError, report, user_errors
from common.hub_ids import is_hub_id

from .generation import Generate, check_backend, check_model, generator
from .image_ablation import Ablate, ablated_rows, image_ablation
from .options import (
    EVAL_MODULE,
    EvaluateArguments,
    EvaluationError,
)
from .preflight import check_output_folder
from .progress import (
    PROGRESS_FILE,
    RANK_PROGRESS_FILE,
    SETTINGS_FILE,
    Batch,
    check_complete,
    plan_batches,
    prepare_output,
    progress_file,
    progress_sink,
    read_progress,
    run_settings,
    shard,
)
from .tasks import TASKS, Evaluated, dataset_task, task_files

# the evaluator's public face: its options (and their defaults), its error, its entry points

ReplyRows = Callable[[list[dict], list[str], str], list[dict]]  # a task's (rows, replies, mode)
T = TypeVar("T")


def batch_rows(batch: dict[str, list]) -> list[dict]:
    """The rows of a dataset slice (``ds[a:b]``, a dict of columns)."""
    return [dict(zip(batch, values, strict=True)) for values in zip(*batch.values(), strict=True)]


def run_batches(
    generate: Generate,
    reply_rows: ReplyRows,
    ds: datasets.Dataset,
    batches: list[Batch],
    sink: Callable[[list[dict]], None],
    progress: bool,
    ablate: Ablate,
) -> None:
    """Generate ``batches`` of ``ds``, each row prompted with the image ``ablate`` gives it
    (``--image-ablation``; its own with ``none``), and pass each finished batch's rows (the
    task's ``reply_rows``) to ``sink``: the evaluator's loop."""
    for mode, indices in tqdm(batches, desc="eval", unit="batch", disable=not progress):
        rows = ablated_rows(batch_rows(ds.select(indices)[:]), indices, ablate)
        sink(reply_rows(rows, generate(rows, mode), mode))


# -- processes ---------------------------------------------------------------------------------


def process_state() -> PartialState:
    """This process's place among those ``accelerate launch`` started (one without it). With
    no CUDA device, or under ``accelerate launch --cpu``, they run on the CPU (gloo).

    Note: on the CPU, ``accelerate launch --cpu --num_processes N`` starts ONE process (its
    simple launcher); ``accelerate launch --multi_gpu --num_processes N`` (torchrun) starts N."""
    return PartialState(
        cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available()
    )


def on_main_first(state: PartialState, action: Callable[[], T]) -> T | None:
    """Run ``action`` on the main process while the others wait, and return its value there
    (None elsewhere); a user error it raises is raised in every process (so none is left
    waiting for the others)."""
    error: list[str | None] = [None]
    value = None
    if state.is_main_process:
        try:
            value = action()
        except UserError as err:
            error[0] = str(err)
    broadcast_object_list(error)  # also the barrier
    if error[0] is not None:
        raise EvaluationError(error[0])
    return value


# -- the evaluated rows ------------------------------------------------------------------------


def load_split(options: EvaluateArguments) -> datasets.Dataset:
    """The rows to evaluate; a dataset, config or split that is not there is an
    EvaluationError that says what is there. A built folder whose manifest says the build is
    incomplete is refused unless ``options.allow_incomplete_build``."""
    name, config, split, revision = (
        options.dataset, options.config, options.split, options.revision
    )  # fmt: skip
    if not Path(name).exists() and not is_hub_id(name):
        raise EvaluationError(
            f"dataset {name} does not exist: pass a built CT-RATE-VQA folder "
            "(python -m dataset_builder build) or a Hub dataset id"
        )
    if revision is not None and Path(name).exists():  # a folder has no revisions: ignored
        raise EvaluationError(
            f"--revision {revision} applies to a Hub dataset id, and dataset {name} is a local "
            "folder: drop --revision"
        )
    check_build_complete(name, options.allow_incomplete_build)
    try:
        configs = datasets.get_dataset_config_names(name, revision=revision)
    except (FileNotFoundError, datasets.exceptions.DatasetsError) as err:
        kind = "folder" if Path(name).exists() else "Hub id"
        raise EvaluationError(
            f"dataset {name} ({kind}) could not be read ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); pass a built CT-RATE-VQA folder "
            "or a Hub dataset id you can access"
        ) from None
    if config not in configs:
        raise EvaluationError(
            f"dataset {name} has no config {config!r}; its configs are {', '.join(configs)}: "
            "pass one with --config"
        )
    splits = datasets.get_dataset_split_names(name, config, revision=revision)
    if split not in splits:
        raise EvaluationError(
            f"dataset {name} (config {config!r}) has no split {split!r}; its splits are "
            f"{', '.join(splits)}: pass one with --split"
        )
    ds = datasets.load_dataset(name, config, split=split, revision=revision)
    return ds.select(range(min(options.limit, len(ds)))) if options.limit is not None else ds


# -- the evaluation ----------------------------------------------------------------------------


def evaluator_files() -> tuple[str, ...]:
    """Every name (glob pattern) the evaluator writes into its output folder: its progress
    files and each task's (the run's eval step folders hold these only)."""
    every_rank = RANK_PROGRESS_FILE.format(rank="*", world="*")
    return (PROGRESS_FILE, every_rank, SETTINGS_FILE, *task_files())


def evaluate(options: EvaluateArguments) -> dict | None:
    """Evaluate (resuming from ``options.output_dir``) and write results, predictions and
    plots; with ``options.judge`` (a causal LM id/path or an OpenAI-compatible URL), also the
    reasoning-answer consistency of the ``think`` mode (see ``model_training.evaluation.judge``).

    The output folder, the model (and its processor), the dataset, config, split and the
    task's own inputs (a judge, a SAM) are checked before ``output_dir`` is created. Under
    ``accelerate launch`` every process generates its share of the missing batches; the main
    process returns the report and the others None."""
    state = process_state()
    check_backend(options.backend, state.num_processes)
    check_output_folder(options.output_dir, "--output-dir", EvaluationError, evaluator_files())
    output_dir = Path(options.output_dir)
    check_model(options.model, options.trust_remote_code)
    ds = on_main_first(state, lambda: load_split(options))  # the main process downloads
    ds = ds if ds is not None else load_split(options)
    task = TASKS[dataset_task(ds.column_names, options.config)]
    task.check_options(options)
    on_main_first(state, lambda: task.check_inputs(options))
    ablate = image_ablation(options, ds)  # over every evaluated row, the same in each process
    settings = run_settings(options, task.name)
    on_main_first(state, lambda: prepare_output(output_dir, settings, options.overwrite))
    done = read_progress(output_dir)
    state.wait_for_everyone()  # every process has read the progress before any appends to it
    batches = plan_batches(ds["id"], options.modes, done, options.batch_size)
    mine = shard(batches, state.process_index, state.num_processes)
    if mine:
        generate = generator(options, state.device)
        path = progress_file(output_dir, state.process_index, state.num_processes)
        with progress_sink(path) as sink:
            show = options.progress and state.is_main_process
            run_batches(generate, task.reply_rows, ds, mine, sink, show, ablate)
        del generate  # the model's memory is free before the judge's
    state.wait_for_everyone()
    if not state.is_main_process:
        return None
    done = read_progress(output_dir)
    check_complete(done, options.modes, ds["id"], output_dir)
    return task.write_report(Evaluated(options, settings, ds, done))


def print_report(report: dict) -> None:
    """The headline figures of a results.json, a line per mode (its task's)."""
    TASKS[report["task"]].print_report(report)


@user_errors
def main(argv: list[str] | None = None) -> int:
    try:
        (options,) = parse_options(EvaluateArguments, argv, f"python -m {EVAL_MODULE}", __doc__)
        results = evaluate(options)
    except UserError as err:  # said once, by the main process (user_errors: one line, exit 2)
        if PartialState().is_main_process:
            raise
        return report(err, show=False)
    finally:  # leave the process group before exit (gloo's threads abort an unclean exit)
        PartialState().destroy_process_group()
    if results is not None:  # the main process
        print_report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
