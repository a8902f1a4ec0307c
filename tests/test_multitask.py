"""Classification and grounding trained together (issue 12): the mixture, a real multitask GRPO
run whose logged rewards show both tasks' rewards, and a driver run evaluating both tasks."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest

from common.names import CLASSIFICATION_TASK, GROUNDING_TASK
from model_training import grpo
from model_training import run as run_module
from model_training.configs import CTRateVQAArguments
from model_training.data import grpo_dataset, sft_dataset
from model_training.grounding_rewards import GROUNDING_SOFT_REWARDS
from model_training.processor import load_processor
from model_training.rewards import DEFAULT_REWARDS
from model_training.tiny_model import build_tiny_model

from .test_run import TINY_RUN, write_recipe

BOTH_REWARDS = [*DEFAULT_REWARDS, *GROUNDING_SOFT_REWARDS]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def _args(built_dataset: Path, **fields) -> CTRateVQAArguments:
    return CTRateVQAArguments(dataset_name=str(built_dataset), task="multitask", **fields)


def test_the_mixture_holds_both_tasks_as_asked(built_dataset, tiny):
    processor = load_processor(tiny)
    every = grpo_dataset(_args(built_dataset, dataset_limit=30), processor, seed=0)
    assert Counter(every["task"]) == {CLASSIFICATION_TASK: 30, GROUNDING_TASK: 30}
    assert every["task"][:30] != [CLASSIFICATION_TASK] * 30  # shuffled, not stacked
    again = grpo_dataset(_args(built_dataset, dataset_limit=30), processor, seed=0)
    assert again["task"] == every["task"]  # the seed fixes the order
    other = grpo_dataset(_args(built_dataset, dataset_limit=30), processor, seed=1)
    assert other["task"] != every["task"]
    for fraction, expected in ((0.25, (30, 10)), (0.75, (10, 30))):
        mixed = grpo_dataset(
            _args(built_dataset, dataset_limit=30, grounding_fraction=fraction), processor, 0
        )
        counts = Counter(mixed["task"])
        assert (counts[CLASSIFICATION_TASK], counts[GROUNDING_TASK]) == expected
    # each task's rows keep their own reward inputs; the other task's columns are empty
    for row in every:
        if row["task"] == GROUNDING_TASK:
            assert len(row["target_bbox"]) == 4 and not row["options"]
        else:
            assert len(row["options"]) == 7 and row["target_bbox"] == []
    # SFT: one conversation schema for both tasks
    conversations = sft_dataset(_args(built_dataset, dataset_limit=5), processor, seed=0)
    replies = [c["messages"][-1]["content"][0]["text"] for c in conversations]
    assert sum('"bbox"' in r for r in replies) == 5 and len(replies) == 10


def test_multitask_grpo_logs_both_tasks_rewards(built_dataset, tiny, tmp_path):
    """A real GRPO run on mixed rows: each reward is logged with a finite mean over its own
    task's rows at some step, and the total reward sums them."""
    out = tmp_path / "grpo"
    argv = [
        "--model_name_or_path", str(tiny), "--dataset_name", str(built_dataset),
        "--task", "multitask", "--dataset_limit", "8", "--output_dir", str(out),
        "--trainable_scope", "full", "--use_cpu", "true", "--bf16", "false",
        "--activation_checkpointing", "false", "--report_to", "none", "--seed", "0",
        "--max_steps", "4", "--per_device_train_batch_size", "8", "--num_generations", "2",
        "--max_completion_length", "16", "--learning_rate", "1e-4", "--logging_steps", "1",
        "--save_strategy", "no", "--reward_funcs", *BOTH_REWARDS,
    ]  # fmt: skip
    assert grpo.main(argv) == 0
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["task"] == "multitask" and set(summary["prompts"]) == {
        CLASSIFICATION_TASK,
        GROUNDING_TASK,
    }
    assert summary["reward_weights"] == [1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 1.0]
    steps = [entry for entry in summary["log_history"] if "reward" in entry]
    assert len(steps) == 4
    for name in BOTH_REWARDS:
        means = [entry.get(f"rewards/{name}_reward/mean") for entry in steps]
        assert any(m is not None and math.isfinite(m) for m in means), (name, means)
    assert all(math.isfinite(entry["reward"]) for entry in steps)


def test_multitask_run_evaluates_both_tasks(tmp_path, built_dataset, capsys):
    recipe = write_recipe(
        tmp_path / "multitask.yaml",
        {
            "output_dir": str(tmp_path / "run"),
            "model_name_or_path": str(tmp_path / "tiny"),
            "dataset_name": str(built_dataset),
            **{k: v for k, v in TINY_RUN.items() if k != "dataset_limit"},
            "task": "multitask",
            "grounding_fraction": 0.5,
            "dataset_limit": 8,
            "eval": {
                **TINY_RUN["eval"],
                "mode": "think",
                "max_new_tokens": 16,
                "sam_model": "none",
            },  # offline (the evaluator's default SAM: MedSAM)
            "eval_base_model": False,
            "eval_image_ablations": ["shuffle"],  # the final model, on both tasks
            "grpo": {**TINY_RUN["grpo"], "reward_funcs": BOTH_REWARDS, "max_completion_length": 16},
        },
    )
    assert run_module.main(["--config", str(recipe)]) == 0
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and "mean-box baseline" in printed
    run_dir = tmp_path / "run"
    state = json.loads((run_dir / "run_state.json").read_text())
    assert list(state) == [
        "sft", "grpo", "eval/sft", "eval/grpo", "eval/sft-grounding", "eval/grpo-grounding",
        "eval/grpo-shuffle", "eval/grpo-grounding-shuffle", "final",
    ]  # fmt: skip
    configs = {
        step: state[step]["command"][state[step]["command"].index("--config") + 1]
        for step in state
        if step.startswith("eval/")
    }
    assert configs == {
        "eval/sft": "zoom",
        "eval/grpo": "zoom",
        "eval/sft-grounding": "grounding",
        "eval/grpo-grounding": "grounding",
        "eval/grpo-shuffle": "zoom",
        "eval/grpo-grounding-shuffle": "grounding",
    }
    summary = json.loads((run_dir / "run_summary.json").read_text())
    assert list(summary["evaluations"]) == ["after SFT", "after GRPO"]
    assert list(summary["grounding_evaluations"]) == ["after SFT", "after GRPO"]
    assert summary["evaluations"]["after GRPO"]["think"]["n"] == 4
    assert summary["grounding_evaluations"]["after GRPO"]["think"]["n"] == 4
    assert set(summary["grpo_reward"]["components"]) == set(BOTH_REWARDS)
    records = summary["image_reliance"]["records"]
    assert [(r["task"], r["image_ablation"]["mode"]) for r in records] == [
        ("classification", "shuffle"), ("grounding", "shuffle")]  # fmt: skip
    readme = (run_dir / "final" / "README.md").read_text()
    assert "Lesion classification" in readme and "Grounding" in readme
    assert "| classification | think | accuracy |" in readme
    assert "| grounding | think | box IoU |" in readme
