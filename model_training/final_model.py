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
(safetensors only). Never written: a local path. The folder is what ``push-model`` publishes, so
the recipe, the results and the summary name a local folder or file by its name only (a Hub id
as it is; ``hub_cards.local_paths.without_local_paths``), and ``push-model`` refuses a text file
that still names one.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
from pathlib import Path

import yaml

from common.names import FINAL_DIR_NAME, RUN_RECIPE_NAME, TRAINING_LOGS_NAME
from hub_cards.local_paths import without_local_paths
from hub_cards.model_card import write_model_card

from .curves import plot_stage
from .evaluation.decoding import Decoding
from .evaluation.results_header import source_name
from .run_files import check_step_folder, remove_own
from .run_summary import public_path

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


def public_results(results: dict | list[dict] | None) -> dict | list[dict] | None:
    """``results`` (one results.json, a list of them, or None) as final/ publishes them: the
    model and dataset by ``source_name`` (results written before it recorded local paths), any
    other local path by its name."""
    if results is None:
        return None
    if isinstance(results, list):
        return [_public(one) for one in results]
    return _public(results)


def _public(results: dict) -> dict:
    named = {k: source_name(str(results[k])) for k in ("model", "dataset") if results.get(k)}
    return without_local_paths({**results, **named})


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
    ablated: list[dict] | None = None,
) -> Path:
    """Write the final folder from the last trained stage and the run's records (local paths
    in them recorded by name: ``public_results``, ``without_local_paths``); ``ablated``: the
    model's evaluations with image ablations, whose image reliance its card reports."""
    final_dir = Path(final_dir)
    check_step_folder(None, FINAL_DIR_NAME, final_dir)  # refuses a file of anyone else's
    remove_own(None, FINAL_DIR_NAME, final_dir)  # an earlier final/ of ours: only our files
    copy_model_files(Path(model_dir), final_dir)
    write_decoding(final_dir, Decoding())
    header = (
        f"# The recipe this model was trained with (from {public_path(recipe_source)} + command "
        "line; local paths by their names)\n"
    )
    recipe = without_local_paths(recipe)
    (final_dir / RUN_RECIPE_NAME).write_text(header + yaml.safe_dump(recipe, sort_keys=False))
    training_logs = without_local_paths(training_logs)
    (final_dir / TRAINING_LOGS_NAME).write_text(json.dumps(training_logs, indent=1))
    plots = []
    for stage, log in training_logs.items():
        plots += [p.name for p in plot_stage(stage, log.get("log_history", []), final_dir)]
    results = public_results(results)
    if results is not None:
        (final_dir / "results.json").write_text(json.dumps(results, indent=1))
    run_summary = without_local_paths(run_summary)
    (final_dir / "run_summary.json").write_text(json.dumps(run_summary, indent=1))
    write_model_card(
        final_dir, {**card_training, "plots": plots}, results, dataset_id,
        public_results(ablated or []),
    )  # fmt: skip
    return final_dir
