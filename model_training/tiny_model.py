"""A tiny, randomly initialised Qwen2.5-VL (or Qwen2-VL) checkpoint, built offline, for tests and
CPU demos.

``build_tiny_model(out_dir)`` writes a real ``Qwen2_5_VLForConditionalGeneration`` folder laid out
like ``Qwen/Qwen2.5-VL-7B-Instruct`` (config, safetensors weights, generation config, tokenizer
with Qwen's special tokens and chat template, image processor), loadable with ``from_pretrained``
like a Hub checkpoint. Same seed -> byte-identical weights and tokenizer files.
``build_tiny_model(out_dir, architecture="qwen2_vl")`` writes a ``Qwen2VLForConditionalGeneration``
folder laid out like ``Qwen/Qwen2-VL-2B-Instruct`` (the family of the MedVLM-R1 and Med-R1
baselines): same tokenizer, chat template and image processor, Qwen2-VL's vision tower (no window
attention, a LayerNorm/quick-GELU ViT whose width is ``embed_dim``).

    python -m model_training.tiny_model --out DIR [--seed S] [--architecture qwen2_vl]
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import tokenizers
import torch
import transformers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer
from transformers import (
    GenerationConfig,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2Tokenizer,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessorPil,
)
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

from common.errors import UserError, user_errors

from .processor import IMAGE_TEXT_PROCESSORS

__all__ = [
    "ARCHITECTURES",
    "BUILD_INFO_FILE",
    "CHAT_TEMPLATES",
    "CLASS_NAMES",
    "DEFAULT_ARCHITECTURE",
    "QWEN2_5_VL_CHAT_TEMPLATE",
    "build_tiny_model",
    "corpus",
    "tiny_config",
    "tiny_model_config",
    "tiny_qwen2_vl_config",
    "train_tokenizer",
]

# -- text model (Qwen2.5-VL-7B: hidden 3584, 28 layers, 28 heads / 4 KV heads, head_dim 128) --
TEXT_HIDDEN_SIZE = 64  # stack-notes: text hidden 64
TEXT_INTERMEDIATE_SIZE = 128  # MLP width, 2x hidden
TEXT_LAYERS = 2  # stack-notes: 2 layers
TEXT_HEADS = 4  # stack-notes: 4 attention heads (head_dim 16)
TEXT_KV_HEADS = 2  # stack-notes: 2 KV heads (grouped-query attention, as the real model)
MROPE_SECTION = (2, 3, 3)  # Qwen's [16, 24, 24] (t, h, w) scaled to head_dim/2 = 8
ROPE_THETA = 1_000_000.0  # Qwen2.5-VL's rope_theta
MAX_POSITION_EMBEDDINGS = 32768  # rotary only: no weights depend on it
RMS_NORM_EPS = 1e-6  # Qwen2.5-VL's rms_norm_eps
# -- vision tower (Qwen2.5-VL-7B: depth 32, hidden 1280, 16 heads) --
VISION_DEPTH = 2  # stack-notes: vision depth 2
VISION_HIDDEN_SIZE = 32  # small ViT width (2 heads of 16)
VISION_INTERMEDIATE_SIZE = 64  # ViT MLP width, 2x hidden
VISION_HEADS = 2  # ViT attention heads
PATCH_SIZE = 14  # Qwen2.5-VL's ViT patch size (pixels)
SPATIAL_MERGE_SIZE = 2  # 2x2 patches merged into one LLM token, as the real model
TEMPORAL_PATCH_SIZE = 2  # an image is repeated to 2 frames, as the real model
WINDOW_SIZE = 112  # window attention span in pixels, as the real model
FULLATT_BLOCK_INDEXES = (VISION_DEPTH - 1,)  # the last block attends globally, as the real model
TOKENS_PER_SECOND = 2  # video temporal position scale, as Qwen2.5-VL-7B
# -- Qwen2-VL's vision tower (Qwen2-VL-2B: depth 32, embed_dim 1280, 16 heads, mlp_ratio 4,
# quick_gelu; its "hidden_size" is the merger's output, the LLM width) --
QWEN2_VL_VISION_EMBED_DIM = 32  # ViT width, as VISION_HIDDEN_SIZE (2 heads of 16)
QWEN2_VL_VISION_MLP_RATIO = 2  # ViT MLP width = 2 x embed_dim, as VISION_INTERMEDIATE_SIZE
QWEN2_VL_VISION_ACT = "quick_gelu"  # Qwen2-VL's ViT activation
INITIALIZER_RANGE = 0.02  # transformers' default init std
# A random lm_head (std 0.02) gives near-uniform logits and MLP-only SFT plateaus at loss ~5;
# x25 (std 0.5) was seen to let it reach ~0.04 (stack-notes, "lm_head scaling").
LM_HEAD_SCALE = 25.0
DTYPE = torch.float32  # CPU training runs in float32 (bf16 off)
# -- tokenizer --
BPE_VOCAB_SIZE = 1024  # target BPE vocabulary before special tokens (the corpus may stop short)
BPE_MIN_FREQUENCY = 2  # a pair merged only if seen at least twice
MODEL_MAX_LENGTH = 131072  # Qwen2.5-VL tokenizer_config model_max_length
# -- image processor (Qwen2.5-VL: min 56*56, max 28*28*16384 pixels) --
MIN_PIXELS = 56 * 56  # Qwen2.5-VL's min_pixels: at least 4 image tokens
MAX_PIXELS = 28 * 28 * 256  # at most 256 image tokens (448x448); 224x224 gives 64
BUILD_INFO_FILE = "tiny_model_build.json"  # the build parameters, beside the weights
BUILDER = "model_training.tiny_model.build_tiny_model"  # in BUILD_INFO_FILE: a build of ours

# Qwen2.5-VL's added tokens in vocabulary order (ids 151643.. in the real tokenizer) and whether
# each is special (never split, dropped by skip_special_tokens).
QWEN_ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
)
EOS_TOKEN = "<|im_end|>"  # tokenizer eos (end of a chat turn)
PAD_TOKEN = "<|endoftext|>"  # tokenizer pad, and the model's bos_token_id
# the tokenizer_config "additional_special_tokens" of Qwen2.5-VL
EXTRA_SPECIAL_TOKENS = [token for token, _ in QWEN_ADDED_TOKENS[1:14]]

# Qwen/Qwen2.5-VL-7B-Instruct chat_template.json, byte for byte. It is identical to TRL's
# trl/chat_templates/qwen2_5_vl.jinja, which is how TRL recognises it (and swaps in its
# {% generation %} training template for assistant_only_loss). Qwen/Qwen2-VL-2B-Instruct and
# -7B-Instruct ship the same template (same "You are a helpful assistant." default system turn,
# added only when the first message is not a system message); the base Qwen2-VL-2B's template
# drops roles, and so any system prompt.
QWEN2_5_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# the model classes and chat templates by architecture (config model_type)
ARCHITECTURES = {
    "qwen2_5_vl": Qwen2_5_VLForConditionalGeneration,
    "qwen2_vl": Qwen2VLForConditionalGeneration,
}
DEFAULT_ARCHITECTURE = "qwen2_5_vl"  # the paper's model family
CHAT_TEMPLATES = {"qwen2_5_vl": QWEN2_5_VL_CHAT_TEMPLATE, "qwen2_vl": QWEN2_5_VL_CHAT_TEMPLATE}

# the seven MedReason-R1 classes
CLASS_NAMES = (
    "airway abnormalities",
    "emphysema",
    "fibrosis-related changes",
    "pulmonary nodules/masses",
    "consolidation/atelectasis",
    "ground-glass opacity",
    "pleural effusion/thickening",
)

# The tokenizer's training text: plain English, chest-CT report language, the task's prompts and
# the <think>/<answer> reply format.
_CORPUS_SENTENCES = (
    "You are a helpful assistant.",
    "You are a radiologist reading a chest CT slice.",
    "First reason about the image inside <think> </think> tags, then give your final answer "
    "inside <answer> </answer> tags.",
    "Give your final answer inside <answer> </answer> tags, with no explanation.",
    "The answer must be exactly one of the class names offered in the question.",
    "This is an axial chest CT slice. Which type of abnormality does it show?",
    "The lesion is outlined in red and shown magnified in the inset with a green border in the "
    "top left corner. Which type of abnormality is it?",
    "The inset is in the top right, bottom left or bottom right corner of the image.",
    "<think>The lesion is a hazy area of increased attenuation with the vessels still visible."
    "</think><answer>ground-glass opacity</answer>",
    "<think>There is a round solid lesion with smooth margins in the right upper lobe.</think>"
    "<answer>pulmonary nodules/masses</answer>",
    "<think>Low attenuation areas without walls destroy the lung in both upper lobes.</think>"
    "<answer>emphysema</answer>",
    "<think>Reticulation, traction bronchiectasis and honeycombing at the lung bases.</think>"
    "<answer>fibrosis-related changes</answer>",
    "<think>Dense opacity with air bronchograms and volume loss of the left lower lobe.</think>"
    "<answer>consolidation/atelectasis</answer>",
    "<think>Fluid collects in the dependent pleural space and the pleura is thickened.</think>"
    "<answer>pleural effusion/thickening</answer>",
    "<think>The bronchial walls are thick and the airways are dilated.</think>"
    "<answer>airway abnormalities</answer>",
    "Findings: the trachea and main bronchi are patent. The heart size is normal. There is no "
    "pericardial effusion. Mediastinal lymph nodes are not enlarged.",
    "Impression: bilateral ground-glass opacities, compatible with infection or inflammation.",
    "A subpleural nodule of 6 mm is seen in the right middle lobe; follow-up CT is advised.",
    "Mild centrilobular and paraseptal emphysema in both upper lobes.",
    "Bibasilar atelectasis and a small left pleural effusion are present.",
    "Peribronchial thickening and bronchiectasis in the lower lobes.",
    "Interlobular septal thickening and reticular opacities suggest pulmonary fibrosis.",
    "No pneumothorax. The visualised bones and soft tissues are unremarkable.",
    "The image shows the lungs, the mediastinum, the heart and the chest wall.",
    "The quick brown fox jumps over the lazy dog.",
    "What is shown in this picture? Describe the image in one sentence.",
    "Yes. No. Left. Right. Upper. Lower. Anterior. Posterior. Normal. Abnormal.",
    "Thank you. Please answer the question as briefly as possible.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 25 50 100 512 mm cm HU.",
)


def _tiny_text_config(vocab_size: int, token_ids: dict[str, int]) -> dict:
    """The tiny language model's config (the same for both architectures)."""
    return {
        "vocab_size": vocab_size,
        "hidden_size": TEXT_HIDDEN_SIZE,
        "intermediate_size": TEXT_INTERMEDIATE_SIZE,
        "num_hidden_layers": TEXT_LAYERS,
        "num_attention_heads": TEXT_HEADS,
        "num_key_value_heads": TEXT_KV_HEADS,
        "hidden_act": "silu",
        "max_position_embeddings": MAX_POSITION_EMBEDDINGS,
        "rms_norm_eps": RMS_NORM_EPS,
        "initializer_range": INITIALIZER_RANGE,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": ROPE_THETA,
            "mrope_section": list(MROPE_SECTION),
        },
        "use_sliding_window": False,
        "bos_token_id": token_ids["<|endoftext|>"],
        "eos_token_id": token_ids[EOS_TOKEN],
        "pad_token_id": token_ids[PAD_TOKEN],
    }


