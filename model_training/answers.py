"""Reading a model's reply: the ``<think>`` / ``<answer>`` tags and the class it names.

Shared by the GRPO rewards and the evaluator, so that training and scoring read a reply the
same way. Every function accepts any string (or None) and never raises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

THINK_RE = re.compile(r"<think>(.*?)</think>", re.DOTALL | re.IGNORECASE)
ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
# the paper's format: a think block, then an answer block, and nothing but whitespace around
FORMAT_RE = re.compile(
    r"^\s*<think>.*?</think>\s*<answer>.*?</answer>\s*$", re.DOTALL | re.IGNORECASE
)
_SPACES = re.compile(r"\s+")
_WORDS = re.compile(r"[^a-z0-9]+")  # everything but letters and digits separates words
_TRIM = " \t\r\n.,;:!?\"'`*()[]{}"


@dataclass(frozen=True)
class ParsedReply:
    think: str | None  # text inside the first <think>...</think>, if any
    answer_text: str | None  # text inside the last <answer>...</answer>, if any
    answer: str | None  # the class named by the answer (canonical spelling), if valid
    well_formed: bool  # <think>...</think><answer>...</answer> and nothing else


def normalise(text: str) -> str:
    """Lower case, single spaces, no surrounding punctuation or quotes."""
    return _SPACES.sub(" ", text).strip(_TRIM).lower()


def match_class(text: str | None, classes: list[str] | tuple[str, ...]) -> str | None:
    """The class whose name ``text`` is (after normalisation), else None."""
    if not isinstance(text, str):
        return None
    wanted = normalise(text)
    for name in classes:
        if normalise(name) == wanted:
            return name
    return None


def fallback_class(reply: object, classes: list[str] | tuple[str, ...]) -> str | None:
    """For replies without ``<answer>`` tags (models not trained on our format): the single
    class whose full name appears in the text (normalised, on word boundaries); None if no
    class or several classes are named. The evaluator counts these answers separately."""
    if not isinstance(reply, str):
        return None
    text = f" {_WORDS.sub(' ', reply.lower())} "
    found = [c for c in classes if f" {_WORDS.sub(' ', c.lower()).strip()} " in text]
    return found[0] if len(found) == 1 else None


def parse_reply(reply: object, classes: list[str] | tuple[str, ...]) -> ParsedReply:
    """Parse one reply; anything that is not a string reads as an empty reply."""
    text = reply if isinstance(reply, str) else ""
    think = THINK_RE.search(text)
    answers = ANSWER_RE.findall(text)
    answer_text = answers[-1] if answers else None
    return ParsedReply(
        think=think.group(1).strip() if think else None,
        answer_text=answer_text.strip() if answer_text is not None else None,
        answer=match_class(answer_text, classes),
        well_formed=bool(FORMAT_RE.match(text)) and len(answers) == 1,
    )


def completion_text(completion: object) -> str:
    """TRL hands rewards either a string or a conversation [{"role", "content"}, ...]."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:
        last = completion[-1]
        if isinstance(last, dict):
            content = last.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):  # content blocks
                return "".join(
                    b.get("text", "")
                    for b in content
                    if isinstance(b, dict) and isinstance(b.get("text"), str)
                )
    return ""
