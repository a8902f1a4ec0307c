"""Supervised fine-tuning on CT-RATE-VQA (stage 1 of MedReason-R1).

    python -m model_training.sft --config recipes/....yaml [--field value ...]

parse recipe -> load model (trainable scope) -> data (the task's rows; grounding targets in the
processor's model-input frame; read and converted by the main process of each node first, the
others reading its datasets cache) -> SFTTrainer -> train -> save.
``--resume_from_checkpoint last`` (or a checkpoint folder) resumes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from trl import ModelConfig, SFTConfig, SFTTrainer

from .configs import CTRateVQAArguments
from .data import load_task_rows, sft_dataset
from .policy import load_policy, prepare_stage, stage_main, stage_record, train_and_save


def train_sft(args: CTRateVQAArguments, training: SFTConfig, model_args: ModelConfig) -> Path:
    """Train (resuming as ``training.resume_from_checkpoint`` says) and save to
    ``training.output_dir``; return that folder."""
    checkpoint = prepare_stage(training, args)
    with training.main_process_first(local=True, desc="reading the dataset"):
        rows = load_task_rows(args)  # dataset errors before the model loads
    model, processor, summary = load_policy(model_args, args, training, checkpoint)
    # the conversion runs once per node; the node's other processes read its datasets cache
    with training.main_process_first(local=True, desc="SFT conversations"):
        train_dataset = sft_dataset(args, processor, training.seed, rows)
    trainer = SFTTrainer(
        model=model, args=training, processing_class=processor, train_dataset=train_dataset
    )
    return train_and_save(
        trainer,
        processor,
        training.output_dir,
        summary,
        checkpoint,
        **stage_record("sft", args, model_args, training.output_dir),
    )


def main(argv: list[str] | None = None) -> int:
    return stage_main(argv, SFTConfig, train_sft)


if __name__ == "__main__":
    sys.exit(main())
