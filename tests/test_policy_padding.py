"""GRPO with several prompts per device: TRL's log-probabilities of a prompt inside a padded
batch equal those of the same prompt alone (the processor must pad on the left)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from trl import ModelConfig

from model_training.configs import CTRateVQAArguments, GRPORecipe
from model_training.grpo import grpo_trainer
from model_training.tiny_model import build_tiny_model

REPLY = "<think>hazy area</think><answer>emphysema</answer>"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("padding") / "tiny")


def _logps(trainer, rows: list[dict]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """(per-token log-probs, completion mask, prompt lengths) as GRPO's loss computes them for
    ``rows`` (TRL's batching: prompt ids padded, image inputs from the processor)."""
    batch = trainer._generate_and_score_completions(rows)
    with torch.no_grad():
        logps, _, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model,
            torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1),
            torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1),
            batch["completion_ids"].size(1),
            pixel_values=batch.get("pixel_values"),
            image_grid_thw=batch.get("image_grid_thw"),
            num_images=batch.get("num_images"),
            mm_token_type_ids=batch.get("mm_token_type_ids"),
        )
    return logps, batch["completion_mask"], batch["prompt_mask"].sum(dim=1).tolist()


def test_logps_of_a_padded_prompt_equal_those_alone(built_dataset, tiny_model, tmp_path):
    args = CTRateVQAArguments(dataset_name=str(built_dataset), dataset_limit=8)
    training = GRPORecipe(
        output_dir=str(tmp_path / "grpo"),
        per_device_train_batch_size=4,  # two prompts x two generations per device
        num_generations=2,
        max_completion_length=16,
        use_cpu=True,
        bf16=False,
        activation_checkpointing=False,
        report_to="none",
    )
    trainer, processor, _ = grpo_trainer(
        args, training, ModelConfig(model_name_or_path=str(tiny_model))
    )
    reply_ids = processor.tokenizer.encode(REPLY) + [processor.tokenizer.eos_token_id]

    def fixed_completions(prompt_ids, *_args, **_kwargs):  # a reply that depends on the prompt
        return [reply_ids[: 6 + len(ids) % 7] for ids in prompt_ids], None

    trainer._generate_single_turn = fixed_completions  # the sampling is not under test
    long, short = trainer.train_dataset[0], copy.deepcopy(trainer.train_dataset[1])
    question = short["prompt"][1]["content"][1]
    question["text"] = question["text"].split(". ")[-1]  # the question without the preamble
    trainer.model.train()

    batch_logps, batch_mask, lengths = _logps(trainer, [short, short, long, long])
    assert lengths[0] < lengths[2]  # the short prompt is padded
    for index, row in ((0, short), (2, long)):
        alone_logps, alone_mask, _ = _logps(trainer, [row, row])
        n = int(alone_mask[0].sum())
        assert int(batch_mask[index].sum()) == n
        torch.testing.assert_close(batch_logps[index, :n], alone_logps[0, :n], atol=1e-4, rtol=0)
