"""``python -m model_training.run``: recipe sections and overrides, the whole flow on the tiny
model and the synthetic dataset (final folder, card, summary, Hub push), and resume."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard
from transformers import Qwen2_5_VLForConditionalGeneration

from common.results_schema import read_results
from model_training import run as run_module
from model_training.processor import load_processor
from model_training.run_files import foreign_entry
from model_training.run_launch import accelerate_launch_args
from model_training.run_recipe import DEFAULT_RECIPE, RecipeError, RunArguments, parse_run
from model_training.run_state import hash_of

RECIPES = Path(__file__).parents[1] / "recipes"

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
    "eval_image_ablations": [],  # the whole-run test turns them on
    "eval": {"limit": 4, "batch_size": 4, "max_new_tokens": 12, "judge": "keyword"},
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
    # each stage's own recipe (what its process reads) holds its fields and no other stage's
    assert sft.recipe["learning_rate"] == 5e-4 and sft.recipe["trainable_scope"] == "llm_mlp"
    assert grpo.recipe["max_steps"] == 7 and "sft_target" not in grpo.recipe
    assert "num_generations" not in sft.recipe and "eval" not in sft.recipe
    assert "limit" not in sft.recipe and plan.recipe["eval"]["limit"] == 4
    assert sft.recipe["output_dir"] == str(Path(plan.run.output_dir) / "sft")
    # a field only GRPO has may be given to both: SFT does not get it
    both = parse_run(["--config", str(recipe), "--beta", "0.1"]).stages
    assert both["grpo"].training.beta == 0.1 and "beta" not in both["sft"].recipe


def test_stage_recipes_parse_alone(recipe, tmp_path):
    """What the driver hands each stage process parses with TrlParser as the user's would."""
    from trl import ModelConfig, SFTConfig, TrlParser

    from model_training.configs import CTRateVQAArguments, GRPORecipe

    plan = parse_run(["--config", str(recipe), "--grpo.beta", "0.2"])
    for name, config in (("sft", SFTConfig), ("grpo", GRPORecipe)):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(plan.stages[name].recipe))
        parsed = TrlParser((CTRateVQAArguments, config, ModelConfig)).parse_args_and_config(
            ["--config", str(path)]
        )
        assert parsed[1].max_steps == 2 and parsed[1].output_dir.endswith(name)
    assert parsed[1].beta == 0.2


