r"""Evaluate a checkpoint on CT-RATE-VQA: accuracy per class, macro and micro, per prompt mode.

    python -m model_training.evaluation.evaluate --model PATH_OR_REPO --dataset PATH_OR_REPO \
        [--config zoom] [--split test] [--mode think|no-think|both] [--limit N] --output-dir DIR
    accelerate launch --num_processes 8 -m model_training.evaluation.evaluate ...  # data parallel
    python -m model_training.evaluation.evaluate --backend vllm [--tensor-parallel-size N] ...

Options: the fields of ``EvaluateArguments`` (``--help`` lists them), parsed by transformers'
``HfArgumentParser``; ``--max-new-tokens`` and ``--max_new_tokens`` are the same option.
``evaluate(EvaluateArguments(...))`` runs the same evaluation from Python. A user error (a
path that is not a model or dataset, a bad option) exits with status 2 and one line, before
``--output-dir`` is created.

Writes into DIR: ``results.json`` (the schema ``hub_cards.model_card`` reads),
``predictions.parquet`` (one row per sample and mode), ``per_class_accuracy.png`` and
``confusion_<mode>.png``. Batched generation with left padding. Resumable: every finished batch
is appended to ``predictions.jsonl``; a re-run with the same model, dataset, prompts and
decoding generates only the samples still missing.

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

Scoring: the class inside the reply's last ``<answer>...</answer>``. A reply without answer
tags (a baseline not trained on our format) is scored by a fallback: the single class whose
full name appears in its text. Fallback answers count towards accuracy; ``fallback_rate``
and ``accuracy_micro_tags_only`` report them separately.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

import datasets
import torch
from accelerate import PartialState
from accelerate.utils import broadcast_object_list, parse_flag_from_env
from tqdm.auto import tqdm

from common.cli_options import parse_options
from common.errors import UserError
from common.hub_ids import is_hub_id
from common.names import (
    CLASSIFICATION_TASK,
    GROUNDING_TASK,
)

from .. import prompts
from ..answers import fallback_class, parse_reply
from ..backends import vllm_problem
from ..processor import load_processor
from ..training_history import display_name, json_or_none, training_record
from .decoding import DEFAULT_REPETITION_PENALTY, Decoding, DecodingError
from .grounding_eval import GroundingError, check_options, dataset_task, reply_rows
from .grounding_eval import print_report as print_grounding_report
from .grounding_eval import write_report as write_grounding_report
from .plots import confusion_plot, per_class_bars
from .sam import DEFAULT_SAM_MODEL, sam_or_none

DEFAULT_BATCH_SIZE = 16
DEFAULT_MAX_NEW_TOKENS = 96  # enough for a short <think> and the answer
DEFAULT_MODE = "both"  # every prompt mode (prompts.MODES)
DEFAULT_CONFIG = "zoom"
DEFAULT_SPLIT = "test"
DEFAULT_BACKEND = "hf"
BACKENDS = ("hf", "vllm")
DEFAULT_TENSOR_PARALLEL_SIZE = 1
DEFAULT_MAX_MODEL_LEN = 4096  # vLLM: prompt (a 512 px slice is 324 image tokens) and reply
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9
PROGRESS_FILE = "predictions.jsonl"  # one process
RANK_PROGRESS_FILE = "predictions.rank{rank}-of-{world}.jsonl"  # process rank of world (> 1)
SETTINGS_FILE = "eval_settings.json"

Generate = Callable[[list[dict], str], list[str]]  # (rows, mode) -> one reply per row
Batch = tuple[str, list[int]]  # (mode, dataset row indices)


class EvaluationError(UserError):
    """An evaluation that cannot go on; the message says what to change."""


@dataclass
class EvaluateArguments:
    """The options of ``python -m model_training.evaluation.evaluate`` (one field, one option)."""

    model: str = field(metadata={"help": "checkpoint folder or Hub id of an image-text model"})
    dataset: str = field(metadata={"help": "built CT-RATE-VQA folder or Hub dataset id"})
    output_dir: str = field(
        metadata={"help": "folder for results.json, predictions and plots (resumable)"}
    )
    config: str = field(default=DEFAULT_CONFIG, metadata={"help": "dataset config"})
    split: str = field(default=DEFAULT_SPLIT, metadata={"help": "dataset split"})
    mode: Literal["think", "no-think", "both"] = field(
        default=DEFAULT_MODE, metadata={"help": "prompt mode(s) to evaluate"}
    )
    limit: int | None = field(
        default=None, metadata={"help": "evaluate only the first N rows (N >= 1)"}
    )
    batch_size: int = field(
        default=DEFAULT_BATCH_SIZE,
        metadata={"help": "rows per generate call (vllm: per hand-over)"},
    )
    max_new_tokens: int = field(
        default=DEFAULT_MAX_NEW_TOKENS, metadata={"help": "reply tokens per row"}
    )
    repetition_penalty: float = field(
        default=DEFAULT_REPETITION_PENALTY,
        metadata={
            "help": "greedy decoding's repetition penalty (> 0; 1.0: none, as GRPO's rollouts), "
            "on both backends, whatever the checkpoint's generation_config says"
        },
    )
    revision: str | None = field(default=None, metadata={"help": "dataset revision (Hub)"})
    overwrite: bool = field(
        default=False, metadata={"help": "discard predictions already in --output-dir"}
    )
    judge: str | None = field(
        default=None,
        metadata={
            "help": "reasoning-answer consistency judge: a causal LM id or path, an "
            "OpenAI-compatible endpoint URL (http://HOST:PORT/v1), or 'keyword' (no model: the "
            "single class the reasoning names; offline, for the CPU miniatures)"
        },
    )
    judge_model: str | None = field(
        default=None, metadata={"help": "model name at the judge endpoint (default: its first)"}
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={"help": "run the model repo's own code (only baselines that need it; read it)"},
    )
    backend: Literal["hf", "vllm"] = field(
        default=DEFAULT_BACKEND,
        metadata={
            "help": "hf: transformers generate (data parallel under accelerate launch); vllm: "
            "vLLM in one process (GPU machines)"
        },
    )
    tensor_parallel_size: int = field(
        default=DEFAULT_TENSOR_PARALLEL_SIZE, metadata={"help": "vllm: GPUs per model"}
    )
    max_model_len: int = field(
        default=DEFAULT_MAX_MODEL_LEN, metadata={"help": "vllm: prompt and reply tokens"}
    )
    gpu_memory_utilization: float = field(
        default=DEFAULT_GPU_MEMORY_UTILIZATION,
        metadata={"help": "vllm: share of GPU memory for weights and KV cache"},
    )
    progress: bool = field(default=True, metadata={"help": "progress bar (--no-progress: none)"})
    sam_model: str | None = field(
        default=DEFAULT_SAM_MODEL,
        metadata={
            "help": "grounding configs: the frozen SAM (or SAM2) checkpoint, folder or Hub id, "
            "prompted with the predicted box and points for mask Dice; 'none': no mask Dice"
        },
    )

    def __post_init__(self) -> None:
        self.sam_model = sam_or_none(self.sam_model)
        for name in ("limit", "batch_size", "max_new_tokens", "tensor_parallel_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise EvaluationError(
                    f"--{name}={value}: give a positive number of rows / tokens / GPUs"
                )
        try:
            self.decoding  # noqa: B018  (checks --repetition-penalty)
        except DecodingError as err:
            raise EvaluationError(str(err)) from None
        if self.mode not in (*prompts.MODES, "both"):
            raise EvaluationError(
                f"--mode {self.mode!r}: use one of {', '.join(prompts.MODES)}, both"
            )
        vllm_only = {
            "tensor_parallel_size": DEFAULT_TENSOR_PARALLEL_SIZE,
            "max_model_len": DEFAULT_MAX_MODEL_LEN,
            "gpu_memory_utilization": DEFAULT_GPU_MEMORY_UTILIZATION,
        }
        changed = [k for k, default in vllm_only.items() if getattr(self, k) != default]
        if self.backend != "vllm" and changed:  # accepted and ignored otherwise
            raise EvaluationError(
                f"--{changed[0].replace('_', '-')} applies to --backend vllm only; drop it or "
                "add --backend vllm"
            )
        if self.judge_model is not None and not str(self.judge).startswith(("http://", "https://")):
            raise EvaluationError(
                "--judge-model names the model at a judge endpoint: give --judge http(s)://.../v1 "
                "or drop --judge-model"
            )

    @property
    def decoding(self) -> Decoding:
        """The decoding of every reply (both backends)."""
        return Decoding(self.max_new_tokens, self.repetition_penalty)

    @property
    def modes(self) -> tuple[str, ...]:
        """The prompt modes to evaluate."""
        return prompts.MODES if self.mode == "both" else (self.mode,)


def score(rows: list[dict], classes: list[str]) -> dict:
    """Metrics of one mode from prediction rows {gold, answer, well_formed[, parsed_by]}."""
    n = len(rows)
    support = Counter(r["gold"] for r in rows)
    hits = Counter(r["gold"] for r in rows if r["answer"] == r["gold"])
    parsed_by = [r.get("parsed_by", "tags" if r["answer"] is not None else None) for r in rows]
    per_class = {
        c: {"accuracy": hits[c] / support[c] if support[c] else 0.0, "support": support[c]}
        for c in classes
    }
    present = [c for c in classes if support[c]]
    strict_hits = sum(
        r["answer"] == r["gold"] for r, how in zip(rows, parsed_by, strict=True) if how == "tags"
    )
    return {
        "n": n,
        "accuracy_micro": sum(hits.values()) / n if n else 0.0,
        "accuracy_macro": sum(per_class[c]["accuracy"] for c in present) / len(present)
        if present
        else 0.0,
        "per_class": per_class,
        "format_rate": sum(r["well_formed"] for r in rows) / n if n else 0.0,
        "validity_rate": parsed_by.count("tags") / n if n else 0.0,
        "fallback_rate": parsed_by.count("fallback") / n if n else 0.0,
        "accuracy_micro_tags_only": strict_hits / n if n else 0.0,
    }


def read_reply(reply: str, options: list[str]) -> dict:
    """The scored fields of one reply: answer, how it was found, and the format check."""
    parsed = parse_reply(reply, options)
    answer, how = parsed.answer, "tags" if parsed.answer is not None else None
    if parsed.answer_text is None:
        answer = fallback_class(reply, options)
        how = "fallback" if answer is not None else None
    return {
        "answer": answer,
        "parsed_by": how,
        "well_formed": parsed.well_formed,
        "think": parsed.think,
    }


@torch.no_grad()
def greedy_replies(
    model,
    processor,
    conversations: list[list[dict]],
    images: list,
    max_new_tokens: int,
    repetition_penalty: float = DEFAULT_REPETITION_PENALTY,
) -> list[str]:
    """Greedy replies (``Decoding``, not the checkpoint's generation_config) to one batch of
    (conversation, image) prompts, left padded."""
    processor.tokenizer.padding_side = "left"
    texts = [processor.apply_chat_template(c, add_generation_prompt=True) for c in conversations]
    inputs = processor(
        images=[image.convert("RGB") for image in images],
        text=texts,
        padding=True,
        return_tensors="pt",
    ).to(model.device)
    decoding = Decoding(max_new_tokens, repetition_penalty)
    generated = model.generate(**inputs, generation_config=decoding.generation_config())
    return processor.batch_decode(
        generated[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True
    )


def generate_replies(
    model,
    processor,
    rows: list[dict],
    mode: str,
    max_new_tokens: int,
    repetition_penalty: float = DEFAULT_REPETITION_PENALTY,
) -> list[str]:
    """Greedy replies to one batch of CT-RATE-VQA rows in prompt ``mode``."""
    conversations = [prompts.prompt_messages(r, mode) for r in rows]
    images = [r["image"] for r in rows]
    return greedy_replies(
        model, processor, conversations, images, max_new_tokens, repetition_penalty
    )


def batch_rows(batch: dict[str, list]) -> list[dict]:
    """The rows of a dataset slice (``ds[a:b]``, a dict of columns)."""
    return [dict(zip(batch, values, strict=True)) for values in zip(*batch.values(), strict=True)]


def prediction_rows(rows: list[dict], replies: list[str], mode: str) -> list[dict]:
    """The prediction rows (scored replies) of one batch (grounding rows: scored at the end)."""
    if rows and prompts.task_of(rows[0]) == GROUNDING_TASK:
        return reply_rows(rows, replies, mode)
    done = []
    for row, reply in zip(rows, replies, strict=True):
        read = read_reply(reply, row["options"])
        done.append(
            {
                "id": row["id"],
                "mode": mode,
                "gold": row["answer"],
                "output": reply,
                **read,
                "correct": read["answer"] == row["answer"],
            }
        )
    return done


def predict(
    model,
    processor,
    ds: datasets.Dataset,
    mode: str,
    batch_size: int,
    max_new_tokens: int,
    progress: bool = True,
    sink=None,
    repetition_penalty: float = DEFAULT_REPETITION_PENALTY,
) -> list[dict]:
    """Prediction rows of ``ds`` in ``mode``; each finished batch is also passed to ``sink``."""
    out = []
    for start in tqdm(range(0, len(ds), batch_size), desc=f"eval ({mode})", disable=not progress):
        rows = batch_rows(ds[start : start + batch_size])
        replies = generate_replies(model, processor, rows, mode, max_new_tokens, repetition_penalty)
        done = prediction_rows(rows, replies, mode)
        if sink is not None:
            sink(done)
        out.extend(done)
    return out


# -- sharding ----------------------------------------------------------------------------------


def plan_batches(
    ids: list[str], modes: tuple[str, ...], done: dict[tuple, dict], batch_size: int
) -> list[Batch]:
    """The batches one process would generate: per mode, the missing rows in dataset order."""
    batches = []
    for mode in modes:
        missing = [i for i, id_ in enumerate(ids) if (mode, id_) not in done]
        batches += [(mode, missing[s : s + batch_size]) for s in range(0, len(missing), batch_size)]
    return batches


def shard(batches: list[Batch], rank: int, world: int) -> list[Batch]:
    """Process ``rank``'s share of ``world``: whole batches rank, rank + world, ... (a batch
    keeps the rows, and so the padding, it has in a one-process run)."""
    return batches[rank::world]


def run_batches(
    generate: Generate,
    ds: datasets.Dataset,
    batches: list[Batch],
    sink: Callable[[list[dict]], None],
    progress: bool,
) -> None:
    """Generate and score ``batches`` of ``ds``, passing each finished batch to ``sink``."""
    for mode, indices in tqdm(batches, desc="eval", unit="batch", disable=not progress):
        rows = batch_rows(ds.select(indices)[:])
        sink(prediction_rows(rows, generate(rows, mode), mode))


# -- progress files ----------------------------------------------------------------------------


def source_name(name: str) -> str:
    """A model or dataset as recorded: a local path normalised (``./a/b/`` -> ``a/b``), a Hub
    id as given."""
    return os.path.normpath(name) if Path(name).exists() else name


def _same_source(settings: dict) -> dict:
    """``settings`` with local model and dataset paths resolved, for comparing two runs'."""
    return {
        **settings,
        **{k: str(Path(settings[k]).resolve()) for k in ("model", "dataset")
           if k in settings and Path(settings[k]).exists()},
    }  # fmt: skip


