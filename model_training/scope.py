"""Which parameters a training stage updates (the paper: "only the MLP layers ... following
LLaVA-Med", without saying which MLPs). Everything outside the scope is frozen.

Parameter names of ``Qwen2_5_VLForConditionalGeneration`` in memory (transformers 5):
``model.language_model.layers.N.mlp.*``, ``model.visual.blocks.N.mlp.*``,
``model.visual.merger.mlp.*``. A bare ``.mlp.`` pattern would catch all three, so each scope
names its modules explicitly.
"""

from __future__ import annotations

import dataclasses
import re

import torch
from trl import ModelConfig, get_peft_config

SCOPES = {
    # the vision-to-language projector (LLaVA-Med's stage 1 trains only its projector)
    "merger": (r"^model\.visual\.merger\.",),
    # the language model's MLP blocks
    "llm_mlp": (r"^model\.language_model\.layers\.\d+\.mlp\.",),
    # every MLP: language model, vision blocks and the projector
    "all_mlp": (
        r"^model\.language_model\.layers\.\d+\.mlp\.",
        r"^model\.visual\.blocks\.\d+\.mlp\.",
        r"^model\.visual\.merger\.",
    ),
    "full": (r".",),
}
LORA_TARGETS = ("gate_proj", "up_proj", "down_proj")  # the language model's MLP projections
LORA_TARGET_MODULES = rf".*language_model.*\.mlp\.({'|'.join(LORA_TARGETS)})"
SCOPE_NAMES = (*SCOPES, "lora")


def lora_config(model_args: ModelConfig | None = None):
    """The ``peft.LoraConfig`` of ``model_args``' lora_* fields (TRL's ``get_peft_config``),
    targeting the language model's MLP projections unless ``lora_target_modules`` or
    ``lora_target_parameters`` name others. None = ModelConfig's defaults. A single module
    name (``--lora_target_modules q_proj``, which ModelConfig turns into the string "q_proj",
    a regex peft matches against the full module path) is kept a name."""
    model_args = model_args or ModelConfig()
    if model_args.lora_target_modules is None and model_args.lora_target_parameters is None:
        model_args = dataclasses.replace(model_args, lora_target_modules=LORA_TARGET_MODULES)
    config = get_peft_config(dataclasses.replace(model_args, use_peft=True))
    if isinstance(config.target_modules, str) and re.fullmatch(r"\w+", config.target_modules):
        config.target_modules = {config.target_modules}
    return config


def apply_trainable_scope(
    model: torch.nn.Module,
    scope: str,
    model_args: ModelConfig | None = None,
    lora_rank: int | None = None,
) -> tuple[torch.nn.Module, list[str]]:
    """Freeze all but ``scope``; return the (possibly peft-wrapped) model and the names of
    its trainable parameters. ``model_args`` configures the ``lora`` scope (:func:`lora_config`);
    ``lora_rank`` (benchmarks/grpo_step.py) = ModelConfig's defaults with that ``lora_r``. A
    quantised model is prepared for k-bit training first."""
    if lora_rank is not None:
        model_args = dataclasses.replace(model_args or ModelConfig(), lora_r=lora_rank)
    if scope == "lora":
        from peft import get_peft_model, prepare_model_for_kbit_training

        for parameter in model.parameters():
            parameter.requires_grad_(False)
        if getattr(model, "is_quantized", False):
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        model = get_peft_model(model, lora_config(model_args))
    elif scope in SCOPES:
        patterns = [re.compile(p) for p in SCOPES[scope]]
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(any(p.search(name) for p in patterns))
    else:
        raise ValueError(f"unknown trainable scope {scope!r}; choose one of {SCOPE_NAMES}")
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    if not names:
        raise ValueError(
            f"trainable scope {scope!r} matches no parameter of "
            f"{type(model).__name__}; is it a Qwen2.5-VL model?"
        )
    return model, names


def parameter_size(parameter: torch.nn.Parameter) -> int:
    """The number of elements of ``parameter``, also where DeepSpeed ZeRO-3 has partitioned it:
    there ``parameter.data`` is an empty tensor and ``ds_numel`` (set by DeepSpeed's
    ``zero.Init``, deepspeed/runtime/zero/partition_parameters.py) holds the full count."""
    if hasattr(parameter, "ds_numel"):
        return int(parameter.ds_numel)
    return parameter.numel()


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts (unpartitioned sizes under ZeRO-3)."""
    total = sum(parameter_size(p) for p in model.parameters())
    trainable = sum(parameter_size(p) for p in model.parameters() if p.requires_grad)
    return trainable, total
