"""GRPO step time for the Qwen2.5-VL-7B shape (random weights, bf16) on one GPU (one run).

Builds a randomly initialised ``Qwen2_5_VLForConditionalGeneration`` with the 7B model's
shape (text 3584 x 28 layers, 28 / 4 heads, MLP 18944, vision 1280 x 32 blocks) and the tiny
model's tokenizer and processor, writes it as safetensors (TRL loads the KL reference model
from that folder), then runs real TRL ``GRPOTrainer`` steps with the paper's settings: N = 5
samples per prompt, 256-token completions (forced with ``min_new_tokens``), loss ``grpo``
with a KL beta, the format / validity / correctness rewards, on 448 x 448 CT-like images.

    python benchmarks/grpo_step.py                      # 7B shape; needs a CUDA GPU
    python benchmarks/grpo_step.py --scope merger       # other trainable scopes
    python benchmarks/grpo_step.py --shape tiny --allow-cpu --steps 2   # checks the script

Prints seconds per step, completion tokens/s, all tokens/s (prompt + completion, as TRL
counts them) and the peak GPU memory. Without a GPU it says so and exits 0 (CI has none).
Memory note: AdamW over the 5.7 B MLP parameters of ``llm_mlp`` needs ~70 GB of optimiser
state and gradients, more than one 80 GB GPU holds next to two bf16 copies of the model;
the default optimiser here is therefore Adafactor (``--optim adamw_torch`` to compare, with
ZeRO across GPUs in real training).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

QWEN2_5_VL_7B_TEXT = {  # Qwen/Qwen2.5-VL-7B-Instruct config.json
    "vocab_size": 152064,
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
}
QWEN2_5_VL_7B_VISION = {
    "depth": 32,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "out_hidden_size": 3584,
    "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31],
}
MROPE_SECTION_7B = [16, 24, 24]  # Qwen2.5-VL's (t, h, w) rotary sections for head_dim 128
NUM_GENERATIONS = 5  # paper: N = 5
COMPLETION_TOKENS = 256  # issue 4: 256-token completions
IMAGE_SIDE = 448  # 32 x 32 patches of 14 px -> 256 image tokens after the 2 x 2 merge


def build_model_folder(out: Path, shape: str, device: str) -> Path:
    """A random-weight Qwen2.5-VL checkpoint of the chosen shape, with the tiny processor."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from model_training.processor import load_processor
    from model_training.tiny_model import build_tiny_model

    tiny = build_tiny_model(out / "tiny", max_pixels=IMAGE_SIDE * IMAGE_SIDE)
    config = Qwen2_5_VLConfig.from_pretrained(tiny)
    if shape == "7b":
        config.text_config.update(QWEN2_5_VL_7B_TEXT)
        config.text_config.rope_parameters["mrope_section"] = MROPE_SECTION_7B
        config.vision_config.update(QWEN2_5_VL_7B_VISION)
    config.dtype = torch.bfloat16
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    model.generation_config = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        tiny
    ).generation_config
    folder = out / f"random-{shape}"
    model.save_pretrained(folder)
    load_processor(tiny).save_pretrained(folder)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return folder


def prompts_dataset(rows: int):
    """CT-like grey images with a question and the 7 class options (the rewards' inputs)."""
    import datasets
    from PIL import Image

    from model_training.prompts import prompt_messages
    from model_training.tiny_model import CLASS_NAMES

    rng = np.random.default_rng(0)
    records = []
    for i in range(rows):
        pixels = rng.normal(100, 40, (IMAGE_SIDE, IMAGE_SIDE)).clip(0, 255).astype(np.uint8)
        question = "Which finding is in the box? Options: " + "; ".join(CLASS_NAMES) + "."
        records.append(
            {
                "prompt": prompt_messages({"question": question}, "think"),
                "images": [Image.fromarray(pixels).convert("RGB")],
                "answer": CLASS_NAMES[i % len(CLASS_NAMES)],
                "options": list(CLASS_NAMES),
            }
        )
    return datasets.Dataset.from_list(records)


