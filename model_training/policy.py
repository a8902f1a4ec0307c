"""Load the model a stage trains: checkpoint + processor, with its trainable scope applied."""

from __future__ import annotations

import logging

import torch
from transformers import Qwen2_5_VLForConditionalGeneration
from trl import ModelConfig

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