def _settings(options: EvaluateArguments) -> dict:
    settings = {
        "model": source_name(options.model),
        "dataset": source_name(options.dataset),
        "config": options.config,
        "split": options.split,
        "max_new_tokens": options.max_new_tokens,
        "repetition_penalty": options.repetition_penalty,
        "prompts": prompts.record(),
    }
    if options.backend != DEFAULT_BACKEND:  # folders of hf runs stay resumable as they were
        settings["backend"] = options.backend
    return settings


def progress_file(output_dir: Path, rank: int = 0, world: int = 1) -> Path:
    """The progress file that process ``rank`` of ``world`` appends to."""
    name = PROGRESS_FILE if world == 1 else RANK_PROGRESS_FILE.format(rank=rank, world=world)
    return output_dir / name


def progress_files(output_dir: Path) -> list[Path]:
    """Every progress file in ``output_dir``, of any process count."""
    pattern = RANK_PROGRESS_FILE.format(rank="*", world="*")
    return sorted(p for p in [output_dir / PROGRESS_FILE, *output_dir.glob(pattern)] if p.is_file())


def read_progress(output_dir: Path) -> dict[tuple, dict]:
    """The prediction rows in ``output_dir``'s progress files, by (mode, id)."""
    done = {}
    for path in progress_files(output_dir):
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:  # the last line of a killed run may be cut
                continue
            done[(row["mode"], row["id"])] = row
    return done


