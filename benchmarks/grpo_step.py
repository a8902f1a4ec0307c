"""GRPO step time, tokens/s and MFU for the Qwen2.5-VL-7B shape (random weights, bf16) on one
GPU, and a ``--dry-run`` that counts parameters, tokens and FLOPs per step without one.

Builds a randomly initialised ``Qwen2_5_VLForConditionalGeneration`` with the shape of
``Qwen/Qwen2.5-VL-7B-Instruct``'s config.json (text 3584 x 28 layers, 28 / 4 heads, MLP 18944,
vocabulary 152064, untied lm_head, full attention in every layer; vision 1280 x 32 blocks)
and the tiny model's tokenizer and processor, writes it as safetensors (TRL loads the KL
reference model from that folder), then runs real TRL ``GRPOTrainer`` steps with the paper's
settings: N = 5 samples per prompt, 256-token completions (forced with ``min_new_tokens``),
loss ``grpo`` with a KL beta, the format / validity / correctness rewards, on 448 x 448
CT-like images.

    python benchmarks/grpo_step.py                      # 7B shape; needs a CUDA GPU
    python benchmarks/grpo_step.py --scope merger       # other trainable scopes
    python benchmarks/grpo_step.py --dry-run            # counts only: CPU, meta device, seconds
    python benchmarks/grpo_step.py --shape tiny --allow-cpu --steps 2   # checks the script

A run prints seconds per step, completion tokens/s, all tokens/s (prompt + completion, as TRL
counts them) and tokens/s per GPU, the model FLOPs per step (:func:`grpo_step_flops`), MFU
(achieved model FLOPs/s over the GPU's peak dense bf16 FLOPs/s: ``--peak-tflops``, or looked
up from the device name for H100 SXM / H200 / A100) and the peak GPU memory. Without a GPU it
says so and exits 0 (CI has none), unless ``--dry-run`` or ``--allow-cpu``.

The random checkpoint (16.6 GB at the 7B shape) and the trainer's output go into ``--workdir``,
which is kept, or else into a temporary folder under $TMPDIR that is removed when the run
ends, fails or is stopped with SIGTERM (as ``timeout`` does).

``--dry-run`` builds the 7B shape on the meta device (no weights allocated) and prints the
total parameters and those of every trainable scope, the tokens per step (prompt tokens from
the tiny processor applied to this benchmark's prompt and image, image tokens included, plus
the completion tokens) and the FLOPs per step broken down by pass.

Reference anchor, not measured here: EasyR1 reports 1,600-2,000 tokens/s per GPU and
16-23 % MFU for Qwen2.5-VL-7B GRPO on H100s; compare a real run's figures against that.

Memory note: AdamW over the 5.7 B MLP parameters of ``llm_mlp`` needs ~70 GB of optimiser
state and gradients, more than one 80 GB GPU holds next to two bf16 copies of the model;
the default optimiser here is therefore Adafactor (``--optim adamw_torch`` to compare, with
ZeRO across GPUs in real training).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model_training.memory_plan import image_token_count  # noqa: E402  (after the path above)
from model_training.model_shapes import (  # noqa: E402
    QWEN2_5_VL_MAX_PIXELS,
    QWEN2_5_VL_MIN_PIXELS,
    qwen2_5_vl_7b_config,
)

if TYPE_CHECKING:
    import datasets
    from transformers import ProcessorMixin, Qwen2_5_VLConfig

NUM_GENERATIONS = 5  # paper: N = 5
COMPLETION_TOKENS = 256  # issue 4: 256-token completions
IMAGE_SIDE = 448  # 32 x 32 patches of 14 px -> 256 image tokens after the 2 x 2 merge
BETA = 0.04  # KL coefficient: the reference model's forward pass is part of every step
LORA_RANK = 16  # apply_trainable_scope's default rank for the "lora" scope
# Peak dense bf16 TFLOPs (no sparsity) by device-name fragment; H100 / H200 only in their SXM
# forms (PCIe and NVL parts are clocked lower: pass --peak-tflops for those).
A100_BF16_TFLOPS = 312.0
H100_SXM_BF16_TFLOPS = 989.0  # H200 has the same compute as H100 SXM


def peak_tflops(device_name: str) -> float | None:
    """Peak dense bf16 TFLOPs of a GPU from ``torch.cuda.get_device_name()``; None if unknown."""
    name = device_name.upper()
    if "A100" in name:
        return A100_BF16_TFLOPS
    if ("H100" in name or "H200" in name) and "PCIE" not in name and "NVL" not in name:
        return H100_SXM_BF16_TFLOPS
    return None


def grpo_step_flops(
    total_params: float,
    trainable_params: float,
    prompt_tokens: float,
    completion_tokens: float,
    beta: float,
) -> dict[str, float]:
    """Model FLOPs of one GRPO step, by pass, from the 2-FLOPs-per-parameter-per-token rule.

    ``prompt_tokens`` and ``completion_tokens`` are summed over all sequences of the step
    (N generations per prompt, each carrying its own copy of the prompt, image tokens
    included, as TRL counts them); T = prompt + completion tokens; N_total includes frozen
    parameters, N_trainable only the trained ones.

    - generation: 2 N_total per prompt token (prefill) + 2 N_total per generated token
      (decoding with a KV cache);
    - policy forward (the loss's log-probabilities): 2 N_total T;
    - policy backward: 2 N_total T for the activation gradients, assumed to flow through every
      layer even when only some parameters train (an upper bound: a frozen vision tower below
      every trainable parameter needs none), + 2 N_trainable T for the weight gradients
      (so 6 N T only for ``full``);
    - reference forward (the KL term, only when beta > 0): 2 N_total T.

    Not counted: attention-score FLOPs (under 2 % at these ~660-token sequences), the forward pass
    that activation checkpointing recomputes (MFU counts model FLOPs, not hardware FLOPs), the
    old-policy log-probabilities (TRL skips them when generation and optimisation steps are
    aligned, as here). The rule counts the vision tower per LLM token rather than per patch
    (4 patches per image token) and the embedding lookup as if it were a matmul.
    """
    tokens = prompt_tokens + completion_tokens
    flops = {
        "generation_prefill": 2 * total_params * prompt_tokens,
        "generation_decode": 2 * total_params * completion_tokens,
        "policy_forward": 2 * total_params * tokens,
        "policy_backward_activations": 2 * total_params * tokens,
        "policy_backward_weights": 2 * trainable_params * tokens,
        "reference_forward": 2 * total_params * tokens if beta > 0 else 0.0,
    }
    flops["total"] = sum(flops.values())
    return {name: float(value) for name, value in flops.items()}


def model_config(tiny: Path, shape: str) -> Qwen2_5_VLConfig:
    """The model config of the chosen shape: the tiny model's, or Qwen2.5-VL-7B-Instruct's
    with the tiny tokenizer's special token ids (its ids all lie inside the 7B vocabulary)."""
    from transformers import Qwen2_5_VLConfig

    config = Qwen2_5_VLConfig.from_pretrained(tiny)
    if shape == "7b":
        tokens = {
            key: getattr(config.text_config, key)
            for key in ("bos_token_id", "eos_token_id", "pad_token_id")
        }
        tokens |= {
            key: getattr(config, key)
            for key in (
                "image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"
            )
        }  # fmt: skip
        config = qwen2_5_vl_7b_config(**tokens)
    text = config.text_config
    if len(text.layer_types) != text.num_hidden_layers:
        raise ValueError(
            f"{len(text.layer_types)} layer_types for {text.num_hidden_layers} text layers"
        )
    config.dtype = torch.bfloat16
    return config


def build_tiny(out: Path) -> Path:
    """The tiny checkpoint whose tokenizer, processor and token ids every shape uses."""
    from model_training.tiny_model import build_tiny_model

    return build_tiny_model(out / "tiny", max_pixels=IMAGE_SIDE * IMAGE_SIDE)


def build_model_folder(out: Path, shape: str, device: str) -> Path:
    """A random-weight Qwen2.5-VL checkpoint of the chosen shape, with the tiny processor."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    from model_training.processor import load_processor

    tiny = build_tiny(out)
    config = model_config(tiny, shape)
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


def prompt_record(i: int, rng: np.random.Generator) -> dict[str, Any]:
    """One prompt: a CT-like grey image, a question with the 7 class options, its answer."""
    from PIL import Image

    from model_training.prompts import prompt_messages
    from model_training.tiny_model import CLASS_NAMES

    pixels = rng.normal(100, 40, (IMAGE_SIDE, IMAGE_SIDE)).clip(0, 255).astype(np.uint8)
    question = "Which finding is in the box? Options: " + "; ".join(CLASS_NAMES) + "."
    return {
        "prompt": prompt_messages({"question": question}, "think"),
        "images": [Image.fromarray(pixels).convert("RGB")],
        "answer": CLASS_NAMES[i % len(CLASS_NAMES)],
        "options": list(CLASS_NAMES),
    }


def prompts_dataset(rows: int) -> datasets.Dataset:
    """The benchmark's prompts (the rewards' inputs)."""
    import datasets

    rng = np.random.default_rng(0)
    return datasets.Dataset.from_list([prompt_record(i, rng) for i in range(rows)])


def image_tokens(height: int, width: int, patch: int = 14, merge: int = 2) -> int:
    """LLM tokens of one image under Qwen2.5-VL-7B-Instruct's own pixel limits."""
    return image_token_count(
        height, width, QWEN2_5_VL_MIN_PIXELS, QWEN2_5_VL_MAX_PIXELS, patch, merge
    )


