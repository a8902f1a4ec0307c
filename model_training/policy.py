"""Load the model a stage trains: checkpoint + processor, with its trainable scope applied, and
the stage's training decisions (resume checkpoint, master-weight precision, activation
checkpointing under ZeRO-3)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState
from transformers import Qwen2_5_VLForConditionalGeneration, TrainerState, TrainingArguments
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import (
    ADAPTER_SAFE_WEIGHTS_NAME,
    ADAPTER_WEIGHTS_NAME,
    SAFE_WEIGHTS_INDEX_NAME,
    SAFE_WEIGHTS_NAME,
    WEIGHTS_INDEX_NAME,
    WEIGHTS_NAME,
)
from trl import ModelConfig, get_quantization_config

from common.errors import report
from common.names import CLASSIFICATION_TASK, GROUNDING_TASK, TRAINING_SUMMARY_NAME

from . import prompts
from .configs import ConfigError, CTRateVQAArguments, check_model_config
from .processor import load_processor
from .scope import apply_trainable_scope, count_parameters
from .stage_options import StageParser, check_ranges
from .training_history import stage_history

logger = logging.getLogger(__name__)

LAST_CHECKPOINT = ("last", "true")  # resume_from_checkpoint values meaning "the newest one"
CHECKPOINT_NAME = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
# the weights a Trainer checkpoint holds: full model or (LoRA) adapter, one file or an index
WEIGHT_FILES = (SAFE_WEIGHTS_NAME, WEIGHTS_NAME, ADAPTER_SAFE_WEIGHTS_NAME, ADAPTER_WEIGHTS_NAME)
WEIGHT_INDEXES = (SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_INDEX_NAME)
DEEPSPEED_LATEST = "latest"  # DeepSpeed's own checkpoint: this file names its global_stepN/


def checkpoint_problem(folder: str | Path) -> str | None:
    """Why ``folder`` is not a complete Trainer checkpoint (one short clause), or None.

    ``Trainer._save_checkpoint`` (transformers 5) writes, in this order: the weights
    (``save_model``), the optimizer and scheduler (under DeepSpeed its ``global_stepN/`` and
    ``latest``), the grad scaler, the RNG state(s), and last ``trainer_state.json`` (main
    process); a process killed part-way (a full disk) leaves the folder without it. Complete =
    ``trainer_state.json`` reads as a ``TrainerState`` and the weights are there: a non-empty
    model or adapter weights file, every shard a weights index names, or DeepSpeed's ``latest``
    naming an existing folder (ZeRO-3 without gathered 16-bit weights saves only that).
    """
    folder = Path(folder)
    state = folder / TRAINER_STATE_NAME
    if not state.is_file():
        return f"no {TRAINER_STATE_NAME} (the Trainer writes it last)"
    try:
        TrainerState.load_from_json(str(state))
    except (OSError, ValueError, TypeError) as error:  # cut short: JSONDecodeError
        return f"{TRAINER_STATE_NAME} is unreadable ({type(error).__name__})"
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return None if (folder / name).stat().st_size > 0 else f"{name} is empty"
    for name in WEIGHT_INDEXES:
        if (folder / name).is_file():
            try:
                shards = set(json.loads((folder / name).read_text())["weight_map"].values())
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
                return f"{name} is unreadable ({type(error).__name__})"
            missing = sorted(shard for shard in shards if not (folder / shard).is_file())
            return f"{name} names missing shards {missing}" if missing else None
    latest = folder / DEEPSPEED_LATEST
    if latest.is_file() and (folder / latest.read_text().strip()).is_dir():
        return None
    return "no model weights"


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The newest complete ``checkpoint-N`` in ``output_dir`` (:func:`checkpoint_problem`), or
    None. Each newer, incomplete one is skipped with a warning saying why, and left as it is
    (the Trainer saves over it when it reaches that step again)."""
    out = Path(output_dir)
    found = [(int(m[1]), p) for p in out.iterdir() if (m := CHECKPOINT_NAME.match(p.name))]
    for _, folder in sorted((f for f in found if f[1].is_dir()), reverse=True):
        problem = checkpoint_problem(folder)
        if problem is None:
            return str(folder)
        logger.warning("skipping incomplete checkpoint %s: %s", folder, problem)
    return None


