"""The evaluator's backends: checkpoints loaded and prompted, and greedy replies generated with
transformers (``hf_generator``) or vLLM (``vllm_generator``), both decoded by one ``Decoding``.

The Space and the retention benchmark load and prompt models through these functions too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image
from transformers.utils import (
    SAFE_WEIGHTS_INDEX_NAME,
    SAFE_WEIGHTS_NAME,
    WEIGHTS_INDEX_NAME,
    WEIGHTS_NAME,
)

from common.hub_ids import is_hub_id

from .. import prompts
from ..backends import vllm_problem
from ..processor import load_processor
from .decoding import DEFAULT_REPETITION_PENALTY, Decoding
from .options import (
    BACKENDS,
    DEFAULT_GPU_MEMORY_UTILIZATION,
    DEFAULT_MAX_MODEL_LEN,
    DEFAULT_TENSOR_PARALLEL_SIZE,
    EvaluateArguments,
    EvaluationError,
)

Generate = Callable[[list[dict], str], list[str]]  # (rows, mode) -> one reply per row
PROBE_IMAGE_SIZE = (56, 56)  # ours: the image of check_processor's one test prompt
# a checkpoint folder's weights, as transformers names them (safetensors first)
WEIGHT_FILES = (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_NAME, WEIGHTS_INDEX_NAME)


def check_model(model: str, trust_remote_code: bool = False) -> None:
    """Refuse a model that the evaluator cannot run, before anything is written: a path that
    does not exist, a folder that is not a checkpoint, a model that does not read images, a
    folder without weights, a processor that cannot be loaded (``check_processor``). Reads no
    weights."""
    from transformers import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING, AutoConfig

    path = Path(model)
    if not path.exists() and not is_hub_id(model):
        raise EvaluationError(
            f"model {model} does not exist: pass a checkpoint folder (holding config.json) or "
            "a Hub model id"
        )
    if path.is_dir() and not (path / "config.json").is_file():
        raise EvaluationError(
            f"model {model} is a folder without config.json, not a checkpoint: pass the folder "
            "that holds config.json (e.g. outputs/<run>/final)"
        )
    try:
        config = AutoConfig.from_pretrained(model, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise EvaluationError(
            f"model {model} could not be read ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); pass a checkpoint folder or a "
            "Hub model id you can access"
        ) from None
    remote = "AutoModelForImageTextToText" in (getattr(config, "auto_map", None) or {})
    if type(config) not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING and not (
        remote and trust_remote_code
    ):
        raise EvaluationError(
            f"model {model} is a {config.model_type!r} model, which does not read images: "
            "pass an image-text-to-text checkpoint (e.g. Qwen2.5-VL)"
        )
    if path.is_dir() and not any((path / name).is_file() for name in WEIGHT_FILES):
        raise EvaluationError(
            f"model {model} holds no weights ({' or '.join(WEIGHT_FILES[:2])}): pass a complete "
            "checkpoint folder (e.g. outputs/<run>/final)"
        )
    check_processor(model, trust_remote_code)


def check_processor(model: str, trust_remote_code: bool = False) -> None:
    """Refuse a checkpoint whose processor (image processor, tokenizer, chat template) cannot be
    loaded, before anything is written: every prompt needs all three."""
    try:
        processor = load_chat_processor(model, trust_remote_code)
    except (OSError, ValueError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise EvaluationError(
            f"model {model}: its processor could not be loaded ({first}); copy its base "
            "model's processor files into the folder"
        ) from None
    tokenizer = getattr(processor, "tokenizer", None)
    if not (getattr(processor, "chat_template", None) or getattr(tokenizer, "chat_template", None)):
        raise EvaluationError(
            f"model {model} has no chat template (chat_template.jinja or tokenizer_config.json's "
            "chat_template): copy its base model's into the folder"
        )
    try:  # one tiny prompt, as greedy_replies makes them (a tokenizer without the image tokens)
        conversation = [{"role": "user", "content": [{"type": "image"},
                                                     {"type": "text", "text": "?"}]}]  # fmt: skip
        text = processor.apply_chat_template(conversation, add_generation_prompt=True)
        processor(images=[Image.new("RGB", PROBE_IMAGE_SIZE)], text=[text], return_tensors="pt")
    except (ValueError, TypeError, KeyError, AttributeError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise EvaluationError(
            f"model {model}: its processor cannot prompt an image ({first[:200]}); copy its base "
            "model's processor files (tokenizer, preprocessor_config.json, chat template) into "
            "the folder"
        ) from None


def check_backend(backend: str, num_processes: int) -> None:
    """Refuse a backend that cannot run here, before anything is loaded."""
    if backend not in BACKENDS:
        raise EvaluationError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
    problem = vllm_problem() if backend == "vllm" else None
    if problem:  # not installed, or outside the vLLM versions TRL supports
        raise EvaluationError(f"--backend vllm: {problem}")
    if backend == "vllm" and num_processes > 1:
        raise EvaluationError(
            f"--backend vllm runs in one process, not {num_processes}: start it with python, "
            "not accelerate launch (vLLM parallelises itself: --tensor-parallel-size N)"
        )


def load_chat_processor(model_path: str, trust_remote_code: bool = False):
    """The processor (chat template, image processor) of a checkpoint: for Qwen2.5-VL and
    Qwen2-VL configs (our checkpoints, MedVLM-R1, Med-R1) ``load_processor``, which works
    without torchvision whatever processor class the repo names."""
    from transformers import AutoConfig, AutoProcessor

    from ..processor import IMAGE_TEXT_PROCESSORS

    config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    if config.model_type in IMAGE_TEXT_PROCESSORS and not trust_remote_code:
        return load_processor(model_path, model_type=config.model_type)
    return AutoProcessor.from_pretrained(model_path, trust_remote_code=trust_remote_code)


def load_model(
    model_path: str, trust_remote_code: bool = False, device: str | torch.device | None = None
):
    """(model, processor) of any image-text-to-text checkpoint with a chat template (our
    Qwen2.5-VL checkpoints, Qwen2-VL-based baselines...), on ``device`` (default: the GPU when
    there is one, else the CPU): in bf16 on a GPU, in fp32 on the CPU. Remote code runs only if
    the user asks for it."""
    from transformers import AutoModelForImageTextToText

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = AutoModelForImageTextToText.from_pretrained(
        model_path,
        dtype=torch.bfloat16 if device.type == "cuda" else torch.float32,
        trust_remote_code=trust_remote_code,
    )
    processor = load_chat_processor(model_path, trust_remote_code)
    return model.to(device).eval(), processor


@torch.no_grad()
def greedy_replies(
    model,
    processor,
    conversations: list[list[dict]],
    images: list,
    max_new_tokens: int,
    repetition_penalty: float = DEFAULT_REPETITION_PENALTY,
) -> list[str]:
    """Greedy replies (``Decoding``, not the checkpoint's generation_config) to one batch of
    (conversation, image) prompts, left padded."""
    processor.tokenizer.padding_side = "left"
    texts = [processor.apply_chat_template(c, add_generation_prompt=True) for c in conversations]
    inputs = processor(
        images=[image.convert("RGB") for image in images],
        text=texts,
        padding=True,
        return_tensors="pt",
    ).to(model.device)
    decoding = Decoding(max_new_tokens, repetition_penalty)
    generated = model.generate(**inputs, generation_config=decoding.generation_config())
    return processor.batch_decode(
        generated[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True
    )


def generate_replies(
    model,
    processor,
    rows: list[dict],
    mode: str,
    max_new_tokens: int,
    repetition_penalty: float = DEFAULT_REPETITION_PENALTY,
) -> list[str]:
    """Greedy replies to one batch of CT-RATE-VQA rows in prompt ``mode``."""
    conversations = [prompts.prompt_messages(r, mode) for r in rows]
    images = [r["image"] for r in rows]
    return greedy_replies(
        model, processor, conversations, images, max_new_tokens, repetition_penalty
    )


def hf_generator(
    model, processor, max_new_tokens: int, repetition_penalty: float = DEFAULT_REPETITION_PENALTY
) -> Generate:
    """Greedy replies with transformers' ``generate``."""

    def generate(rows: list[dict], mode: str) -> list[str]:
        return generate_replies(model, processor, rows, mode, max_new_tokens, repetition_penalty)

    return generate


def vllm_generator(
    model_path: str,
    max_new_tokens: int,
    tensor_parallel_size: int = DEFAULT_TENSOR_PARALLEL_SIZE,
    max_model_len: int = DEFAULT_MAX_MODEL_LEN,
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
    trust_remote_code: bool = False,
    repetition_penalty: float = DEFAULT_REPETITION_PENALTY,
) -> Generate:
    """Greedy replies with vLLM's offline ``LLM.generate`` (prompts chat-templated by the
    checkpoint's own processor, one image each), decoded as ``hf_generator`` decodes."""
    from vllm import LLM, SamplingParams

    processor = load_chat_processor(model_path, trust_remote_code)
    llm = LLM(
        model=model_path,
        limit_mm_per_prompt={"image": 1},
        max_model_len=max_model_len,
        gpu_memory_utilization=gpu_memory_utilization,
        tensor_parallel_size=tensor_parallel_size,
        trust_remote_code=trust_remote_code,
    )
    sampling = SamplingParams(**Decoding(max_new_tokens, repetition_penalty).vllm_sampling())

    def generate(rows: list[dict], mode: str) -> list[str]:
        requests = [
            {
                "prompt": processor.apply_chat_template(
                    prompts.prompt_messages(row, mode), add_generation_prompt=True
                ),
                "multi_modal_data": {"image": row["image"].convert("RGB")},
            }
            for row in rows
        ]
        outputs = llm.generate(requests, sampling, use_tqdm=False)
        return [output.outputs[0].text for output in outputs]

    return generate


def generator(options: EvaluateArguments, device: str | torch.device) -> Generate:
    """The replies of ``options.backend`` for ``options.model`` (loaded here, on ``device``)."""
    if options.backend == "vllm":
        return vllm_generator(
            options.model, options.max_new_tokens, options.tensor_parallel_size,
            options.max_model_len, options.gpu_memory_utilization, options.trust_remote_code,
            options.repetition_penalty,
        )  # fmt: skip
    return hf_generator(
        *load_model(options.model, options.trust_remote_code, device),
        options.max_new_tokens, options.repetition_penalty,
    )  # fmt: skip
