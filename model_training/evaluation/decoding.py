"""The one decoding of every evaluation and demo: greedy, repetition penalty 1.0 unless the user
sets one, ``max_new_tokens`` reply tokens.

A checkpoint's ``generation_config.json`` is not consulted for these: Qwen2.5-VL-Instruct ships
``repetition_penalty: 1.05`` (and sampling values), which transformers' ``generate`` would apply
while vLLM's ``SamplingParams`` and GRPO's rollouts use 1.0, so one checkpoint would score
differently on the two backends. ``Decoding`` gives each backend the same settings
(``generation_config`` for transformers, ``vllm_sampling`` for vLLM) and the record that
results.json keeps (``record``).
"""

from __future__ import annotations

from dataclasses import dataclass

from common.errors import UserError

DEFAULT_REPETITION_PENALTY = 1.0  # none: GRPO's rollouts (TRL) and vLLM's default
STRATEGY = "greedy"


class DecodingError(UserError):
    """Decoding settings that cannot be used; the message names the option."""


@dataclass(frozen=True)
class Decoding:
    """Greedy decoding of at most ``max_new_tokens`` tokens with ``repetition_penalty``
    (> 0; 1.0: none; above 1 discourages tokens already in the prompt or the reply)."""

    max_new_tokens: int | None = None  # None: the caller sets the length (a checkpoint's own)
    repetition_penalty: float = DEFAULT_REPETITION_PENALTY

    def __post_init__(self) -> None:
        if not self.repetition_penalty > 0:  # also refuses NaN
            raise DecodingError(
                f"--repetition-penalty={self.repetition_penalty}: give a number > 0 (1.0: none)"
            )

    def record(self) -> dict:
        """What results.json records: ``{"strategy", "repetition_penalty", "max_new_tokens"}``."""
        return {
            "strategy": STRATEGY,
            "repetition_penalty": self.repetition_penalty,
            "max_new_tokens": self.max_new_tokens,
        }

    def generation_config(self):
        """transformers' ``GenerationConfig`` for ``model.generate(generation_config=...)``. Its
        values win over the checkpoint's (which fill only what it leaves unset: end and pad
        tokens); the sampling values are set to transformers' neutral defaults, so that a
        checkpoint's own (e.g. temperature 0.1) neither applies nor warns."""
        from transformers import GenerationConfig

        return GenerationConfig(
            do_sample=False,
            num_beams=1,
            max_new_tokens=self.max_new_tokens,
            repetition_penalty=self.repetition_penalty,
            no_repeat_ngram_size=0,
            temperature=1.0,
            top_p=1.0,
            top_k=50,
        )

    def vllm_sampling(self) -> dict:
        """The keyword arguments of vLLM's ``SamplingParams`` (temperature 0: greedy)."""
        return {
            "temperature": 0.0,
            "repetition_penalty": self.repetition_penalty,
            "max_tokens": self.max_new_tokens,
        }
