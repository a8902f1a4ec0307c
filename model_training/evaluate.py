"""Evaluate a checkpoint on CT-RATE-VQA: accuracy per class, macro and micro, per prompt mode.

    python -m model_training.evaluate --model PATH_OR_REPO --dataset PATH_OR_REPO \
        [--config zoom] [--split test] [--mode think|no-think|both] [--limit N] --output-dir DIR

Writes ``DIR/results.json`` (the schema ``hub_cards.model_card`` reads) and
``DIR/predictions.parquet`` (one row per sample). Batched greedy generation, left padding.
This is the core of the evaluator; issue 5 adds judges, retention benchmarks and plots.
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
from transformers import Qwen2_5_VLForConditionalGeneration

from . import prompts
from .answers import parse_reply
from .processor import load_processor

DEFAULT_BATCH_SIZE = 16
DEFAULT_MAX_NEW_TOKENS = 96  # enough for a short <think> and the answer


def score(rows: list[dict], classes: list[str]) -> dict:
    """Metrics of one mode from prediction rows {gold, answer, well_formed}."""
    n = len(rows)
    support = Counter(r["gold"] for r in rows)
    hits = Counter(r["gold"] for r in rows if r["answer"] == r["gold"])
    per_class = {
        c: {"accuracy": hits[c] / support[c] if support[c] else 0.0, "support": support[c]}
        for c in classes
    }
    present = [c for c in classes if support[c]]
    return {
        "n": n,
        "accuracy_micro": sum(hits.values()) / n if n else 0.0,
        "accuracy_macro": sum(per_class[c]["accuracy"] for c in present) / len(present)
        if present
        else 0.0,
        "per_class": per_class,
        "format_rate": sum(r["well_formed"] for r in rows) / n if n else 0.0,
        "validity_rate": sum(r["answer"] is not None for r in rows) / n if n else 0.0,
    }


@torch.no_grad()
def predict(
    model,
    processor,
    ds: datasets.Dataset,
    mode: str,
    batch_size: int,
    max_new_tokens: int,
    progress: bool = True,
) -> list[dict]:
    processor.tokenizer.padding_side = "left"
    out = []
    for start in tqdm(range(0, len(ds), batch_size), desc=f"eval ({mode})", disable=not progress):
        batch = ds[start : start + batch_size]
        rows = [
            dict(zip(batch, values, strict=True)) for values in zip(*batch.values(), strict=True)
        ]
        texts = [
            processor.apply_chat_template(
                prompts.prompt_messages(r, mode), add_generation_prompt=True
            )
            for r in rows
        ]
        inputs = processor(
            images=[r["image"].convert("RGB") for r in rows],
            text=texts,
            padding=True,
            return_tensors="pt",
        ).to(model.device)
        generated = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        replies = processor.batch_decode(
            generated[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True
        )
        for row, reply in zip(rows, replies, strict=True):
            parsed = parse_reply(reply, row["options"])
            out.append(
                {
                    "id": row["id"],
                    "mode": mode,
                    "gold": row["answer"],
                    "output": reply,
                    "answer": parsed.answer,
                    "well_formed": parsed.well_formed,
                    "correct": parsed.answer == row["answer"],
                }
            )
    return out


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
) -> dict:
    """Evaluate and write results.json and predictions.parquet into ``output_dir``."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    ds = datasets.load_dataset(dataset, config, split=split)
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    classes = ds.features["label"].names
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        model_path, dtype=torch.bfloat16 if device == "cuda" else torch.float32
    )
    model = model.to(device).eval()
    processor = load_processor(model_path)
    predictions, results = [], {}
    for mode in modes:
        rows = predict(model, processor, ds, mode, batch_size, max_new_tokens, progress)
        predictions.extend(rows)
        results[mode] = score(rows, classes)
    report = {
        "model": str(model_path),
        "dataset": str(dataset),
        "config": config,
        "split": split,
        "dataset_revision": None,
        "prompts": prompts.record(),
        "modes": results,
    }
    (output_dir / "results.json").write_text(json.dumps(report, indent=1))
    datasets.Dataset.from_list(predictions).to_parquet(output_dir / "predictions.parquet")
    return report


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
    args = parser.parse_args(argv)
    modes = prompts.MODES if args.mode == "both" else (args.mode,)
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
    )
    for mode, metrics in report["modes"].items():
        print(
            f"{mode}: accuracy {100 * metrics['accuracy_micro']:.2f} % (micro), "
            f"{100 * metrics['accuracy_macro']:.2f} % (macro), n = {metrics['n']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
