"""The Qwen2.5-VL and Qwen2-VL processors (image processor + tokenizer + chat template), with
or without torchvision.

In transformers 5 the stock ``Qwen2_5_VLProcessor`` and ``Qwen2VLProcessor`` insist on a video
processor, and every video processor needs torchvision, which cannot be installed next to torch
2.13 here. So:

- with torchvision, :func:`load_processor` is ``AutoProcessor.from_pretrained`` (the stock class);
- without it, :class:`Qwen2_5_VLImageTextProcessor` / :class:`Qwen2VLImageTextProcessor` (the
  stock class minus the video processor) load the same folder or Hub repo. They are registered
  with ``AutoProcessor`` for Qwen2.5-VL / Qwen2-VL configs, so ``AutoProcessor.from_pretrained``
  picks them for a folder that names no other processor class (the folders they save name none).

Either way the folder is laid out like ``Qwen/Qwen2.5-VL-7B-Instruct`` (or
``Qwen/Qwen2-VL-2B-Instruct``): ``preprocessor_config.json`` (and/or a v5
``processor_config.json``), tokenizer files, and the chat template. The two families share the
image processor (``Qwen2VLImageProcessor``: 14 px patches, 2x2 merge) and, for the Instruct
models, the chat template; they differ in the model (Qwen2.5-VL's vision tower has window
attention).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from transformers import (
    AutoProcessor,
    BatchFeature,
    Qwen2_5_VLConfig,
    Qwen2_5_VLProcessor,
    Qwen2VLConfig,
    Qwen2VLProcessor,
)
from transformers.image_utils import SizeDict
from transformers.processing_utils import ProcessorMixin
from transformers.utils import IMAGE_PROCESSOR_NAME, PROCESSOR_NAME, cached_file
from transformers.utils.import_utils import is_torchvision_available

__all__ = [
    "PINNED_MAX_PIXELS",
    "PINNED_MIN_PIXELS",
    "IMAGE_TEXT_PROCESSORS",
    "Qwen2VLImageTextProcessor",
    "Qwen2_5_VLImageTextProcessor",
    "has_video_support",
    "load_processor",
]

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")  # either one makes a tokenizer
# Resize bounds that pin a 512x512 CT slice to 504x504 = 18x18 merged patches = 324 image
# tokens: 512x512 rounds to 504x504 (within both bounds); a larger square image scales down to
# 512x512 worth of pixels and floors to 504x504; a smaller one scales up to 504x504.
PINNED_MIN_PIXELS = 504 * 504
PINNED_MAX_PIXELS = 512 * 512


def _has_media(value: Any) -> bool:
    """False for None and for an empty list or tuple (no media given)."""
    return value is not None and not (isinstance(value, (list, tuple)) and len(value) == 0)


def _stock_class(cls: type) -> type:
    """The transformers processor class that ``cls`` (one of ours) derives from."""
    return next(c for c in cls.__mro__ if c.__module__.startswith("transformers."))


class _ImageTextOnly:
    """The stock Qwen-VL processor minus its video processor (so without torchvision): mixed in
    before ``Qwen2_5_VLProcessor`` or ``Qwen2VLProcessor``.

    Same image tokens, chat template and outputs as the stock class for image + text inputs;
    ``videos`` are refused. It saves the Hub layout of the Qwen repos and names no processor
    class, so the stock class loads its folders where torchvision is installed.
    """

    def __init__(
        self,
        image_processor: Any = None,
        tokenizer: Any = None,
        chat_template: str | dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        # The stock __init__s minus the video processor; the video token ids are kept so that
        # token-type ids still tell video placeholders apart.
        self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
        self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
        self.image_token_id = getattr(
            tokenizer, "image_token_id", None
        ) or tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = getattr(
            tokenizer, "video_token_id", None
        ) or tokenizer.convert_tokens_to_ids(self.video_token)
        ProcessorMixin.__init__(
            self, image_processor, tokenizer, chat_template=chat_template, **kwargs
        )

    def __call__(
        self,
        images: Any = None,
        text: str | list[str] | None = None,
        videos: Any = None,
        audio: Any = None,
        **kwargs: Any,
    ) -> BatchFeature:
        # Empty media lists mean "none" (lmms-eval's chat models pass videos=[] and audios=[])
        videos = videos if _has_media(videos) else None
        audio = audio if _has_media(audio) else None
        if not _has_media(kwargs.get("audios")):
            kwargs.pop("audios", None)
        if videos is not None:
            raise ValueError(
                f"{type(self).__name__} processes images and text only (it has no video "
                "processor because torchvision is not installed); install torchvision and use "
                f"{_stock_class(type(self)).__name__} for videos."
            )
        return super().__call__(images=images, text=text, audio=audio, **kwargs)

    def save_pretrained(
        self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs: Any
    ) -> list[str]:
        """Write ``preprocessor_config.json``, the tokenizer files and ``chat_template.jinja``.

        That is the layout of the Qwen-VL Hub repos: the stock class reads both its image and
        its video processor from ``preprocessor_config.json``. No file names a processor class,
        so ``AutoProcessor`` chooses by the model type of ``config.json``: the stock class where
        torchvision is installed, this one where this module registered it.
        """
        os.makedirs(save_directory, exist_ok=True)
        files = [str(path) for path in self.image_processor.save_pretrained(save_directory)]
        tokenizer = self.tokenizer
        saved_template = tokenizer.chat_template
        saved_processor_class = getattr(tokenizer, "_processor_class", None)
        tokenizer.chat_template = self.chat_template  # the processor's template is the one used
        tokenizer._set_processor_class(None)  # (ProcessorMixin sets its own class name here)
        try:
            files += [str(path) for path in tokenizer.save_pretrained(save_directory)]
        finally:
            tokenizer.chat_template = saved_template
            tokenizer._set_processor_class(saved_processor_class)
        if push_to_hub:
            repo_id = kwargs.pop("repo_id", Path(save_directory).name)
            self.push_to_hub(
                repo_id, commit_message=kwargs.get("commit_message"), token=kwargs.get("token")
            )
        return files


class Qwen2_5_VLImageTextProcessor(_ImageTextOnly, Qwen2_5_VLProcessor):
    """``Qwen2_5_VLProcessor`` for images and text, without the video processor (so without
    torchvision); see ``_ImageTextOnly``."""


class Qwen2VLImageTextProcessor(_ImageTextOnly, Qwen2VLProcessor):
    """``Qwen2VLProcessor`` (Qwen2-VL: MedVLM-R1, Med-R1) for images and text, without the video
    processor (so without torchvision); see ``_ImageTextOnly``."""


# config model type -> (config class, our image-text processor class)
IMAGE_TEXT_PROCESSORS: dict[str, tuple[type, type[ProcessorMixin]]] = {
    "qwen2_5_vl": (Qwen2_5_VLConfig, Qwen2_5_VLImageTextProcessor),
    "qwen2_vl": (Qwen2VLConfig, Qwen2VLImageTextProcessor),
}
_FAMILY_NAMES = {"qwen2_5_vl": "Qwen2.5-VL", "qwen2_vl": "Qwen2-VL"}


def has_video_support() -> bool:
    """True where the stock ``Qwen2_5_VLProcessor`` (with its video processor) can be built."""
    return is_torchvision_available()


if not has_video_support():
    # The stock classes cannot be built here: AutoProcessor uses ours for these configs.
    for _config_class, _processor_class in IMAGE_TEXT_PROCESSORS.values():
        AutoProcessor.register(_config_class, _processor_class, exist_ok=True)


def load_processor(
    path_or_repo: str | os.PathLike,
    image_min_pixels: int | None = None,
    image_max_pixels: int | None = None,
    model_type: str = "qwen2_5_vl",
    **kwargs: Any,
) -> ProcessorMixin:
    """The processor of a Qwen2.5-VL (``model_type="qwen2_5_vl"``) or Qwen2-VL
    (``model_type="qwen2_vl"``) checkpoint folder or Hub repo id.

    With torchvision: ``AutoProcessor.from_pretrained`` (the stock class). Without:
    ``Qwen2_5_VLImageTextProcessor`` / ``Qwen2VLImageTextProcessor.from_pretrained``, whatever
    processor class the repo's files name. ``kwargs`` go to
    ``from_pretrained`` (``revision``, ``local_files_only``...). Remote code is never run.
    ``image_min_pixels`` / ``image_max_pixels`` replace the image processor's resize bounds
    (its ``size``: ``shortest_edge`` / ``longest_edge``); None keeps the checkpoint's.

    Raises:
        ValueError: the folder or repo does not hold a processor with an image processor and a
            tokenizer (for example it holds only a tokenizer); the message names what is missing.
    """
    if kwargs.pop("trust_remote_code", False):
        raise ValueError("load_processor never runs remote code: do not pass trust_remote_code")
    if model_type not in IMAGE_TEXT_PROCESSORS:
        raise ValueError(
            f"load_processor reads {' and '.join(IMAGE_TEXT_PROCESSORS)} checkpoints, not "
            f"{model_type!r}: use AutoProcessor for other models"
        )
    source = str(path_or_repo)
    looks_local = os.path.isabs(source) or source.startswith((".", "~"))
    if looks_local and not Path(source).expanduser().is_dir():
        raise FileNotFoundError(f"{source}: no such checkpoint folder")
    loader = AutoProcessor if has_video_support() else IMAGE_TEXT_PROCESSORS[model_type][1]
    try:
        processor = loader.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as error:
        missing = _missing_parts(source, **kwargs)
        if missing:
            raise ValueError(_missing_message(source, missing, model_type)) from error
        raise
    if not isinstance(processor, ProcessorMixin):
        raise ValueError(
            _missing_message(source, _missing_parts(source, **kwargs), model_type)
            + f" (a {type(processor).__name__} loaded, not a processor)"
        )
    missing = [
        part
        for part, attribute in (
            ("an image processor", "image_processor"),
            ("a tokenizer", "tokenizer"),
        )
        if getattr(processor, attribute, None) is None
    ]
    if missing:
        raise ValueError(_missing_message(source, missing, model_type))
    if image_min_pixels is not None or image_max_pixels is not None:
        size = processor.image_processor.size
        processor.image_processor.size = SizeDict(
            shortest_edge=size.shortest_edge if image_min_pixels is None else image_min_pixels,
            longest_edge=size.longest_edge if image_max_pixels is None else image_max_pixels,
        )
    return processor


def _missing_message(source: str, missing: list[str], model_type: str = "qwen2_5_vl") -> str:
    what = " and ".join(missing) or "a processor"
    family = _FAMILY_NAMES[model_type]
    return (
        f"{source} is not a {family} processor: it lacks {what}. A {family} checkpoint holds "
        f"{IMAGE_PROCESSOR_NAME} (or a {PROCESSOR_NAME} with an 'image_processor' entry), "
        f"{' or '.join(TOKENIZER_FILES)}, and its chat template; build one with "
        "model_training.tiny_model or save a processor there."
    )


def _missing_parts(source: str, **kwargs: Any) -> list[str]:
    """Which of the image processor config and the tokenizer files ``source`` lacks."""
    hub_kwargs = {
        key: kwargs[key]
        for key in ("revision", "token", "cache_dir", "local_files_only", "subfolder")
        if key in kwargs
    }

    def find(name: str) -> str | None:
        return cached_file(
            source,
            name,
            _raise_exceptions_for_missing_entries=False,
            **hub_kwargs,
        )

    missing = []
    try:
        processor_file = find(PROCESSOR_NAME)
        nested = processor_file and "image_processor" in json.loads(
            Path(processor_file).read_text()
        )
        if not nested and find(IMAGE_PROCESSOR_NAME) is None:
            missing.append(f"an image processor config ({IMAGE_PROCESSOR_NAME})")
        if all(find(name) is None for name in TOKENIZER_FILES):
            missing.append(f"a tokenizer ({' or '.join(TOKENIZER_FILES)})")
    except (OSError, ValueError):  # unreachable or unreadable: the loader's own error speaks
        return []
    return missing