def resume_checkpoint(training: TrainingArguments) -> str | None:
    """The checkpoint folder ``training.resume_from_checkpoint`` names: a folder path; "last"
    (or "true", YAML's true) = the newest complete ``checkpoint-N`` in ``output_dir``
    (:func:`last_complete_checkpoint`: incomplete ones are skipped and logged), or None (a
    fresh start) where there is none; unset (or "false") = None. An incomplete folder named
    explicitly is refused (ConfigError)."""
    value = training.resume_from_checkpoint
    if value is None or str(value).lower() == "false":
        return None
    if str(value).lower() in LAST_CHECKPOINT:
        out = Path(training.output_dir)
        last = last_complete_checkpoint(out) if out.is_dir() else None
        if last is None:
            logger.info(
                "resume_from_checkpoint=%s: no complete checkpoint in %s, starting fresh",
                value,
                out,
            )
        return last
    if not Path(value).is_dir():
        raise FileNotFoundError(f"resume_from_checkpoint={value}: no such checkpoint folder")
    problem = checkpoint_problem(value)
    if problem is not None:
        raise ConfigError(
            f"resume_from_checkpoint={value}: not a complete checkpoint ({problem}); name "
            "another checkpoint-N folder, or 'last' for the newest complete one"
        )
    return str(value)


def deepspeed_zero_stage(training: TrainingArguments) -> int | None:
    """The DeepSpeed ZeRO stage of this run, or None without DeepSpeed. ``TrainingArguments``
    builds accelerate's DeepSpeed plugin from ``training.deepspeed`` or from ``accelerate
    launch``'s environment (``ACCELERATE_USE_DEEPSPEED``); the plugin reads the stage from the
    DeepSpeed config or ``ACCELERATE_DEEPSPEED_ZERO_STAGE``."""
    plugin = training.deepspeed_plugin
    return None if plugin is None else int(plugin.zero_stage)


def use_reentrant_under_zero3(
    training: TrainingArguments, scope: str, zero_stage: int | None
) -> None:
    """Reentrant activation checkpointing where ZeRO-3 recomputes a partly frozen model.

    transformers 5 checkpoints activations non-reentrantly by default; under ZeRO-3 with
    frozen parameters the recompute fails (transformers#47254, DeepSpeed#8130). So with ZeRO-3,
    activation checkpointing on and a scope other than ``full``, set
    ``activation_checkpointing_kwargs["use_reentrant"] = True`` (and its deprecated alias, which
    TRL reads). An explicit ``use_reentrant: false`` there is refused.
    """
    if zero_stage != 3 or not training.activation_checkpointing or scope == "full":
        return
    kwargs = dict(training.activation_checkpointing_kwargs or {})
    if kwargs.get("use_reentrant", True) is not True:
        raise ValueError(
            f"activation_checkpointing_kwargs={kwargs} asks for non-reentrant activation "
            f"checkpointing, which fails under DeepSpeed ZeRO-3 with frozen parameters "
            f"(trainable scope {scope!r}; transformers#47254, DeepSpeed#8130): remove "
            "use_reentrant or set it to true"
        )
    kwargs["use_reentrant"] = True
    training.activation_checkpointing_kwargs = kwargs
    training.gradient_checkpointing_kwargs = kwargs
    logger.info("DeepSpeed ZeRO-3 with scope %s: reentrant activation checkpointing", scope)


def prepare_stage(training: TrainingArguments, args: CTRateVQAArguments) -> str | None:
    """Settle the stage's training arguments; return the checkpoint to resume from (or None)."""
    use_reentrant_under_zero3(training, args.trainable_scope, deepspeed_zero_stage(training))
    return resume_checkpoint(training)


def weights_dtype(requested: str | None, zero_stage: int | None) -> torch.dtype | str | None:
    """The dtype the policy's weights are loaded in.

    DeepSpeed keeps float32 master weights in its optimiser: there the recipe's ``dtype`` is
    used. Otherwise the optimiser updates the weights themselves, and bf16 weights round
    updates at lr 1e-5..1e-6 to zero: the weights are float32 and ``bf16``/``fp16`` of the
    training arguments set the compute precision (autocast).
    """
    if zero_stage is not None:
        logger.info(
            "DeepSpeed ZeRO-%d holds float32 master weights: loading the weights as %s",
            zero_stage,
            requested,
        )
        return requested if requested in (None, "auto") else getattr(torch, requested)
    logger.info(
        "no DeepSpeed: loading float32 master weights (recipe dtype %s); the bf16/fp16 "
        "training flags set the compute precision",
        requested,
    )
    return torch.float32


