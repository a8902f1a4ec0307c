"""Supervised fine-tuning on CT-RATE-VQA (stage 1 of MedReason-R1).

    python -m model_training.sft --config recipes/....yaml [--field value ...]

parse recipe -> load data -> load model (trainable scope) -> SFTTrainer -> train -> save.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from transformers.trainer_utils import get_last_checkpoint
from trl import ModelConfig, SFTConfig, SFTTrainer, TrlParser

from . import prompts
from .configs import CTRateVQAArguments
from .data import load_vqa, to_sft
from .policy import load_policy


def train_sft(
    args: CTRateVQAArguments, training: SFTConfig, model_args: ModelConfig, resume: bool = False
) -> Path:
    """Train and save to ``training.output_dir``; return that folder."""
    model, processor, summary = load_policy(model_args, args)
    rows = load_vqa(
        args.dataset_name, args.dataset_config, args.dataset_train_split, args.dataset_limit
    )
    trainer = SFTTrainer(
        model=model,
        args=training,
        processing_class=processor,
        train_dataset=to_sft(rows, args.prompt_mode, args.sft_target),
    )
    checkpoint = (
        get_last_checkpoint(training.output_dir)
        if resume and Path(training.output_dir).is_dir()
        else None
    )
    trainer.train(resume_from_checkpoint=checkpoint)
    out = Path(training.output_dir)
    trainer.save_model(out)
    processor.save_pretrained(out)
    (out / "training_summary.json").write_text(
        json.dumps(
            {
                "stage": "sft",
                **{k: v for k, v in summary.items() if k != "trainable_names"},
                "prompts": prompts.record(),
                "log_history": trainer.state.log_history,
            },
            indent=1,
        )
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = TrlParser((CTRateVQAArguments, SFTConfig, ModelConfig))
    args, training, model_args = parser.parse_args_and_config(argv)
    train_sft(args, training, model_args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
