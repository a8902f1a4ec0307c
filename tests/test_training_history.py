"""Issue 19, item 5: the training stages record the model's history in training_summary.json
(``policy.stage_record`` -> ``training_history.stage_history``), final/ carries it, and the
evaluator's ``training_record`` reads it back, never the folder layout or the recipes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from trl import ModelConfig, SFTConfig

from common.names import TRAINING_SUMMARY_NAME
from model_training.configs import CTRateVQAArguments
from model_training.final_model import assemble_final
from model_training.policy import stage_record, write_training_summary
from model_training.rewards import DEFAULT_REWARD_WEIGHTS, DEFAULT_REWARDS
from model_training.sft import train_sft
from model_training.tiny_model import build_tiny_model
from model_training.training_history import display_name, recorded_history, training_record

from .test_training_stages import CPU

HUB_BASE = "Qwen/Qwen2.5-VL-3B-Instruct"
SCOPE = {"trainable_scope": "full", "trainable_parameters": 1, "total_parameters": 1}
GRPO_REWARDS = (list(DEFAULT_REWARDS), list(DEFAULT_REWARD_WEIGHTS))


def record_stage(
    out: Path, stage: str, start: str | Path, args: CTRateVQAArguments, weights: Path | None = None
) -> Path:
    """``out`` as a stage trained from ``start`` leaves it: its training_summary.json written by
    the trainer's own writer from the stage script's own record (and ``weights``' files)."""
    if weights is not None:
        shutil.copytree(weights, out)
    out.mkdir(parents=True, exist_ok=True)
    rewards = GRPO_REWARDS if stage == "grpo" else ()
    start_model = ModelConfig(model_name_or_path=str(start))
    record = stage_record(stage, args, start_model, str(out), *rewards)
    write_training_summary(out, SCOPE, 1, [], **record)
    return out


def written(folder: Path) -> dict:
    return json.loads((folder / TRAINING_SUMMARY_NAME).read_text())


def assert_no_local_path(path: Path, root: Path) -> None:
    text = path.read_text()
    assert str(root) not in text and str(root.resolve()) not in text, path
    history = json.loads(text)["history"]
    assert not any(str(v).startswith("/") for entry in history for v in entry.values()), history


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("history") / "tiny")


@pytest.fixture(scope="module")
def trained_sft(built_dataset: Path, tiny: Path, tmp_path_factory) -> Path:
    """A real SFT stage (one step on the tiny model) into ``<run>/sft``."""
    out = tmp_path_factory.mktemp("runs") / "demo-run" / "sft"
    args = CTRateVQAArguments(dataset_name=str(built_dataset), dataset_limit=4)
    training = SFTConfig(output_dir=str(out), max_steps=1, per_device_train_batch_size=2, **CPU)
    return train_sft(args, training, ModelConfig(model_name_or_path=str(tiny)))


def test_history_chains_across_two_stage_folders(tmp_path, tmp_path_factory):
    base = tmp_path / "local-base"
    base.mkdir()  # a local start model: recorded by its name only
    data = tmp_path / "my-data"
    data.mkdir()
    plain = CTRateVQAArguments(dataset_name=str(data), dataset_config="plain")
    sft = record_stage(tmp_path / "zoomrun" / "sft", "sft", base, plain)
    zoom = CTRateVQAArguments(dataset_name=str(data), dataset_config="zoom")
    grpo = record_stage(tmp_path / "zoomrun" / "grpo", "grpo", sft, zoom)
    common = {"run": "zoomrun", "dataset": "my-data", "task": "classification",
              "trainable_scope": "llm_mlp"}  # fmt: skip
    assert written(grpo)["history"] == [
        {"stage": "sft", **common, "base_model": "local-base", "dataset_config": "plain"},
        {"stage": "grpo", **common, "base_model": "sft", "dataset_config": "zoom",
         "reward_funcs": GRPO_REWARDS[0], "reward_weights": GRPO_REWARDS[1]},
    ]  # fmt: skip
    # the entries are in the order of the dict training_record always returned
    assert training_record(str(grpo)) == {
        "run": "zoomrun", "stages": ["sft", "grpo"], "dataset_config": "plain",
        "dataset_configs": {"sft": "plain", "grpo": "zoom"}, "reward_funcs": GRPO_REWARDS[0],
        "reward_weights": GRPO_REWARDS[1], "trainable_scope": "llm_mlp", "task": "classification",
    }  # fmt: skip
    assert training_record(str(sft))["stages"] == ["sft"]
    assert display_name(str(grpo), training_record(str(grpo))) == "zoomrun (SFT+GRPO)"
    for folder in (sft, grpo):
        assert_no_local_path(folder / TRAINING_SUMMARY_NAME, tmp_path_factory.getbasetemp())
    # the recipes and the folder layout play no part: a moved folder keeps its history
    (tmp_path / "elsewhere").mkdir()
    moved = shutil.move(grpo, tmp_path / "elsewhere" / "copy")
    assert training_record(str(moved))["stages"] == ["sft", "grpo"]
    assert training_record(str(moved))["run"] == "zoomrun"