def prepare_output(output_dir: Path, settings: dict, overwrite: bool) -> None:
    """Create ``output_dir``, refuse predictions of other settings (or delete them with
    ``overwrite``) and record the settings. One process does this while the others wait."""
    output_dir.mkdir(parents=True, exist_ok=True)
    settings_file = output_dir / SETTINGS_FILE
    if overwrite:
        for path in progress_files(output_dir):
            path.unlink()
    elif settings_file.is_file() and progress_files(output_dir):
        earlier, now = _same_source(json.loads(settings_file.read_text())), _same_source(settings)
        changed = sorted(k for k in {*earlier, *now} if earlier.get(k) != now.get(k))
        if changed:  # e.g. a run before --repetition-penalty: the checkpoint's decoding
            raise EvaluationError(
                f"{output_dir} holds predictions of another evaluation ({settings_file} differs "
                f"in {', '.join(changed)}); use another --output-dir, or --overwrite to discard "
                "them"
            )
    settings_file.write_text(json.dumps(settings, indent=1))


def load_progress(output_dir: Path, settings: dict, overwrite: bool) -> dict[tuple, dict]:
    """Predictions already made in ``output_dir`` for these settings, by (mode, id)."""
    prepare_output(output_dir, settings, overwrite)
    return read_progress(output_dir)