@pytest.mark.parametrize(
    ("edit", "argv", "message"),
    [
        ({"not_a_field": 1}, [], "not_a_field"),
        ({"grpo": {"num_train_epoch": 3}}, [], "num_train_epoch"),
        ({"sft": {"synthetic_cases": 3}}, [], "run field"),
        ({}, ["--lerning_rate", "1e-3"], "lerning_rate"),
        ({}, ["--sft.num_generations", "4"], "num_generations"),
        ({}, ["--stage", "train"], "stage"),
        ({"push_to_hub": True}, [], "push_to_hub: True is not a string"),  # a repo id
        ({"card_dataset_id": "ct-rate-vqa-demo"}, [], "card_dataset_id"),
        ({"eval": {"judge_model": "judge-20b"}}, [], "judge-model names the model at a judge"),
        ({"eval_limit": 4}, [], "eval_limit is now the eval section's limit"),  # a moved key
        ({}, ["--eval_judge", "keyword"], "--eval.judge on the command line"),
        ({"eval": {"model": "x"}}, [], r"sets \['model'\], which the run fills in"),
        ({}, ["--eval.output_dir", "x"], "which the run fills in"),
        ({}, ["--eval.limt", "3"], "limt"),
        ({"eval": {"limt": 3}}, [], "limt"),
        ({}, ["--eval.sam_model", "medsam"], "--sam-model applies to grounding configs"),
        ({}, ["--gpu_memory_gib", "141"], "sizes the --dry_run plan only"),  # else ignored
        ({}, ["--dry_run", "--push-to-hub", "org/x"], "pushes nothing"),
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


def test_vllm_is_asked_for_only_when_needed(recipe):
    from model_training.backends import vllm_problem

    plan = parse_run(["--config", str(recipe), "--grpo.use_vllm", "true"])
    if vllm_problem() is not None:
        with pytest.raises(RecipeError, match="use_vllm"):
            run_module.check_backends(plan)
    else:
        run_module.check_backends(plan)
    sft_only = parse_run(["--config", str(recipe), "--grpo.use_vllm", "true", "--stage", "sft"])
    run_module.check_backends(sft_only)  # no vLLM asked for


def test_driver_refuses_to_run_under_a_multi_process_launcher(recipe, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert run_module.main(["--config", str(recipe)]) == 2
    assert "--accelerate_config FILE --num_processes N" in capsys.readouterr().err


def test_launcher_command():
    assert run_module.launcher(RunArguments()) == [sys.executable]
    assert run_module.launcher(RunArguments(num_processes=1)) == [sys.executable]
    two = run_module.launcher(RunArguments(num_processes=2))
    assert two[1:3] == ["-m", "accelerate.commands.launch"] and two[-2] == "--main_process_port"
    # accelerate 1.15: `--cpu --num_processes 2` would start one process; torchrun starts two
    assert "--multi_gpu" in two and "--cpu" not in two
    assert two[two.index("--num_processes") + 1] == "2"
    zero2 = run_module.launcher(
        RunArguments(accelerate_config=str(RECIPES / "accelerate" / "zero2.yaml"))
    )
    assert "--config_file" in zero2 and "--num_processes" not in zero2
    assert "--multi_gpu" not in zero2  # the config file says how
    # the flags are the ones accelerate's own launch parser reads, as it reads them
    parsed = accelerate_launch_args(two[3:])
    assert (parsed.num_processes, parsed.multi_gpu, parsed.num_machines) == (2, True, 1)
    with pytest.raises(RecipeError, match="accelerate launch --num_procs 2: .*--num_procs"):
        accelerate_launch_args(["--num_procs", "2"])


def test_state_protects_what_the_run_did_not_write(recipe, tmp_path):
    plan = parse_run(["--config", str(recipe)])
    state = run_module.RunState(tmp_path / "run")
    foreign = tmp_path / "run" / "sft"
    foreign.mkdir(parents=True)
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(RecipeError, match="did not write it"):
        run_module.plan_step(state, plan.run, "sft", foreign, {}, [])
    (foreign / "notes.txt").unlink()
    assert run_module.plan_step(state, plan.run, "sft", foreign, {"a": 1}, [])[0] == "fresh"
    state.record("sft", key="k", inputs="i", status="done")
    with pytest.raises(RecipeError, match="--resume"):  # an earlier run's step: say what to do
        run_module.plan_step(state, plan.run, "sft", foreign, {"a": 1}, [])
    resume, overwrite = RunArguments(resume=True), RunArguments(overwrite=True)
    key = run_module.plan_step(state, overwrite, "sft", foreign, {"a": 1}, [])[1]
    state.record("sft", key=key, inputs=hash_of([]), status="done")
    assert run_module.plan_step(state, resume, "sft", foreign, {"a": 1}, [])[0] == "skip"
    assert run_module.plan_step(state, resume, "sft", foreign, {"a": 2}, [])[0] == "continue"
    assert run_module.plan_step(state, overwrite, "sft", foreign, {"a": 1}, [])[0] == "fresh"
    # a step that starts from a changed step starts afresh, even with --resume
    state.record("grpo", key="g", inputs=hash_of(["old"]), status="done")
    assert run_module.plan_step(state, resume, "grpo", tmp_path, {}, ["sft"])[0] == "fresh"


def test_whole_run_then_resume_then_push(recipe, tmp_path, local_hub, capsys):
    run_dir = tmp_path / "run"
    content = yaml.safe_load(recipe.read_text())
    write_recipe(recipe, {**content, "eval_image_ablations": ["blank", "shuffle"]})
    assert run_module.main(["--config", str(recipe)]) == 0
    printed = capsys.readouterr().out
    assert "before SFT" in printed and "after GRPO" in printed and "GRPO mean reward" in printed
    # issue 21: the final model evaluated again with blank and with shuffled images
    assert "image reliance of the final model (after GRPO)" in printed
    assert "classification (think) accuracy: real" in printed and "shuffled" in printed

    # every step ran in a process of its own, from its own recipe file
    state = json.loads((run_dir / "run_state.json").read_text())
    assert list(state) == ["sft", "grpo", "eval/base", "eval/sft", "eval/grpo",
                           "eval/grpo-blank", "eval/grpo-shuffle", "final"]  # fmt: skip
    for ablation, seed in (("blank", None), ("shuffle", 0)):
        ablated = read_results(run_dir / "eval" / f"grpo-{ablation}" / "results.json")
        assert ablated["image_ablation"] == {"mode": ablation, "seed": seed}
        assert Path(ablated["model"]).name == "grpo"
    pids = [state[s]["pid"] for s in state if s != "final"]
    assert len(set(pids)) == len(pids) and os.getpid() not in pids
    assert state["grpo"]["command"][:2] == ["-m", "model_training.grpo"]
    grpo_recipe = yaml.safe_load((run_dir / "recipes" / "grpo.yaml").read_text())
    assert grpo_recipe["model_name_or_path"] == str(run_dir / "sft")  # GRPO continues SFT

    # issue 20: each step's record lists what it wrote; the names a step's program writes
    # alone cover every file (what a step killed with its driver leaves, unlisted)
    assert "checkpoint-2/trainer_state.json" in state["sft"]["files"]
    assert "README.md" in state["final"]["files"] and not (run_dir / "run.lock").exists()
    for step in state:
        assert foreign_entry(None, step, run_dir / step) is None, step
    notes = run_dir / "sft" / "my_notes.txt"  # a user's file: --overwrite refuses, deletes nothing
    notes.write_text("mine")
    assert run_module.main(["--config", str(recipe), "--overwrite", "--stage", "sft"]) == 2
    assert str(notes) in capsys.readouterr().err and notes.read_text() == "mine"
    notes.unlink()

    summary = json.loads((run_dir / "run_summary.json").read_text())
    assert list(summary["evaluations"]) == ["before SFT", "after SFT", "after GRPO"]
    for result in summary["evaluations"].values():
        assert {"think", "no-think"} <= set(result) and result["think"]["n"] == 4
        assert result["think"]["consistency_judged"] <= 4  # the keyword judge ran
    assert summary["chance_accuracy"] == pytest.approx(1 / 7)
    real = summary["evaluations"]["after GRPO"]["think"]["accuracy_micro"]
    records = summary["image_reliance"]["records"]
    assert [r["image_ablation"]["mode"] for r in records] == ["blank", "shuffle"]
    for record in records:
        ablated = read_results(run_dir / "eval" / f"grpo-{record['image_ablation']['mode']}"
                               / "results.json")["modes"]["think"]["accuracy_micro"]  # fmt: skip
        assert record["modes"]["think"]["accuracy_micro"] == {
            "real": real,
            "ablated": ablated,
            "reliance": pytest.approx(real - ablated),
        }
        assert record["without_image"] == {"accuracy_micro": pytest.approx(1 / 7)}
    assert set(summary["grpo_reward"]["components"]) == {"format", "validity", "correctness"}

    final = run_dir / "final"
    names = {p.name for p in final.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "recipe.yaml",
            "results.json", "run_summary.json", "training_logs.json", "README.md",
            "sft_loss.png", "grpo_loss.png", "grpo_reward.png"} <= names  # fmt: skip
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)  # safetensors only
    assert not any(p.is_dir() and p.name.startswith("checkpoint") for p in final.iterdir())
    # a local dataset folder: results in the card's text, none attached to a Hub dataset
    assert not (final / ".eval_results").exists()
    for png in final.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    recorded = yaml.safe_load((final / "recipe.yaml").read_text())
    assert recorded["grpo"]["max_steps"] == 2 and recorded["sft"]["sft_target"] == "finding"
    results = json.loads((final / "results.json").read_text())
    assert Path(results["model"]).name == "grpo"  # (a pushed file names no local path)
    card = ModelCard.load(final / "README.md")
    assert card.data.license == "cc-by-nc-sa-4.0" and card.data.eval_results is None
    assert "a local build of CT-RATE-VQA" in card.text and str(tmp_path) not in card.text
    assert "SFT" in card.text and "GRPO" in card.text and "grpo_reward.png" in card.text
    assert "Does the model look at the image?" in card.text and "drop with shuffled" in card.text
    logs = json.loads((final / "training_logs.json").read_text())
    assert set(logs) == {"sft", "grpo"} and logs["sft"]["trainable_scope"] == "full"
    assert Qwen2_5_VLForConditionalGeneration.from_pretrained(final).generation_config
    load_processor(final)
    decoding = json.loads((final / "generation_config.json").read_text())
    assert decoding["do_sample"] is False and decoding["repetition_penalty"] == 1.0
    assert "no_repeat_ngram_size" in decoding  # written by the driver: the evaluation's decoding

    # the same command again would redo finished work: it says what to do instead
    assert run_module.main(["--config", str(recipe)]) == 2
    assert "--resume" in capsys.readouterr().err

    # --resume keeps finished steps: nothing is trained or generated again
    stamps = {p: p.stat().st_mtime_ns for p in run_dir.glob("*/training_summary.json")}
    evals = {p: p.stat().st_mtime_ns for p in run_dir.glob("eval/*/results.json")}
    assert run_module.main(["--config", str(recipe), "--resume"]) == 0
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}
    assert evals == {p: p.stat().st_mtime_ns for p in evals}

    # a GRPO stage asked for one more step continues from its checkpoint 2 to step 3
    assert (run_dir / "grpo" / "checkpoint-2").is_dir()
    first = json.loads((final / "training_logs.json").read_text())["grpo"]
    argv = ["--config", str(recipe), "--resume", "--grpo.max_steps", "3", "--stage", "grpo"]
    assert run_module.main(argv) == 0
    logs = json.loads((run_dir / "grpo" / "training_summary.json").read_text())["log_history"]
    steps = [e for e in logs if "reward" in e]
    assert [e["step"] for e in steps] == [1, 2, 3]
    assert steps[:2] == [e for e in first["log_history"] if "reward" in e]

    # eval re-evaluates only the changed GRPO model, then publishes the final folder
    os.environ.pop("HF_TOKEN", None)
    kept = {p: p.stat().st_mtime_ns for p in run_dir.glob("eval/[bs]*/results.json")}
    argv = ["--config", str(recipe), "--resume", "--stage", "eval", "--push-to-hub", "org/tiny-run",
            "--card_dataset_id", "org/ct-rate-vqa"]  # fmt: skip
    capsys.readouterr()
    assert run_module.main(argv + ["--grpo.max_steps", "3"]) == 0
    assert kept == {p: p.stat().st_mtime_ns for p in kept}
    # it says why the GRPO model's evaluations are not kept
    err = capsys.readouterr().err
    assert "eval/grpo: --resume starts it afresh: what it starts from changed" in err
    assert "eval/grpo-shuffle: --resume starts it afresh" in err and "the step(s) grpo" in err
    results = json.loads((run_dir / "eval" / "grpo" / "results.json").read_text())
    assert (run_dir / "eval" / "grpo" / "results.json").stat().st_mtime_ns > max(kept.values())
    pushed = local_hub.files("org/tiny-run")
    assert "model.safetensors" in pushed and ".eval_results/ct-rate-vqa.yaml" in pushed
    card = ModelCard.load(run_dir / "final" / "README.md")
    assert [r.dataset_type for r in card.data.eval_results][:1] == ["org/ct-rate-vqa"]
    assert "recipe.yaml" in pushed and "grpo_reward.png" in pushed
    assert Qwen2_5_VLForConditionalGeneration.from_pretrained("org/tiny-run") is not None


def test_two_processes_per_step(recipe, tmp_path, capsys):
    """accelerate launch --cpu --num_processes 2 (gloo) carries each step: SFT, GRPO, eval."""
    argv = ["--config", str(recipe), "--num_processes", "2", "--eval_base_model", "false",
            "--output_dir", str(tmp_path / "run2")]  # fmt: skip
    assert run_module.main(argv) == 0
    run_dir = tmp_path / "run2"
    state = json.loads((run_dir / "run_state.json").read_text())
    assert list(state) == ["sft", "grpo", "eval/sft", "eval/grpo", "final"]
    for step in ("sft", "grpo", "eval/sft"):
        command = state[step]["command"]
        assert command[:2] == ["-m", "accelerate.commands.launch"] and "--multi_gpu" in command
        assert command[command.index("--num_processes") + 1] == "2"
    for stage in ("sft", "grpo"):
        summary = json.loads((run_dir / stage / "training_summary.json").read_text())
        assert summary["world_size"] == 2
    assert "after GRPO" in capsys.readouterr().out
    assert (run_dir / "final" / "model.safetensors").is_file()


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

    # a build made before the grounding config existed is built again for a grounding recipe
    path = tmp_path / "ds" / "build_manifest.json"
    record = json.loads(path.read_text())
    assert "grounding" in record["configs"]
    del record["configs"]["grounding"]
    path.write_text(json.dumps(record))
    assert run_module.build_complete(tmp_path / "ds")
    assert not run_module.build_complete(tmp_path / "ds", {"grounding"})
    grounding = parse_run(
        ["--config", str(RECIPES / "demo-grounding-cpu.yaml"), "--dataset_name",
         str(tmp_path / "ds"), "--synthetic_cases", "3", "--synthetic_size", "64",
         "--synthetic_slices", "16", "--output_dir", str(tmp_path / "run-g")]
    )  # fmt: skip
    run_module.ensure_dataset(grounding)
    assert run_module.build_complete(tmp_path / "ds", {"zoom", "grounding"})


def test_a_hub_id_dataset_is_never_synthesised(tmp_path, monkeypatch, caplog):
    """issue 10: --dataset_name ORG/CT-RATE-VQA with the demo recipe built phantom cases into
    ./ORG/CT-RATE-VQA and trained on them."""
    monkeypatch.chdir(tmp_path)
    plan = parse_run(["--dataset_name", "org/CT-RATE-VQA", "--output_dir", "run"])
    assert plan.run.synthetic_cases  # the demo recipe asks for synthesis...
    with caplog.at_level("INFO"):
        run_module.ensure_dataset(plan)
    assert not (tmp_path / "org").exists()  # ...but not into a Hub id
    assert "reads as a Hub dataset id" in caplog.text
    plan = parse_run(["--dataset_name", "./org/CT-RATE-VQA", "--output_dir", "run",
                      "--synthetic_cases", "2", "--synthetic_size", "64",
                      "--synthetic_slices", "16"])  # fmt: skip
    with caplog.at_level("WARNING"):
        run_module.ensure_dataset(plan)  # written as a local folder, it is built, and says so
    assert run_module.build_complete(tmp_path / "org" / "CT-RATE-VQA")
    assert "PHANTOM" in caplog.text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--grpo.reward_funcs", "formt", "correctness"], "formt"),
        (["--use_peft", "true", "--lora_r", "8"], "trainable_scope: lora"),
        (["--grpo.reward_weights", "1.0"], "reward_weights"),
    ],
)
def test_refused_fields_stop_the_run_before_sft(recipe, argv, message):
    """issue 10: a misspelled reward name failed only after SFT had run; --use_peft was ignored."""
    with pytest.raises(RecipeError, match=message):
        parse_run(["--config", str(recipe), *argv])


def test_a_failed_dataset_build_stops_the_run(tmp_path):
    """issue 10: run ignored the build's return code, then failed later with a misleading
    "BuilderConfig 'zoom' not found"."""
    plan = parse_run(
        ["--dataset_name", str(tmp_path / "ds"), "--synthetic_cases", "2", "--synthetic_size",
         "8", "--output_dir", str(tmp_path / "run")]
    )  # fmt: skip
    with pytest.raises(RecipeError, match="build into .* failed"):
        run_module.ensure_dataset(plan)
