"""The paper's recipes parse with TrlParser and carry the paper's numbers."""

from __future__ import annotations

from pathlib import Path

import yaml
from trl import ModelConfig, SFTConfig, TrlParser

from model_training.configs import CTRateVQAArguments, GRPORecipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
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
    # the config beside the recipe folder, found from any working directory
    assert Path(plan.run.accelerate_config).resolve() == RECIPES / "accelerate" / "zero2.yaml"
    for stage in plan.stages.values():
        assert (stage.args.image_min_pixels, stage.args.image_max_pixels) == (504**2, 512**2)
    grpo = plan.stages["grpo"].training
    # ~460 prompt tokens (324 image) + the longest completion fit; not the model's 128K
    assert 460 + grpo.max_completion_length <= grpo.vllm_max_model_length <= 4096
    assert grpo.vllm_gpu_memory_utilization <= 0.5


MEDREASONER = {
    "qwen": RECIPES / "medreasoner-qwen2.5-vl-7b",
    "lingshu": RECIPES / "medreasoner-lingshu-7b",
}
BASES = {"qwen": "Qwen/Qwen2.5-VL-7B-Instruct", "lingshu": "lingshu-medical-mllm/Lingshu-7B"}


def test_medreasoner_recipes_have_the_paper_settings():
    """MedReasoner (arXiv 2508.08177): GRPO n 16, lr 1e-6, KL 0.01, 5 epochs, temperature 1.0,
    the four soft rewards 1/1/1/1; SFT baseline lr 5e-6, 5 epochs."""
    from model_training.run_recipe import parse_run

    for name, folder in MEDREASONER.items():
        plan = parse_run(["--config", str(folder / "run.yaml"), *ON_CPU])
        sft, grpo = plan.stages["sft"], plan.stages["grpo"]
        assert sft.model_args.model_name_or_path == BASES[name]
        assert (sft.training.learning_rate, sft.training.num_train_epochs) == (5e-6, 5)
        assert sft.args.task == grpo.args.task == "grounding"
        g = grpo.training
        assert (g.num_generations, g.learning_rate, g.beta, g.num_train_epochs) == (
            16, 1e-6, 0.01, 5,
        )  # fmt: skip
        assert g.temperature == 1.0 and g.epsilon == 0.2
        assert g.reward_funcs == ["format_think", "format_seg", "bbox_iou", "points_dice"]
        assert g.reward_weights == [1.0, 1.0, 1.0, 1.0]
        assert plan.evaluations["grounding"].sam_model == "flaviagiammarino/medsam-vit-base"
        assert (sft.args.image_min_pixels, sft.args.image_max_pixels) == (504**2, 512**2)
        # 16 completions per GPU x 8 accumulation x 8 GPUs = 64 prompts of 16 per update
        assert g.per_device_train_batch_size * g.gradient_accumulation_steps * 8 == 64 * 16
        assert 460 + g.max_completion_length <= g.vllm_max_model_length


def test_multitask_recipes_parse():
    from model_training.run_recipe import parse_run

    for recipe in (
        RECIPES / "medreasoner-qwen2.5-vl-7b" / "multitask.yaml",
        RECIPES / "demo-multitask-cpu.yaml",
    ):
        plan = parse_run(["--config", str(recipe), *ON_CPU])
        grpo = plan.stages["grpo"]
        assert grpo.args.tasks == ("classification", "grounding")
        assert grpo.training.reward_funcs[:3] == ["format", "validity", "correctness"]
        assert grpo.training.reward_weights == [1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 1.0]
        assert grpo.args.dataset_config == "zoom" and grpo.args.grounding_config == "grounding"


def test_grounding_demo_recipe_parses():
    from model_training.run_recipe import parse_run

    plan = parse_run(["--config", str(RECIPES / "demo-grounding-cpu.yaml")])
    grpo = plan.stages["grpo"]
    assert grpo.args.task == "grounding" and plan.evaluations["grounding"].sam_model is None
    assert grpo.training.reward_funcs == ["format_think", "format_seg", "bbox_iou", "points_dice"]
    assert grpo.training.beta == 0.01 and plan.stages["sft"].args.sft_target == "finding"


