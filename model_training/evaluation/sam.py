"""The frozen segmentation expert of the grounding evaluation: a SAM prompted with a box and two
points, as MedReasoner's eval/infer.py prompts MedSAM2 (arXiv 2508.08177).

``load_segmenter(name)`` reads a checkpoint (folder or Hub id) and dispatches on its config:
``sam`` -> transformers' ``SamModel`` / ``SamProcessor``, ``sam2`` -> ``Sam2Model`` /
``Sam2Processor``. ``Segmenter.masks(image, prompts)`` gives one boolean mask (image size) per
prompt: the highest-scoring of SAM's three (``multimask_output``), as MedReasoner keeps.

Prompt coordinates are in the IMAGE frame (stored pixels): the box's end-exclusive corners as
they are, a point ``[x, y]`` (a pixel) at its centre ``(x + 0.5, y + 0.5)``; both clipped to the
image (SAM reads a point at -10 as padding). Both points are foreground (labels 1, 1).

``build_tiny_sam(out)`` writes a tiny random ``SamModel`` checkpoint (and its processor) offline,
for tests and CPU demos.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.errors import UserError
from common.names import PICKLE_SUFFIXES

from ..grounding import Box, Point

# ours: MedSAM (ViT-B; MedReasoner's eval/statistic.py compares it) is on the Hub as a SamModel
# checkpoint; MedReasoner's own expert, MedSAM2, has no transformers checkpoint
DEFAULT_SAM_MODEL = "flaviagiammarino/medsam-vit-base"
NO_SAM = "none"  # --sam-model none: no mask Dice


def sam_or_none(name: str | None) -> str | None:
    """A --sam-model value: the SAM it names, or None for ``none`` (any case) or no value."""
    return None if name is None or name.lower() == NO_SAM else name


SAM_KINDS = ("sam", "sam2")  # the config model types the evaluator can prompt
POINT_LABELS = (1, 1)  # MedReasoner's eval/infer.py: both points are foreground
# the tiny random SAM of the tests: SAM ViT-B's layout, shrunk
TINY_SAM_IMAGE_SIZE = 256  # SAM's 1024 px input, shrunk (patch 16 -> 16x16 embeddings)
TINY_SAM_HIDDEN = 32  # vision width (ViT-B: 768)
TINY_SAM_LAYERS = 2  # vision blocks (ViT-B: 12)
TINY_SAM_HEADS = 2  # vision and mask-decoder attention heads (ViT-B: 12, decoder 8)
TINY_SAM_CHANNELS = 32  # image-embedding / prompt width (SAM: 256)
TINY_SAM_SEED = 0


class SegmenterError(UserError):
    """A SAM checkpoint that cannot be used; the message says what to pass instead."""


Prompt = tuple[Box, list[Point]]  # (box, [point 1, point 2]) in the image frame


def _unavailable(name: str, why: str) -> SegmenterError:
    return SegmenterError(
        f"--sam-model {name}: {why}; pass a local SAM checkpoint folder with --sam-model PATH, or "
        f"--sam-model {NO_SAM} to skip mask Dice"
    )


def sam_config(name: str) -> Any:
    """The config of SAM checkpoint ``name`` (a folder, or a Hub id already in the cache or
    reachable); refuses one that is missing or of another kind."""
    from transformers import AutoConfig

    folder = Path(name)
    pickles = sorted(p.name for p in folder.glob("*") if p.suffix in PICKLE_SUFFIXES)
    if folder.is_dir() and not (folder / "config.json").is_file() and pickles:
        raise _unavailable(
            name, f"it holds a PyTorch pickle ({pickles[0]}) and no config.json, as MedSAM2 is "
            "published for its own code; the evaluator loads transformers SAM / SAM2 checkpoints "
            "in safetensors only: convert it to a Sam2Model folder (save_pretrained)",
        )  # fmt: skip
    try:
        config = AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        where = "no such folder, and " if not Path(name).exists() else ""
        raise _unavailable(
            name, f"{where}it could not be read (offline and not cached?) ({first[:160]})"
        ) from None
    if config.model_type not in SAM_KINDS:
        raise _unavailable(
            name, f"a {config.model_type!r} model, not a SAM ({' or '.join(SAM_KINDS)}) checkpoint"
        )
    return config


@dataclass
class Segmenter:
    """A frozen SAM (or SAM2) and its processor."""

    model: Any
    processor: Any
    kind: str  # "sam" or "sam2"
    name: str

    @torch.no_grad()
    def masks(self, image: Any, prompts: list[Prompt]) -> list[np.ndarray]:
        """One boolean mask (height x width of ``image``) per prompt: the highest-scoring of the
        masks SAM returns for the prompt's box and two foreground points."""
        if not prompts:
            return []
        image = image.convert("RGB")
        width, height = image.size
        boxes = [_clip_box(box, width, height) for box, _ in prompts]
        points = [[_point_centre(p, width, height) for p in pair] for _, pair in prompts]
        inputs = self.processor(
            images=image,
            input_boxes=[boxes],
            input_points=[points],
            input_labels=[[list(POINT_LABELS) for _ in prompts]],
            return_tensors="pt",
        ).to(self.model.device)
        outputs = self.model(**inputs, multimask_output=True)
        if self.kind == "sam":
            (masks,) = self.processor.post_process_masks(
                outputs.pred_masks.cpu(),
                inputs["original_sizes"].cpu(),
                inputs["reshaped_input_sizes"].cpu(),
            )
        else:
            (masks,) = self.processor.post_process_masks(
                outputs.pred_masks.cpu(), inputs["original_sizes"].cpu()
            )
        best = outputs.iou_scores[0].argmax(dim=-1).cpu()  # (prompts,)
        return [masks[i, int(best[i])].numpy().astype(bool) for i in range(len(prompts))]


