"""issue 18, item 2: stages that link themselves. No recipe names another stage's output; the
driver hands GRPO this run's own SFT output whatever ``output_dir`` is (paper_tables' runs
included), GRPO's key includes SFT's, and the final model is evaluated as SFT+GRPO."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from model_training import paper_tables
from model_training import run as run_module
from model_training.run_recipe import parse_run

from .test_run_plan import RUN_RECIPES

RECIPES = Path(__file__).parents[1] / "recipes"
SPECS = sorted(p for p in (RECIPES / "paper-tables").glob("*.yaml") if "baselines" not in p.name)


def _yaml_files():
    return [p for p in RECIPES.rglob("*.yaml") if "accelerate" not in p.parts]


def _model_fields(value, found):
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "model_name_or_path":
                found.append(str(item))
            _model_fields(item, found)
    elif isinstance(value, list):
        for item in value:
            _model_fields(item, found)
    return found


def test_no_recipe_names_another_stages_output():
    for path in _yaml_files():
        for model in _model_fields(yaml.safe_load(path.read_text()), []):
            assert Path(model).name not in ("sft", "grpo"), f"{path} starts from {model}"
        text = path.read_text()
        assert "grpo.model_name_or_path" not in text, path


# MedReasoner as published (issue 21 item 3): its GRPO starts from the base model its grpo
# stage names; its SFT model is a separate baseline
GRPO_FROM_BASE = {RECIPES / "medreasoner-published-lingshu-7b" / "run.yaml":
                  "lingshu-medical-mllm/Lingshu-7B"}  # fmt: skip


@pytest.mark.parametrize("recipe", RUN_RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_run_recipe_links_grpo_to_its_own_sft(recipe, tmp_path):
    out = tmp_path / "elsewhere"
    plan = parse_run(["--config", str(recipe), "--output_dir", str(out), "--dry_run"])
    sft, grpo = plan.stages["sft"], plan.stages["grpo"]
    if recipe in GRPO_FROM_BASE:
        assert grpo.start_stage is None and grpo.start_model == GRPO_FROM_BASE[recipe]
        assert sft.start_model == GRPO_FROM_BASE[recipe]
        return
    assert grpo.start_stage == "sft" and grpo.start_model == str(out / "sft")
    assert grpo.recipe["model_name_or_path"] == str(out / "sft")  # the file its process reads
    assert sft.start_stage is None and sft.start_model == sft.model_args.model_name_or_path
    assert "model_name_or_path" not in (plan.recipe.get("grpo") or {})  # the link is not a field


@pytest.mark.parametrize("spec_path", SPECS, ids=lambda p: p.stem)
def test_every_paper_tables_run_links_to_its_own_sft(spec_path, tmp_path):
    spec = paper_tables.load_spec(spec_path)
    for name in spec.runs:
        for plan in paper_tables.run_plans(spec, tmp_path, name, plan_only=True):
            assert plan.run.dry_run and plan.run.output_dir == str(tmp_path / name)
            source = spec.runs[name].get("grpo_from")
            grpo = plan.stages["grpo"]
            expected = tmp_path / (source or name) / "sft"
            assert grpo.start_model == str(expected), (name, grpo.start_model)
            assert (grpo.start_stage == "sft") == (source is None)


def test_a_section_naming_this_runs_sft_is_the_link(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "output_dir": str(tmp_path / "run"), "model_name_or_path": "org/base", "use_cpu": True,
        "bf16": False, "grpo": {"model_name_or_path": str(tmp_path / "run" / "sft")},
    }))  # fmt: skip
    grpo = parse_run(["--config", str(recipe)]).stages["grpo"]
    assert grpo.start_stage == "sft"
    other = parse_run(["--config", str(recipe), "--grpo.model_name_or_path", "org/other"])
    assert other.stages["grpo"].start_stage is None
    assert other.stages["grpo"].start_model == "org/other"


def _stage_file_recipe(tmp_path: Path, built_dataset: Path) -> Path:
    """A run recipe laid out as the 7B ones: stage sections from files beside it, GRPO's with
    no model_name_or_path, run from an output_dir of the user's."""
    folder = tmp_path / "recipes"
    folder.mkdir()
    common = {"dataset_name": str(built_dataset), "dataset_limit": 8, "use_cpu": True,
              "bf16": False, "activation_checkpointing": False, "report_to": "none",
              "trainable_scope": "full", "dataloader_num_workers": 0, "seed": 0,
              "save_strategy": "steps", "save_steps": 1, "logging_steps": 1}  # fmt: skip
    (folder / "sft.yaml").write_text(yaml.safe_dump({
        **common, "model_name_or_path": str(tmp_path / "tiny"), "output_dir": "outputs/x/sft",
        "max_steps": 1, "per_device_train_batch_size": 4, "learning_rate": 1e-3,
        "max_length": None,
    }))  # fmt: skip
    (folder / "grpo.yaml").write_text(yaml.safe_dump({
        **common, "output_dir": "outputs/x/grpo", "max_steps": 1, "num_generations": 4,
        "per_device_train_batch_size": 4, "max_completion_length": 8, "loss_type": "grpo",
        "beta": 0.04, "learning_rate": 1e-4,
    }))  # fmt: skip
    run = folder / "run.yaml"
    run.write_text(yaml.safe_dump({
        "output_dir": "outputs/x", "sft": "sft.yaml", "grpo": "grpo.yaml",
        "tiny_model_if_missing": True, "eval_base_model": False, "eval_image_ablations": [],
        "eval": {"mode": "think", "limit": 2, "batch_size": 2, "max_new_tokens": 8},
    }))  # fmt: skip
    return run


def test_a_stage_file_recipe_runs_anywhere_and_grpo_follows_sft(built_dataset, tmp_path):
    """The bug: GRPO started from the recipe's hard-coded outputs/.../sft (HFValidationError with
    another output_dir), kept an old GRPO after SFT was redone, and final/ read as "(GRPO)"."""
    recipe = _stage_file_recipe(tmp_path, built_dataset)
    out = tmp_path / "mine"
    argv = ["--config", str(recipe), "--output_dir", str(out)]
    assert run_module.main(argv) == 0
    grpo_recipe = yaml.safe_load((out / "recipes" / "grpo.yaml").read_text())
    assert grpo_recipe["model_name_or_path"] == str(out / "sft")
    final = json.loads((out / "eval" / "grpo" / "results.json").read_text())
    assert final["display_name"].endswith("(SFT+GRPO)"), final["display_name"]
    assert final["training"]["stages"] == ["sft", "grpo"]

    grpo_done = (out / "grpo" / "training_summary.json").stat().st_mtime_ns
    assert run_module.main([*argv, "--overwrite", "--stage", "sft"]) == 0
    assert run_module.main([*argv, "--resume"]) == 0
    # a redone SFT: GRPO (its key includes SFT's) is trained again, not kept
    assert (out / "grpo" / "training_summary.json").stat().st_mtime_ns > grpo_done
