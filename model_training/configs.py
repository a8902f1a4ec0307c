"""Recipe dataclasses: TRL's configs plus the few fields this project adds (open-r1 style).

A recipe YAML mixes the fields of ``CTRateVQAArguments``, ``ModelConfig`` and ``SFTConfig`` /
``GRPORecipe``; ``TrlParser`` reads YAML and command line together, so every field is
documented by ``--help`` and can be overridden on the command line.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from dataclasses import dataclass, field
from typing import Any

from trl import GRPOConfig, ModelConfig, ScriptArguments

from common.errors import UserError
from common.names import (
    CLASSIFICATION_TASK,
    GROUNDING_CONFIG,
    GROUNDING_TASK,
    MULTITASK,
    TASKS,
)

from .grounding import ANSWER_PARSING_HELP, DEFAULT_ANSWER_PARSING, answer_parsing_problem
from .grounding_rewards import GROUNDING_REWARDS, GROUNDING_SOFT_REWARDS
from .processor import PINNED_MAX_PIXELS, PINNED_MIN_PIXELS
from .prompts import MODES, SFT_TARGETS
from .rewards import DEFAULT_REWARD_WEIGHTS, DEFAULT_REWARDS, REWARDS
from .scope import SCOPE_NAMES

TASK_CHOICES = (*TASKS, MULTITASK)
DEFAULT_CLASSIFICATION_CONFIG = "zoom"  # paper (MedReason-R1): the zoom-in patch


class ConfigError(UserError):
    """A recipe value this project refuses; the message is one line for the user. The stage
    scripts print it as ``error: ...`` and exit 2."""


@dataclass
class CTRateVQAArguments(ScriptArguments):
    """Dataset, prompts and trainable scope of a CT-RATE-VQA training stage."""

    dataset_name: str | None = field(
        default="ct-rate-vqa",
        metadata={"help": "Built CT-RATE-VQA folder or Hub dataset id (load_dataset)."},
    )
    task: str = field(
        default=CLASSIFICATION_TASK,
        metadata={
            "help": f"What the stage trains, one of {TASK_CHOICES}: '{CLASSIFICATION_TASK}' "
            "(MedReason-R1: the lesion's class, rows of dataset_config); "
            f"'{GROUNDING_TASK}' (MedReasoner: a box and two points for the report sentence, "
            f"rows of grounding_config; the SFT target is grounding.format_answer's JSON in the "
            f"model-input frame); '{MULTITASK}' (ours: the rows of both configs in one shuffled "
            "training set, mixed as grounding_fraction says; each GRPO reward scores its own "
            "task's rows only)."
        },
    )
    dataset_config: str | None = field(
        default=DEFAULT_CLASSIFICATION_CONFIG,
        metadata={
            "help": "Config of the classification rows: 'zoom' (paper) or 'plain' (task "
            f"'{CLASSIFICATION_TASK}' or '{MULTITASK}')."
        },
    )
    grounding_config: str = field(
        default=GROUNDING_CONFIG,
        metadata={
            "help": f"Config of the grounding rows (task '{GROUNDING_TASK}' or '{MULTITASK}')."
        },
    )
    grounding_fraction: float | None = field(
        default=None,
        metadata={
            "help": f"Task '{MULTITASK}' only: the share of grounding rows in the training set, "
            "strictly between 0 and 1; the larger task's rows are subsampled (with the stage's "
            "seed) until the mixture has it. Unset: every row of both configs, concatenated "
            "and shuffled with the seed."
        },
    )
    dataset_limit: int | None = field(
        default=None,
        metadata={
            "help": "Use only the first N training rows (smoke runs); with task "
            f"'{MULTITASK}', the first N rows of each config."
        },
    )
    allow_incomplete_build: bool = field(
        default=False,
        metadata={
            "help": "Train on a built dataset folder whose build_manifest.json says the build is "
            "not complete (a build that was killed or is still running); refused otherwise. "
            "Re-running the build (it resumes) is the better fix."
        },
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
            "sentence as <think>, then the class). Grounding rows: the answer is the "
            "box-and-points JSON in the model-input frame, after the same <think> for 'finding'."
        },
    )
    trainable_scope: str = field(
        default="llm_mlp",
        metadata={
            "help": f"Parameters to train, one of {SCOPE_NAMES}. The paper trains 'only "
            "the MLP layers ... following LLaVA-Med' without naming them. 'lora' trains a LoRA "
            "adapter from ModelConfig's lora_* fields (TRL's get_peft_config) on the language "
            "model's MLP projections unless lora_target_modules names others; use_peft: true "
            "requires it."
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
            ("task", self.task, TASK_CHOICES),
            ("prompt_mode", self.prompt_mode, MODES),
            ("sft_target", self.sft_target, SFT_TARGETS),
            ("trainable_scope", self.trainable_scope, SCOPE_NAMES),
        ):
            if value not in allowed:
                raise ConfigError(f"{name}={value!r} is not one of {allowed}")
        for name in ("dataset_name", "dataset_config", "grounding_config", "dataset_train_split"):
            if not getattr(self, name):
                raise ConfigError(f"{name} is required (got {getattr(self, name)!r})")
        self._check_task_configs()
        for name in ("dataset_limit", "image_min_pixels", "image_max_pixels"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name}={value} must be at least 1 (or unset)")
        low, high = self.image_min_pixels, self.image_max_pixels
        if low is not None and high is not None and low > high:
            raise ConfigError(f"image_min_pixels={low} exceeds image_max_pixels={high}")
        # ScriptArguments fields the stages have no use for: refused rather than ignored
        unused = {
            "dataset_test_split": "test",
            "dataset_streaming": False,
            "ignore_bias_buffers": False,
        }
        for name, default in unused.items():
            if getattr(self, name) != default:
                raise ConfigError(
                    f"{name}={getattr(self, name)!r} is not supported by the training stages "
                    f"(they train on dataset_train_split, read without streaming); remove it"
                )

    @property
    def tasks(self) -> tuple[str, ...]:
        """The tasks whose rows the stage trains on."""
        return TASKS if self.task == MULTITASK else (self.task,)

    def config_of(self, task: str) -> str:
        """The dataset config of ``task``'s rows."""
        return self.grounding_config if task == GROUNDING_TASK else self.dataset_config

    def _check_task_configs(self) -> None:
        """Refuse the task options that the chosen task would ignore."""
        if self.task != MULTITASK and self.grounding_fraction is not None:
            raise ConfigError(
                f"grounding_fraction mixes the tasks of task: {MULTITASK}, but task="
                f"{self.task!r}: set task: {MULTITASK} or remove grounding_fraction"
            )
        fraction = self.grounding_fraction
        if fraction is not None and not 0 < fraction < 1:
            raise ConfigError(
                f"grounding_fraction={fraction} must lie strictly between 0 and 1 (or be unset: "
                "every row of both configs)"
            )
        if self.task == CLASSIFICATION_TASK and self.grounding_config != GROUNDING_CONFIG:
            raise ConfigError(
                f"grounding_config={self.grounding_config!r} is read by task {GROUNDING_TASK} or "
                f"{MULTITASK}, but task={self.task!r}: set the task or remove grounding_config"
            )
        if self.task == GROUNDING_TASK and self.dataset_config not in (
            DEFAULT_CLASSIFICATION_CONFIG,
            self.grounding_config,
        ):
            raise ConfigError(
                f"dataset_config={self.dataset_config!r} names the classification rows, which "
                f"task {GROUNDING_TASK} does not read (its rows come from grounding_config="
                f"{self.grounding_config!r}): remove dataset_config"
            )
        if self.task == MULTITASK and self.dataset_config == self.grounding_config:
            raise ConfigError(
                f"task {MULTITASK} reads classification rows from dataset_config and grounding "
                f"rows from grounding_config, but both are {self.dataset_config!r}: set "
                "dataset_config to a classification config (zoom or plain)"
            )


