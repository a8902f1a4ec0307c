"""Shared by the decoding tests: a tiny checkpoint whose generation_config asks for another
decoding (as Qwen2.5-VL-Instruct's does), and greedy decoding written out by hand."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import GenerationConfig

from model_training import prompts
from model_training.tiny_model import build_tiny_model

# Qwen2.5-VL-7B-Instruct's generation_config.json asks for sampling with these values and a
# repetition penalty of 1.05; the tiny model gets the same, so that a generator which lets the
# checkpoint decide decodes differently from a plain argmax (1.05 changes the random tiny model's
# first reply after a few tokens: unpenalised, it repeats itself).
CHECKPOINT_DECODING = {
    "do_sample": True,
    "repetition_penalty": 1.05,
    "temperature": 0.1,
    "top_p": 0.001,
    "top_k": 1,
}


def build_penalised_model(folder: Path) -> Path:
    """The tiny model, with ``CHECKPOINT_DECODING`` in its generation_config.json."""
    folder = build_tiny_model(folder)
    config = GenerationConfig.from_pretrained(folder)
    config.update(**CHECKPOINT_DECODING)
    config.save_pretrained(folder)
    return folder


@torch.no_grad()
def argmax_reply(model, processor, row: dict, mode: str, max_new_tokens: int) -> str:
    """Greedy decoding written out: forward the whole sequence, append the argmax of the last
    logits, stop at an end token, decode."""
    text = processor.apply_chat_template(
        prompts.prompt_messages(row, mode), add_generation_prompt=True
    )
    inputs = dict(processor(images=[row["image"].convert("RGB")], text=[text], return_tensors="pt"))
    ends = set(model.generation_config.eos_token_id)
    tokens: list[int] = []
    for _ in range(max_new_tokens):
        logits = model(**inputs).logits
        token = int(logits[0, -1].argmax())
        if token in ends:
            break
        tokens.append(token)
        grow = {"input_ids": token, "attention_mask": 1, "mm_token_type_ids": 0}
        for key, value in grow.items():
            if key in inputs:
                inputs[key] = torch.cat([inputs[key], torch.tensor([[value]])], dim=1)
    return processor.decode(tokens, skip_special_tokens=True)
