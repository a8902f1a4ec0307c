"""Parameter counts under DeepSpeed ZeRO-3 (issue 18): a partitioned parameter holds an empty
tensor (``param.data = torch.empty(0)``) and its full size in ``ds_numel``
(deepspeed/runtime/zero/partition_parameters.py); the log, ``training_summary.json`` and the
model card must count the full sizes, not "0 of 0"."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import Qwen2_5_VLForConditionalGeneration
from trl import ModelConfig

from model_training.policy import scope_summary
from model_training.scope import apply_trainable_scope, count_parameters
from model_training.tiny_model import build_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("counts") / "tiny")


def partition(model: torch.nn.Module) -> None:
    """What ZeRO-3 leaves on each rank's parameters: an empty tensor, the size in ds_numel."""
    for parameter in model.parameters():
        parameter.ds_numel = parameter.numel()
        parameter.data = torch.empty(0, dtype=parameter.dtype, device=parameter.device)


@pytest.mark.parametrize("scope", ["llm_mlp", "lora"])
def test_partitioned_parameters_count_their_full_size(tiny, scope):
    whole = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny)
    whole, names = apply_trainable_scope(whole, scope, ModelConfig(lora_r=4))
    expected = scope_summary(whole, scope, names)
    assert 0 < expected["trainable_parameters"] < expected["total_parameters"]

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny)
    if scope == "lora":  # ZeRO-3 partitions the base model at load; peft adds whole adapters
        partition(model)
        model, _ = apply_trainable_scope(model, scope, ModelConfig(lora_r=4))
    else:
        model, _ = apply_trainable_scope(model, scope, ModelConfig(lora_r=4))
        partition(model)
    partitioned = [p for p in model.parameters() if hasattr(p, "ds_numel")]
    assert partitioned and all(p.numel() == 0 for p in partitioned)  # numel() would say 0
    assert count_parameters(model) == (
        expected["trainable_parameters"],
        expected["total_parameters"],
    )
    assert scope_summary(model, scope, names) == expected  # what training_summary.json records
