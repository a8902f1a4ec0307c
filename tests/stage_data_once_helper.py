"""Run by tests/test_stage_data_once.py under ``accelerate launch`` (2 processes): a one-step
SFT stage, then a one-step GRPO stage, of multitask rows, with ``model_training.data``'s debug
lines (rows each process converted itself) on.

    python -m tests.stage_data_once_helper OUT MODEL DATASET
"""

from __future__ import annotations

import logging
import sys

from accelerate import PartialState
from trl import ModelConfig, SFTConfig, TrlParser

from model_training.configs import CTRateVQAArguments, GRPORecipe
from model_training.grounding_rewards import GROUNDING_SOFT_REWARDS
from model_training.grpo import train_grpo
from model_training.rewards import DEFAULT_REWARDS
from model_training.sft import train_sft

ROWS = 4  # dataset_limit: rows of each task


def main(out: str, model: str, dataset: str) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    logging.getLogger("model_training.data").setLevel(logging.DEBUG)
    common = ["--model_name_or_path", model, "--dataset_name", dataset, "--task", "multitask",
              "--dataset_limit", str(ROWS), "--max_steps", "1", "--use_cpu", "true",
              "--bf16", "false", "--activation_checkpointing", "false", "--report_to", "none",
              "--save_strategy", "no", "--dataloader_num_workers", "0", "--seed", "0",
              "--per_device_train_batch_size", "2"]  # fmt: skip
    stages = (
        (SFTConfig, train_sft, []),
        (GRPORecipe, train_grpo, ["--num_generations", "2", "--max_completion_length", "4",
                                  "--reward_funcs", *DEFAULT_REWARDS, *GROUNDING_SOFT_REWARDS]),
    )  # fmt: skip
    try:
        for config, train, extra in stages:
            name = train.__name__.removeprefix("train_")
            parser = TrlParser((CTRateVQAArguments, config, ModelConfig))
            args, training, model_args = parser.parse_args_and_config(
                [*common, *extra, "--output_dir", f"{out}/{name}"]
            )
            train(args, training, model_args)
    finally:
        PartialState().destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