def _drop_cut_line(path: Path) -> None:
    """Cut a killed run's unfinished last line, so that appended rows start on a line."""
    if path.is_file():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            os.truncate(path, data.rfind(b"\n") + 1)


@contextmanager
def progress_sink(path: Path) -> Iterator[Callable[[list[dict]], None]]:
    """A function that appends finished prediction rows to ``path`` (flushed per batch)."""
    _drop_cut_line(path)
    with path.open("a") as sink:

        def append(rows: list[dict]) -> None:
            for row in rows:
                sink.write(json.dumps(row) + "\n")
            sink.flush()

        yield append


# -- processes and backends --------------------------------------------------------------------


def process_state() -> PartialState:
    """This process's place among those ``accelerate launch`` started (one without it). With
    no CUDA device, or under ``accelerate launch --cpu``, they run on the CPU (gloo).

    Note: on the CPU, ``accelerate launch --cpu --num_processes N`` starts ONE process (its
    simple launcher); ``accelerate launch --multi_gpu --num_processes N`` (torchrun) starts N."""
    return PartialState(
        cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available()
    )


T = TypeVar("T")


def on_main_first(state: PartialState, action: Callable[[], T]) -> T | None:
    """Run ``action`` on the main process while the others wait, and return its value there
    (None elsewhere); an EvaluationError it raises is raised in every process (so none is left
    waiting for the others)."""
    error: list[str | None] = [None]
    value = None
    if state.is_main_process:
        try:
            value = action()
        except EvaluationError as err:
            error[0] = str(err)
    broadcast_object_list(error)  # also the barrier
    if error[0] is not None:
        raise EvaluationError(error[0])
    return value