def load_policy(
    model_args: ModelConfig,
    args: CTRateVQAArguments,
    training: TrainingArguments,
    checkpoint: str | None = None,
    padding_side: str = "right",
) -> tuple[torch.nn.Module, Any, dict]:
    """(model, processor, summary) with only ``args.trainable_scope`` trainable; the summary
    names the trainable parameters and counts them (logged at start, kept in the outputs).

    With a ``checkpoint`` (and without DeepSpeed, which loads its own checkpoints), the weights
    come from it, loaded whole or refused (:func:`_check_loaded`): the Trainer's own reload of
    Qwen2.5-VL checkpoints leaves most tensors at their start values (transformers#43701).
    ``padding_side`` is the processor's (GRPO needs "left"). The ModelConfig settings are
    checked first (:func:`~model_training.configs.check_model_config`); ``model_revision``
    reaches both the model and the processor, a 4/8-bit ``load_in_*`` goes through TRL's
    ``get_quantization_config``.
    """
    check_model_config(model_args, args, training)
    path = model_args.model_name_or_path
    if not path:
        raise ConfigError("model_name_or_path is required (a checkpoint folder or Hub id)")
    zero_stage = deepspeed_zero_stage(training)
    if zero_stage is not None:
        checkpoint = None  # the Trainer loads DeepSpeed checkpoints through DeepSpeed
    whole = checkpoint if args.trainable_scope != "lora" else None
    model, info = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        whole or path,
        revision=None if whole else model_args.model_revision,
        dtype=weights_dtype(model_args.dtype, zero_stage),
        attn_implementation=model_args.attn_implementation,
        quantization_config=get_quantization_config(model_args),
        output_loading_info=True,
    )
    if whole:
        _check_loaded(whole, info["missing_keys"], info["unexpected_keys"])
        model.config.name_or_path = path  # the start model (GRPO's reference model loads it)
    processor = load_processor(
        path,
        revision=model_args.model_revision,
        image_min_pixels=args.image_min_pixels,
        image_max_pixels=args.image_max_pixels,
    )
    processor.tokenizer.padding_side = padding_side
    model, names = apply_trainable_scope(model, args.trainable_scope, model_args)
    if checkpoint and not whole:  # the LoRA adapter of the checkpoint
        result = model.load_adapter(checkpoint, model.active_adapter, is_trainable=True)
        _check_loaded(checkpoint, result.missing_keys, result.unexpected_keys)
    if checkpoint:
        logger.info(
            "weights loaded from %s; a 'missing keys' warning of the Trainer's own reload of "
            "it is harmless (transformers#43701)",
            checkpoint,
        )
    return model, processor, scope_summary(model, args.trainable_scope, names)


def scope_summary(model: torch.nn.Module, scope: str, names: list[str]) -> dict:
    """The trainable scope's record (logged; ``train_and_save`` writes its counts to
    ``training_summary.json``, which the model card reads): scope, trainable and total
    parameter counts (full sizes also under ZeRO-3, :func:`~model_training.scope.count_parameters`)
    and the trainable tensors' ``names``."""
    trainable, total = count_parameters(model)
    logger.info(
        "trainable scope %s: %d of %d parameters in %d tensors", scope, trainable, total, len(names)
    )
    for name in names:
        logger.info("  trainable: %s", name)
    return {
        "trainable_scope": scope,
        "trainable_parameters": trainable,
        "total_parameters": total,
        "trainable_names": names,
    }


def _check_loaded(checkpoint: str, missing: list[str], unexpected: list[str]) -> None:
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {checkpoint} does not match the model: missing keys {sorted(missing)}, "
            f"unexpected keys {sorted(unexpected)}; refusing to resume from it"
        )