def test_medreasoner_recipes_parse_answers_as_medreasoner():
    """issue 21 item 2: the MedReasoner 7B recipes read the first <answer> block with
    case-sensitive tags (MedReasoner's med_grounding.py) in GRPO and in their evaluations, and
    say so where they set it."""
    from model_training.run_recipe import parse_run

    for name in ("medreasoner-lingshu-7b", "medreasoner-qwen2.5-vl-7b"):
        plan = parse_run(["--config", str(RECIPES / name / "run.yaml"), *ON_CPU])
        assert plan.stages["grpo"].training.answer_parsing == "medreasoner", name
        assert plan.evaluations["grounding"].answer_parsing == "medreasoner", name
        for recipe in ("grpo.yaml", "run.yaml"):
            lines = (RECIPES / name / recipe).read_text().splitlines()
            marked = [line for line in lines if "answer_parsing: medreasoner" in line]
            assert len(marked) == 1 and "# code: MedReasoner med_grounding.py" in marked[0]
    # the others keep ours (the default)
    plan = parse_run(["--config", str(RECIPES / "demo-grounding-cpu.yaml")])
    assert plan.stages["grpo"].training.answer_parsing == "ours"
    assert plan.evaluations["grounding"].answer_parsing == "ours"


MARKERS = ("# paper:", "# code:", "# ours")  # where each value of a published recipe comes from


def test_medreasoner_as_published_starts_grpo_from_the_base_with_verls_settings():
    """issue 21 item 3: MedReasoner's RL run (run_rl_lingshu_7b_soft.sh) starts GRPO from the
    base Lingshu-7B (its SFT model is a separate baseline), with verl's weight decay 0.01,
    token-mean loss (TRL's dapo), grad clip 1.0 and a constant lr; every value says where it
    comes from. The SFT-then-GRPO recipes say they are ours."""
    from model_training.run_recipe import parse_run

    folder, published = MEDREASONER["lingshu"], RECIPES / "medreasoner-published-lingshu-7b"
    plan = parse_run(["--config", str(published / "run.yaml"), *ON_CPU])
    sft, grpo = plan.stages["sft"], plan.stages["grpo"]
    assert grpo.start_stage is None and grpo.start_model == BASES["lingshu"]
    assert sft.start_model == BASES["lingshu"]  # the SFT baseline, trained and evaluated too
    g = grpo.training
    assert (g.weight_decay, g.loss_type, g.max_grad_norm, g.warmup_steps) == (0.01, "dapo", 1.0, 0)
    assert g.lr_scheduler_type == "constant" and (g.learning_rate, g.beta) == (1e-6, 0.01)
    assert (g.num_generations, g.num_train_epochs, g.epsilon) == (16, 5, 0.2)
    assert g.answer_parsing == plan.evaluations["grounding"].answer_parsing == "medreasoner"
    # the SFT baseline's schedule is MedReasoner's (LLaMA-Factory: cosine, warmup ratio 0.1)
    assert sft.training.lr_scheduler_type == "cosine" and sft.training.warmup_steps == 0.1
    for recipe in (published / "run.yaml", published / "grpo.yaml", folder / "sft.yaml"):
        for line in recipe.read_text().splitlines():
            value = line.split("#")[0].partition(":")[2].strip()
            if value:  # a setting (a section's header or a comment line sets nothing)
                assert any(marker in line for marker in MARKERS), f"{recipe}: {line}"
    for name in ("run.yaml", "grpo.yaml"):
        assert (folder / name).read_text().startswith("# Ours"), name
    assert "../medreasoner-published-lingshu-7b/" in (folder / "grpo.yaml").read_text()