def check_backend(backend: str, num_processes: int) -> None:
    """Refuse a backend that cannot run here, before anything is loaded."""
    if backend not in BACKENDS:
        raise EvaluationError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
    problem = vllm_problem() if backend == "vllm" else None
    if problem:  # not installed, or outside the vLLM versions TRL supports
        raise EvaluationError(f"--backend vllm: {problem}")
    if backend == "vllm" and num_processes > 1:
        raise EvaluationError(
            f"--backend vllm runs in one process, not {num_processes}: start it with python, "
            "not accelerate launch (vLLM parallelises itself: --tensor-parallel-size N)"
        )


def hf_generator(
    model, processor, max_new_tokens: int, repetition_penalty: float = DEFAULT_REPETITION_PENALTY
) -> Generate:
    """Greedy replies with transformers' ``generate``."""

    def generate(rows: list[dict], mode: str) -> list[str]:
        return generate_replies(model, processor, rows, mode, max_new_tokens, repetition_penalty)

    return generate


def vllm_generator(
    model_path: str,
    max_new_tokens: int,
    tensor_parallel_size: int = DEFAULT_TENSOR_PARALLEL_SIZE,
    max_model_len: int = DEFAULT_MAX_MODEL_LEN,
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
    trust_remote_code: bool = False,
    repetition_penalty: float = DEFAULT_REPETITION_PENALTY,
) -> Generate:
    """Greedy replies with vLLM's offline ``LLM.generate`` (prompts chat-templated by the
    checkpoint's own processor, one image each), decoded as ``hf_generator`` decodes."""
    from vllm import LLM, SamplingParams

    processor = load_chat_processor(model_path, trust_remote_code)
    llm = LLM(
        model=model_path,
        limit_mm_per_prompt={"image": 1},
        max_model_len=max_model_len,
        gpu_memory_utilization=gpu_memory_utilization,
        tensor_parallel_size=tensor_parallel_size,
        trust_remote_code=trust_remote_code,
    )
    sampling = SamplingParams(**Decoding(max_new_tokens, repetition_penalty).vllm_sampling())

    def generate(rows: list[dict], mode: str) -> list[str]:
        requests = [
            {
                "prompt": processor.apply_chat_template(
                    prompts.prompt_messages(row, mode), add_generation_prompt=True
                ),
                "multi_modal_data": {"image": row["image"].convert("RGB")},
            }
            for row in rows
        ]
        outputs = llm.generate(requests, sampling, use_tqdm=False)
        return [output.outputs[0].text for output in outputs]

    return generate


