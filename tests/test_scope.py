"""Trainable scopes: after one optimisation step only the named parameters have changed."""

from __future__ import annotations

import pytest
import torch
from transformers import Qwen2_5_VLForConditionalGeneration
from trl import ModelConfig

from model_training.processor import load_processor
from model_training.scope import SCOPE_NAMES, apply_trainable_scope, count_parameters
from model_training.tiny_model import build_tiny_model

from .test_tiny_model import ct_like_image, image_conversation

EXPECTED = {  # scope -> predicate on a trainable parameter name
    "merger": lambda n: n.startswith("model.visual.merger."),
    "llm_mlp": lambda n: n.startswith("model.language_model.layers.") and ".mlp." in n,
    "all_mlp": lambda n: ".mlp." in n or n.startswith("model.visual.merger."),
    "full": lambda n: True,
    "lora": lambda n: "lora_" in n and "language_model" in n and ".mlp." in n,
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = build_tiny_model(tmp_path_factory.mktemp("scope") / "tiny", seed=1)
    processor = load_processor(folder)
    text = processor.apply_chat_template(image_conversation("<answer>emphysema</answer>"))
    batch = processor(images=[ct_like_image()], text=[text], return_tensors="pt")
    batch["labels"] = batch["input_ids"].clone()
    return folder, batch


@pytest.mark.parametrize("scope", SCOPE_NAMES)
def test_only_the_scope_changes_after_a_step(tiny, scope):
    folder, batch = tiny
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(folder)
    model, names = apply_trainable_scope(model, scope, ModelConfig(lora_r=4))
    assert names and all(EXPECTED[scope](n.removeprefix("base_model.model.")) for n in names)
    trainable, total = count_parameters(model)
    assert 0 < trainable <= total
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    model(**batch).loss.backward()
    optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= set(names)
    if scope != "lora":  # LoRA's B matrices start at zero: A gets no gradient in step one
        assert changed == set(names)


def test_unknown_scope_is_refused(tiny):
    folder, _ = tiny
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(folder)
    with pytest.raises(ValueError, match="unknown trainable scope"):
        apply_trainable_scope(model, "mlp")