def prompt_tokens(processor: ProcessorMixin) -> tuple[int, int]:
    """(all, image) tokens of the benchmark's prompt: the processor applied to the chat
    template of the prompt and its image, the image placeholder expanded. Text tokens come from
    the tiny tokenizer (a small BPE trained on these prompts), not Qwen's own."""
    record = prompt_record(0, np.random.default_rng(0))
    text = processor.apply_chat_template(
        record["prompt"], add_generation_prompt=True, tokenize=False
    )
    ids = processor(text=[text], images=record["images"], return_tensors="pt")["input_ids"][0]
    image_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    return int(ids.numel()), int((ids == image_id).sum())


def dry_run(args: argparse.Namespace) -> dict[str, Any]:
    """Parameters per scope, tokens and FLOPs per step of the chosen shape, on the meta device."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    from model_training.processor import load_processor
    from model_training.scope import SCOPE_NAMES, apply_trainable_scope, count_parameters

    with tempfile.TemporaryDirectory(prefix="grpo-step-dry-") as scratch:
        tiny = build_tiny(Path(args.workdir or scratch))
        config = model_config(tiny, args.shape)
        processor = load_processor(tiny)
        prompt, image = prompt_tokens(processor)
    expected_image = image_tokens(IMAGE_SIDE, IMAGE_SIDE)
    if image != expected_image:
        raise RuntimeError(
            f"processor gave {image} image tokens, the processor math says {expected_image}"
        )
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    scopes: dict[str, dict[str, int]] = {}
    for scope in SCOPE_NAMES:  # "lora" last: peft wraps the model in place
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # peft's deprecated-name probes
            scoped, _ = apply_trainable_scope(model, scope, lora_rank=LORA_RANK)
        trainable, total = count_parameters(scoped)
        scopes[scope] = {"trainable": trainable, "total": total}
    sequences = NUM_GENERATIONS * args.prompts_per_step
    tokens = {
        "sequences": sequences,
        "prompt_tokens_per_sequence": prompt,
        "image_tokens_per_sequence": image,
        "text_prompt_tokens_per_sequence": prompt - image,
        "completion_tokens_per_sequence": COMPLETION_TOKENS,
        "prompt_tokens": sequences * prompt,
        "completion_tokens": sequences * COMPLETION_TOKENS,
        "tokens_per_step": sequences * (prompt + COMPLETION_TOKENS),
    }
    chosen = scopes[args.scope]
    flops = grpo_step_flops(
        chosen["total"],
        chosen["trainable"],
        tokens["prompt_tokens"],
        tokens["completion_tokens"],
        BETA,
    )
    return {
        "mode": "dry_run",
        "shape": args.shape,
        "scope": args.scope,
        "beta": BETA,
        "lora_rank": LORA_RANK,
        "total_parameters": scopes["full"]["total"],
        "parameters_by_scope": scopes,
        "tokens": tokens,
        "flops_per_step": flops,
        "flops_per_token": flops["total"] / tokens["tokens_per_step"],
    }


def dry_run_lines(result: dict[str, Any]) -> list[str]:
    """The dry run's figures as a few readable lines."""
    scopes = result["parameters_by_scope"]
    per_scope = ", ".join(
        f"{name}{' r=' + str(result['lora_rank']) if name == 'lora' else ''} "
        f"{counts['trainable'] / 1e9:.3f} B"
        for name, counts in scopes.items()
    )
    t = result["tokens"]
    f = {name: value / 1e12 for name, value in result["flops_per_step"].items()}
    return [
        f"dry run: {result['shape']} shape built on the meta device (no weights, no GPU)",
        f"parameters: total {result['total_parameters'] / 1e9:.3f} B "
        f"({result['total_parameters']:,}); trainable by scope: {per_scope}",
        f"tokens per step: {t['sequences']} sequences x ({t['prompt_tokens_per_sequence']} "
        f"prompt = {t['image_tokens_per_sequence']} image + "
        f"{t['text_prompt_tokens_per_sequence']} text, + {t['completion_tokens_per_sequence']}"
        f" completion) = {t['tokens_per_step']:,}",
        f"FLOPs per step (scope {result['scope']}, beta {result['beta']}), TFLOPs: generation "
        f"{f['generation_prefill']:.1f} prefill + {f['generation_decode']:.1f} decode, policy "
        f"forward {f['policy_forward']:.1f}, backward {f['policy_backward_activations']:.1f} "
        f"activations + {f['policy_backward_weights']:.1f} weights, reference forward "
        f"{f['reference_forward']:.1f}; total {f['total']:.1f} "
        f"({result['flops_per_token'] / 1e9:.1f} GFLOPs per token)",
    ]


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


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build the random checkpoint and time GRPO steps on it. The checkpoint (16.6 GB at the 7B
    shape) goes into ``--workdir``, which is the user's and kept, or else into a temporary
    folder (under $TMPDIR) that is removed when the run ends, fails or is stopped (SIGTERM,
    e.g. from ``timeout``: the command line turns it into SystemExit, so the removal runs)."""
    if args.workdir:
        return measure(args, Path(args.workdir))
    with tempfile.TemporaryDirectory(prefix="grpo-step-") as scratch:
        return measure(args, Path(scratch))


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """:func:`run` in the folder ``work`` (the random checkpoint and the trainer's output)."""
    from transformers import Qwen2_5_VLForConditionalGeneration
    from trl import GRPOTrainer

    from model_training.configs import GRPORecipe
    from model_training.processor import load_processor
    from model_training.rewards import get_rewards
    from model_training.scope import apply_trainable_scope, count_parameters

    device = "cuda" if torch.cuda.is_available() else "cpu"
    device_name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    started = time.perf_counter()
    folder = build_model_folder(work, args.shape, device)
    build_seconds = time.perf_counter() - started

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        folder, dtype=torch.bfloat16, attn_implementation="sdpa"
    )
    model, _ = apply_trainable_scope(model, args.scope, lora_rank=LORA_RANK)
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
        beta=BETA,  # a KL term, so the reference model's forward pass is timed too
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
        reward_funcs=get_rewards(config.reward_funcs, config.answer_parsing),
        train_dataset=prompts_dataset(steps * prompts_per_step),
        callbacks=[timer.callback],
    )
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    gpus = trainer.accelerator.num_processes
    logs = [r for r in trainer.state.log_history if "num_tokens" in r]
    measured = timer.seconds[args.warmup :]
    tokens_before = logs[args.warmup - 1]["num_tokens"] if args.warmup else 0.0
    all_tokens = logs[-1]["num_tokens"] - tokens_before  # gathered over processes
    completion_tokens = sum(
        r["completions/mean_length"] * NUM_GENERATIONS * prompts_per_step * gpus
        for r in logs[args.warmup :]
    )
    seconds = sum(measured)
    flops = grpo_step_flops(
        total, trainable, all_tokens - completion_tokens, completion_tokens, BETA
    )
    achieved_tflops = flops["total"] / seconds / gpus / 1e12
    peak = args.peak_tflops if args.peak_tflops is not None else peak_tflops(device_name)
    return {
        "device": device_name,
        "shape": args.shape,
        "scope": args.scope,
        "optim": args.optim,
        "trainable_parameters": trainable,
        "total_parameters": total,
        "gpus": gpus,
        "completions_per_step": NUM_GENERATIONS * prompts_per_step * gpus,
        "max_completion_tokens": COMPLETION_TOKENS,
        "measured_steps": len(measured),
        "seconds_per_step": seconds / len(measured),
        "completion_tokens_per_second": completion_tokens / seconds,
        "all_tokens_per_second": all_tokens / seconds,
        "tokens_per_second_per_gpu": all_tokens / seconds / gpus,
        "mean_completion_length": completion_tokens
        / (len(measured) * NUM_GENERATIONS * prompts_per_step * gpus),
        "model_tflops_per_step": flops["total"] / len(measured) / 1e12,
        "achieved_tflops_per_gpu": achieved_tflops,
        "peak_tflops": peak,
        "mfu": achieved_tflops / peak if peak else None,
        "peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 2**30
        if device == "cuda"
        else None,
        "model_build_seconds": build_seconds,
    }