def test_grpo_from_another_runs_sft_records_both_runs(tmp_path):
    """paper_tables' ``grpo_from``: run ``correctness`` starts its GRPO from run ``zoom``'s SFT."""
    sft = record_stage(tmp_path / "zoom" / "sft", "sft", HUB_BASE, CTRateVQAArguments())
    grpo = record_stage(tmp_path / "correctness" / "grpo", "grpo", sft,
                        CTRateVQAArguments(task="grounding"))  # fmt: skip
    history = written(grpo)["history"]
    assert [(e["stage"], e["run"], e["base_model"]) for e in history] == [
        ("sft", "zoom", HUB_BASE), ("grpo", "correctness", "sft"),
    ]  # fmt: skip
    assert history[0]["dataset"] == "ct-rate-vqa"  # a Hub dataset id, as it is
    record = training_record(str(grpo))
    assert record["run"] == "correctness" and record["stages"] == ["sft", "grpo"]
    assert record["dataset_configs"] == {"sft": "zoom", "grpo": "grounding"}
    assert record["dataset_config"] == "zoom" and record["task"] == "grounding"
    # a multitask stage names both configs; a stage script's own folder names its run
    mt = record_stage(tmp_path / "mt-demo", "sft", HUB_BASE, CTRateVQAArguments(task="multitask"))
    assert training_record(str(mt))["dataset_configs"] == {"sft": "zoom+grounding"}
    assert training_record(str(mt))["run"] == "mt-demo"


def test_no_recorded_history_is_no_training_record(tmp_path, tiny):
    assert training_record(str(tiny)) is None  # an untrained folder
    assert training_record(HUB_BASE) is None and recorded_history(HUB_BASE) is None
    old = tmp_path / "old-run" / "sft"  # a summary written before stages recorded history
    old.mkdir(parents=True)
    (old / TRAINING_SUMMARY_NAME).write_text(json.dumps({"stage": "sft", "log_history": []}))
    assert training_record(str(old)) is None
    assert display_name(str(old), None) == "sft"
    (old / TRAINING_SUMMARY_NAME).write_text(json.dumps({"history": [{"stage": "dpo"}]}))
    assert training_record(str(old)) is None
    # a start folder without a history: the stage's own entry starts it
    grpo = record_stage(tmp_path / "old-run" / "grpo", "grpo", old, CTRateVQAArguments())
    assert training_record(str(grpo))["stages"] == ["grpo"]


def test_a_real_sft_stage_writes_its_history(trained_sft, built_dataset, tiny, tmp_path_factory):
    summary = written(trained_sft)
    assert summary["history"] == [{
        "stage": "sft", "run": "demo-run", "base_model": tiny.name,
        "dataset": built_dataset.name, "dataset_config": "zoom", "task": "classification",
        "trainable_scope": "llm_mlp",
    }]  # fmt: skip
    assert [e["loss"] for e in summary["log_history"] if "loss" in e]  # it trained
    assert_no_local_path(trained_sft / TRAINING_SUMMARY_NAME, tmp_path_factory.getbasetemp())
    assert training_record(str(trained_sft)) == {
        "run": "demo-run", "stages": ["sft"], "dataset_config": "zoom",
        "dataset_configs": {"sft": "zoom"}, "trainable_scope": "llm_mlp", "task": "classification",
    }  # fmt: skip


def test_final_carries_the_last_stages_history(trained_sft, built_dataset, tmp_path_factory):
    run = trained_sft.parent
    args = CTRateVQAArguments(dataset_name=str(built_dataset))
    grpo = record_stage(run / "grpo", "grpo", trained_sft, args, weights=trained_sft)
    logs = {s: written(run / s) for s in ("sft", "grpo")}
    card = {"base_model": "tiny", "datasets": [], "stages": [], "trainable_scope": "llm_mlp"}
    final = assemble_final(run / "final", grpo, {"output_dir": str(run)}, "run.yaml", logs, card,
                           None, {}, None)  # fmt: skip
    assert written(final) == written(grpo)
    assert json.loads((final / "training_logs.json").read_text()) == logs  # kept as it was
    assert_no_local_path(final / TRAINING_SUMMARY_NAME, tmp_path_factory.getbasetemp())
    record = training_record(str(final))
    assert record == training_record(str(grpo))
    assert record["run"] == "demo-run" and record["stages"] == ["sft", "grpo"]
    assert display_name(str(final), record) == "demo-run (SFT+GRPO)"
