"""Which parameters a training stage updates (the paper: "only the MLP layers ... following
LLaVA-Med", without saying which MLPs). Everything outside the scope is frozen.

Parameter names of ``Qwen2_5_VLForConditionalGeneration`` in memory (transformers 5):
``model.language_model.layers.N.mlp.*``, ``model.visual.blocks.N.mlp.*``,
``model.visual.merger.mlp.*``. A bare ``.mlp.`` pattern would catch all three, so each scope
names its modules explicitly.
"""

from __future__ import annotations

import re

import torch

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
SCOPE_NAMES = (*SCOPES, "lora")


def apply_trainable_scope(
    model: torch.nn.Module, scope: str, lora_rank: int = 16
) -> tuple[torch.nn.Module, list[str]]:
    """Freeze all but ``scope``; return the (possibly peft-wrapped) model and the names of
    its trainable parameters."""
    if scope == "lora":
        from peft import LoraConfig, get_peft_model

        for parameter in model.parameters():
            parameter.requires_grad_(False)
        config = LoraConfig(
            r=lora_rank,
            lora_alpha=2 * lora_rank,
            lora_dropout=0.0,
            target_modules=r".*language_model.*\.mlp\.(gate_proj|up_proj|down_proj)",
        )
        model = get_peft_model(model, config)
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


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total