def result_lines(result: dict[str, Any]) -> list[str]:
    """A run's figures, one ``key: value`` line each (n/a where a figure does not apply)."""
    lines = []
    for key, value in result.items():
        if value is None:
            shown = "n/a"
            if key == "mfu":
                shown += f" (peak FLOPs of {result['device']!r} unknown: pass --peak-tflops)"
        elif key == "mfu":
            shown = f"{100 * value:.1f} %"
        elif isinstance(value, float):
            shown = f"{value:.3f}"
        else:
            shown = str(value)
        lines.append(f"{key}: {shown}")
    return lines


def _stop(signum: int, frame: Any) -> None:
    """SIGTERM handler: leave through SystemExit so that the temporary folder is removed."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    from model_training.scope import SCOPE_NAMES

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", choices=("7b", "tiny"), default="7b")
    parser.add_argument(
        "--scope",
        default="llm_mlp",
        choices=SCOPE_NAMES,
        help="trainable scope (model_training.scope; default llm_mlp, the 7B recipe's)",
    )
    parser.add_argument("--optim", default="adafactor", help="optimiser (see the memory note)")
    parser.add_argument("--steps", type=int, default=5, help="measured steps")
    parser.add_argument("--warmup", type=int, default=1, help="steps run before measuring")
    parser.add_argument("--prompts-per-step", type=int, default=1)
    parser.add_argument(
        "--workdir",
        default=None,
        help="folder for the random checkpoint, kept afterwards (default: a temporary folder "
        "under $TMPDIR, removed at the end; the 7B checkpoint is 16.6 GB)",
    )
    parser.add_argument(
        "--allow-cpu", action="store_true", help="run on the CPU (only sensible with --shape tiny)"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="count parameters, tokens and FLOPs per step on the meta device; no GPU, no training",
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="the GPU's peak dense bf16 TFLOPs for MFU (default: H100 SXM / H200 989, A100 312, "
        "by device name; otherwise MFU is n/a)",
    )
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.dry_run:
        result = dry_run(args)
        lines = dry_run_lines(result)
    elif not torch.cuda.is_available() and not args.allow_cpu:
        print("no CUDA GPU on this machine: the GRPO step benchmark needs one; skipped.")
        return 0
    else:
        result = run(args)
        lines = result_lines(result)
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop)  # stopped by `timeout`: the temporary folder goes too
    sys.exit(main())