@dataclass
class GRPORecipe(GRPOConfig):
    """GRPOConfig plus the rewards chosen by name (paper: format, validity, correctness)."""

    reward_funcs: list[str] = field(
        default_factory=lambda: list(DEFAULT_REWARDS),
        metadata={
            "help": "Reward functions by name: format, validity, correctness (classification, "
            "MedReason-R1); format_think, format_seg, bbox_iou, points_dice, and in hard mode "
            "also bbox_align, bbox_scale, points_align, points_angle (grounding, MedReasoner); "
            "points_true_dice (ours: points_dice over the true circle Dice). Each scores only "
            "its own task's rows."
        },
    )
    answer_parsing: str = field(
        default=DEFAULT_ANSWER_PARSING,
        metadata={"help": f"{ANSWER_PARSING_HELP}; read by the grounding rewards"},
    )

    def __post_init__(self) -> None:
        if not self.reward_funcs:
            raise ConfigError(f"reward_funcs is empty; choose from {sorted(REWARDS)}")
        unknown = [n for n in self.reward_funcs if n not in REWARDS]
        if unknown:
            raise ConfigError(f"unknown reward_funcs {unknown}; valid names: {sorted(REWARDS)}")
        problem = answer_parsing_problem(self.answer_parsing)
        if problem is not None:
            raise ConfigError(problem)
        grounding = [n for n in self.reward_funcs if n in GROUNDING_REWARDS]
        if self.answer_parsing != DEFAULT_ANSWER_PARSING and not grounding:
            raise ConfigError(
                f"answer_parsing={self.answer_parsing!r} is read by the grounding rewards, but "
                f"reward_funcs {self.reward_funcs} names none: remove answer_parsing"
            )
        if self.reward_weights is None:
            by_name = dict(zip(DEFAULT_REWARDS, DEFAULT_REWARD_WEIGHTS, strict=True))
            self.reward_weights = [by_name.get(n, 1.0) for n in self.reward_funcs]
        if len(self.reward_weights) != len(self.reward_funcs):
            raise ConfigError(
                f"reward_weights has {len(self.reward_weights)} values {self.reward_weights} "
                f"but reward_funcs names {len(self.reward_funcs)} {self.reward_funcs}: give "
                "one weight per reward (or omit reward_weights for the paper's)"
            )
        super().__post_init__()


