"""Orientation, mask indexing, boxes, windowing and zoom placement on hand-made NIfTI cases."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dataset_builder.case_processing import process_case
from dataset_builder.class_map import load_class_map
from dataset_builder.config import BuildOptions, parse_color
from dataset_builder.render import window_slice
from dataset_builder.sources import load_cases

from .conftest import blank_ct, box_mask

SHAPE = (128, 128, 12)
# lesion towards the patient's left (high LPS x) and anterior (low LPS y), slices 3-8
LESION = (slice(80, 100), slice(20, 40), slice(3, 9))
EXPECTED_BOX = [80, 20, 100, 40]  # image x = LPS x (columns), image y = LPS y (rows)


def _png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _case(source, name="train_1_a_1.nii.gz"):
    specs, refused = load_cases(source.rex_dir, source.ctrate_dir, ["train"])
    assert not refused
    return next(s for s in specs if s.name == name)


def _lesion_ct() -> tuple[np.ndarray, np.ndarray]:
    ct = blank_ct(SHAPE)
    ct[LESION] = 40  # a solid lesion
    return ct, box_mask(SHAPE, *LESION)


def test_off_centre_lesion_in_lps_ct_with_identity_mask(hand_made):
    ct, mask = _lesion_ct()
    hand_made.add("train_1_a_1.nii.gz", ct, mask[None], ["2d"])
    hand_made.write_index()
    rows, report = process_case(_case(hand_made), BuildOptions(), load_class_map())
    assert report.rows == 6 and {r["slice_index"] for r in rows} == set(range(3, 9))
    for row in rows:
        assert row["bbox"] == EXPECTED_BOX
        assert row["answer"] == "pulmonary nodules/masses" and row["lesion_pixels"] == 400
        plain = _png(row["plain_png"])
        x0, y0, x1, y1 = row["bbox"]
        inside = plain[y0:y1, x0:x1].mean()
        outside = plain[60:80, 20:40].mean()
        assert inside > outside + 100, "the lesion's bright pixels must lie inside the box"
    assert rows[0]["spacing_mm"] == pytest.approx([0.7, 0.7, 1.5])


def test_ras_stored_ct_gives_the_same_view_and_box(hand_made):
    """Same anatomy stored RAS (x, y flipped on disk); the mask lies on the CT's voxel grid and
    keeps its identity affine. Reorienting by the CT header must give the LPS result."""
    ct, mask = _lesion_ct()
    ras_affine = np.diag([0.7, 0.7, 1.5, 1.0])
    hand_made.add(
        "train_1_a_1.nii.gz", ct[::-1, ::-1], mask[None, ::-1, ::-1], ["2d"], ct_affine=ras_affine
    )
    hand_made.write_index()
    rows, _ = process_case(_case(hand_made), BuildOptions(), load_class_map())
    assert [r["bbox"] for r in rows] == [EXPECTED_BOX] * 6


def test_three_d_mask_when_single_finding(hand_made):
    ct, mask = _lesion_ct()
    hand_made.add("train_1_a_1.nii.gz", ct, mask, ["2c"])  # (H, W, D), no channel axis
    hand_made.write_index()
    rows, report = process_case(_case(hand_made), BuildOptions(), load_class_map())
    assert report.rows == 6 and rows[0]["answer"] == "ground-glass opacity"


def test_padding_is_clipped_before_windowing(hand_made):
    ct, mask = _lesion_ct()
    ct[:10] = -8192  # CT-RATE padding outside the field of view
    ct[:, :10] = -2048
    hand_made.add("train_1_a_1.nii.gz", ct, mask[None], ["2d"])
    hand_made.write_index()
    rows, _ = process_case(_case(hand_made), BuildOptions(), load_class_map())
    plain = _png(rows[0]["plain_png"])
    air = window_slice(np.array([[-1024]]), BuildOptions())[0, 0]  # padding is shown as air
    assert (plain[:, :10] == air).all() and (plain[:10, :] == air).all()
    assert 0 < air < plain[60:80, 20:40].min()  # lung background is brighter than air


def test_threshold_scaled_by_area_and_cap_sampling(hand_made):
    ct = blank_ct((128, 128, 40))
    # 1300 px on 512 x 512 -> 81.25 px on 128 x 128: a 9 x 9 lesion (81 px) is dropped,
    # a 10 x 10 one (100 px) is kept
    small = box_mask(ct.shape, slice(10, 19), slice(10, 19), slice(0, 40))
    big = box_mask(ct.shape, slice(60, 70), slice(60, 70), slice(0, 40))
    hand_made.add("train_1_a_1.nii.gz", ct, np.stack([small, big]), ["2d", "2b"])
    hand_made.write_index()
    rows, report = process_case(
        _case(hand_made), BuildOptions(slices_per_case=20), load_class_map()
    )
    assert report.candidates == 40 and report.rows == 20
    assert {r["answer"] for r in rows} == {"consolidation/atelectasis"}
    slices = [r["slice_index"] for r in rows]
    assert slices == sorted(slices) and slices[0] == 0 and slices[-1] == 39  # evenly spread


def test_zoom_patch_in_zoom_absent_in_plain_and_moves_off_the_lesion(hand_made):
    ct, _ = _lesion_ct()
    # a lesion in the upper-left of the image: the patch must go to another corner
    mask = box_mask(SHAPE, slice(5, 30), slice(5, 30), slice(3, 9))
    hand_made.add("train_1_a_1.nii.gz", ct, mask[None], ["2e"])
    hand_made.write_index()
    rows, _ = process_case(_case(hand_made), BuildOptions(), load_class_map())
    row = rows[0]
    assert row["zoom_corner"] == "upper-right"
    x0, y0, x1, y1 = row["zoom_box"]
    assert (x1 - x0, y1 - y0) == (43, 43) and x1 == 128 and y0 == 0
    zoom, plain = _png(row["zoom_png"]), _png(row["plain_png"])
    green = np.array(parse_color(BuildOptions().zoom_border_color))
    assert (zoom[y0, x0:x1] == green).all() and (zoom[y0:y1, x1 - 1] == green).all()
    assert (plain[..., 0] == plain[..., 1]).all() and (plain[..., 1] == plain[..., 2]).all()
    assert not (plain[y0, x0:x1] == green).all(axis=-1).any()
    red = np.array(parse_color(BuildOptions().localisation_box_color))
    bx0, by0, _, _ = row["bbox"]
    assert (zoom[by0, bx0] == red).all()


def test_image_size_rescales_boxes(hand_made):
    ct, mask = _lesion_ct()
    hand_made.add("train_1_a_1.nii.gz", ct, mask[None], ["2d"])
    hand_made.write_index()
    rows, _ = process_case(_case(hand_made), BuildOptions(image_size=256), load_class_map())
    assert rows[0]["bbox"] == [2 * v for v in EXPECTED_BOX]
    assert Image.open(io.BytesIO(rows[0]["zoom_png"])).size == (256, 256)


@pytest.mark.parametrize("variant", ["scaled-uint16", "uncompressed", "nifti2"])
def test_other_nifti_encodings_read_the_same_hu(hand_made, variant):
    """Scaled storage (HU = raw - 1024), a plain .nii and NIfTI-2 give the same rows."""
    import nibabel as nib

    ct, mask = _lesion_ct()
    hand_made.add("train_1_a_1.nii.gz", ct, mask[None], ["2d"])
    hand_made.write_index()
    expected, _ = process_case(_case(hand_made), BuildOptions(), load_class_map())
    path = hand_made.ct_path("train_1_a_1.nii.gz")
    affine = nib.load(path).affine
    if variant == "scaled-uint16":
        image = nib.Nifti1Image((ct.astype(np.int32) + 1024).astype(np.uint16), affine)
        image.header.set_slope_inter(1, -1024)
        nib.save(image, path)
    elif variant == "uncompressed":
        # same name, uncompressed bytes: the reader looks at the content, not the suffix
        path.write_bytes(nib.Nifti1Image(ct, affine).to_bytes())
    else:
        nib.save(nib.Nifti2Image(ct, affine), path)
    rows, _ = process_case(_case(hand_made), BuildOptions(), load_class_map())
    assert [r["plain_png"] for r in rows] == [r["plain_png"] for r in expected]
    assert [r["bbox"] for r in rows] == [r["bbox"] for r in expected]