class StepTimer:
    """Wall seconds of each optimiser step (GPU synchronised)."""

    def __init__(self, device: str):
        from transformers import TrainerCallback

        timer = self

        class _Callback(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                timer._sync()
                timer._start = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                timer._sync()
                timer.seconds.append(time.perf_counter() - timer._start)

        self.device = device
        self.seconds: list[float] = []
        self._start = 0.0
        self.callback = _Callback()

    def _sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()


def run(args: argparse.Namespace) -> dict:
    from transformers import Qwen2_5_VLForConditionalGeneration
    from trl import GRPOTrainer

    from model_training.configs import GRPORecipe
    from model_training.processor import load_processor
    from model_training.rewards import get_rewards
    from model_training.scope import apply_trainable_scope, count_parameters

    device = "cuda" if torch.cuda.is_available() else "cpu"
    work = Path(args.workdir or tempfile.mkdtemp(prefix="grpo-step-"))
    started = time.perf_counter()
    folder = build_model_folder(work, args.shape, device)
    build_seconds = time.perf_counter() - started

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        folder, dtype=torch.bfloat16, attn_implementation="sdpa"
    )
    model, _ = apply_trainable_scope(model, args.scope)
    trainable, total = count_parameters(model)
    processor = load_processor(folder)
    steps = args.warmup + args.steps
    prompts_per_step = args.prompts_per_step
    config = GRPORecipe(
        output_dir=str(work / "out"),
        max_steps=steps,
        num_generations=NUM_GENERATIONS,
        per_device_train_batch_size=NUM_GENERATIONS * prompts_per_step,
        max_completion_length=COMPLETION_TOKENS,
        generation_kwargs={"min_new_tokens": COMPLETION_TOKENS},
        loss_type="grpo",  # paper
        beta=0.04,  # a KL term, so the reference model's forward pass is timed too
        learning_rate=1e-6,
        optim=args.optim,
        temperature=1.0,
        bf16=device == "cuda",
        use_cpu=device == "cpu",
        activation_checkpointing=device == "cuda",
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        dataloader_num_workers=0,
        model_init_kwargs={"dtype": "bfloat16", "attn_implementation": "sdpa"},
        seed=0,
    )
    timer = StepTimer(device)
    trainer = GRPOTrainer(
        model=model,
        args=config,
        processing_class=processor,
        reward_funcs=get_rewards(config.reward_funcs),
        train_dataset=prompts_dataset(steps * prompts_per_step),
        callbacks=[timer.callback],
    )
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    logs = [r for r in trainer.state.log_history if "num_tokens" in r]
    measured = timer.seconds[args.warmup :]
    tokens_before = logs[args.warmup - 1]["num_tokens"] if args.warmup else 0.0
    all_tokens = logs[-1]["num_tokens"] - tokens_before
    completion_tokens = sum(
        r["completions/mean_length"] * NUM_GENERATIONS * prompts_per_step
        for r in logs[args.warmup :]
    )
    seconds = sum(measured)
    return {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "shape": args.shape,
        "scope": args.scope,
        "optim": args.optim,
        "trainable_parameters": trainable,
        "total_parameters": total,
        "completions_per_step": NUM_GENERATIONS * prompts_per_step,
        "max_completion_tokens": COMPLETION_TOKENS,
        "measured_steps": len(measured),
        "seconds_per_step": seconds / len(measured),
        "completion_tokens_per_second": completion_tokens / seconds,
        "all_tokens_per_second": all_tokens / seconds,
        "mean_completion_length": completion_tokens
        / (len(measured) * NUM_GENERATIONS * prompts_per_step),
        "peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 2**30
        if device == "cuda"
        else None,
        "model_build_seconds": build_seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", choices=("7b", "tiny"), default="7b")
    parser.add_argument(
        "--scope",
        default="llm_mlp",
        help="trainable scope (model_training.scope; default llm_mlp, the 7B recipe's)",
    )
    parser.add_argument("--optim", default="adafactor", help="optimiser (see the memory note)")
    parser.add_argument("--steps", type=int, default=5, help="measured steps")
    parser.add_argument("--warmup", type=int, default=1, help="steps run before measuring")
    parser.add_argument("--prompts-per-step", type=int, default=1)
    parser.add_argument("--workdir", default=None, help="folder for the random checkpoint")
    parser.add_argument(
        "--allow-cpu", action="store_true", help="run on the CPU (only sensible with --shape tiny)"
    )
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available() and not args.allow_cpu:
        print("no CUDA GPU on this machine: the GRPO step benchmark needs one; skipped.")
        return 0
    result = run(args)
    for key, value in result.items():
        print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
