"""MedReason-R1's GRPO rewards, as TRL reward functions chosen by name in a recipe.

R = a * R_format + b * R_validity + c * R_correctness with a = 1, b = 1, c = 2 (paper).
TRL calls ``f(completions, **kwargs)``; kwargs carry the dataset columns, among them
``answer`` (the gold class name) and ``options`` (the class names offered). TRL logs each
function's mean per step under ``rewards/<name>/mean``. No function raises on any input.

Two tasks share the registry: these three score classification rows (``task`` "classification",
or no ``task`` column) and return None for other rows; MedReasoner's grounding rewards
(model_training.grounding_rewards) score grounding rows and return None for the rest. TRL 1.16
reads None as "not scored": the row is left out of that function's mean and of the weighted sum.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from common.names import CLASSIFICATION_TASK

from .answers import completion_text, parse_reply
from .grounding import DEFAULT_ANSWER_PARSING, answer_parsing_problem
from .grounding_rewards import GROUNDING_REWARDS, row_task, with_answer_parsing

DEFAULT_REWARDS = ("format", "validity", "correctness")  # paper: all three
DEFAULT_REWARD_WEIGHTS = (1.0, 1.0, 2.0)  # paper: a = 1, b = 1, c = 2

RewardFunction = Callable[..., list[float | None]]


def _options(kwargs: dict, i: int) -> list[str]:
    options = kwargs.get("options")
    if isinstance(options, Sequence) and i < len(options):
        row = options[i]
        if isinstance(row, Sequence) and not isinstance(row, str):
            return [o for o in row if isinstance(o, str)]
    return []


def _classification(kwargs: dict, i: int) -> bool:
    return row_task(kwargs, i) == CLASSIFICATION_TASK


def format_reward(completions: list, **kwargs) -> list[float | None]:
    """1 if the reply is <think>...</think><answer>...</answer>, else 0 (paper: R_format)."""
    return [
        float(parse_reply(completion_text(c), ()).well_formed)
        if _classification(kwargs, i)
        else None
        for i, c in enumerate(completions)
    ]


def validity_reward(completions: list, **kwargs) -> list[float | None]:
    """1 if the <answer> names one of the offered classes, else 0 (paper: R_validity)."""
    return [
        float(parse_reply(completion_text(c), _options(kwargs, i)).answer is not None)
        if _classification(kwargs, i)
        else None
        for i, c in enumerate(completions)
    ]


def correctness_reward(completions: list, **kwargs) -> list[float | None]:
    """1 if the <answer> names the gold class, else 0 (paper: R_correctness)."""
    gold = kwargs.get("answer")
    out: list[float | None] = []
    for i, completion in enumerate(completions):
        if not _classification(kwargs, i):
            out.append(None)
            continue
        expected = gold[i] if isinstance(gold, Sequence) and i < len(gold) else None
        options = _options(kwargs, i) or ([expected] if isinstance(expected, str) else [])
        answer = parse_reply(completion_text(completion), options).answer
        out.append(float(answer is not None and answer == expected))
    return out


CLASSIFICATION_REWARDS: dict[str, RewardFunction] = {
    "format": format_reward,
    "validity": validity_reward,
    "correctness": correctness_reward,
}
REWARDS: dict[str, RewardFunction] = {
    **CLASSIFICATION_REWARDS,
    **GROUNDING_REWARDS,  # MedReasoner's, for grounding rows
}


def get_rewards(
    names: Sequence[str], answer_parsing: str = DEFAULT_ANSWER_PARSING
) -> list[RewardFunction]:
    """Reward functions by name (a recipe's ``reward_funcs``), the grounding ones reading the
    ``<answer>`` block as ``answer_parsing`` says (grounding.ANSWER_PARSERS); unknown names are
    an error."""
    problem = answer_parsing_problem(answer_parsing)
    if problem is not None:
        raise ValueError(problem)
    unknown = [n for n in names if n not in REWARDS]
    if unknown:
        raise ValueError(f"unknown reward(s) {unknown}; choose from {sorted(REWARDS)}")
    registry = {
        **CLASSIFICATION_REWARDS,
        **{n: with_answer_parsing(f, answer_parsing) for n, f in GROUNDING_REWARDS.items()},
    }
    return [registry[n] for n in names]