def train_and_save(
    trainer, processor, output_dir: str, summary: dict, checkpoint: str | None = None, **extra
) -> Path:
    """Train (resuming from ``checkpoint`` if given), then save the model, its processor and
    ``training_summary.json`` (scope, prompts, log history, ``extra``: a stage's
    :func:`stage_record`, with the model's history).

    A checkpoint already at ``max_steps`` is saved as it is: the Trainer would train one step
    past it (its stop check follows a step). Under DeepSpeed, where only the Trainer loads the
    checkpoint's weights, the Trainer resumes it.
    """
    out = Path(output_dir)
    state = checkpoint and TrainerState.load_from_json(str(Path(checkpoint) / TRAINER_STATE_NAME))
    max_steps = trainer.args.max_steps
    if state and 0 < max_steps <= state.global_step and not trainer.is_deepspeed_enabled:
        logger.info("%s is at max_steps=%d: saved without training", checkpoint, max_steps)
        trainer.state = state
    else:
        trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(out)  # (the main process writes; every process takes part)
    if trainer.is_world_process_zero():
        processor.save_pretrained(out)
        write_training_summary(
            out, summary, trainer.args.world_size, trainer.state.log_history, **extra
        )
    return out


def write_training_summary(
    out: Path, summary: dict, world_size: int, log_history: list[dict], **extra
) -> Path:
    """Write ``out/training_summary.json``: the scope ``summary`` (its counts), the world size,
    the prompts, ``extra`` (a stage's :func:`stage_record`) and the Trainer's log history."""
    record = {
        **{k: v for k, v in summary.items() if k != "trainable_names"},
        "world_size": world_size,
        "prompts": prompts.record(),
        **extra,  # a stage's task_record() replaces the prompts of classification
        "log_history": log_history,
    }
    path = out / TRAINING_SUMMARY_NAME
    path.write_text(json.dumps(record, indent=1))
    return path


def task_record(args: CTRateVQAArguments) -> dict:
    """What a stage's training summary records of its task(s): the task, the grounding
    settings, and the prompts of each task it trained on."""
    if args.task == CLASSIFICATION_TASK:
        return {"task": args.task, "prompts": prompts.record()}
    record = {"task": args.task, "grounding_config": args.grounding_config}
    if args.task == GROUNDING_TASK:
        return {**record, "prompts": prompts.record(GROUNDING_TASK)}
    return {
        **record,
        "grounding_fraction": args.grounding_fraction,
        "prompts": {task: prompts.record(task) for task in args.tasks},
    }


def stage_record(
    stage: str,
    args: CTRateVQAArguments,
    model_args: ModelConfig,
    output_dir: str,
    reward_funcs: list[str] | None = None,
    reward_weights: list[float] | None = None,
) -> dict:
    """What stage ``stage`` adds to its training summary (``train_and_save``'s ``extra``): its
    name, data config, :func:`task_record`, the GRPO rewards, and its ``history`` (the stages
    the model went through, this one last: :func:`~model_training.training_history.stage_history`,
    which results.json and a run's ``final/`` read)."""
    rewards = {"reward_funcs": reward_funcs, "reward_weights": reward_weights}
    return {
        "stage": stage,
        "dataset_config": args.dataset_config,
        **task_record(args),
        **{key: value for key, value in rewards.items() if value is not None},
        "history": stage_history(stage, args, model_args.model_name_or_path, output_dir, **rewards),
    }


def stage_main(argv: list[str] | None, trainer_config: type, train: Callable[..., Path]) -> int:
    """A stage script's ``main``: parse (CTRateVQAArguments, ``trainer_config``, ModelConfig:
    ``stage_options.StageParser``, whose YAML values are type-checked), check the settings and
    their ranges, train; a refused setting or unreadable dataset prints ``error: ...`` and
    returns 2 (no traceback, no usage)."""
    parser = StageParser(CTRateVQAArguments, trainer_config, ModelConfig)
    try:
        args, training, model_args = parser.parse_args_and_config(argv)
        check_model_config(model_args, args, training)
        check_ranges((args, training, model_args), train.__module__)
    except ValueError as error:  # the dataclasses' own checks (ours and TRL's ValueErrors)
        return report(error)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        train(args, training, model_args)
    except ConfigError as error:
        return report(error)
    finally:  # leave the process group before exit (gloo's threads abort an unclean exit)
        PartialState().destroy_process_group()
    return 0