DTYPES = ("auto", "bfloat16", "float16", "float32")
LORA_FIELDS = (
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "lora_target_modules",
    "lora_target_parameters",
    "lora_modules_to_save",
    "lora_task_type",
    "use_rslora",
    "use_dora",
)
QUANT_FIELDS = ("bnb_4bit_quant_type", "use_bnb_nested_quant", "bnb_4bit_quant_storage")


def _changed(model_args: ModelConfig, names: tuple[str, ...]) -> list[str]:
    """The fields of ``names`` set away from ModelConfig's defaults."""
    defaults = {f.name: f.default for f in dataclasses.fields(ModelConfig)}
    return [n for n in names if getattr(model_args, n) != defaults[n]]


def check_model_config(
    model_args: ModelConfig, args: CTRateVQAArguments, training: Any = None
) -> None:
    """Refuse every ModelConfig (and trainer model-loading) setting the stages would ignore or
    cannot honour; one place, called at parse time (stage scripts, run driver) and again by
    ``load_policy`` at stage start.

    Honoured: model_name_or_path (required by ``load_policy``; unset is allowed here, for a
    stage whose model the driver fills in), model_revision (Hub ids), dtype,
    attn_implementation; LoRA (``trainable_scope: lora``; ``use_peft: true`` requires it) from
    every lora_* field through TRL's ``get_peft_config``; 4/8-bit quantisation through
    ``get_quantization_config`` where bitsandbytes is installed (LoRA only). ``training``
    (SFTConfig / GRPOConfig), if given: ``trust_remote_code`` and ``model_init_kwargs`` are
    refused (the policy is loaded here, as Qwen2.5-VL, never with remote code).

    Raises:
        ConfigError: the first refused setting, naming it and what to do instead.
    """
    m = model_args
    revision, path = m.model_revision, m.model_name_or_path or ""
    if revision not in (None, "main") and os.path.isdir(os.path.expanduser(path)):
        raise ConfigError(
            f"model_revision={revision!r} applies to Hub ids, but model_name_or_path="
            f"{m.model_name_or_path!r} is a local folder: remove model_revision"
        )
    if m.dtype not in (None, *DTYPES):
        raise ConfigError(f"dtype={m.dtype!r} is not one of {DTYPES}")
    attn = m.attn_implementation
    if attn is not None and attn != "eager" and "/" not in attn:
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

        known = ("eager", *ALL_ATTENTION_FUNCTIONS.valid_keys())
        if attn not in known:
            raise ConfigError(
                f"attn_implementation={attn!r} is not one of {known} (or a Hub kernel 'org/repo')"
            )
    lora = args.trainable_scope == "lora"
    if m.use_peft and not lora:
        raise ConfigError(
            f"use_peft=true trains a LoRA adapter, but trainable_scope={args.trainable_scope!r} "
            "trains weights themselves: set trainable_scope: lora (or drop use_peft)"
        )
    if not lora and _changed(m, LORA_FIELDS):
        raise ConfigError(
            f"{_changed(m, LORA_FIELDS)} set, but trainable_scope={args.trainable_scope!r} "
            "trains no LoRA: set trainable_scope: lora (or remove them)"
        )
    if lora:
        if m.lora_r < 1 or m.lora_alpha <= 0 or not 0 <= m.lora_dropout < 1:
            raise ConfigError(
                f"LoRA needs lora_r >= 1, lora_alpha > 0 and 0 <= lora_dropout < 1 (got "
                f"{m.lora_r}, {m.lora_alpha}, {m.lora_dropout})"
            )
        if m.lora_task_type != "CAUSAL_LM":
            raise ConfigError(
                f"lora_task_type={m.lora_task_type!r}: the policy is a causal LM, only "
                "CAUSAL_LM applies"
            )
    if not m.load_in_4bit and _changed(m, QUANT_FIELDS):
        raise ConfigError(f"{_changed(m, QUANT_FIELDS)} apply only with load_in_4bit: true")
    quantised = m.load_in_4bit or m.load_in_8bit
    if quantised:
        if importlib.util.find_spec("bitsandbytes") is None:
            raise ConfigError(
                "load_in_4bit/load_in_8bit need bitsandbytes: pip install bitsandbytes"
            )
        if not lora:
            raise ConfigError(
                "load_in_4bit/load_in_8bit: quantised weights cannot be trained; use "
                "trainable_scope: lora"
            )
    if training is not None:
        check_task_rewards(args, getattr(training, "reward_funcs", None))
        if getattr(training, "trust_remote_code", False):
            raise ConfigError(
                "trust_remote_code=true: the policy loader is Qwen2.5-VL only and never runs "
                "remote code; remove it"
            )
        if getattr(training, "model_init_kwargs", None):
            raise ConfigError(
                f"model_init_kwargs={training.model_init_kwargs!r} is not used (the policy is "
                "loaded from ModelConfig's fields: dtype, attn_implementation, model_revision, "
                "load_in_4bit ...); remove it"
            )


