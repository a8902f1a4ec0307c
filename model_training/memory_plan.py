"""Memory per GPU and disk of a run's steps, estimated from the model's shape and the recipe
before any weight is loaded: what ``python -m model_training.run --dry_run`` prints and checks.

The shape: :func:`model_config` reads a local folder's config.json, the tiny model's config
where the demo would build it, a Hub snapshot in the local cache, a built-in shape
(``model_shapes``), or, for a Hub model the recipe names, its config.json alone. Parameters are
counted on the meta device with the stage's trainable scope applied (``scope``).

Memory per GPU, by part (Ψ: all parameters, Ψt: trainable ones, N: processes):

- weights: Ψ x 4 bytes without DeepSpeed (``policy.weights_dtype`` loads fp32 master weights;
  bf16 is the compute precision), Ψ x the recipe dtype's size under DeepSpeed; / N under ZeRO-3
  (and on the host with parameter offload).
- gradients: Ψt in the weights' dtype; without DeepSpeed and N > 1, DDP's buckets hold a
  second copy. ZeRO-1: Ψt in the weights' dtype + the fp32 partition, Ψt x 4 / N. ZeRO-2/3: both
  partitioned (/ N).
- optimizer state: AdamW's two moments (fp32) and a step counter per tensor; Adafactor's
  factored second moment; under DeepSpeed also the fp32 master copy (Ψt x 4), all / N, on the
  host with optimizer offload.
- reference model (GRPO with beta > 0, not LoRA): Ψ in the policy's dtype (TRL builds it like
  the policy), / N under ZeRO-3.
- vLLM (colocate): ``vllm_gpu_memory_utilization`` x ``gpu_memory_gib``.
- activations (an estimate, per micro-batch of ``per_device_train_batch_size`` sequences):
  every text layer's saved tensors (ACTIVATION_HIDDEN x hidden + ACTIVATION_MLP x MLP width per
  token), or with activation checkpointing one hidden state per layer plus one layer
  recomputed; the vision tower's only when a vision parameter trains; the logits (SFT: in the
  compute dtype, their fp32 copy and log-softmax; GRPO: the completion's, three copies).
- generation (GRPO without vLLM; evaluation): the KV cache of a whole generation batch
  (``per_device_train_batch_size x steps_per_generation`` sequences of prompt + completion), one
  layer of its prefill, and under ZeRO-3 the gathered weights (``ds3_gather_for_generation``).

A step's peak is the resident parts plus the larger of its training and generation phases.
Weights, gradients, optimizer state and reference model are exact for one process without
DeepSpeed (tests/test_memory_plan.py compares them with a real CPU trainer's tensors); the
activation estimate is compared there with the tensors a real forward pass saves.

Disk per checkpoint: the weights (safetensors, the weights' dtype; LoRA: the adapter), the
optimizer state (``optimizer.pt``; under DeepSpeed its partitions with the fp32 master copy,
plus DeepSpeed's own copy of the module's weights). With ``save_total_limit`` k the Trainer
holds k + 1 checkpoints while it rotates (it deletes after it saves), then the final model.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from common.errors import UserError

from .backends import LaunchSetup
from .model_shapes import known_config

GIB = 2**30
BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
# ours, measured on the tiny Qwen2.5-VL (tests/test_memory_plan.py): a Qwen2 decoder layer with
# SDPA attention saves about 10 hidden-sized and 4 MLP-sized tensors per token for backward
ACTIVATION_HIDDEN = 10
ACTIVATION_MLP = 4
MERGER_SAVED = 4  # ours, the same way: the vision merger's saved tensors per patch, hidden-sized
# ours: a 512 x 512 slice (CT-RATE's native size: data-facts) -> 504 x 504 -> 324 image tokens;
# a prompt is ~460 tokens with them (the 7B recipes' note), so ~136 text tokens
DEFAULT_IMAGE_SIDE = 512
PROMPT_TEXT_TOKENS = 136
# ours: an upper bound of an SFT reply (the class answer ~15 tokens, a finding sentence and the
# answer ~80, the grounding JSON ~50)
SFT_REPLY_TOKENS = 128
ADAM_MOMENTS = 2  # AdamW: exp_avg and exp_avg_sq, in fp32 (the weights' dtype here)
EIGHT_BIT_OPTIMIZERS = ("adamw_8bit", "adamw_bnb_8bit", "paged_adamw_8bit", "adamw_torch_4bit")
SGD_OPTIMIZERS = ("sgd",)


class PlanError(UserError):
    """The plan cannot be made (the model's shape is nowhere to be found): the message says
    what to do."""


@dataclass
class ModelShape:
    """The counts and widths the estimate needs, from a model on the meta device."""

    source: str  # where the config came from
    total: int
    trainable: int
    trainable_tensors: int
    factored: int  # elements of Adafactor's state for the trainable tensors
    hidden: int
    mlp: int
    layers: int
    kv_width: int  # key + value width per token per layer: 2 x kv_heads x head_dim
    vocab: int
    vision_hidden: int
    vision_mlp: int
    vision_depth: int
    vision_trains: bool  # a vision-tower parameter is in the trainable scope
    layer_parameters: int  # the largest decoder layer (ZeRO-3 gathers about two at a time)
    patch: int
    merge: int
    patch_input: int  # pixel values per vision patch: channels x temporal patch x patch^2


@dataclass
class Part:
    name: str
    bytes: float
    note: str = ""


@dataclass
class StepMemory:
    """One step's memory per GPU: parts resident throughout, and per phase the parts that come
    and go (training: gradients and activations; generation: KV cache and prefill)."""

    step: str
    resident: list[Part]
    phases: dict[str, list[Part]] = field(default_factory=dict)

    def phase_bytes(self, phase: str) -> float:
        return sum(p.bytes for p in self.phases.get(phase, []))

    @property
    def peak_phase(self) -> str | None:
        return max(self.phases, key=self.phase_bytes) if self.phases else None

    @property
    def peak(self) -> float:
        phase = self.peak_phase
        return sum(p.bytes for p in self.resident) + (self.phase_bytes(phase) if phase else 0)

    @property
    def parts(self) -> list[Part]:
        """The parts of the peak: the resident ones and the peak phase's."""
        phase = self.peak_phase
        return self.resident + (self.phases[phase] if phase else [])

    def largest(self) -> Part:
        return max(self.parts, key=lambda p: p.bytes)


@dataclass
class StageDisk:
    checkpoint: float  # bytes of one checkpoint
    parts: list[Part]
    final: float  # the saved model at the end
    kept: int | None  # checkpoints at once at the peak (None: unbounded)
    saves: int | None  # checkpoints the stage writes (None: unknown before the data is read)

    @property
    def peak(self) -> float | None:
        return None if self.kept is None else self.kept * self.checkpoint + self.final


# -- the model's shape --------------------------------------------------------------------------


def model_config(path: str, revision: str | None = None, tiny_if_missing: bool = False):
    """(config, where it came from) of the model at ``path``: a local folder, the tiny model
    the demo builds there, the Hub cache, a built-in shape, or the Hub's config.json alone."""
    from transformers import AutoConfig

    folder = Path(path).expanduser()
    if folder.is_dir():
        return AutoConfig.from_pretrained(folder), "its config.json"
    if tiny_if_missing:
        from .tiny_model import tiny_model_config

        return tiny_model_config()[0], "the tiny model the run builds"
    try:
        return AutoConfig.from_pretrained(path, revision=revision, local_files_only=True), (
            "the Hub cache"
        )
    except OSError:
        pass
    built_in = known_config(path)
    if built_in is not None:
        return built_in, "built-in shape (model_training.model_shapes)"
    try:  # the user named this Hub model: its config.json alone
        return AutoConfig.from_pretrained(path, revision=revision), "the Hub (config.json only)"
    except OSError as error:
        raise PlanError(
            f"model {path}: no local folder, no cached copy and no built-in shape, and its "
            f"config.json could not be fetched ({str(error).splitlines()[0]}); give a folder "
            "with its config.json"
        ) from None


def _factored(shape: torch.Size) -> int:
    """Adafactor's state elements for a tensor: row and column factors of a matrix, a full
    second moment otherwise (transformers' Adafactor, relative_step, no first moment)."""
    return shape[-2] + shape[-1] if len(shape) >= 2 else math.prod(shape)


def model_shape(config, source: str, scope: str, model_args: Any = None) -> ModelShape:
    """Counts and widths of ``config``'s model with ``scope`` trainable, on the meta device."""
    from transformers import AutoModelForImageTextToText

    from .scope import apply_trainable_scope, count_parameters

    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # peft's deprecation probes
        model, names = apply_trainable_scope(model, scope, model_args)
    trainable = [p for p in model.parameters() if p.requires_grad]
    trainable_count, total = count_parameters(model)
    text, vision = config.text_config, config.vision_config
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    layers = [m for n, m in model.named_modules() if n.endswith("language_model.layers.0")]
    return ModelShape(
        source=source,
        total=total,
        trainable=trainable_count,
        trainable_tensors=len(trainable),
        factored=sum(_factored(p.shape) for p in trainable),
        hidden=text.hidden_size,
        mlp=text.intermediate_size,
        layers=text.num_hidden_layers,
        kv_width=2 * text.num_key_value_heads * head_dim,
        vocab=text.vocab_size,
        vision_hidden=getattr(vision, "hidden_size", getattr(vision, "embed_dim", 0)),
        vision_mlp=getattr(vision, "intermediate_size", 0)
        or int(getattr(vision, "embed_dim", 0) * getattr(vision, "mlp_ratio", 4)),
        vision_depth=vision.depth,
        vision_trains=any(".visual." in f".{n}" for n in names),
        layer_parameters=sum(p.numel() for p in layers[0].parameters()) if layers else 0,
        patch=vision.patch_size,
        merge=vision.spatial_merge_size,
        patch_input=getattr(vision, "in_channels", getattr(vision, "in_chans", 3))
        * getattr(vision, "temporal_patch_size", 2)
        * vision.patch_size**2,
    )


def image_token_count(
    height: int, width: int, low: int | None = None, high: int | None = None, patch: int = 14,
    merge: int = 2,
) -> int:  # fmt: skip
    """LLM tokens of one image: Qwen2-VL's smart_resize to multiples of ``patch`` x ``merge``
    pixels within the resize bounds (unset: Qwen2.5-VL's own), ``patch``-pixel patches, each
    ``merge`` x ``merge`` of them merged into one token."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    from .model_shapes import QWEN2_5_VL_MAX_PIXELS, QWEN2_5_VL_MIN_PIXELS

    resized_height, resized_width = smart_resize(
        height, width, factor=patch * merge, min_pixels=low or QWEN2_5_VL_MIN_PIXELS,
        max_pixels=high or QWEN2_5_VL_MAX_PIXELS,
    )  # fmt: skip
    return (resized_height // patch) * (resized_width // patch) // merge**2


def image_tokens(shape: ModelShape, side: int, low: int | None, high: int | None) -> int:
    """LLM tokens of one ``side`` x ``side`` image of ``shape``'s model."""
    return image_token_count(side, side, low, high, shape.patch, shape.merge)


# -- memory ------------------------------------------------------------------------------------


@dataclass
class Precision:
    weights: int  # bytes per weight as held in memory
    compute: int  # bytes per activation element


def precision(setup: LaunchSetup, dtype: str | None, bf16: bool, fp16: bool) -> Precision:
    """Without DeepSpeed the policy's weights are fp32 (``policy.weights_dtype``); under it the
    recipe's ``dtype`` (``auto``: bf16, Qwen's checkpoints' dtype)."""
    half = bf16 or fp16
    if setup.zero_stage is None:
        return Precision(4, 2 if half else 4)
    weights = BYTES.get(str(dtype), 2)
    return Precision(weights, 2 if half or weights == 2 else 4)


def optimizer_bytes(shape: ModelShape, optim: str) -> tuple[float, str]:
    """Bytes of the optimizer's own state for the trainable parameters (no master copy)."""
    name = str(getattr(optim, "value", optim))
    if name.startswith("adafactor"):
        return 4 * shape.factored, "Adafactor's factored second moment"
    if name in SGD_OPTIMIZERS:
        return 0, "SGD keeps no state"
    if name in EIGHT_BIT_OPTIMIZERS:
        return 2 * shape.trainable, f"{name}: two 8-bit moments"
    assumed = "" if name.startswith("adamw") else f" (assumed for {name})"
    note = "AdamW: two fp32 moments" + assumed
    return ADAM_MOMENTS * 4 * shape.trainable + 4 * shape.trainable_tensors, note


def static_parts(
    shape: ModelShape, setup: LaunchSetup, prec: Precision, optim: str, reference: bool,
    vllm_bytes: float,
) -> list[Part]:  # fmt: skip
    """Weights, optimizer state, the reference model, vLLM's share: resident on each GPU."""
    n, zero = setup.processes, setup.zero_stage
    shard = n if zero == 3 else 1
    on_gpu = 0 if (zero == 3 and setup.offload_params) else 1
    parts = [Part("weights", on_gpu * shape.total * prec.weights / shard,
                  f"{count(shape.total)} x {prec.weights} bytes"
                  + (f" / {n}" if shard > 1 else ""))]  # fmt: skip
    state, note = optimizer_bytes(shape, optim)
    if zero is not None:
        state += 4 * shape.trainable  # DeepSpeed's fp32 master copy of the trainable weights
        note += " + fp32 master copy"
    if zero is not None and zero >= 1:
        state, note = state / n, note + f", / {n}"
    if setup.offload_optimizer:
        state, note = 0, note + " (offloaded to the host)"
    parts.append(Part("optimizer state", state, note))
    if reference:
        parts.append(Part("reference model", on_gpu * shape.total * prec.weights / shard,
                          "the KL term's frozen copy (beta > 0)"))  # fmt: skip
    if vllm_bytes:
        parts.append(Part("vLLM", vllm_bytes, "colocate: its share of the GPU"))
    if n > 1 and zero is None:
        parts.append(Part("DDP buckets", 4 * shape.trainable, "DDP's copy of the gradients"))
    return parts


def gradient_part(shape: ModelShape, setup: LaunchSetup, prec: Precision) -> Part:
    n, zero = setup.processes, setup.zero_stage
    if zero is None:
        return Part("gradients", shape.trainable * prec.weights, "the trainable parameters'")
    if zero == 1:
        return Part("gradients", shape.trainable * (prec.weights + 4 / n),
                    f"full, + the fp32 partition / {n}")  # fmt: skip
    return Part("gradients", shape.trainable * (prec.weights + 4) / n, f"partitioned / {n}")


def activation_parts(
    shape: ModelShape, batch: int, tokens: int, images_tokens: int, logit_tokens: int,
    logit_copies: float, compute: int, checkpointing: bool,
) -> list[Part]:  # fmt: skip
    """What backward needs from the forward pass of one micro-batch."""
    per_layer = (ACTIVATION_HIDDEN * shape.hidden + ACTIVATION_MLP * shape.mlp) * compute
    if checkpointing:
        text = batch * tokens * (shape.layers * shape.hidden * compute + per_layer)
        note = "checkpointed: a hidden state per layer + one layer recomputed"
    else:
        text = batch * tokens * shape.layers * per_layer
        note = f"{shape.layers} layers' saved tensors"
    parts = [Part("activations", text, note)]
    if shape.vision_trains:
        patches = batch * images_tokens * shape.merge**2
        block = ACTIVATION_HIDDEN * shape.vision_hidden + ACTIVATION_MLP * shape.vision_mlp
        depth = 1 if checkpointing else shape.vision_depth
        extra = shape.vision_depth * shape.vision_hidden if checkpointing else 0
        # + the patch embedding's input and the merger's (MERGER_SAVED hidden-sized tensors)
        extra += shape.patch_input + MERGER_SAVED * shape.vision_hidden
        parts.append(Part("vision activations", patches * (block * depth + extra) * compute,
                          "a vision parameter trains"))  # fmt: skip
    parts.append(Part("logits", batch * logit_tokens * shape.vocab * logit_copies,
                      f"{batch} x {logit_tokens} tokens x {shape.vocab} vocabulary"))  # fmt: skip
    return parts


def generation_parts(
    shape: ModelShape, sequences: int, prompt: int, reply: int, image_tokens_: int,
    compute: int,
) -> list[Part]:  # fmt: skip
    """The KV cache of ``sequences`` generated at once, and one layer of their prefill."""
    kv = sequences * (prompt + reply) * shape.layers * shape.kv_width * compute
    text = sequences * prompt * (2 * shape.mlp + 4 * shape.hidden) * compute
    vision = (
        sequences
        * image_tokens_
        * shape.merge**2
        * (2 * shape.vision_mlp + 4 * shape.vision_hidden)
        * compute
    )
    return [
        Part("KV cache", kv, f"{sequences} sequences x {prompt + reply} tokens"),
        Part("prefill", max(text, vision), "one layer of the prompt's forward pass"),
    ]


# -- disk ----------------------------------------------------------------------------------------


def checkpoint_disk(
    shape: ModelShape, setup: LaunchSetup, prec: Precision, optim: str, lora: bool
) -> tuple[float, list[Part], float]:
    """(bytes of one checkpoint, its parts, bytes of the final saved model)."""
    weights = shape.trainable * 4 if lora else shape.total * prec.weights
    state, _ = optimizer_bytes(shape, optim)
    parts = [Part("weights", weights, "safetensors" + (" (the adapter)" if lora else ""))]
    if setup.zero_stage is None:
        parts.append(Part("optimizer", state, "optimizer.pt"))
    else:
        parts.append(Part("optimizer", state + 4 * shape.trainable,
                          "DeepSpeed's partitions with the fp32 master copy"))  # fmt: skip
        parts.append(Part("model states", shape.total * prec.weights,
                          "DeepSpeed's copy of the weights"))  # fmt: skip
    return sum(p.bytes for p in parts), parts, weights


def checkpoints_kept(saves: int | None, limit: int | None) -> int | None:
    """Checkpoints on disk at once at the peak: k + 1 while the Trainer rotates past k."""
    if limit is not None and limit > 0:
        return min(saves, limit + 1) if saves is not None else limit + 1
    return saves


def saves_of(training: Any, steps: int | None) -> int | None:
    """How many checkpoints a stage writes, if its number of steps is known."""
    strategy = str(getattr(training.save_strategy, "value", training.save_strategy))
    if strategy == "no":
        return 0
    if strategy == "epoch":
        return math.ceil(training.num_train_epochs)
    if steps is None:
        return None
    every = training.save_steps
    every = max(1, math.ceil(every * steps)) if every < 1 else int(every)
    return steps // every


def gib(value: float) -> str:
    return f"{value / GIB:.1f}"


def size(value: float, binary: bool = True) -> str:
    """``value`` bytes in the largest unit that keeps it at 1 or more (GiB ... or GB ...)."""
    base, units = (1024, ("B", "KiB", "MiB", "GiB", "TiB")) if binary else (
        1000, ("B", "kB", "MB", "GB", "TB"))  # fmt: skip
    for unit in units[:-1]:
        if abs(value) < base:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= base
    return f"{value:.1f} {units[-1]}"


def count(value: int) -> str:
    """A parameter count: 8.29 B, 235.0 K."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return str(value)


def processor_bounds(model: str, tiny: bool) -> tuple[int | None, int | None]:
    """The resize bounds (min, max pixels) of ``model``'s image processor where they can be
    read offline: its preprocessor_config.json, else (``tiny``: the run builds the tiny model
    there) the tiny model's; (None, None) otherwise (Qwen2.5-VL's own defaults apply)."""
    import json

    try:
        config = json.loads((Path(model) / "preprocessor_config.json").read_text())
    except (OSError, ValueError):
        if not tiny:
            return None, None
        from .tiny_model import MAX_PIXELS, MIN_PIXELS

        return MIN_PIXELS, MAX_PIXELS
    bounds = config.get("size") or {}
    return (bounds.get("shortest_edge", config.get("min_pixels")),
            bounds.get("longest_edge", config.get("max_pixels")))  # fmt: skip


__all__ = [
    "DEFAULT_IMAGE_SIDE",
    "GIB",
    "ModelShape",
    "Part",
    "PlanError",
    "Precision",
    "StageDisk",
    "StepMemory",
    "activation_parts",
    "checkpoint_disk",
    "checkpoints_kept",
    "count",
    "generation_parts",
    "gradient_part",
    "image_token_count",
    "image_tokens",
    "model_config",
    "model_shape",
    "precision",
    "processor_bounds",
    "saves_of",
    "size",
    "static_parts",
]