def _vision_token_ids(token_ids: dict[str, int]) -> dict[str, int]:
    return {
        "image_token_id": token_ids["<|image_pad|>"],
        "video_token_id": token_ids["<|video_pad|>"],
        "vision_start_token_id": token_ids["<|vision_start|>"],
        "vision_end_token_id": token_ids["<|vision_end|>"],
    }


def tiny_config(vocab_size: int, token_ids: dict[str, int]) -> Qwen2_5_VLConfig:
    """The tiny ``Qwen2_5_VLConfig`` whose special token ids are the tokenizer's."""
    vision_config = {
        "depth": VISION_DEPTH,
        "hidden_size": VISION_HIDDEN_SIZE,
        "intermediate_size": VISION_INTERMEDIATE_SIZE,
        "num_heads": VISION_HEADS,
        "hidden_act": "silu",
        "in_channels": 3,
        "patch_size": PATCH_SIZE,
        "spatial_merge_size": SPATIAL_MERGE_SIZE,
        "temporal_patch_size": TEMPORAL_PATCH_SIZE,
        "window_size": WINDOW_SIZE,
        "fullatt_block_indexes": list(FULLATT_BLOCK_INDEXES),
        "tokens_per_second": TOKENS_PER_SECOND,
        "out_hidden_size": TEXT_HIDDEN_SIZE,
        "initializer_range": INITIALIZER_RANGE,
    }
    return Qwen2_5_VLConfig(
        text_config=_tiny_text_config(vocab_size, token_ids),
        vision_config=vision_config,
        **_vision_token_ids(token_ids),
        tie_word_embeddings=False,
        dtype=DTYPE,
    )