def load_split(options: EvaluateArguments) -> datasets.Dataset:
    """The rows to evaluate; a dataset, config or split that is not there is an
    EvaluationError that says what is there."""
    name, config, split, revision = (
        options.dataset, options.config, options.split, options.revision
    )  # fmt: skip
    if not Path(name).exists() and not is_hub_id(name):
        raise EvaluationError(
            f"dataset {name} does not exist: pass a built CT-RATE-VQA folder "
            "(python -m dataset_builder build) or a Hub dataset id"
        )
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


def check_model(model: str, trust_remote_code: bool = False) -> None:
    """Refuse a model that the evaluator cannot run, before anything is written: a path that
    does not exist, a folder that is not a checkpoint, a model that does not read images."""
    from transformers import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING, AutoConfig

    path = Path(model)
    if not path.exists() and not is_hub_id(model):
        raise EvaluationError(
            f"model {model} does not exist: pass a checkpoint folder (holding config.json) or "
            "a Hub model id"
        )
    if path.is_dir() and not (path / "config.json").is_file():
        raise EvaluationError(
            f"model {model} is a folder without config.json, not a checkpoint: pass the folder "
            "that holds config.json (e.g. outputs/<run>/final)"
        )
    try:
        config = AutoConfig.from_pretrained(model, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise EvaluationError(
            f"model {model} could not be read ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); pass a checkpoint folder or a "
            "Hub model id you can access"
        ) from None
    remote = "AutoModelForImageTextToText" in (getattr(config, "auto_map", None) or {})
    if type(config) not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING and not (
        remote and trust_remote_code
    ):
        raise EvaluationError(
            f"model {model} is a {config.model_type!r} model, which does not read images: "
            "pass an image-text-to-text checkpoint (e.g. Qwen2.5-VL)"
        )


def dataset_revision(dataset: str, revision: str | None = None) -> str | None:
    """The Hub commit of a dataset given by id (None for a local folder or when offline)."""
    if Path(dataset).exists():
        return None
    try:
        from huggingface_hub import HfApi

        return HfApi().dataset_info(dataset, revision=revision).sha
    except Exception:  # noqa: BLE001  (offline, gated or unknown: the revision stays unknown)
        return revision


def evaluate(options: EvaluateArguments) -> dict | None:
    """Evaluate (resuming from ``options.output_dir``) and write results, predictions and
    plots; with ``options.judge`` (a causal LM id/path or an OpenAI-compatible URL), also the
    reasoning-answer consistency of the ``think`` mode (see ``model_training.evaluation.judge``).

    The model, dataset, config and split are checked before ``output_dir`` is created. Under
    ``accelerate launch`` every process generates its share of the missing batches; the main
    process returns the report and the others None."""
    state = process_state()
    check_backend(options.backend, state.num_processes)
    output_dir = Path(options.output_dir)
    settings = _settings(options)
    check_model(options.model, options.trust_remote_code)
    ds = on_main_first(state, lambda: load_split(options))  # the main process downloads
    ds = ds if ds is not None else load_split(options)
    task = dataset_task(ds.column_names, options.config)
    check_options(task, options.sam_model, options.judge)
    settings["prompts"] = prompts.record(task)
    on_main_first(state, lambda: prepare_output(output_dir, settings, options.overwrite))
    done = read_progress(output_dir)
    state.wait_for_everyone()  # every process has read the progress before any appends to it
    batches = plan_batches(ds["id"], options.modes, done, options.batch_size)
    mine = shard(batches, state.process_index, state.num_processes)
    if mine:
        if options.backend == "vllm":
            generate = vllm_generator(
                options.model, options.max_new_tokens, options.tensor_parallel_size,
                options.max_model_len, options.gpu_memory_utilization, options.trust_remote_code,
                options.repetition_penalty,
            )  # fmt: skip
        else:
            generate = hf_generator(
                *load_model(options.model, options.trust_remote_code, state.device),
                options.max_new_tokens, options.repetition_penalty,
            )  # fmt: skip
        path = progress_file(output_dir, state.process_index, state.num_processes)
        with progress_sink(path) as sink:
            run_batches(generate, ds, mine, sink, options.progress and state.is_main_process)
        del generate  # the model's memory is free before the judge's
    state.wait_for_everyone()
    if not state.is_main_process:
        return None
    if task == GROUNDING_TASK:
        return write_grounding_report(
            output_dir, ds, options.modes, read_progress(output_dir), settings,
            options.revision, options.sam_model, options.trust_remote_code,
        )  # fmt: skip
    return write_report(
        output_dir, ds, options.modes, read_progress(output_dir), settings, options.revision,
        options.judge, options.judge_model,
    )  # fmt: skip


# -- what results.json records about the model: size, readable name, training ------------------

SAFETENSORS_INDEX = "model.safetensors.index.json"  # a sharded checkpoint's weight map
SAFETENSORS_WEIGHTS = "model.safetensors"  # a single-file checkpoint's weights


def checkpoint_folder(model: str) -> Path | None:
    """The folder of ``model``'s files: a local folder, or a Hub model's snapshot already in the
    local cache (never downloaded here); None when there is none."""
    if Path(model).is_dir():
        return Path(model)
    if not is_hub_id(model):
        return None
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model, local_files_only=True))
    except Exception:  # noqa: BLE001  (not in the cache: the size stays unknown)
        return None


