"""Checkpoints on a real disk (issue 18): a stage killed while the Trainer writes a checkpoint
(a full disk) leaves a ``checkpoint-N`` without ``trainer_state.json``, which the Trainer
writes last. ``resume_from_checkpoint: last`` resumes from the newest COMPLETE checkpoint,
logs each incomplete one it skips, never deletes it, and the Trainer later saves over it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import TrainerState
from trl import SFTConfig

from model_training.configs import ConfigError, CTRateVQAArguments
from model_training.policy import prepare_stage
from model_training.tiny_model import build_tiny_model

from .test_policy_resume import CPU, WEIGHTS, _assert_same_tensors, _sft

STATE = "trainer_state.json"
ROTATED = {"save_total_limit": 2, "lr_scheduler_type": "constant"}  # one schedule at any length


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("checkpoints") / "tiny")


def _checkpoints(out: Path) -> list[str]:
    return sorted((p.name for p in out.glob("checkpoint-*")), key=lambda n: int(n.split("-")[1]))


def _skipped(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "skipping incomplete" in r.getMessage()]


def _cut_short(checkpoint: Path) -> None:
    """What a process killed while writing the optimizer state leaves: the weights, half of
    optimizer.pt, and none of what follows (scheduler, RNG state, trainer_state.json)."""
    optimizer = checkpoint / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[: optimizer.stat().st_size // 2])
    for name in ("scheduler.pt", "rng_state.pth", STATE):
        (checkpoint / name).unlink()


def test_resume_skips_a_checkpoint_cut_short_and_saves_over_it(
    built_dataset, tiny_model, tmp_path, caplog
):
    out = tmp_path / "sft"
    _sft(built_dataset, tiny_model, out, max_steps=4, **ROTATED)
    assert _checkpoints(out) == ["checkpoint-3", "checkpoint-4"]  # save_total_limit rotated
    uninterrupted = load_file(out / "checkpoint-4" / WEIGHTS)
    _cut_short(out / "checkpoint-4")
    (out / WEIGHTS).unlink()  # the model saved below comes from the resumed run

    caplog.set_level(logging.INFO, logger="model_training.policy")
    _sft(built_dataset, tiny_model, out, max_steps=5, resume_from_checkpoint="last", **ROTATED)
    assert _skipped(caplog) == [
        f"skipping incomplete checkpoint {out / 'checkpoint-4'}: no {STATE} (the Trainer "
        "writes it last)"
    ]
    assert f"weights loaded from {out / 'checkpoint-3'}" in caplog.text
    # step 4 was trained again from checkpoint-3 and saved over the leftover folder, which is
    # now complete; rotation (save_total_limit 2) then removed checkpoint-3, not the new ones
    assert _checkpoints(out) == ["checkpoint-4", "checkpoint-5"]
    state = TrainerState.load_from_json(str(out / "checkpoint-4" / STATE))
    assert state.global_step == 4
    _assert_same_tensors(load_file(out / "checkpoint-4" / WEIGHTS), uninterrupted)
    torch.load(out / "checkpoint-4" / "optimizer.pt", weights_only=True)  # whole again
    _assert_same_tensors(load_file(out / WEIGHTS), load_file(out / "checkpoint-5" / WEIGHTS))
    logs = json.loads((out / "training_summary.json").read_text())["log_history"]
    assert [e["step"] for e in logs if "loss" in e] == [1, 2, 3, 4, 5]


def test_resume_without_a_complete_checkpoint_starts_fresh(
    built_dataset, tiny_model, tmp_path, caplog
):
    out = tmp_path / "sft"
    _sft(built_dataset, tiny_model, out, max_steps=1)
    fresh = load_file(out / WEIGHTS)
    (out / "checkpoint-1" / STATE).unlink()
    caplog.set_level(logging.INFO, logger="model_training.policy")
    # a fresh start: the learning rate of a resumed run (_sft), so other weights than the first
    _sft(built_dataset, tiny_model, out, max_steps=1, resume_from_checkpoint="last")
    assert len(_skipped(caplog)) == 1
    assert "no complete checkpoint in" in caplog.text and "starting fresh" in caplog.text
    assert "weights loaded from" not in caplog.text
    assert (out / "checkpoint-1" / STATE).is_file()  # saved over by the fresh run
    assert load_file(out / WEIGHTS).keys() == fresh.keys()
    assert not all(torch.equal(v, fresh[k]) for k, v in load_file(out / WEIGHTS).items())


def _complete(folder: Path, step: int) -> Path:
    folder.mkdir(parents=True)
    TrainerState(global_step=step).save_to_json(str(folder / STATE))
    save_file({"w": torch.zeros(2)}, folder / WEIGHTS)
    return folder


def test_what_counts_as_a_complete_checkpoint(tmp_path, caplog):
    out = tmp_path / "out"
    _complete(out / "checkpoint-2", 2)
    no_state = out / "checkpoint-9"
    no_state.mkdir()
    cut = _complete(out / "checkpoint-8", 8)
    (cut / STATE).write_text((cut / STATE).read_text()[:20])  # a full disk mid-write
    empty = _complete(out / "checkpoint-7", 7)
    (empty / WEIGHTS).write_bytes(b"")
    sharded = _complete(out / "checkpoint-6", 6)
    (sharded / WEIGHTS).rename(sharded / "model-00001-of-00002.safetensors")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002"}}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    no_weights = _complete(out / "checkpoint-5", 5)
    (no_weights / WEIGHTS).unlink()
    deepspeed = _complete(out / "checkpoint-4", 4)  # ZeRO-3 without gathered 16-bit weights
    (deepspeed / WEIGHTS).unlink()
    (deepspeed / "latest").write_text("global_step4")
    (deepspeed / "global_step4").mkdir()
    (out / "checkpoint-10").write_text("a file, not a checkpoint")

    caplog.set_level(logging.INFO, logger="model_training.policy")
    training = SFTConfig(output_dir=str(out), resume_from_checkpoint="last", **CPU)
    assert prepare_stage(training, CTRateVQAArguments()) == str(deepspeed)
    assert _skipped(caplog) == [
        f"skipping incomplete checkpoint {no_state}: no {STATE} (the Trainer writes it last)",
        f"skipping incomplete checkpoint {cut}: {STATE} is unreadable (JSONDecodeError)",
        f"skipping incomplete checkpoint {empty}: {WEIGHTS} is empty",
        f"skipping incomplete checkpoint {sharded}: model.safetensors.index.json names missing "
        "shards ['model-00002-of-00002']",
        f"skipping incomplete checkpoint {no_weights}: no model weights",
    ]
    # a folder named explicitly is refused in one line, and nothing is deleted
    training.resume_from_checkpoint = str(cut)
    with pytest.raises(ConfigError, match=r"^[^\n]*checkpoint-8: not a complete[^\n]*$"):
        prepare_stage(training, CTRateVQAArguments())
    assert len(_checkpoints(out)) == 8 and (no_state.is_dir() and (cut / STATE).is_file())
