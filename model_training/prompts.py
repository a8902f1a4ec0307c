"""Every text the model is prompted with, in one place (recorded in each run's outputs).

The paper published none of its prompts; these are ours.
"""

from __future__ import annotations

from hub_cards.names import PROMPT_MODES as MODES

SYSTEM_PROMPTS = {
    "think": (
        "You are a radiologist reading a chest CT slice. First reason about the image inside "
        "<think> </think> tags, then give your final answer inside <answer> </answer> tags. "
        "The answer must be exactly one of the class names offered in the question."
    ),
    "no-think": (
        "You are a radiologist reading a chest CT slice. Give your final answer inside "
        "<answer> </answer> tags, with no explanation. The answer must be exactly one of the "
        "class names offered in the question."
    ),
}

# SFT targets. "answer": the class only, as the paper's SFT (forcing thinking right after SFT
# lowered its accuracy, 48.54 -> 37.60, so its SFT targets carried no reasoning). "finding":
# the report sentence of the lesion as the <think> text, then the class (ours).
SFT_TARGETS = ("answer", "finding")


def system_prompt(mode: str) -> str:
    if mode not in SYSTEM_PROMPTS:
        raise ValueError(f"unknown prompt mode {mode!r}; choose one of {MODES}")
    return SYSTEM_PROMPTS[mode]


def sft_target(row: dict, target: str) -> str:
    """The assistant reply SFT teaches for one dataset row."""
    if target == "answer":
        return f"<answer>{row['answer']}</answer>"
    if target == "finding":
        return f"<think>{row['finding'].strip()}</think><answer>{row['answer']}</answer>"
    raise ValueError(f"unknown SFT target {target!r}; choose one of {SFT_TARGETS}")


def prompt_messages(row: dict, mode: str) -> list[dict]:
    """System prompt + the user turn (the image, then the question with its options)."""
    return [
        {"role": "system", "content": [{"type": "text", "text": system_prompt(mode)}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": row["question"]}]},
    ]


def record() -> dict:
    """The prompt texts, for a run's outputs."""
    return {"system_prompts": SYSTEM_PROMPTS, "sft_targets": list(SFT_TARGETS)}