def tiny_qwen2_vl_config(vocab_size: int, token_ids: dict[str, int]) -> Qwen2VLConfig:
    """The tiny ``Qwen2VLConfig`` (same language model as :func:`tiny_config`; Qwen2-VL's vision
    tower: no window attention) whose special token ids are the tokenizer's."""
    vision_config = {
        "depth": VISION_DEPTH,
        "embed_dim": QWEN2_VL_VISION_EMBED_DIM,
        "hidden_size": TEXT_HIDDEN_SIZE,  # Qwen2-VL: the merger's output width
        "mlp_ratio": QWEN2_VL_VISION_MLP_RATIO,
        "num_heads": VISION_HEADS,
        "hidden_act": QWEN2_VL_VISION_ACT,
        "in_channels": 3,
        "patch_size": PATCH_SIZE,
        "spatial_merge_size": SPATIAL_MERGE_SIZE,
        "temporal_patch_size": TEMPORAL_PATCH_SIZE,
        "initializer_range": INITIALIZER_RANGE,
    }
    return Qwen2VLConfig(
        text_config=_tiny_text_config(vocab_size, token_ids),
        vision_config=vision_config,
        **_vision_token_ids(token_ids),
        tie_word_embeddings=False,
        dtype=DTYPE,
    )


_CONFIGS = {"qwen2_5_vl": tiny_config, "qwen2_vl": tiny_qwen2_vl_config}


