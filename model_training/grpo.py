"""GRPO on CT-RATE-VQA with the paper's composite reward (stage 2 of MedReason-R1).

    python -m model_training.grpo --config recipes/....yaml [--field value ...]

parse recipe -> load data -> load model (trainable scope) -> GRPOTrainer -> train -> save.
"""

from __future__ import annotations

import sys
from pathlib import Path

from trl import GRPOTrainer, ModelConfig, TrlParser

from .configs import CTRateVQAArguments, GRPORecipe
from .data import load_vqa, to_grpo
from .policy import load_policy, train_and_save
from .rewards import get_rewards


def train_grpo(
    args: CTRateVQAArguments, training: GRPORecipe, model_args: ModelConfig, resume: bool = False
) -> Path:
    """Train and save to ``training.output_dir``; return that folder."""
    model, processor, summary = load_policy(model_args, args)
    rows = load_vqa(
        args.dataset_name, args.dataset_config, args.dataset_train_split, args.dataset_limit
    )
    trainer = GRPOTrainer(
        model=model,
        args=training,
        processing_class=processor,
        reward_funcs=get_rewards(training.reward_funcs),
        train_dataset=to_grpo(rows, args.prompt_mode),
    )
    return train_and_save(
        trainer,
        processor,
        training.output_dir,
        summary,
        resume,
        stage="grpo",
        reward_funcs=training.reward_funcs,
        reward_weights=training.reward_weights,
    )


def main(argv: list[str] | None = None) -> int:
    parser = TrlParser((CTRateVQAArguments, GRPORecipe, ModelConfig))
    args, training, model_args = parser.parse_args_and_config(argv)
    train_grpo(args, training, model_args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
