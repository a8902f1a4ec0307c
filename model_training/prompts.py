"""Every text the model is prompted with, in one place (recorded in each run's outputs).

The paper published none of its prompts; these are ours. The grounding prompts (MedReasoner's
task, arXiv 2508.08177) are ours too: MedReasoner's exact prompt text is in its code
(verl/utils/dataset/rl_dataset.py) but not in our notes; ours asks for its answer format.
"""

from __future__ import annotations

from collections.abc import Iterable

from common.names import CLASSIFICATION_TASK, GROUNDING_TASK
from common.names import PROMPT_MODES as MODES

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

# ours: the grounding task's system prompts; the answer is grounding.format_answer's JSON in the
# coordinates of the image as the model reads it (its model-input frame)
GROUNDING_SYSTEM_PROMPTS = {
    "think": (
        "You are a radiologist reading a chest CT slice. The question describes a finding; "
        "locate it on the image. First reason about the image inside <think> </think> tags, "
        "then give your final answer inside <answer> </answer> tags as JSON: "
        '{"bbox": [x0, y0, x1, y1], "points_1": [x, y], "points_2": [x, y]}, the bounding box '
        "of the finding and two points inside it, in the image's pixel coordinates."
    ),
    "no-think": (
        "You are a radiologist reading a chest CT slice. The question describes a finding; "
        "locate it on the image. Give your final answer inside <answer> </answer> tags, with no "
        'explanation, as JSON: {"bbox": [x0, y0, x1, y1], "points_1": [x, y], "points_2": '
        "[x, y]}, the bounding box of the finding and two points inside it, in the image's "
        "pixel coordinates."
    ),
}
# the grounding config's own columns (issue 12's dataset contract): a row with all of them is a
# grounding row, whose user turn is its query
GROUNDING_COLUMNS = ("query", "bbox", "points", "mask")

# SFT targets. "answer": the class only, as the paper's SFT (forcing thinking right after SFT
# lowered its accuracy, 48.54 -> 37.60, so its SFT targets carried no reasoning). "finding":
# the report sentence of the lesion as the <think> text, then the class (ours).
SFT_TARGETS = ("answer", "finding")


def system_prompt(mode: str) -> str:
    if mode not in SYSTEM_PROMPTS:
        raise ValueError(f"unknown prompt mode {mode!r}; choose one of {MODES}")
    return SYSTEM_PROMPTS[mode]


def grounding_system_prompt(mode: str) -> str:
    if mode not in GROUNDING_SYSTEM_PROMPTS:
        raise ValueError(f"unknown prompt mode {mode!r}; choose one of {MODES}")
    return GROUNDING_SYSTEM_PROMPTS[mode]


def task_of(columns: Iterable[str]) -> str:
    """The task of rows with these columns: grounding when they hold every grounding column."""
    names = set(columns)
    return GROUNDING_TASK if all(c in names for c in GROUNDING_COLUMNS) else CLASSIFICATION_TASK


def sft_target(row: dict, target: str, answer: str | None = None) -> str:
    """The assistant reply SFT teaches for one dataset row; ``answer`` replaces the row's class
    inside ``<answer>`` (a grounding row's box-and-points JSON)."""
    answer = row["answer"] if answer is None else answer
    if target == "answer":
        return f"<answer>{answer}</answer>"
    if target == "finding":
        return f"<think>{row['finding'].strip()}</think><answer>{answer}</answer>"
    raise ValueError(f"unknown SFT target {target!r}; choose one of {SFT_TARGETS}")


def prompt_messages(row: dict, mode: str) -> list[dict]:
    """System prompt + the user turn: the image, then the question with its options (a
    grounding row: the image, then its query, under the grounding system prompt)."""
    if task_of(row) == GROUNDING_TASK:
        return _messages(grounding_system_prompt(mode), row["query"])
    return _messages(system_prompt(mode), row["question"])


def grounding_messages(query: str, mode: str) -> list[dict]:
    """The grounding conversation for a query alone (the Space asks without a dataset row)."""
    return _messages(grounding_system_prompt(mode), query)


def _messages(system: str, text: str) -> list[dict]:
    return [
        {"role": "system", "content": [{"type": "text", "text": system}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]},
    ]


def record(task: str = CLASSIFICATION_TASK) -> dict:
    """The prompt texts of ``task``, for a run's outputs."""
    if task == GROUNDING_TASK:
        return {"task": task, "system_prompts": GROUNDING_SYSTEM_PROMPTS}
    return {"system_prompts": SYSTEM_PROMPTS, "sft_targets": list(SFT_TARGETS)}
