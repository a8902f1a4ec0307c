"""lmms-eval's ``huggingface`` chat model class, loaded for our Qwen2.5-VL checkpoints on the CPU
(imported by lmms-eval in its own venv through tests/lmms_harness.py's registration).

lmms-eval's Qwen classes (``qwen2_5_vl``, ``huggingface``) need torchvision, and the torchvision
wheel for torch 2.13 is a CUDA build that breaks next to the CPU torch (real-clients.md). This
class keeps the ``huggingface`` class's ``generate_until`` (conversation from the task's
``doc_to_messages``, chat template, processor with ``videos=[]`` / ``audios=[]``, greedy
``generate``) and replaces its loading: ``AutoModelForImageTextToText`` in fp32 and the
project's processor (``model_training.processor.load_processor``, no torchvision needed), with
lmms-eval's usual ``min_pixels`` / ``max_pixels`` model arguments as its resize bounds.
"""

from __future__ import annotations

import torch
from accelerate import Accelerator
from lmms_eval.api.model import lmms
from lmms_eval.models.chat.huggingface import Huggingface
from transformers import AutoModelForImageTextToText

from model_training.processor import load_processor

from .lmms_harness import MODEL_ID

DEFAULT_MAX_LENGTH = 2048  # lmms-eval's huggingface class: its max_length


class ProjectQwen2_5_VL(Huggingface):
    """lmms-eval's ``huggingface`` chat model, loaded in fp32 with the project's processor."""

    is_simple = False

    def __init__(
        self,
        pretrained: str,
        device: str = "cpu",
        batch_size: int | str = 1,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        **kwargs,
    ) -> None:
        lmms.__init__(self)  # Huggingface.__init__ loads in bf16 with AutoProcessor: not here
        if kwargs:
            raise ValueError(f"{MODEL_ID}: unknown model_args {sorted(kwargs)}")
        self.accelerator = Accelerator(cpu=device == "cpu")
        if self.accelerator.num_processes > 1:
            raise ValueError(f"{MODEL_ID} runs in one process")
        self._device = torch.device(device)
        self.device_map = device
        self._model = (
            AutoModelForImageTextToText.from_pretrained(pretrained, dtype=torch.float32)
            .to(self._device)
            .eval()
        )
        self.processor = load_processor(
            pretrained,
            image_min_pixels=None if min_pixels is None else int(min_pixels),
            image_max_pixels=None if max_pixels is None else int(max_pixels),
        )
        self.processor.tokenizer.padding_side = "left"  # as our evaluator batches
        self._tokenizer = self.processor.tokenizer
        self.trust_remote_code = False
        self.system_prompt = None  # the task's doc_to_messages sends its own
        self.interleave_visuals = False
        self.max_num_frames = 0
        self._config = self._model.config
        self._max_length = DEFAULT_MAX_LENGTH
        self.batch_size_per_gpu = int(batch_size)
        self.use_cache = True
        self._rank = 0
        self._world_size = 1