def parameter_count(model: str) -> int | None:
    """The number of parameters in ``model``'s safetensors weights (read from their headers:
    no tensor is loaded); None for a checkpoint without them (or not in the local cache)."""
    from safetensors import safe_open

    folder = checkpoint_folder(model)
    if folder is None:
        return None
    index = json_or_none(folder / SAFETENSORS_INDEX)
    names = sorted(set(index.get("weight_map", {}).values())) if index else [SAFETENSORS_WEIGHTS]
    files = [folder / name for name in names]
    if not files or not all(path.is_file() for path in files):
        return None
    total = 0
    for path in files:
        with safe_open(str(path), "pt") as weights:
            for key in weights.keys():  # noqa: SIM118  (safe_open is not a mapping)
                shape = weights.get_slice(key).get_shape()
                total += int(torch.Size(shape).numel())
    return total


def model_record(model: str) -> dict:
    """The results.json keys about the evaluated model: ``display_name``,
    ``model_parameters`` (None when unknown) and, for a trained checkpoint, ``training``."""
    training = training_record(model)
    record = {
        "display_name": display_name(model, training),
        "model_parameters": parameter_count(model),
    }
    return record | ({"training": training} if training else {})


def check_complete(done: dict[tuple, dict], modes, ids: list[str], output_dir: Path) -> None:
    """Refuse to score while a (mode, row) prediction is missing from the progress files."""
    lost = sum((mode, id_) not in done for mode in modes for id_ in ids)
    if lost:
        raise EvaluationError(
            f"{lost} predictions are missing from the progress files in {output_dir}: "
            "processes on several machines need --output-dir on a shared file system"
        )


def report_header(settings: dict, revision: str | None, task: str) -> dict:
    """The results.json keys every task's report starts with: model, dataset, task, prompts,
    decoding."""
    return {
        "model": settings["model"],
        **model_record(settings["model"]),
        "dataset": settings["dataset"],
        "config": settings["config"],
        "split": settings["split"],
        "dataset_revision": dataset_revision(settings["dataset"], revision),
        "task": task,
        "prompts": prompts.record(task),
        "decoding": Decoding(settings["max_new_tokens"], settings["repetition_penalty"]).record(),
    }


