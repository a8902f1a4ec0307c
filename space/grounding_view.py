"""Grounding in the Space (MedReasoner's task): the model reads the plain slice and a query built
from a report sentence, reasons, and answers with a box and two points; a frozen SAM turns them
into a mask. Everything goes through the project's own code: the builder's query template, the
evaluator's prompts and greedy decoding, ``model_training.grounding`` (parser and THE frame
conversion) and the evaluator's SAM (``model_training.evaluation.sam``)."""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from dataset_builder.config import GROUNDING_QUERY_TEMPLATE
from dataset_builder.qa_rows import grounding_query
from model_training import prompts
from model_training.evaluation.generation import greedy_replies
from model_training.evaluation.sam import NO_SAM, load_segmenter
from model_training.grounding import box_iou, frame_for, parse_grounding

BOX_COLOUR = (255, 48, 48)  # ours: the predicted box, red
TRUE_BOX_COLOUR = (48, 220, 48)  # ours: the mask's box (when known), green
POINT_COLOUR = (255, 220, 0)  # ours: the predicted points, yellow
MASK_COLOUR = (0, 160, 255)  # ours: SAM's mask, blue, half transparent
MASK_ALPHA = 0.45
POINT_RADIUS = 2


@dataclass(frozen=True)
class GroundingReply:
    text: str  # the raw reply
    think: str | None
    status: str  # model_training.grounding.Grounding.status
    box: list[float] | None  # image frame
    points: list[list[float]] | None  # image frame
    mask: np.ndarray | None  # SAM's mask for the predicted box and points (None: no SAM)


def query_for(finding: str) -> str:
    """The dataset's grounding query for a report sentence (the builder's default template)."""
    return grounding_query(GROUNDING_QUERY_TEMPLATE, finding.strip())


class Segmenters:
    """The Space's SAM, loaded on first use (None with ``--sam-model none``)."""

    def __init__(self, name: str | None):
        self.name = None if name in (None, NO_SAM) else name
        self._loaded = None
        self._lock = threading.Lock()

    def get(self):
        if self.name is None:
            return None
        with self._lock:
            if self._loaded is None:
                self._loaded = load_segmenter(self.name)
            return self._loaded


def ground(runner, png: bytes, finding: str, mode: str, segmenters: Segmenters) -> GroundingReply:
    """Ask ``runner``'s model to ground ``finding`` on the plain slice ``png``."""
    model, processor = runner.load()
    image = Image.open(io.BytesIO(png)).convert("RGB")
    conversation = prompts.grounding_messages(query_for(finding), mode)
    with runner.generation_lock:
        (text,) = greedy_replies(model, processor, [conversation], [image], runner.max_new_tokens)
    parsed = parse_grounding(text)
    frame = frame_for(processor, image.size)
    box = frame.box_to_image(parsed.box) if parsed.box is not None else None
    points = [frame.point_to_image(p) for p in parsed.points] if parsed.points else None
    mask = None
    segmenter = segmenters.get()
    if segmenter is not None and box is not None and points is not None:
        (mask,) = segmenter.masks(image, [(box, points)])
    think = (
        text.split("<think>", 1)[1].split("</think>", 1)[0].strip() if "<think>" in text else None
    )
    return GroundingReply(text, think, parsed.status, box, points, mask)


def overlay(png: bytes, reply: GroundingReply, true_box: list[int] | None = None) -> Image.Image:
    """The slice with SAM's mask, the predicted box and points (and the mask's box, if known)."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    if reply.mask is not None:
        pixels = np.asarray(image, dtype=np.float32)
        tint = np.array(MASK_COLOUR, dtype=np.float32)
        pixels[reply.mask] = (1 - MASK_ALPHA) * pixels[reply.mask] + MASK_ALPHA * tint
        image = Image.fromarray(pixels.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    if true_box is not None:
        draw.rectangle([true_box[0], true_box[1], true_box[2] - 1, true_box[3] - 1],
                       outline=TRUE_BOX_COLOUR)  # fmt: skip
    if reply.box is not None:
        x0, y0, x1, y1 = reply.box
        draw.rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], outline=BOX_COLOUR)
    for x, y in reply.points or []:
        draw.ellipse([x - POINT_RADIUS, y - POINT_RADIUS, x + POINT_RADIUS, y + POINT_RADIUS],
                     fill=POINT_COLOUR)  # fmt: skip
    return image


def summary(reply: GroundingReply, true_box: list[int] | None = None) -> str:
    """One line: what was grounded (and the IoU with the mask's box, when known)."""
    if reply.box is None:
        return f"No box in the reply ({reply.status.replace('_', ' ')})."
    box = ", ".join(f"{v:.0f}" for v in reply.box)
    points = "; ".join(f"({x:.0f}, {y:.0f})" for x, y in reply.points or [])
    text = f"Box [{box}] (image pixels)" + (f", points {points}" if points else ", no valid points")
    if true_box is not None:
        text += f"; IoU with the mask's box {box_iou(reply.box, list(true_box)):.2f}"
    if reply.mask is not None:
        text += f"; SAM mask: {int(reply.mask.sum())} pixels"
    return text + "."
