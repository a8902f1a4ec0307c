"""Recipe dataclasses: TRL's configs plus the few fields this project adds (open-r1 style).

A recipe YAML mixes the fields of ``CTRateVQAArguments``, ``ModelConfig`` and ``SFTConfig`` /
``GRPORecipe``; ``TrlParser`` reads YAML and command line together, so every field is
documented by ``--help`` and can be overridden on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig, ScriptArguments

from .processor import PINNED_MAX_PIXELS, PINNED_MIN_PIXELS
from .prompts import MODES, SFT_TARGETS
from .rewards import DEFAULT_REWARD_WEIGHTS, DEFAULT_REWARDS
from .scope import SCOPE_NAMES


@dataclass
class CTRateVQAArguments(ScriptArguments):
    """Dataset, prompts and trainable scope of a CT-RATE-VQA training stage."""

    dataset_name: str | None = field(
        default="ct-rate-vqa",
        metadata={"help": "Built CT-RATE-VQA folder or Hub dataset id (load_dataset)."},
    )
    dataset_config: str | None = field(
        default="zoom", metadata={"help": "Config: 'zoom' (paper) or 'plain'."}
    )
    dataset_limit: int | None = field(
        default=None, metadata={"help": "Use only the first N training rows (smoke runs)."}
    )
    prompt_mode: str = field(
        default="think",
        metadata={"help": f"System prompt: one of {MODES} (with or without <think>)."},
    )
    sft_target: str = field(
        default="answer",
        metadata={
            "help": f"What SFT teaches the model to reply, one of {SFT_TARGETS}: "
            "'answer' (the class only, as the paper) or 'finding' (the report "
            "sentence as <think>, then the class)."
        },
    )
    trainable_scope: str = field(
        default="llm_mlp",
        metadata={
            "help": f"Parameters to train, one of {SCOPE_NAMES}. The paper trains 'only "
            "the MLP layers ... following LLaVA-Med' without naming them. 'lora' uses "
            "ModelConfig's lora_r."
        },
    )
    image_min_pixels: int | None = field(
        default=None,
        metadata={
            "help": "Pin the processor's resize (with image_max_pixels) so that every 512x512 "
            "slice gives the same image-token count: 512x512 -> resized to 504x504 -> 324 image "
            f"tokens with {PINNED_MIN_PIXELS} (504*504) and {PINNED_MAX_PIXELS} (512*512). "
            "Lower bound on the resized pixel count; None = the checkpoint's own setting."
        },
    )
    image_max_pixels: int | None = field(
        default=None,
        metadata={
            "help": "Upper bound on the resized pixel count (see image_min_pixels); None = the "
            "checkpoint's own setting."
        },
    )

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("prompt_mode", self.prompt_mode, MODES),
            ("sft_target", self.sft_target, SFT_TARGETS),
            ("trainable_scope", self.trainable_scope, SCOPE_NAMES),
        ):
            if value not in allowed:
                raise ValueError(f"{name}={value!r} is not one of {allowed}")
        low, high = self.image_min_pixels, self.image_max_pixels
        if low is not None and high is not None and low > high:
            raise ValueError(f"image_min_pixels={low} exceeds image_max_pixels={high}")


@dataclass
class GRPORecipe(GRPOConfig):
    """GRPOConfig plus the rewards chosen by name (paper: format, validity, correctness)."""

    reward_funcs: list[str] = field(
        default_factory=lambda: list(DEFAULT_REWARDS),
        metadata={"help": "Reward functions by name: format, validity, correctness."},
    )

    def __post_init__(self) -> None:
        if self.reward_weights is None:
            by_name = dict(zip(DEFAULT_REWARDS, DEFAULT_REWARD_WEIGHTS, strict=True))
            self.reward_weights = [by_name.get(n, 1.0) for n in self.reward_funcs]
        super().__post_init__()
