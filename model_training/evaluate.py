"""Evaluate a checkpoint on CT-RATE-VQA: accuracy per class, macro and micro, per prompt mode.

    python -m model_training.evaluate --model PATH_OR_REPO --dataset PATH_OR_REPO \
        [--config zoom] [--split test] [--mode think|no-think|both] [--limit N] --output-dir DIR

Writes into DIR: ``results.json`` (the schema ``hub_cards.model_card`` reads),
``predictions.parquet`` (one row per sample and mode), ``per_class_accuracy.png`` and
``confusion_<mode>.png``. Batched greedy generation with left padding. Resumable: every
finished batch is appended to ``predictions.jsonl``; a re-run with the same model, dataset
and prompts generates only the samples still missing.

Scoring: the class inside the reply's last ``<answer>...</answer>``. A reply without answer
tags (a baseline not trained on our format) is scored by a fallback: the single class whose
full name appears in its text. Fallback answers count towards accuracy; ``fallback_rate``
and ``accuracy_micro_tags_only`` report them separately.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import datasets
import torch
from tqdm.auto import tqdm

from . import prompts
from .answers import fallback_class, parse_reply
from .evaluation_plots import confusion_plot, per_class_bars
from .processor import load_processor

DEFAULT_BATCH_SIZE = 16
DEFAULT_MAX_NEW_TOKENS = 96  # enough for a short <think> and the answer
PROGRESS_FILE = "predictions.jsonl"
SETTINGS_FILE = "eval_settings.json"


class EvaluationError(ValueError):
    """An evaluation that cannot go on; the message says what to change."""


def score(rows: list[dict], classes: list[str]) -> dict:
    """Metrics of one mode from prediction rows {gold, answer, well_formed[, parsed_by]}."""
    n = len(rows)
    support = Counter(r["gold"] for r in rows)
    hits = Counter(r["gold"] for r in rows if r["answer"] == r["gold"])
    parsed_by = [r.get("parsed_by", "tags" if r["answer"] is not None else None) for r in rows]
    per_class = {
        c: {"accuracy": hits[c] / support[c] if support[c] else 0.0, "support": support[c]}
        for c in classes
    }
    present = [c for c in classes if support[c]]
    strict_hits = sum(
        r["answer"] == r["gold"] for r, how in zip(rows, parsed_by, strict=True) if how == "tags"
    )
    return {
        "n": n,
        "accuracy_micro": sum(hits.values()) / n if n else 0.0,
        "accuracy_macro": sum(per_class[c]["accuracy"] for c in present) / len(present)
        if present
        else 0.0,
        "per_class": per_class,
        "format_rate": sum(r["well_formed"] for r in rows) / n if n else 0.0,
        "validity_rate": parsed_by.count("tags") / n if n else 0.0,
        "fallback_rate": parsed_by.count("fallback") / n if n else 0.0,
        "accuracy_micro_tags_only": strict_hits / n if n else 0.0,
    }


def read_reply(reply: str, options: list[str]) -> dict:
    """The scored fields of one reply: answer, how it was found, and the format check."""
    parsed = parse_reply(reply, options)
    answer, how = parsed.answer, "tags" if parsed.answer is not None else None
    if parsed.answer_text is None:
        answer = fallback_class(reply, options)
        how = "fallback" if answer is not None else None
    return {
        "answer": answer,
        "parsed_by": how,
        "well_formed": parsed.well_formed,
        "think": parsed.think,
    }


@torch.no_grad()
def greedy_replies(
    model, processor, conversations: list[list[dict]], images: list, max_new_tokens: int
) -> list[str]:
    """Greedy replies to one batch of (conversation, image) prompts, left padded."""
    processor.tokenizer.padding_side = "left"
    texts = [processor.apply_chat_template(c, add_generation_prompt=True) for c in conversations]
    inputs = processor(
        images=[image.convert("RGB") for image in images],
        text=texts,
        padding=True,
        return_tensors="pt",
    ).to(model.device)
    generated = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return processor.batch_decode(
        generated[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True
    )


def generate_replies(
    model, processor, rows: list[dict], mode: str, max_new_tokens: int
) -> list[str]:
    """Greedy replies to one batch of CT-RATE-VQA rows in prompt ``mode``."""
    conversations = [prompts.prompt_messages(r, mode) for r in rows]
    images = [r["image"] for r in rows]
    return greedy_replies(model, processor, conversations, images, max_new_tokens)


def predict(
    model,
    processor,
    ds: datasets.Dataset,
    mode: str,
    batch_size: int,
    max_new_tokens: int,
    progress: bool = True,
    sink=None,
) -> list[dict]:
    """Prediction rows of ``ds`` in ``mode``; each finished batch is also passed to ``sink``."""
    out = []
    for start in tqdm(range(0, len(ds), batch_size), desc=f"eval ({mode})", disable=not progress):
        batch = ds[start : start + batch_size]
        rows = [
            dict(zip(batch, values, strict=True)) for values in zip(*batch.values(), strict=True)
        ]
        replies = generate_replies(model, processor, rows, mode, max_new_tokens)
        done = []
        for row, reply in zip(rows, replies, strict=True):
            read = read_reply(reply, row["options"])
            done.append(
                {
                    "id": row["id"],
                    "mode": mode,
                    "gold": row["answer"],
                    "output": reply,
                    **read,
                    "correct": read["answer"] == row["answer"],
                }
            )
        if sink is not None:
            sink(done)
        out.extend(done)
    return out


def _settings(model_path, dataset, config, split, max_new_tokens) -> dict:
    return {
        "model": str(model_path),
        "dataset": str(dataset),
        "config": config,
        "split": split,
        "max_new_tokens": max_new_tokens,
        "prompts": prompts.record(),
    }


def load_progress(output_dir: Path, settings: dict, overwrite: bool) -> dict[tuple, dict]:
    """Predictions already made in ``output_dir`` for these settings, by (mode, id)."""
    settings_file, progress = output_dir / SETTINGS_FILE, output_dir / PROGRESS_FILE
    if overwrite:
        progress.unlink(missing_ok=True)
    elif (
        settings_file.is_file()
        and progress.is_file()
        and json.loads(settings_file.read_text()) != settings
    ):
        raise EvaluationError(
            f"{output_dir} holds predictions of another evaluation ({settings_file}); use "
            "another --output-dir, or --overwrite to discard them"
        )
    settings_file.write_text(json.dumps(settings, indent=1))
    done = {}
    if progress.is_file():
        for line in progress.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:  # the last line of a killed run may be cut
                continue
            done[(row["mode"], row["id"])] = row
    return done


def dataset_revision(dataset: str, revision: str | None = None) -> str | None:
    """The Hub commit of a dataset given by id (None for a local folder or when offline)."""
    if Path(dataset).exists():
        return None
    try:
        from huggingface_hub import HfApi

        return HfApi().dataset_info(dataset, revision=revision).sha
    except Exception:  # noqa: BLE001  (offline, gated or unknown: the revision stays unknown)
        return revision


def evaluate(
    model_path: str,
    dataset: str,
    output_dir: str | Path,
    config: str = "zoom",
    split: str = "test",
    modes: tuple[str, ...] = prompts.MODES,
    limit: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    progress: bool = True,
    overwrite: bool = False,
    revision: str | None = None,
    judge: str | None = None,
    judge_model: str | None = None,
    trust_remote_code: bool = False,
) -> dict:
    """Evaluate (resuming from ``output_dir``) and write results, predictions and plots; with
    ``judge`` (a causal LM id/path or an OpenAI-compatible URL), also the reasoning-answer
    consistency of the ``think`` mode (see ``model_training.judge``)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    settings = _settings(model_path, dataset, config, split, max_new_tokens)
    done = load_progress(output_dir, settings, overwrite)
    ds = datasets.load_dataset(dataset, config, split=split, revision=revision)
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    classes = ds.features["label"].names
    ids = ds["id"]
    model = processor = None
    with (output_dir / PROGRESS_FILE).open("a") as sink:

        def append(rows: list[dict]) -> None:
            for row in rows:
                sink.write(json.dumps(row) + "\n")
                done[(row["mode"], row["id"])] = row
            sink.flush()

        for mode in modes:
            missing = [i for i, id_ in enumerate(ids) if (mode, id_) not in done]
            if not missing:
                continue
            if model is None:
                model, processor = load_model(model_path, trust_remote_code)
            predict(
                model, processor, ds.select(missing), mode, batch_size, max_new_tokens,
                progress, append,
            )  # fmt: skip
    predictions = [done[(mode, id_)] for mode in modes for id_ in ids]
    results = {m: score([r for r in predictions if r["mode"] == m], classes) for m in modes}
    report = {
        "model": str(model_path),
        "dataset": str(dataset),
        "config": config,
        "split": split,
        "dataset_revision": dataset_revision(str(dataset), revision),
        "prompts": prompts.record(),
        "modes": results,
    }
    if judge is not None and "think" in modes:
        from .judge import judge_consistency, load_judge

        options = dict(zip(ids, ds["options"], strict=True))
        think_rows = [r for r in predictions if r["mode"] == "think"]
        for row in predictions:
            row["judge_answer"] = None
        consistency = judge_consistency(
            think_rows, options, load_judge(judge, judge_model), output_dir
        )
        report["judge"] = {k: consistency.pop(k) for k in ("judge", "judge_prompt")}
        results["think"].update(consistency)
    (output_dir / "results.json").write_text(json.dumps(report, indent=1))
    datasets.Dataset.from_list(predictions).to_parquet(output_dir / "predictions.parquet")
    per_class_bars(report, output_dir / "per_class_accuracy.png")
    for mode in modes:
        rows = [r for r in predictions if r["mode"] == mode]
        confusion_plot(
            rows, classes, f"{mode}: gold vs answer", output_dir / f"confusion_{mode}.png"
        )
    return report