def reward_task(name: str) -> str:
    """The task whose rows the reward ``name`` scores (each returns None for the others)."""
    return GROUNDING_TASK if name in GROUNDING_REWARDS else CLASSIFICATION_TASK


def check_task_rewards(args: CTRateVQAArguments, reward_funcs: list[str] | None) -> None:
    """GRPO: every task of the rows has a reward that scores it, and every reward scores a task
    of the rows (a reward of another task would only ever return None).

    Raises:
        ConfigError: naming the task without a reward, or the rewards that score nothing.
    """
    if reward_funcs is None:  # not a GRPO stage
        return
    for task in args.tasks:
        if not any(reward_task(n) == task for n in reward_funcs):
            names = GROUNDING_SOFT_REWARDS if task == GROUNDING_TASK else DEFAULT_REWARDS
            raise ConfigError(
                f"task={args.task!r} trains on {task} rows, but no reward in reward_funcs "
                f"{reward_funcs} scores them: add {list(names)}"
            )
    idle = [n for n in reward_funcs if n in REWARDS and reward_task(n) not in args.tasks]
    if idle:
        raise ConfigError(
            f"reward_funcs {idle} score {reward_task(idle[0])} rows, which task={args.task!r} "
            f"does not train on: remove them (grounding: {list(GROUNDING_SOFT_REWARDS)}; "
            f"classification: {list(DEFAULT_REWARDS)})"
        )
