"""SFT and GRPO stages: recipe parsing, a few real TRL steps on the synthetic CT-RATE-VQA with
the tiny Qwen2.5-VL, saved checkpoints that load back, and resume from a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import Qwen2_5_VLForConditionalGeneration
from trl import ModelConfig, SFTConfig, TrlParser

from model_training.configs import CTRateVQAArguments, GRPORecipe
from model_training.grpo import train_grpo
from model_training.processor import load_processor
from model_training.sft import train_sft
from model_training.tiny_model import build_tiny_model

CPU = {
    "bf16": False,
    "use_cpu": True,
    "gradient_checkpointing": False,
    "report_to": "none",
    "logging_steps": 1,
    "dataloader_num_workers": 0,
    "save_strategy": "no",
    "seed": 0,
}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("stages") / "tiny")


def _args(built_dataset: Path, **overrides) -> CTRateVQAArguments:
    return CTRateVQAArguments(dataset_name=str(built_dataset), dataset_limit=8, **overrides)


def test_recipe_yaml_and_command_line_mix(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "dataset_config: plain\ntrainable_scope: merger\nlearning_rate: 1.0e-5\n"
        "num_generations: 5\nper_device_train_batch_size: 5\nloss_type: grpo\nbeta: 0.04\n"
        "output_dir: out\n"
        "use_cpu: true\nbf16: false\n"
    )
    parser = TrlParser((CTRateVQAArguments, GRPORecipe, ModelConfig))
    args, training, _ = parser.parse_args_and_config(
        [
            "--config",
            str(recipe),
            "--learning_rate",
            "3e-5",
            "--reward_funcs",
            "format",
            "correctness",
        ]
    )
    assert args.dataset_config == "plain" and args.trainable_scope == "merger"
    assert training.learning_rate == 3e-5 and training.num_generations == 5
    assert training.reward_funcs == ["format", "correctness"]
    assert training.reward_weights == [1.0, 2.0]  # the paper's weights follow the names
    assert GRPORecipe(output_dir="o", use_cpu=True, bf16=False).reward_weights == [1.0, 1.0, 2.0]
    with pytest.raises(ValueError, match="trainable_scope"):
        CTRateVQAArguments(trainable_scope="mlp")


def test_sft_then_grpo_run_and_save_loadable_checkpoints(built_dataset, tiny_model, tmp_path):
    sft_dir = train_sft(
        _args(built_dataset, sft_target="finding"),
        SFTConfig(
            output_dir=str(tmp_path / "sft"),
            max_steps=2,
            per_device_train_batch_size=2,
            learning_rate=1e-3,
            **CPU,
        ),
        ModelConfig(model_name_or_path=str(tiny_model)),
    )
    summary = json.loads((sft_dir / "training_summary.json").read_text())
    losses = [e["loss"] for e in summary["log_history"] if "loss" in e]
    assert len(losses) == 2 and summary["trainable_scope"] == "llm_mlp"
    assert 0 < summary["trainable_parameters"] < summary["total_parameters"]
    Qwen2_5_VLForConditionalGeneration.from_pretrained(sft_dir)
    load_processor(sft_dir)

    grpo_dir = train_grpo(
        _args(built_dataset),
        GRPORecipe(
            output_dir=str(tmp_path / "grpo"),
            max_steps=2,
            per_device_train_batch_size=4,
            num_generations=4,
            max_completion_length=12,
            learning_rate=1e-4,
            loss_type="grpo",
            beta=0.04,
            **CPU,
        ),
        ModelConfig(model_name_or_path=str(sft_dir)),
    )
    logs = json.loads((grpo_dir / "training_summary.json").read_text())["log_history"]
    steps = [e for e in logs if "rewards/correctness_reward/mean" in e]
    assert len(steps) == 2
    assert all("rewards/format_reward/mean" in e and "kl" in e for e in steps)
    Qwen2_5_VLForConditionalGeneration.from_pretrained(grpo_dir)


def test_sft_resumes_from_its_last_checkpoint(built_dataset, tiny_model, tmp_path):
    out = tmp_path / "sft"
    config = {**CPU, "save_strategy": "steps", "save_steps": 1}
    train_sft(
        _args(built_dataset),
        SFTConfig(output_dir=str(out), max_steps=2, per_device_train_batch_size=2, **config),
        ModelConfig(model_name_or_path=str(tiny_model)),
    )
    assert (out / "checkpoint-2" / "model.safetensors").is_file()
    first = json.loads((out / "training_summary.json").read_text())["log_history"]
    train_sft(
        _args(built_dataset),
        SFTConfig(
            output_dir=str(out),
            max_steps=3,
            per_device_train_batch_size=2,
            resume_from_checkpoint="last",
            **config,
        ),
        ModelConfig(model_name_or_path=str(tiny_model)),
    )
    logs = json.loads((out / "training_summary.json").read_text())["log_history"]
    assert [e["step"] for e in logs if "loss" in e] == [1, 2, 3]
    # steps 1-2 come from checkpoint-2 as they were (a fresh 3-step run would log another
    # learning-rate schedule); only step 3 was trained now
    assert [e for e in logs if e["step"] <= 2 and "loss" in e] == [e for e in first if "loss" in e]
    assert (out / "checkpoint-3").is_dir()
