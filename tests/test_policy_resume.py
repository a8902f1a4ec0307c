"""Resume: a stage resumed from checkpoint-N with max_steps=N saves exactly the checkpoint's
weights (the Trainer's own reload leaves Qwen2.5-VL at its start weights, transformers#43701),
and a checkpoint that lacks tensors is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import TrainerState
from trl import ModelConfig, SFTConfig

from model_training.configs import CTRateVQAArguments, GRPORecipe
from model_training.grpo import grpo_trainer
from model_training.policy import prepare_stage, train_and_save
from model_training.sft import train_sft
from model_training.tiny_model import build_tiny_model

CPU = {
    "bf16": False,
    "use_cpu": True,
    "activation_checkpointing": False,
    "report_to": "none",
    "logging_steps": 1,
    "dataloader_num_workers": 0,
    "save_strategy": "steps",
    "save_steps": 1,
    "seed": 0,
}
WEIGHTS = "model.safetensors"
ADAPTER = "adapter_model.safetensors"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("resume") / "tiny")


def _args(built_dataset: Path, **overrides) -> CTRateVQAArguments:
    return CTRateVQAArguments(dataset_name=str(built_dataset), dataset_limit=8, **overrides)


def _sft(built_dataset, tiny_model, out: Path, max_steps: int, **overrides) -> Path:
    """SFT; a resumed run (``resume_from_checkpoint``) gets another learning rate, so that it
    would end elsewhere if it trained afresh instead of resuming (the optimiser state restores
    the first run's)."""
    scope = overrides.pop("trainable_scope", "llm_mlp")
    return train_sft(
        _args(built_dataset, trainable_scope=scope),
        SFTConfig(
            output_dir=str(out),
            max_steps=max_steps,
            per_device_train_batch_size=2,
            learning_rate=3e-3 if "resume_from_checkpoint" in overrides else 1e-3,
            **{**CPU, **overrides},
        ),
        ModelConfig(model_name_or_path=str(tiny_model), lora_r=4 if scope == "lora" else 16),
    )


def _assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} of {len(a)} tensors differ: {different[:3]}"


def _changed(left: Path, right: Path) -> list[str]:
    a, b = load_file(left), load_file(right)
    return [k for k in a if not torch.equal(a[k], b[k])]


def test_sft_resume_continues_from_the_checkpoint_weights(built_dataset, tiny_model, tmp_path):
    out = tmp_path / "sft"
    _sft(built_dataset, tiny_model, out, max_steps=2)
    checkpoint = out / "checkpoint-2"
    assert _changed(tiny_model / WEIGHTS, checkpoint / WEIGHTS)  # SFT moved the MLPs
    uninterrupted = load_file(checkpoint / WEIGHTS)
    (out / WEIGHTS).unlink()  # the saved model below comes from the resumed run
    _sft(built_dataset, tiny_model, out, max_steps=2, resume_from_checkpoint="last")
    _assert_same_tensors(load_file(out / WEIGHTS), uninterrupted)
    # resumed from step 1, step 2 (the Trainer's own reload included) repeats the first run
    _sft(
        built_dataset,
        tiny_model,
        out,
        max_steps=2,
        resume_from_checkpoint=str(out / "checkpoint-1"),
    )
    _assert_same_tensors(load_file(out / WEIGHTS), uninterrupted)


def test_lora_resume_continues_from_the_checkpoint_adapter(built_dataset, tiny_model, tmp_path):
    out = tmp_path / "lora"
    _sft(built_dataset, tiny_model, out, max_steps=2, trainable_scope="lora")
    checkpoint = out / "checkpoint-1"
    assert _changed(checkpoint / ADAPTER, out / ADAPTER)  # step 2 moved the adapter
    _sft(
        built_dataset,
        tiny_model,
        out,
        max_steps=1,
        trainable_scope="lora",
        resume_from_checkpoint=str(checkpoint),
    )
    _assert_same_tensors(load_file(out / ADAPTER), load_file(checkpoint / ADAPTER))


def test_grpo_resume_continues_from_the_checkpoint_weights(built_dataset, tiny_model, tmp_path):
    out = tmp_path / "grpo"

    def recipe(max_steps: int, **extra) -> GRPORecipe:
        return GRPORecipe(
            output_dir=str(out),
            max_steps=max_steps,
            per_device_train_batch_size=2,
            num_generations=2,
            max_completion_length=8,
            learning_rate=3e-3 if extra else 1e-3,  # a fresh start would end elsewhere
            weight_decay=0.1,  # an update even where the untrained model's rewards all tie
            loss_type="grpo",
            beta=0.04,
            **CPU,
            **extra,
        )

    args, model_args = _args(built_dataset), ModelConfig(model_name_or_path=str(tiny_model))
    for max_steps, extra in ((2, {}), (1, {"resume_from_checkpoint": str(out / "checkpoint-1")})):
        training = recipe(max_steps, **extra)
        checkpoint = prepare_stage(training, args)
        trainer, processor, summary = grpo_trainer(args, training, model_args, checkpoint)
        train_and_save(trainer, processor, training.output_dir, summary, checkpoint)
    assert checkpoint == str(out / "checkpoint-1")
    assert _changed(tiny_model / WEIGHTS, out / WEIGHTS)
    _assert_same_tensors(load_file(out / WEIGHTS), load_file(out / "checkpoint-1" / WEIGHTS))
    # the KL reference is the start model, not the checkpoint
    start = load_file(tiny_model / WEIGHTS)["model.layers.0.mlp.up_proj.weight"]
    reference = trainer.ref_model.model.language_model.layers[0].mlp.up_proj.weight
    assert torch.equal(reference.detach().cpu(), start)


@pytest.mark.parametrize(
    ("scope", "weights", "dropped"),
    [
        ("llm_mlp", WEIGHTS, "model.layers.1.mlp.down_proj.weight"),
        (
            "lora",
            ADAPTER,
            "base_model.model.model.language_model.layers.1.mlp.up_proj.lora_B.weight",
        ),
    ],
)
def test_a_checkpoint_missing_tensors_is_refused(
    built_dataset, tiny_model, tmp_path, scope, weights, dropped
):
    out = tmp_path / scope
    _sft(built_dataset, tiny_model, out, max_steps=1, trainable_scope=scope)
    checkpoint = out / "checkpoint-1"
    tensors = load_file(checkpoint / weights)
    del tensors[dropped]
    save_file(tensors, checkpoint / weights, metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"checkpoint-1.*missing keys.*layers\.1\.mlp\."):
        _sft(
            built_dataset,
            tiny_model,
            out,
            max_steps=2,
            trainable_scope=scope,
            resume_from_checkpoint="last",
        )


def test_resume_last_without_a_checkpoint_starts_fresh(tmp_path):
    training = SFTConfig(output_dir=str(tmp_path / "none"), resume_from_checkpoint="last", **CPU)
    assert prepare_stage(training, CTRateVQAArguments()) is None
    checkpoint = tmp_path / "none" / "checkpoint-3"
    checkpoint.mkdir(parents=True)  # a complete one (tests/test_checkpoints.py: incomplete ones)
    TrainerState(global_step=3).save_to_json(str(checkpoint / "trainer_state.json"))
    save_file({"w": torch.zeros(2)}, checkpoint / WEIGHTS)
    for value, expected in (("last", "checkpoint-3"), (True, "checkpoint-3"), (False, None)):
        training.resume_from_checkpoint = value  # YAML gives booleans
        found = prepare_stage(training, CTRateVQAArguments())
        assert (found and Path(found).name) == expected
    training.resume_from_checkpoint = str(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="missing"):
        prepare_stage(training, CTRateVQAArguments())
