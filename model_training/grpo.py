"""GRPO on CT-RATE-VQA with the paper's composite reward (stage 2 of MedReason-R1), or
MedReasoner's grounding rewards (task grounding), or both (task multitask: each reward scores
its own task's rows).

    python -m model_training.grpo --config recipes/....yaml [--field value ...]

parse recipe -> load data -> load model (trainable scope) -> GRPOTrainer -> train -> save. The
rows are read and converted by the main process of each node first; the others read its datasets
cache.
``--resume_from_checkpoint last`` (or a checkpoint folder) resumes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from trl import GRPOTrainer, ModelConfig

from .configs import CTRateVQAArguments, GRPORecipe
from .data import grpo_dataset, load_task_rows
from .policy import load_policy, prepare_stage, stage_main, stage_record, train_and_save
from .rewards import get_rewards


def grpo_trainer(
    args: CTRateVQAArguments,
    training: GRPORecipe,
    model_args: ModelConfig,
    checkpoint: str | None = None,
) -> tuple[GRPOTrainer, Any, dict]:
    """(trainer, processor, summary) of the policy (weights from ``checkpoint`` if given). The
    processor pads on the left: TRL left-pads prompt ids itself but takes the image-token
    layout from the processor, so a right-padding one misplaces image positions of padded
    prompts (TRL sets "left" only on a processor it loads itself). Sets
    ``training.model_init_kwargs`` (refused in recipes) to pass ``model_revision`` on to TRL's
    reference model."""
    with training.main_process_first(local=True, desc="reading the dataset"):
        rows = load_task_rows(args)  # dataset errors before the model loads
    model, processor, summary = load_policy(
        model_args, args, training, checkpoint, padding_side="left"
    )
    # the conversion runs once per node; the node's other processes read its datasets cache
    with training.main_process_first(local=True, desc="GRPO prompts"):
        train_dataset = grpo_dataset(args, processor, training.seed, rows)
    if model_args.model_revision not in (None, "main"):
        # TRL loads the KL reference model from model.config.name_or_path (the start model)
        # with model_init_kwargs: the same revision as the policy's
        training.model_init_kwargs = {"revision": model_args.model_revision}
    trainer = GRPOTrainer(
        model=model,
        args=training,
        processing_class=processor,
        reward_funcs=get_rewards(training.reward_funcs, training.answer_parsing),
        train_dataset=train_dataset,
    )
    return trainer, processor, summary


def train_grpo(args: CTRateVQAArguments, training: GRPORecipe, model_args: ModelConfig) -> Path:
    """Train (resuming as ``training.resume_from_checkpoint`` says) and save to
    ``training.output_dir``; return that folder."""
    checkpoint = prepare_stage(training, args)
    trainer, processor, summary = grpo_trainer(args, training, model_args, checkpoint)
    return train_and_save(
        trainer,
        processor,
        training.output_dir,
        summary,
        checkpoint,
        **stage_record(
            "grpo",
            args,
            model_args,
            training.output_dir,
            reward_funcs=training.reward_funcs,
            reward_weights=training.reward_weights,
        ),
    )


def main(argv: list[str] | None = None) -> int:
    return stage_main(argv, GRPORecipe, train_grpo)


if __name__ == "__main__":
    sys.exit(main())
