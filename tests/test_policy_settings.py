"""The stage settings load_policy / prepare_stage decide: float32 master weights without
DeepSpeed, reentrant activation checkpointing under ZeRO-3, pinned image resize."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from trl import ModelConfig, SFTConfig

from model_training.configs import CTRateVQAArguments
from model_training.policy import deepspeed_zero_stage, load_policy, use_reentrant_under_zero3
from model_training.processor import PINNED_MAX_PIXELS, PINNED_MIN_PIXELS, load_processor
from model_training.sft import train_sft
from model_training.tiny_model import build_tiny_model

CPU = {"use_cpu": True, "report_to": "none", "save_strategy": "no", "seed": 0}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("settings") / "tiny")


def test_bf16_recipe_still_updates_weights_at_lr_1e_6(built_dataset, tiny_model, tmp_path):
    """bf16 weights without an fp32 master copy round AdamW's ~1e-6 steps away."""
    out = train_sft(
        CTRateVQAArguments(dataset_name=str(built_dataset), dataset_limit=2),
        SFTConfig(
            output_dir=str(tmp_path / "sft"),
            max_steps=1,
            per_device_train_batch_size=2,
            learning_rate=1e-6,
            bf16=True,
            activation_checkpointing=False,
            **CPU,
        ),
        ModelConfig(model_name_or_path=str(tiny_model), dtype="bfloat16"),
    )
    start, saved = load_file(tiny_model / "model.safetensors"), load_file(out / "model.safetensors")
    trainable = [k for k in start if k.startswith("model.layers.") and ".mlp." in k]
    moved = [(saved[k] != start[k].to(saved[k].dtype)).float().mean().item() for k in trainable]
    # bf16 weights updated in place: only ~2% (the smallest) move; float32 masters: all
    assert trainable and min(moved) > 0.9, f"fraction of each tensor's weights moved: {moved}"
    assert saved[trainable[0]].dtype == torch.float32


def test_zero3_with_a_partial_scope_gets_reentrant_checkpointing():
    def training(**kwargs) -> SFTConfig:
        return SFTConfig(output_dir="unused", activation_checkpointing=True, **CPU, **kwargs)

    args = training()
    use_reentrant_under_zero3(args, "llm_mlp", 3)
    assert args.activation_checkpointing_kwargs == {"use_reentrant": True}
    assert args.gradient_checkpointing_kwargs == {"use_reentrant": True}  # the alias TRL reads
    for scope, stage in (("llm_mlp", 2), ("full", 3), ("llm_mlp", None)):
        args = training()
        use_reentrant_under_zero3(args, scope, stage)
        assert args.activation_checkpointing_kwargs is None
    args = training(activation_checkpointing_kwargs={"use_reentrant": False})
    with pytest.raises(ValueError, match="non-reentrant.*ZeRO-3.*llm_mlp"):
        use_reentrant_under_zero3(args, "llm_mlp", 3)
    assert deepspeed_zero_stage(training()) is None
    plugin = SimpleNamespace(deepspeed_plugin=SimpleNamespace(zero_stage=3))
    assert deepspeed_zero_stage(plugin) == 3


def _image_tokens(processor, side: int) -> int:
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    batch = processor(images=[Image.new("RGB", (side, side))], text=[text], return_tensors="pt")
    return int((batch["input_ids"] == processor.image_token_id).sum())


def test_pinned_pixels_give_324_image_tokens(tiny_model, tmp_path):
    pinned = {"image_min_pixels": PINNED_MIN_PIXELS, "image_max_pixels": PINNED_MAX_PIXELS}
    assert _image_tokens(load_processor(tiny_model), 512) != 324  # the tiny model's own bound
    processor = load_processor(tiny_model, **pinned)
    assert [_image_tokens(processor, side) for side in (512, 1024, 256)] == [324, 324, 324]
    processor.save_pretrained(tmp_path / "saved")  # the trained model's folder keeps them
    assert _image_tokens(load_processor(tmp_path / "saved"), 1024) == 324
    _, from_policy, _ = load_policy(
        ModelConfig(model_name_or_path=str(tiny_model)),
        CTRateVQAArguments(**pinned),
        SFTConfig(output_dir=str(tmp_path / "out"), **CPU),
    )
    assert _image_tokens(from_policy, 1024) == 324
    with pytest.raises(ValueError, match="exceeds"):
        CTRateVQAArguments(image_min_pixels=PINNED_MAX_PIXELS, image_max_pixels=PINNED_MIN_PIXELS)
