"""Assemble a run's final model folder: what ``from_pretrained`` loads and what goes to the Hub.

    final/
      config.json, model*.safetensors  the last trained stage's weights
      generation_config.json  its end and pad tokens, with the evaluation's decoding (greedy,
                              repetition penalty 1.0): lmms-eval and a plain generate() then
                              decode as the evaluator did
      tokenizer and processor files, chat_template             (``load_processor`` reads them)
      recipe.yaml            the run's recipe with its command-line overrides
      training_summary.json  the last stage's own: its history (the stages the model went
                             through, in order; model_training.training_history), which the
                             evaluator reads, and its scope, prompts and log history
      training_logs.json     per stage: trainable scope, parameter counts, prompts, log history
      sft_loss.png, grpo_loss.png, grpo_reward.png              training curves
      results.json           evaluation of this model (hub_cards schema)
      run_summary.json       accuracy before SFT / after SFT / after GRPO, reward trend
      README.md, .eval_results/ct-rate-vqa.yaml                 model card (hub_cards)

Never copied: checkpoints, and pickled files such as the Trainer's ``training_args.bin``
(safetensors only).
"""

from __future__ import annotations

import fnmatch
import json
import shutil
from pathlib import Path

import yaml

from common.names import RUN_RECIPE_NAME, TRAINING_LOGS_NAME
from hub_cards.model_card import write_model_card

from .curves import plot_stage
from .evaluation.decoding import Decoding

SKIPPED = ("*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt")


def copy_model_files(stage_dir: Path, final_dir: Path) -> list[str]:
    """Copy the top-level files of a trained stage (weights, config, processor, and its
    training_summary.json with the model's history)."""
    final_dir.mkdir(parents=True, exist_ok=True)
    copied = []
    for path in sorted(stage_dir.iterdir()):
        if path.is_file() and not any(fnmatch.fnmatch(path.name, p) for p in SKIPPED):
            shutil.copy2(path, final_dir / path.name)
            copied.append(path.name)
    if not any(name.endswith(".safetensors") for name in copied):
        raise FileNotFoundError(
            f"{stage_dir} holds no *.safetensors weights; the stage did not finish: re-run it "
            "(with --resume to continue from its last checkpoint)"
        )
    return copied


def write_decoding(folder: Path, decoding: Decoding) -> None:
    """Set ``folder``'s generation_config.json to ``decoding`` (its token ids kept): a base
    checkpoint's own (Qwen2.5-VL-Instruct: sampling, repetition penalty 1.05) would make a
    harness that lets the checkpoint decide (lmms-eval) decode otherwise than the evaluator."""
    from transformers import GenerationConfig

    path = folder / "generation_config.json"
    config = GenerationConfig.from_pretrained(folder) if path.is_file() else GenerationConfig()
    wanted = decoding.generation_config().to_diff_dict()
    wanted.pop("max_new_tokens", None)  # a harness sets its own length
    wanted.pop("transformers_version", None)
    config.update(**wanted)
    config.save_pretrained(folder)


def assemble_final(
    final_dir: str | Path,
    model_dir: str | Path,
    recipe: dict,
    recipe_source: str,
    training_logs: dict[str, dict],
    card_training: dict,
    results: dict | None,
    run_summary: dict,
    dataset_id: str | None,
) -> Path:
    """Write the final folder from the last trained stage and the run's records."""
    final_dir = Path(final_dir)
    if final_dir.exists():
        shutil.rmtree(final_dir)
    copy_model_files(Path(model_dir), final_dir)
    write_decoding(final_dir, Decoding())
    header = f"# The recipe this model was trained with (from {recipe_source} + command line)\n"
    (final_dir / RUN_RECIPE_NAME).write_text(header + yaml.safe_dump(recipe, sort_keys=False))
    (final_dir / TRAINING_LOGS_NAME).write_text(json.dumps(training_logs, indent=1))
    plots = []
    for stage, log in training_logs.items():
        plots += [p.name for p in plot_stage(stage, log.get("log_history", []), final_dir)]
    if results is not None:
        (final_dir / "results.json").write_text(json.dumps(results, indent=1))
    (final_dir / "run_summary.json").write_text(json.dumps(run_summary, indent=1))
    write_model_card(final_dir, {**card_training, "plots": plots}, results, dataset_id)
    return final_dir