def _clip_box(box: Box, width: int, height: int) -> list[float]:
    x0, y0, x1, y1 = (float(v) for v in box)
    return [
        min(max(x0, 0.0), width), min(max(y0, 0.0), height),
        min(max(x1, 0.0), width), min(max(y1, 0.0), height),
    ]  # fmt: skip


def _point_centre(point: Point, width: int, height: int) -> list[float]:
    x = min(max(float(point[0]), 0.0), width - 1.0)
    y = min(max(float(point[1]), 0.0), height - 1.0)
    return [x + 0.5, y + 0.5]


def load_segmenter(name: str, device: str | torch.device | None = None) -> Segmenter:
    """The frozen SAM ``name`` (folder or Hub id) on ``device`` (default: the GPU when there is
    one), fp32, in eval mode; refusals are SegmenterError (one line)."""
    from transformers.utils.import_utils import is_torchvision_available

    config = sam_config(name)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if config.model_type == "sam2":
        if not is_torchvision_available():
            raise _unavailable(
                name,
                "a SAM2 checkpoint, whose image processor (Sam2ImageProcessor) needs "
                "torchvision, which is not installed here",
            )
        from transformers import Sam2Model as model_class
        from transformers import Sam2Processor as processor_class
    else:
        from transformers import SamModel as model_class
        from transformers import SamProcessor as processor_class
    try:
        model = model_class.from_pretrained(name, dtype=torch.float32)
        processor = processor_class.from_pretrained(name)
    except (OSError, ValueError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise _unavailable(
            name, f"its weights or processor could not be read ({first[:160]})"
        ) from None
    model.requires_grad_(False)
    return Segmenter(model.to(device).eval(), processor, config.model_type, name)


def build_tiny_sam(out_dir: str | Path, seed: int = TINY_SAM_SEED) -> Path:
    """Write a tiny random ``SamModel`` checkpoint (safetensors) and its ``SamProcessor`` to
    ``out_dir``, offline. Same seed -> same weights."""
    from transformers import (
        SamConfig,
        SamImageProcessorPil,
        SamMaskDecoderConfig,
        SamModel,
        SamProcessor,
        SamPromptEncoderConfig,
        SamVisionConfig,
    )

    out = Path(out_dir)
    patch = SamVisionConfig().patch_size
    embedding = TINY_SAM_IMAGE_SIZE // patch
    config = SamConfig(
        vision_config=SamVisionConfig(
            hidden_size=TINY_SAM_HIDDEN,
            num_hidden_layers=TINY_SAM_LAYERS,
            num_attention_heads=TINY_SAM_HEADS,
            mlp_dim=2 * TINY_SAM_HIDDEN,
            output_channels=TINY_SAM_CHANNELS,
            image_size=TINY_SAM_IMAGE_SIZE,
            global_attn_indexes=[TINY_SAM_LAYERS - 1],
            window_size=4,
            num_pos_feats=TINY_SAM_CHANNELS // 2,
        ),
        prompt_encoder_config=SamPromptEncoderConfig(
            hidden_size=TINY_SAM_CHANNELS,
            image_size=TINY_SAM_IMAGE_SIZE,
            image_embedding_size=embedding,
        ),
        mask_decoder_config=SamMaskDecoderConfig(
            hidden_size=TINY_SAM_CHANNELS,
            num_attention_heads=TINY_SAM_HEADS,
            mlp_dim=2 * TINY_SAM_CHANNELS,
            iou_head_hidden_dim=TINY_SAM_CHANNELS,
        ),
    )
    torch.manual_seed(seed)
    model = SamModel(config).eval()
    model.save_pretrained(out, safe_serialization=True)
    processor = SamProcessor(
        SamImageProcessorPil(
            size={"longest_edge": TINY_SAM_IMAGE_SIZE},
            pad_size={"height": TINY_SAM_IMAGE_SIZE, "width": TINY_SAM_IMAGE_SIZE},
            mask_size={"longest_edge": 4 * embedding},
            mask_pad_size={"height": 4 * embedding, "width": 4 * embedding},
        )
    )
    processor.save_pretrained(out)
    return out
