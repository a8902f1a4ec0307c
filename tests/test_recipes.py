"""The paper's recipes parse with TrlParser and carry the paper's numbers."""

from __future__ import annotations

from pathlib import Path

import yaml
from trl import ModelConfig, SFTConfig, TrlParser

from model_training.configs import CTRateVQAArguments, GRPORecipe

RECIPES = Path(__file__).parents[1] / "recipes"
PAPER = RECIPES / "medreason-r1-qwen2.5-vl-7b"
ON_CPU = ["--use_cpu", "true"]  # bf16 recipes are refused on a CPU-only machine otherwise


def test_sft_recipe_has_the_paper_settings():
    args, training, model = TrlParser(
        (CTRateVQAArguments, SFTConfig, ModelConfig)
    ).parse_args_and_config(["--config", str(PAPER / "sft.yaml"), *ON_CPU])
    assert model.model_name_or_path == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert (training.num_train_epochs, training.learning_rate, training.warmup_steps) == (
        2,
        1e-5,
        0.1,
    )
    assert training.lr_scheduler_type == "cosine" and training.bf16
    assert args.trainable_scope == "llm_mlp" and args.dataset_config == "zoom"


def test_grpo_recipe_has_the_paper_settings():
    args, training, _ = TrlParser(
        (CTRateVQAArguments, GRPORecipe, ModelConfig)
    ).parse_args_and_config(["--config", str(PAPER / "grpo.yaml"), *ON_CPU])
    assert (training.num_generations, training.max_steps, training.loss_type) == (5, 1500, "grpo")
    assert training.beta > 0
    assert training.reward_funcs == ["format", "validity", "correctness"]
    assert training.reward_weights == [1.0, 1.0, 2.0]
    assert args.prompt_mode == "think"


def test_accelerate_configs_are_valid_yaml():
    for name in ("ddp", "zero2", "zero3"):
        config = yaml.safe_load((RECIPES / "accelerate" / f"{name}.yaml").read_text())
        assert config["num_processes"] == 8 and config["mixed_precision"] == "bf16"


def test_7b_recipes_pin_image_tokens_and_size_vllm():
    """issue 9 item 7: a fixed image-token count, and a vLLM context that fits its memory share."""
    from model_training.run_recipe import parse_run

    plan = parse_run(
        ["--config", str(PAPER / "run.yaml"), "--use_cpu", "true", "--num_processes", "2"]
    )
    assert plan.run.accelerate_config == "recipes/accelerate/zero2.yaml"
    for stage in plan.stages.values():
        assert (stage.args.image_min_pixels, stage.args.image_max_pixels) == (504**2, 512**2)
    grpo = plan.stages["grpo"].training
    # ~460 prompt tokens (324 image) + the longest completion fit; not the model's 128K
    assert 460 + grpo.max_completion_length <= grpo.vllm_max_model_length <= 4096
    assert grpo.vllm_gpu_memory_utilization <= 0.5
