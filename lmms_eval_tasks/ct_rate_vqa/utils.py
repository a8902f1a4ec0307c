"""lmms-eval hooks for CT-RATE-VQA: prompt, visual, target, per-reply scoring, aggregation.

Self-contained (standard library only) so that this folder works when copied alone into
``lmms_eval/tasks/``. The reply reading mirrors ``model_training/answers.py`` and
``model_training/evaluation/evaluate.py`` of medreason-r1 (keep them in step): the class
inside the last ``<answer>...</answer>`` (normalised: case, spaces, surrounding punctuation); a
reply with no answer tags at all is scored by a fallback, the single class whose full name
appears in it.
One addition for lmms-eval: a last ``<answer>`` left open counts as an answer block, because
the task asks to stop at ``</answer>`` and the models that honour stop strings remove it from the
reply (lmms-eval's ``huggingface`` chat class, like our evaluator, ignores them).
The prompts mirror ``model_training/prompts.py``: chat models get the conversation our
evaluator sends (``doc_to_messages``: system prompt, then the image and the question).
"""

from __future__ import annotations

import re
from collections import defaultdict

# mirrors model_training/prompts.py SYSTEM_PROMPTS (byte for byte: keep them in step). Chat
# models get the mode's prompt as the system turn (doc_to_messages), as our evaluator sends it.
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
DEFAULT_MODE = "think"  # the task YAMLs choose theirs with lmms_eval_specific_kwargs prompt_mode

# mirrors model_training/answers.py
ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
# ours (lmms-eval): a last <answer> left open, the reply having been cut at "</answer>"
OPEN_ANSWER_RE = re.compile(r"<answer>((?:(?!<answer>).)*)$", re.DOTALL | re.IGNORECASE)
_SPACES = re.compile(r"\s+")
_WORDS = re.compile(r"[^a-z0-9]+")  # everything but letters and digits separates words
_TRIM = " \t\r\n.,;:!?\"'`*()[]{}"


def normalise(text: str) -> str:
    """Lower case, single spaces, no surrounding punctuation or quotes (answers.normalise)."""
    return _SPACES.sub(" ", text).strip(_TRIM).lower()


def match_class(text: str | None, classes: list[str]) -> str | None:
    """The class whose name ``text`` is, after normalisation, else None (answers.match_class)."""
    if not isinstance(text, str):
        return None
    wanted = normalise(text)
    for name in classes:
        if normalise(name) == wanted:
            return name
    return None


def fallback_class(reply: object, classes: list[str]) -> str | None:
    """The single class whose full name appears in the reply (lower case, on word boundaries);
    None if no class or several are named (answers.fallback_class)."""
    if not isinstance(reply, str):
        return None
    text = f" {_WORDS.sub(' ', reply.lower())} "
    found = [c for c in classes if f" {_WORDS.sub(' ', c.lower()).strip()} " in text]
    return found[0] if len(found) == 1 else None


def answer_text(reply: str) -> str | None:
    """The text of the last ``<answer>`` block, closed or (at the very end) left open."""
    last = OPEN_ANSWER_RE.search(reply)  # from the last "<answer>" to the end
    if last and "</answer>" not in last.group(1).lower():
        return last.group(1)  # left open
    blocks = ANSWER_RE.findall(reply)
    return blocks[-1] if blocks else None


def parse_answer(reply: object, classes: list[str]) -> tuple[str | None, str | None]:
    """``(class or None, how)``, how being "tags", "fallback" or None (evaluate.read_reply)."""
    text = reply if isinstance(reply, str) else ""
    inside = answer_text(text)
    if inside is not None:
        answer = match_class(inside, classes)
        return answer, "tags" if answer is not None else None
    answer = fallback_class(text, classes)
    return answer, "fallback" if answer is not None else None


# -- lmms-eval hooks ---------------------------------------------------------------------------


def prompt_mode(lmms_eval_specific_kwargs: dict | None = None) -> str:
    """The prompt mode the task asks for (``prompt_mode`` in lmms_eval_specific_kwargs)."""
    mode = (lmms_eval_specific_kwargs or {}).get("prompt_mode", DEFAULT_MODE)
    if mode not in SYSTEM_PROMPTS:
        raise ValueError(
            f"ct_rate_vqa task: prompt_mode {mode!r} is not one of {', '.join(SYSTEM_PROMPTS)}; "
            "fix lmms_eval_specific_kwargs in the task YAML"
        )
    return mode


def doc_to_visual(doc: dict) -> list:
    return [doc["image"].convert("RGB")]


def doc_to_messages(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> list[dict]:
    """The conversation chat models get, as our evaluator builds it
    (model_training/prompts.py ``prompt_messages``): the mode's system prompt, then the user
    turn with the image and the question (which names the options)."""
    system = SYSTEM_PROMPTS[prompt_mode(lmms_eval_specific_kwargs)]
    return [
        {"role": "system", "content": [{"type": "text", "text": system}]},
        {
            "role": "user",
            "content": [
                {"type": "image", "url": doc_to_visual(doc)[0]},
                {"type": "text", "text": doc["question"]},
            ],
        },
    ]


def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    """For models without chat support (no system turn): the question, then the mode's
    system prompt as the instruction."""
    return f"{doc['question']}\n{SYSTEM_PROMPTS[prompt_mode(lmms_eval_specific_kwargs)]}"


def doc_to_target(doc: dict) -> str:
    return doc["answer"]


def process_results(doc: dict, results: list[str]) -> dict:
    """Per-reply values of each metric: ``accuracy`` and ``macro_accuracy`` get the same record
    {id, gold, prediction, parsed_by}; ``validity_rate`` is 1.0 when the answer tags name a
    class, ``fallback_rate`` 1.0 when the class came from the fallback (as evaluate.py)."""
    reply = results[0] if results else ""
    prediction, how = parse_answer(reply, list(doc["options"]))
    record = {"id": doc.get("id"), "gold": doc["answer"], "prediction": prediction}
    record["parsed_by"] = how
    return {
        "accuracy": record,
        "macro_accuracy": record,
        "validity_rate": float(how == "tags"),
        "fallback_rate": float(how == "fallback"),
    }


def aggregate_accuracy(items: list[dict]) -> float:
    """Micro accuracy: the share of replies whose class is the gold one."""
    if not items:
        return 0.0
    return sum(item["prediction"] == item["gold"] for item in items) / len(items)


def aggregate_macro_accuracy(items: list[dict]) -> float:
    """Macro accuracy: the mean over gold classes (those with at least one question) of each
    class's accuracy."""
    support: dict[str, int] = defaultdict(int)
    hits: dict[str, int] = defaultdict(int)
    for item in items:
        support[item["gold"]] += 1
        hits[item["gold"]] += item["prediction"] == item["gold"]
    if not support:
        return 0.0
    return sum(hits[c] / support[c] for c in support) / len(support)