def corpus() -> list[str]:
    """The tokenizer's training text (fixed: the tokenizer is a pure function of it)."""
    lines = list(_CORPUS_SENTENCES)
    lines += [f"Choose one of: {'; '.join(CLASS_NAMES[i:] + CLASS_NAMES[:i])}." for i in range(7)]
    lines += [f"<think>...</think><answer>{name}</answer>" for name in CLASS_NAMES]
    return lines


def train_tokenizer(vocab_size: int = BPE_VOCAB_SIZE) -> Qwen2Tokenizer:
    """A byte-level BPE tokenizer (Qwen2's normaliser, pre-tokeniser and decoder) trained on
    :func:`corpus`, with Qwen2.5-VL's added tokens after the BPE vocabulary and its chat
    template."""
    bpe = Tokenizer(BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=BPE_MIN_FREQUENCY,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    bpe.train_from_iterator(corpus(), trainer=trainer)
    model = json.loads(bpe.to_str())["model"]
    vocab: dict[str, int] = dict(model["vocab"])
    merges = [tuple(pair) for pair in model["merges"]]
    for token, _special in QWEN_ADDED_TOKENS:
        vocab[token] = len(vocab)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        extra_special_tokens=EXTRA_SPECIAL_TOKENS,
        errors="replace",
        model_max_length=MODEL_MAX_LENGTH,
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
    )
    tokenizer.add_tokens(
        [
            AddedToken(token, special=special, normalized=False)
            for token, special in QWEN_ADDED_TOKENS
        ]
    )
    tokenizer.chat_template = QWEN2_5_VL_CHAT_TEMPLATE
    return tokenizer


