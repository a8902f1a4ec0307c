"""Load the model a stage trains: checkpoint + processor, with its trainable scope applied."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from transformers import Qwen2_5_VLForConditionalGeneration
from transformers.trainer_utils import get_last_checkpoint
from trl import ModelConfig

from . import prompts
from .configs import CTRateVQAArguments
from .processor import load_processor
from .scope import apply_trainable_scope, count_parameters

logger = logging.getLogger(__name__)


def load_policy(model_args: ModelConfig, args: CTRateVQAArguments):
    """(model, processor, summary) with only ``args.trainable_scope`` trainable; the summary
    names the trainable parameters and counts them (logged at start, kept in the outputs)."""
    path = model_args.model_name_or_path
    if not path:
        raise ValueError("model_name_or_path is required (a checkpoint folder or Hub id)")
    dtype = (
        model_args.dtype if model_args.dtype in (None, "auto") else getattr(torch, model_args.dtype)
    )
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        path,
        revision=model_args.model_revision,
        dtype=dtype,
        attn_implementation=model_args.attn_implementation,
    )
    processor = load_processor(path, revision=model_args.model_revision)
    model, names = apply_trainable_scope(model, args.trainable_scope, model_args.lora_r)
    trainable, total = count_parameters(model)
    logger.info(
        "trainable scope %s: %d of %d parameters in %d tensors",
        args.trainable_scope,
        trainable,
        total,
        len(names),
    )
    for name in names:
        logger.info("  trainable: %s", name)
    summary = {
        "trainable_scope": args.trainable_scope,
        "trainable_parameters": trainable,
        "total_parameters": total,
        "trainable_names": names,
    }
    return model, processor, summary


def train_and_save(
    trainer, processor, output_dir: str, summary: dict, resume: bool = False, **extra
) -> Path:
    """Train (from the last checkpoint in ``output_dir`` if ``resume``), then save the model,
    its processor and ``training_summary.json`` (scope, prompts, log history, ``extra``)."""
    out = Path(output_dir)
    checkpoint = get_last_checkpoint(str(out)) if resume and out.is_dir() else None
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(out)
    processor.save_pretrained(out)
    record = {
        **{k: v for k, v in summary.items() if k != "trainable_names"},
        **extra,
        "prompts": prompts.record(),
        "log_history": trainer.state.log_history,
    }
    (out / "training_summary.json").write_text(json.dumps(record, indent=1))
    return out