def write_report(
    output_dir: Path,
    ds: datasets.Dataset,
    modes: tuple[str, ...],
    done: dict[tuple, dict],
    settings: dict,
    revision: str | None,
    judge: str | None,
    judge_model: str | None,
) -> dict:
    """Score the predictions, run the judge, and write results.json, predictions.parquet and
    the plots; return the report."""
    classes = ds.features["label"].names
    ids = ds["id"]
    check_complete(done, modes, ids, output_dir)
    predictions = [done[(mode, id_)] for mode in modes for id_ in ids]
    results = {m: score([r for r in predictions if r["mode"] == m], classes) for m in modes}
    report = {**report_header(settings, revision, CLASSIFICATION_TASK), "modes": results}
    if judge is not None and "think" in modes:
        from .judge import judge_consistency, load_judge

        options = dict(zip(ids, ds["options"], strict=True))
        think_rows = [r for r in predictions if r["mode"] == "think"]
        for row in predictions:
            row["judge_answer"] = None
        consistency = judge_consistency(
            think_rows, options, load_judge(judge, judge_model), output_dir
        )
        report["judge"] = {k: consistency.pop(k) for k in ("judge", "judge_prompt")}
        results["think"].update(consistency)
    (output_dir / "results.json").write_text(json.dumps(report, indent=1))
    datasets.Dataset.from_list(predictions).to_parquet(output_dir / "predictions.parquet")
    per_class_bars(report, output_dir / "per_class_accuracy.png")
    for mode in modes:
        rows = [r for r in predictions if r["mode"] == mode]
        confusion_plot(
            rows, classes, f"{mode}: gold vs answer", output_dir / f"confusion_{mode}.png"
        )
    return report


def load_chat_processor(model_path: str, trust_remote_code: bool = False):
    """The processor (chat template, image processor) of a checkpoint: for Qwen2.5-VL and
    Qwen2-VL configs (our checkpoints, MedVLM-R1, Med-R1) ``load_processor``, which works
    without torchvision whatever processor class the repo names."""
    from transformers import AutoConfig, AutoProcessor

    from ..processor import IMAGE_TEXT_PROCESSORS

    config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    if config.model_type in IMAGE_TEXT_PROCESSORS and not trust_remote_code:
        return load_processor(model_path, model_type=config.model_type)
    return AutoProcessor.from_pretrained(model_path, trust_remote_code=trust_remote_code)


def load_model(
    model_path: str, trust_remote_code: bool = False, device: str | torch.device | None = None
):
    """(model, processor) of any image-text-to-text checkpoint with a chat template (our
    Qwen2.5-VL checkpoints, Qwen2-VL-based baselines...), on ``device`` (default: the GPU when
    there is one, else the CPU): in bf16 on a GPU, in fp32 on the CPU. Remote code runs only if
    the user asks for it."""
    from transformers import AutoModelForImageTextToText

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = AutoModelForImageTextToText.from_pretrained(
        model_path,
        dtype=torch.bfloat16 if device.type == "cuda" else torch.float32,
        trust_remote_code=trust_remote_code,
    )
    processor = load_chat_processor(model_path, trust_remote_code)
    return model.to(device).eval(), processor


def main(argv: list[str] | None = None) -> int:
    try:
        (options,) = parse_options(
            EvaluateArguments, argv, "python -m model_training.evaluation.evaluate", __doc__
        )
        report = evaluate(options)
    except (EvaluationError, GroundingError) as err:
        if PartialState().is_main_process:
            print(f"error: {err}", file=sys.stderr)
        return 2
    finally:  # leave the process group before exit (gloo's threads abort an unclean exit)
        PartialState().destroy_process_group()
    if report is not None:  # the main process
        print_report(report)
    return 0


def print_report(report: dict) -> None:
    if report.get("task") == GROUNDING_TASK:
        return print_grounding_report(report)
    for mode, metrics in report["modes"].items():
        print(
            f"{mode}: accuracy {100 * metrics['accuracy_micro']:.2f} % (micro), "
            f"{100 * metrics['accuracy_macro']:.2f} % (macro), n = {metrics['n']}"
            + (
                f", consistency {100 * metrics['consistency']:.2f} %"
                if "consistency" in metrics
                else ""
            )
        )


if __name__ == "__main__":
    sys.exit(main())
