"""The frozen SAM of the grounding evaluation: a tiny random SamModel built offline, prompted
with a box and two points, against transformers' SamModel called directly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from transformers import Sam2Config, SamModel, SamProcessor
from transformers.utils.import_utils import is_torchvision_available

from model_training.evaluation.sam import (
    SegmenterError,
    build_tiny_sam,
    load_segmenter,
)
from model_training.grounding import mask_dice
from model_training.tiny_model import build_tiny_model


@pytest.fixture(scope="module")
def tiny_sam(tmp_path_factory) -> str:
    return str(build_tiny_sam(tmp_path_factory.mktemp("sam") / "tiny-sam"))


def _slice() -> Image.Image:
    image = Image.new("L", (96, 80), 20)
    ImageDraw.Draw(image).ellipse((30, 20, 60, 50), fill=200)
    return image


def test_masks_are_the_best_scoring_of_sams_own(tiny_sam):
    image, box, points = _slice(), [30.0, 20.0, 61.0, 51.0], [[40, 30], [50, 40]]
    other = ([0.0, 0.0, 20.0, 20.0], [[5, 5], [10, 12]])
    ours = load_segmenter(tiny_sam, device="cpu").masks(image, [(box, points), other])
    assert len(ours) == 2 and all(m.shape == (80, 96) and m.dtype == bool for m in ours)

    # the same prompt through SamModel / SamProcessor, one prompt at a time
    model, processor = (
        SamModel.from_pretrained(tiny_sam).eval(),
        SamProcessor.from_pretrained(tiny_sam),
    )
    for (prompt_box, prompt_points), mine in zip([(box, points), other], ours, strict=True):
        inputs = processor(
            images=image.convert("RGB"),
            input_boxes=[[prompt_box]],
            input_points=[[[[x + 0.5, y + 0.5] for x, y in prompt_points]]],
            input_labels=[[[1, 1]]],
            return_tensors="pt",
        )
        with torch.no_grad():
            out = model(**inputs, multimask_output=True)
        (masks,) = processor.post_process_masks(
            out.pred_masks, inputs["original_sizes"], inputs["reshaped_input_sizes"]
        )
        direct = masks[0, int(out.iou_scores[0, 0].argmax())].numpy()
        assert np.array_equal(mine, direct)
        assert mask_dice(mine, direct) == 1.0


def test_mask_dice_of_identical_and_disjoint_masks():
    mask = np.zeros((8, 8), bool)
    mask[2:5, 3:6] = True
    assert mask_dice(mask, mask) == 1.0
    assert mask_dice(mask, ~mask) == 0.0
    half = mask.copy()
    half[2:5, 5] = False  # 6 of the 9 pixels
    assert mask_dice(half, mask) == pytest.approx(2 * 6 / (6 + 9))


def test_a_folder_that_is_not_a_sam_is_refused(tmp_path):
    with pytest.raises(SegmenterError, match="'qwen2_5_vl' model, not a SAM"):
        load_segmenter(str(build_tiny_model(tmp_path / "qwen")))
    with pytest.raises(SegmenterError, match="--sam-model none"):
        load_segmenter(str(tmp_path / "missing-sam"))


def test_a_medsam2_pickle_checkpoint_is_refused_saying_why(tmp_path):
    """MedSAM2 is published as a PyTorch pickle for its own code: one line says the evaluator
    loads safetensors SAM / SAM2 folders only and how to get one; the pickle is never read."""
    folder = tmp_path / "MedSAM2"
    folder.mkdir()
    (folder / "MedSAM2_latest.pt").write_bytes(b"not read")
    with pytest.raises(SegmenterError, match=r"PyTorch pickle \(MedSAM2_latest.pt\) and no "
                       r"config.json.*convert it to a Sam2Model folder") as refused:  # fmt: skip
        load_segmenter(str(folder))
    assert "\n" not in str(refused.value)


def test_a_sam2_checkpoint_is_dispatched_to_sam2(tmp_path):
    folder = tmp_path / "sam2"
    Sam2Config().save_pretrained(folder)  # the config decides the classes
    if is_torchvision_available():  # Sam2Processor's image processor needs torchvision
        with pytest.raises(SegmenterError, match="weights or processor could not be read"):
            load_segmenter(str(folder))  # config only: Sam2Model finds no weights
    else:
        with pytest.raises(SegmenterError, match="SAM2 checkpoint.*torchvision"):
            load_segmenter(str(folder))