def tiny_model_config(architecture: str = DEFAULT_ARCHITECTURE):
    """(config, tokenizer) of the tiny model :func:`build_tiny_model` writes: the config's
    special token ids are the tokenizer's. Nothing is written."""
    tokenizer = train_tokenizer()
    token_ids = {token: tokenizer.convert_tokens_to_ids(token) for token, _ in QWEN_ADDED_TOKENS}
    return _CONFIGS[architecture](len(tokenizer), token_ids), tokenizer


def build_tiny_model(
    out_dir: str | Path,
    seed: int = 0,
    min_pixels: int = MIN_PIXELS,
    max_pixels: int = MAX_PIXELS,
    architecture: str = DEFAULT_ARCHITECTURE,
) -> Path:
    """Write the tiny checkpoint folder to ``out_dir`` and return its path: a Qwen2.5-VL
    (``architecture="qwen2_5_vl"``) or a Qwen2-VL (``"qwen2_vl"``).

    Offline and deterministic: the tokenizer depends only on the built-in corpus, the weights
    only on ``seed``. ``min_pixels`` / ``max_pixels`` bound the image processor's resizing.

    ``out_dir`` must be new, empty, or hold a tiny model this function built there and nothing
    else (:func:`own_files`: its ``tiny_model_build.json`` lists each file with its SHA-256);
    that one is replaced. Anything else is refused (a UserError) and nothing is written. The
    folder is written in a temporary folder first, its build record last.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture {architecture!r}: use one of {', '.join(ARCHITECTURES)}")
    out = Path(out_dir)
    replaced = own_files(out)
    with tempfile.TemporaryDirectory(prefix="tiny-model-") as scratch:
        built = _write_tiny_model(Path(scratch), seed, min_pixels, max_pixels, architecture)
        out.mkdir(parents=True, exist_ok=True)
        for name in replaced:
            (out / name).unlink()
        for name in built:  # the build record last: a folder without it is not ours
            shutil.move(Path(scratch) / name, out / name)
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def own_files(out: Path) -> list[str]:
    """The files of ``out`` that a tiny model build wrote (to be replaced): none for a new or
    empty folder. A file in its place, a folder without our build record, or an entry the
    record does not list with its SHA-256 (added or changed since) is refused."""
    if not out.exists() and not out.is_symlink():
        return []
    if not out.is_dir():
        raise UserError(f"--out {out} is a file: give a new or empty folder")
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return []
    record = out / BUILD_INFO_FILE
    try:
        info = json.loads(record.read_text())
        files = info["files"] if info.get("builder") == BUILDER else None
    except (OSError, ValueError, AttributeError, KeyError):
        files = None
    if not isinstance(files, dict):
        raise UserError(
            f"--out {out} is not empty and holds no tiny model built by this command (no "
            f"readable {BUILD_INFO_FILE} listing its files; first entry: {entries[0]}): give a "
            "new or empty folder"
        )
    for name in entries:
        path = out / name
        if name != BUILD_INFO_FILE and (
            name not in files
            or not path.is_file()
            or path.is_symlink()
            or _sha256(path) != files[name]
        ):
            raise UserError(
                f"{path} is not a file of the tiny model built in {out} (added or changed "
                "since): move it away, or give another --out; nothing was written"
            )
    return entries


def _write_tiny_model(
    out: Path, seed: int, min_pixels: int, max_pixels: int, architecture: str
) -> list[str]:
    """Write the tiny model into the empty folder ``out``; return its files, build record
    last."""
    config, tokenizer = tiny_model_config(architecture)
    token_ids = {token: tokenizer.convert_tokens_to_ids(token) for token, _ in QWEN_ADDED_TOKENS}

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ARCHITECTURES[architecture](config).to(DTYPE)
    with torch.no_grad():
        model.lm_head.weight.mul_(LM_HEAD_SCALE)
    model.generation_config = GenerationConfig(
        bos_token_id=token_ids["<|endoftext|>"],
        eos_token_id=[token_ids[EOS_TOKEN], token_ids["<|endoftext|>"]],
        pad_token_id=token_ids[PAD_TOKEN],
        do_sample=False,
    )
    model.save_pretrained(out)  # transformers 5 writes safetensors only, with the Hub key names

    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        patch_size=PATCH_SIZE,
        temporal_patch_size=TEMPORAL_PATCH_SIZE,
        merge_size=SPATIAL_MERGE_SIZE,
    )
    processor = IMAGE_TEXT_PROCESSORS[architecture][1](
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATES[architecture],
    )
    processor.save_pretrained(out)

    files = sorted(p.name for p in out.iterdir())
    info = {
        "builder": BUILDER,
        "architecture": architecture,
        "seed": seed,
        "parameters": sum(p.numel() for p in model.parameters()),
        "lm_head_scale": LM_HEAD_SCALE,
        "dtype": str(DTYPE).removeprefix("torch."),
        "bpe_vocab_size_target": BPE_VOCAB_SIZE,
        "vocab_size": len(tokenizer),
        "corpus_sha256": hashlib.sha256("\n".join(corpus()).encode()).hexdigest(),
        "min_pixels": min_pixels,
        "max_pixels": max_pixels,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
        },
        "files": {name: _sha256(out / name) for name in files},  # what the build wrote
    }
    (out / BUILD_INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return [*files, BUILD_INFO_FILE]


@dataclass
class TinyModelArguments:
    """The options of ``python -m model_training.tiny_model``."""

    out: str = field(metadata={"help": "Output folder of the checkpoint."})
    seed: int = field(default=0, metadata={"help": "Weight initialisation seed."})
    min_pixels: int = field(default=MIN_PIXELS, metadata={"help": "Image processor min_pixels."})
    max_pixels: int = field(default=MAX_PIXELS, metadata={"help": "Image processor max_pixels."})
    architecture: str = field(
        default=DEFAULT_ARCHITECTURE,
        metadata={
            "help": "Model family (config model_type): qwen2_5_vl (the paper's) or qwen2_vl "
            "(the MedVLM-R1 / Med-R1 baselines').",
            "choices": list(ARCHITECTURES),
        },
    )

    def __post_init__(self) -> None:
        if not 0 < self.min_pixels <= self.max_pixels:
            raise UserError(
                f"--min-pixels {self.min_pixels} and --max-pixels {self.max_pixels}: need "
                "0 < min <= max"
            )


@user_errors
def main(argv: list[str] | None = None) -> int:
    from common.cli_options import parse_options

    (args,) = parse_options(
        TinyModelArguments,
        argv,
        "python -m model_training.tiny_model",
        "Write a tiny random Qwen2.5-VL or Qwen2-VL checkpoint folder (offline, deterministic).",
    )
    out = build_tiny_model(
        args.out,
        seed=args.seed,
        min_pixels=args.min_pixels,
        max_pixels=args.max_pixels,
        architecture=args.architecture,
    )
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
