"""The model behind the Space: loaded and prompted exactly as ``model_training``'s evaluator does
(``load_model``, the system prompts of ``model_training.prompts``, replies read by
``read_reply``) and decoded as it decodes by default: ``greedy_replies`` with the evaluator's
``decoding.Decoding`` (greedy, repetition penalty 1.0), whatever the checkpoint's
generation_config asks for, so that "ask the model" gives the evaluator's reply."""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from serving import DEMO_MODEL, MODEL_ENV

from model_training import prompts
from model_training.evaluation.generation import check_model, greedy_replies, load_model
from model_training.evaluation.options import EvaluationError
from model_training.evaluation.tasks.classification import read_reply

MAKE_DEMO_MODEL = (
    f"the demo model {DEMO_MODEL} does not exist: make it with `python -m model_training.run` "
    f"(CPU, ~2 minutes), or name a model with --model PATH_OR_HUB_ID or {MODEL_ENV}="
    "PATH_OR_HUB_ID (on a Space: a Variable in its settings, or its card's models: entry)"
)


@dataclass(frozen=True)
class Reply:
    text: str  # the model's reply as decoded
    think: str | None  # the reasoning inside <think>...</think>
    answer: str | None  # the class it names (None: no valid class)
    parsed_by: str | None  # "tags", "fallback" (no <answer> tags) or None


class ModelRunner:
    """One checkpoint, loaded on first use (thread-safe: Gradio serves requests in threads)."""

    def __init__(self, model: str, max_new_tokens: int, trust_remote_code: bool = False):
        self.model_name = model
        self.max_new_tokens = max_new_tokens
        self.trust_remote_code = trust_remote_code
        self._loaded: tuple | None = None
        self._lock = threading.Lock()
        # one generate at a time: CPU threads are already all in use
        self.generation_lock = threading.Lock()

    def problem(self) -> str | None:
        """Why the model cannot run (one line), or None. Reads no weights."""
        if self.model_name == DEMO_MODEL and not Path(DEMO_MODEL).exists():
            return MAKE_DEMO_MODEL
        try:
            check_model(self.model_name, self.trust_remote_code)
        except EvaluationError as err:
            return str(err)
        return None

    def load(self) -> tuple:
        with self._lock:
            if self._loaded is None:
                self._loaded = load_model(self.model_name, self.trust_remote_code)
            return self._loaded

    def ask(self, png: bytes, question: str, options: list[str], mode: str) -> Reply:
        """The greedy reply to one dataset-style row (image + question) in prompt ``mode``."""
        model, processor = self.load()
        image = Image.open(io.BytesIO(png))
        conversation = prompts.prompt_messages({"question": question}, mode)
        with self.generation_lock:
            (text,) = greedy_replies(model, processor, [conversation], [image], self.max_new_tokens)
        read = read_reply(text, options)
        return Reply(
            text=text, think=read["think"], answer=read["answer"], parsed_by=read["parsed_by"]
        )
