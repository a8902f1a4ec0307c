"""Shapes of the base models our recipes name, for work that needs a model's shape but not its
weights (``model_training.run --dry_run``, ``benchmarks/grpo_step.py``) on a machine that has
neither the checkpoint nor the Hub.

A shape is the model's ``config.json`` as transformers reads it; :func:`known_config` builds a
``Qwen2_5_VLConfig`` from it. A local folder or a Hub snapshot in the cache always wins over a
built-in shape (:func:`model_training.memory_plan.model_config` looks there first).
"""

from __future__ import annotations

import copy
from typing import Any

# Qwen/Qwen2.5-VL-7B-Instruct config.json, text part. Its file has no ``layer_types``:
# transformers derives them in Qwen2_5_VLTextConfig.__post_init__ (use_sliding_window false ->
# sliding_window None -> every layer "full_attention"), so they are left out here too.
QWEN2_5_VL_7B_TEXT: dict[str, Any] = {
    "vocab_size": 152064,
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "hidden_act": "silu",
    "max_position_embeddings": 128000,
    "rms_norm_eps": 1e-6,
    "initializer_range": 0.02,
    "attention_dropout": 0.0,
    "use_sliding_window": False,
    "sliding_window": 32768,
    "max_window_layers": 28,
    # the file's rope_scaling {"type": "mrope", "mrope_section": [16, 24, 24]}, rope_theta 1e6
    "rope_parameters": {
        "rope_type": "default",
        "rope_theta": 1000000.0,
        "mrope_section": [16, 24, 24],
    },
    # its special tokens
    "bos_token_id": 151643,
    "eos_token_id": 151645,
}
QWEN2_5_VL_7B_VISION: dict[str, Any] = {  # its vision_config
    "depth": 32,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "hidden_act": "silu",
    "in_channels": 3,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31],
    "tokens_per_second": 2,
    "out_hidden_size": 3584,
    "initializer_range": 0.02,
}
QWEN2_5_VL_7B_TOKENS: dict[str, int] = {  # its image / video / vision marker token ids
    "image_token_id": 151655,
    "video_token_id": 151656,
    "vision_start_token_id": 151652,
    "vision_end_token_id": 151653,
}
QWEN2_5_VL_7B_TIE_WORD_EMBEDDINGS = False
# Qwen/Qwen2.5-VL-7B-Instruct preprocessor_config.json pixel limits
QWEN2_5_VL_MIN_PIXELS = 3136
QWEN2_5_VL_MAX_PIXELS = 12845056

QWEN2_5_VL_7B = "Qwen/Qwen2.5-VL-7B-Instruct"
# Lingshu-7B (MedReasoner's base) is Qwen2.5-VL-7B-Instruct fine-tuned: the same architecture
# and shape. Its own config.json, where present (folder or Hub cache), is read instead.
LINGSHU_7B = "lingshu-medical-mllm/Lingshu-7B"
BUILT_IN_SHAPES = {QWEN2_5_VL_7B: QWEN2_5_VL_7B, LINGSHU_7B: QWEN2_5_VL_7B}


def qwen2_5_vl_7b_config(**tokens: int):
    """``Qwen2_5_VLConfig`` of Qwen2.5-VL-7B-Instruct; ``tokens`` replace its special token ids
    (``bos_token_id``, ``eos_token_id``, ``pad_token_id`` of the text model; ``image_token_id``
    and the other marker ids of the whole model)."""
    from transformers import Qwen2_5_VLConfig

    top = {k: v for k, v in tokens.items() if k in QWEN2_5_VL_7B_TOKENS}
    text = {k: v for k, v in tokens.items() if k not in QWEN2_5_VL_7B_TOKENS}
    return Qwen2_5_VLConfig(
        text_config={**copy.deepcopy(QWEN2_5_VL_7B_TEXT), **text},
        vision_config=copy.deepcopy(QWEN2_5_VL_7B_VISION),
        **{**QWEN2_5_VL_7B_TOKENS, **top},
        tie_word_embeddings=QWEN2_5_VL_7B_TIE_WORD_EMBEDDINGS,
    )


def known_config(name: str):
    """The built-in config of a Hub model id our recipes name, or None."""
    shape = BUILT_IN_SHAPES.get(name)
    return qwen2_5_vl_7b_config() if shape == QWEN2_5_VL_7B else None