def load_model(model_path: str, trust_remote_code: bool = False):
    """(model, processor) of any image-text-to-text checkpoint with a chat template (our
    Qwen2.5-VL checkpoints, Qwen2-VL-based baselines...), on the GPU in bf16 when there is
    one, else on the CPU in fp32. Remote code runs only if the user asks for it."""
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForImageTextToText.from_pretrained(
        model_path,
        dtype=torch.bfloat16 if device == "cuda" else torch.float32,
        trust_remote_code=trust_remote_code,
    )
    config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    if config.model_type == "qwen2_5_vl" and not trust_remote_code:
        processor = load_processor(model_path)  # works without torchvision
    else:
        processor = AutoProcessor.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    return model.to(device).eval(), processor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m model_training.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--config", default="zoom")
    parser.add_argument("--split", default="test")
    parser.add_argument("--mode", default="both", choices=[*prompts.MODES, "both"])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS)
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--revision", default=None, help="dataset revision (Hub datasets)")
    parser.add_argument(
        "--overwrite", action="store_true", help="discard predictions already in --output-dir"
    )
    parser.add_argument(
        "--judge",
        default=None,
        help="reasoning-answer consistency judge: a causal LM id or path, or an "
        "OpenAI-compatible endpoint URL (http://HOST:PORT/v1)",
    )
    parser.add_argument(
        "--judge-model", default=None, help="model name at the endpoint (default: its first)"
    )
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="run the model repo's own code (only for baselines that need it; read it first)",
    )
    args = parser.parse_args(argv)
    modes = prompts.MODES if args.mode == "both" else (args.mode,)
    try:
        report = evaluate(
            args.model,
            args.dataset,
            args.output_dir,
            args.config,
            args.split,
            modes,
            args.limit,
            args.batch_size,
            args.max_new_tokens,
            overwrite=args.overwrite,
            revision=args.revision,
            judge=args.judge,
            judge_model=args.judge_model,
            trust_remote_code=args.trust_remote_code,
        )
    except EvaluationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for mode, metrics in report["modes"].items():
        print(
            f"{mode}: accuracy {100 * metrics['accuracy_micro']:.2f} % (micro), "
            f"{100 * metrics['accuracy_macro']:.2f} % (macro), n = {metrics['n']}"
            + (
                f", consistency {100 * metrics['consistency']:.2f} %"
                if "consistency" in metrics
                else ""
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
