"""``python -m model_training.run``: recipe sections and overrides, the whole flow on the tiny
model and the synthetic dataset (final folder, card, summary, Hub push), and resume."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard
from transformers import Qwen2_5_VLForConditionalGeneration

from model_training import run as run_module
from model_training.processor import load_processor
from model_training.run_recipe import DEFAULT_RECIPE, RecipeError, parse_run

TINY_RUN = {
    "tiny_model_if_missing": True,
    "trainable_scope": "full",
    "prompt_mode": "think",
    "dataset_limit": 16,
    "use_cpu": True,
    "bf16": False,
    "activation_checkpointing": False,
    "dataloader_num_workers": 0,
    "report_to": "none",
    "seed": 0,
    "logging_steps": 1,
    "eval_limit": 4,
    "eval_batch_size": 4,
    "eval_max_new_tokens": 12,
    "sft": {
        "sft_target": "finding",
        "max_steps": 2,
        "per_device_train_batch_size": 4,
        "learning_rate": 1e-3,
        "assistant_only_loss": True,
        "max_length": None,
        "save_strategy": "steps",
        "save_steps": 1,
    },
    "grpo": {
        "max_steps": 2,
        "per_device_train_batch_size": 4,
        "num_generations": 4,
        "max_completion_length": 12,
        "learning_rate": 1e-4,
        "loss_type": "grpo",
        "beta": 0.04,
        "save_strategy": "steps",
        "save_steps": 1,
    },
}


def write_recipe(path: Path, recipe: dict) -> Path:
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


@pytest.fixture
def recipe(tmp_path, built_dataset) -> Path:
    return write_recipe(
        tmp_path / "recipe.yaml",
        {
            "output_dir": str(tmp_path / "run"),
            "model_name_or_path": str(tmp_path / "tiny"),
            "dataset_name": str(built_dataset),
            **TINY_RUN,
        },
    )


def test_default_recipe_is_the_cpu_demo():
    plan = parse_run([])
    assert plan.recipe_path == DEFAULT_RECIPE and plan.run.output_dir == "outputs/demo-cpu"
    assert plan.run.synthetic_cases and plan.run.tiny_model_if_missing
    sft, grpo = plan.stages["sft"], plan.stages["grpo"]
    assert type(sft.training).__name__ == "SFTConfig" and sft.training.assistant_only_loss
    assert sft.training.output_dir == "outputs/demo-cpu/sft"
    assert grpo.training.output_dir == "outputs/demo-cpu/grpo"
    assert grpo.training.reward_funcs == ["format", "validity", "correctness"]
    assert grpo.training.reward_weights == [1.0, 1.0, 2.0]
    assert grpo.training.loss_type == "grpo" and grpo.training.beta > 0
    assert sft.training.use_cpu and not sft.training.bf16 and not grpo.training.bf16
    assert not grpo.model_from_recipe  # GRPO continues the run's SFT model


def test_sections_and_overrides(recipe):
    plan = parse_run(
        ["--config", str(recipe), "--learning_rate", "5e-4", "--grpo.max_steps", "7",
         "--sft.trainable_scope", "llm_mlp", "--stage", "sft", "--resume"]
    )  # fmt: skip
    sft, grpo = plan.stages["sft"], plan.stages["grpo"]
    assert plan.run.stage == "sft" and plan.run.resume
    assert sft.training.learning_rate == grpo.training.learning_rate == 5e-4  # both stages
    assert grpo.training.max_steps == 7 and sft.training.max_steps == 2  # one stage only
    assert sft.args.trainable_scope == "llm_mlp" and grpo.args.trainable_scope == "full"
    assert sft.args.sft_target == "finding" and grpo.training.num_generations == 4
    # the record of the run holds the overrides
    assert plan.recipe["learning_rate"] == 5e-4 and plan.recipe["grpo"]["max_steps"] == 7
    # a field only GRPO has may be given to both: SFT ignores it
    assert parse_run(["--config", str(recipe), "--beta", "0.1"]).stages["grpo"].training.beta == 0.1


@pytest.mark.parametrize(
    ("edit", "argv", "message"),
    [
        ({"not_a_field": 1}, [], "not_a_field"),
        ({"grpo": {"num_train_epoch": 3}}, [], "num_train_epoch"),
        ({"sft": {"synthetic_cases": 3}}, [], "run field"),
        ({}, ["--lerning_rate", "1e-3"], "lerning_rate"),
        ({}, ["--sft.num_generations", "4"], "num_generations"),
        ({}, ["--stage", "train"], "stage"),
        ({"push_to_hub": True}, [], "repo id"),
    ],
)
def test_bad_recipes_name_the_field(tmp_path, recipe, edit, argv, message):
    content = yaml.safe_load(recipe.read_text())
    for key, value in edit.items():
        if isinstance(value, dict):
            content[key] = {**content[key], **value}
        else:
            content[key] = value
    bad = write_recipe(tmp_path / "bad.yaml", content)
    with pytest.raises(RecipeError, match=message):
        parse_run(["--config", str(bad), *argv])


def test_missing_recipe_says_what_to_do(tmp_path):
    with pytest.raises(RecipeError, match="--config"):
        parse_run(["--config", str(tmp_path / "nope.yaml")])
    assert run_module.main(["--config", str(tmp_path / "nope.yaml")]) == 2


def test_grpo_alone_needs_the_sft_model(recipe):
    with pytest.raises(RecipeError, match="--stage sft"):
        run_module.run(parse_run(["--config", str(recipe), "--stage", "grpo"]))


def test_vllm_is_asked_for_only_when_installed(recipe):
    import importlib.util

    plan = parse_run(["--config", str(recipe), "--grpo.use_vllm", "true"])
    if importlib.util.find_spec("vllm") is None:
        with pytest.raises(RecipeError, match="pip install vllm"):
            run_module.train_stage(plan, "grpo")
    else:
        run_module._check_generation_backend(plan.stages["grpo"])


def test_whole_run_then_resume_then_push(recipe, tmp_path, local_hub, capsys):
    run_dir = tmp_path / "run"
    assert run_module.main(["--config", str(recipe)]) == 0
    printed = capsys.readouterr().out
    assert "before SFT" in printed and "after GRPO" in printed and "GRPO mean reward" in printed

    summary = json.loads((run_dir / "run_summary.json").read_text())
    assert list(summary["evaluations"]) == ["before SFT", "after SFT", "after GRPO"]
    for result in summary["evaluations"].values():
        assert {"think", "no-think"} <= set(result) and result["think"]["n"] == 4
    assert summary["chance_accuracy"] == pytest.approx(1 / 7)
    assert set(summary["grpo_reward"]["components"]) == {"format", "validity", "correctness"}

    final = run_dir / "final"
    names = {p.name for p in final.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "recipe.yaml",
            "results.json", "run_summary.json", "training_logs.json", "README.md",
            "sft_loss.png", "grpo_loss.png", "grpo_reward.png"} <= names  # fmt: skip
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)  # safetensors only
    assert not any(p.is_dir() and p.name.startswith("checkpoint") for p in final.iterdir())
    assert (final / ".eval_results" / "ct-rate-vqa.yaml").is_file()
    for png in final.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    recorded = yaml.safe_load((final / "recipe.yaml").read_text())
    assert recorded["grpo"]["max_steps"] == 2 and recorded["sft"]["sft_target"] == "finding"
    results = json.loads((final / "results.json").read_text())
    assert results["model"] == str(run_dir / "grpo")
    card = ModelCard.load(final / "README.md")
    assert card.data.license == "cc-by-nc-sa-4.0" and card.data.eval_results
    assert "SFT" in card.text and "GRPO" in card.text and "grpo_reward.png" in card.text
    logs = json.loads((final / "training_logs.json").read_text())
    assert set(logs) == {"sft", "grpo"} and logs["sft"]["trainable_scope"] == "full"
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(final)
    load_processor(final)
    assert model.generation_config is not None

    # --resume keeps finished stages and evaluations: nothing is trained or generated again
    stamps = {p: p.stat().st_mtime_ns for p in run_dir.glob("*/training_summary.json")}
    evals = {p: p.stat().st_mtime_ns for p in run_dir.glob("eval/*/results.json")}
    assert run_module.main(["--config", str(recipe), "--resume"]) == 0
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}
    assert evals == {p: p.stat().st_mtime_ns for p in evals}

    # a GRPO stage killed after its checkpoint 2 continues from there to step 3
    grpo_dir = run_dir / "grpo"
    (grpo_dir / "training_summary.json").unlink()
    assert (grpo_dir / "checkpoint-2").is_dir()
    first = json.loads((run_dir / "final" / "training_logs.json").read_text())["grpo"]
    assert (
        run_module.main(
            ["--config", str(recipe), "--resume", "--grpo.max_steps", "3", "--stage", "grpo"]
        )
        == 0
    )
    logs = json.loads((grpo_dir / "training_summary.json").read_text())["log_history"]
    steps = [e for e in logs if "reward" in e]
    assert [e["step"] for e in steps] == [1, 2, 3]
    assert steps[:2] == [e for e in first["log_history"] if "reward" in e]

    # eval alone re-evaluates the changed GRPO model, then publishes the final folder
    os.environ.pop("HF_TOKEN", None)
    assert (
        run_module.main(
            [
                "--config",
                str(recipe),
                "--resume",
                "--stage",
                "eval",
                "--push-to-hub",
                "org/tiny-run",
            ]
        )
        == 0
    )
    pushed = local_hub.files("org/tiny-run")
    assert "model.safetensors" in pushed and ".eval_results/ct-rate-vqa.yaml" in pushed
    assert "recipe.yaml" in pushed and "grpo_reward.png" in pushed
    assert Qwen2_5_VLForConditionalGeneration.from_pretrained("org/tiny-run") is not None


def test_synthetic_dataset_is_built_when_missing(tmp_path):
    plan = parse_run(
        ["--dataset_name", str(tmp_path / "ds"), "--synthetic_cases", "3", "--synthetic_size",
         "64", "--synthetic_slices", "16", "--output_dir", str(tmp_path / "run")]
    )  # fmt: skip
    run_module.ensure_dataset(plan)
    assert run_module.build_complete(tmp_path / "ds")
    manifest = (tmp_path / "ds" / "build_manifest.json").stat().st_mtime_ns
    run_module.ensure_dataset(plan)  # a complete build is kept
    assert (tmp_path / "ds" / "build_manifest.json").stat().st_mtime_ns == manifest
