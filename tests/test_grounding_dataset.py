"""The `grounding` config (MedReasoner's reasoning grounding): one row per classification row,
the target component's mask, its tight box and two points inside it, in the written image."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import yaml
from datasets import Image as ImageFeature
from datasets import load_dataset
from huggingface_hub import DatasetCard
from PIL import Image
from skimage.measure import label

from common.names import GROUNDING_CONFIG
from dataset_builder import BuildOptions
from dataset_builder.case_processing import process_case
from dataset_builder.class_map import load_class_map
from dataset_builder.cli import main
from dataset_builder.config import GROUNDING_QUERY_TEMPLATE, VARIANTS
from dataset_builder.pipeline import cache_folder
from dataset_builder.qa_rows import grounding_row
from dataset_builder.sources import load_cases
from hub_cards.benchmark import EVAL_FILE, inspect_config

from .conftest import blank_ct, box_mask

SHAPE = (128, 128, 12)  # LPS (x, y, z): image columns = x, rows = y
SLICES = slice(3, 6)


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def _tight_box(mask: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


def _check_target(mask_image: Image.Image, image_size: tuple[int, int], bbox, points) -> None:
    """The contract of a grounding row: an "L" 0/255 mask the image's size holding one
    connected component (8-connected: the default connectivity), whose tight box is ``bbox``
    and which holds both points."""
    assert mask_image.mode == "L" and mask_image.size == image_size
    pixels = np.asarray(mask_image)
    assert set(np.unique(pixels)) == {0, 255}
    mask = pixels == 255
    assert label(mask, connectivity=2).max() == 1
    assert _tight_box(mask) == list(bbox)
    assert len(points) == 2
    for x, y in points:
        assert mask[y, x], (x, y)


def _undecoded(folder, config: str) -> dict[str, list[dict]]:
    ds = load_dataset(str(folder), config)
    out = {}
    for split, rows in ds.items():
        rows = rows.cast_column("image", ImageFeature(decode=False))
        if "mask" in rows.features:
            rows = rows.cast_column("mask", ImageFeature(decode=False))
        out[split] = rows.to_list()
    return out


def _case(source, name: str = "train_1_a_1.nii.gz"):
    specs, refused = load_cases(source.rex_dir, source.ctrate_dir, ["train"])
    assert not refused
    return next(s for s in specs if s.name == name)


def _rows(source, options: BuildOptions) -> list[dict]:
    rows, _ = process_case(_case(source), options, load_class_map())
    assert rows
    return rows


# --- the built dataset (session fixture) ---


def test_grounding_rows_hold_mask_box_and_points_of_one_component(built_dataset):
    ds = load_dataset(str(built_dataset), GROUNDING_CONFIG)
    assert set(ds) == {"train", "test"}
    features = ds["train"].features
    assert features["image"] == ImageFeature() and features["mask"] == ImageFeature()
    assert features["label"].names == list(load_class_map().classes)
    checked = 0
    for rows in ds.values():
        for row in rows:
            assert row["image"].mode == "RGB"
            _check_target(row["mask"], row["image"].size, row["bbox"], row["points"])
            assert row["label"] == features["label"].str2int(row["answer"])
            checked += 1
    assert checked > 50


def test_grounding_has_the_ids_splits_slices_and_plain_images_of_zoom_and_plain(built_dataset):
    grounding = _undecoded(built_dataset, GROUNDING_CONFIG)
    keys = ("id", "case_id", "patient_id", "slice_index", "finding_index", "finding", "answer")
    for variant in VARIANTS:
        rows = _undecoded(built_dataset, variant)
        assert set(rows) == set(grounding)
        for split in rows:
            assert [[r[k] for k in keys] for r in rows[split]] == [
                [r[k] for k in keys] for r in grounding[split]
            ]
    plain = _undecoded(built_dataset, "plain")
    for split in plain:
        for p, g in zip(plain[split], grounding[split], strict=True):
            assert g["image"]["bytes"] == p["image"]["bytes"]  # the plain slice, nothing drawn
            # native size: the classification box of the same component is the tight box
            assert g["bbox"] == p["bbox"]
            assert g["lesion_pixels"] == int((_decode(g["mask"]["bytes"]) == 255).sum())


def test_query_is_the_template_with_the_finding(built_dataset):
    manifest = json.loads((built_dataset / "build_manifest.json").read_text())
    template = manifest["parameters"]["grounding_query"]
    assert template == GROUNDING_QUERY_TEMPLATE == manifest["grounding"]["query_template"]
    rows = load_dataset(str(built_dataset), GROUNDING_CONFIG, split="train")
    for query, finding in zip(rows["query"], rows["finding"], strict=True):
        assert finding and query == template.format(finding=finding)


def test_card_and_eval_yaml_cover_grounding_as_specified(built_dataset):
    manifest = json.loads((built_dataset / "build_manifest.json").read_text())
    assert manifest["tasks"] == {"zoom": "classification", "plain": "classification",
                                 GROUNDING_CONFIG: "grounding"}  # fmt: skip
    card = DatasetCard.load(built_dataset / "README.md")
    data = card.data.to_dict()
    configs = {c["config_name"] for c in data["configs"]}
    assert GROUNDING_CONFIG in configs and inspect_config(GROUNDING_CONFIG) not in configs
    info = next(i for i in data["dataset_info"] if i["config_name"] == GROUNDING_CONFIG)
    names = [f["name"] for f in info["features"]]
    assert {"query", "bbox", "points", "mask", "finding", "lesion_pixels"} <= set(names)
    assert next(f for f in info["features"] if f["name"] == "mask")["dtype"] == "image"
    ds = load_dataset(str(built_dataset), GROUNDING_CONFIG)
    assert {s["name"]: s["num_examples"] for s in info["splits"]} == {
        split: len(rows) for split, rows in ds.items()
    }
    text = " ".join(card.text.split())
    for phrase in ("x = column, y = row", "end-exclusive", "504 x 504", "model_training.grounding",
                   "principal (major) axis", manifest["grounding"]["point_method"],
                   f"`{EVAL_FILE}` (Inspect's multiple-choice benchmark) covers the "
                   "classification configs only"):  # fmt: skip
        assert phrase in text, phrase
    assert GROUNDING_QUERY_TEMPLATE in text
    spec = yaml.safe_load((built_dataset / EVAL_FILE).read_text())
    assert {t["id"] for t in spec["tasks"]} == set(VARIANTS)
    assert not (built_dataset / inspect_config(GROUNDING_CONFIG)).exists()


# --- hand-made cases: exact geometry ---


def test_mask_is_the_selected_component_and_points_follow_the_documented_rule(hand_made):
    """A 20 x 10 lesion and, on the same slice and finding, a smaller 6 x 6 one: the grounding
    target is the larger component only. Its major axis is x, so it splits into two 10 x 10
    halves; each half's most interior pixels are its 4 centre pixels (distance 5), equally near
    the centroid, so the first in row-major order wins: (84, 24) and (94, 24)."""
    ct = blank_ct(SHAPE)
    big = box_mask(SHAPE, slice(80, 100), slice(20, 30), SLICES)
    small = box_mask(SHAPE, slice(10, 16), slice(60, 66), SLICES)
    hand_made.add("train_1_a_1.nii.gz", ct, (big | small)[None], ["2d"])
    hand_made.write_index()
    rows = _rows(hand_made, BuildOptions(min_box_pixels=0))
    assert [r["slice_index"] for r in rows] == [3, 4, 5]
    expected = np.zeros((128, 128), bool)
    expected[20:30, 80:100] = True  # rows = y, columns = x
    for row in rows:
        mask = _decode(row["mask_png"]) == 255
        assert (mask == expected).all()
        assert row["bbox"] == row["grounding_bbox"] == [80, 20, 100, 30]
        assert row["points"] == [[84, 24], [94, 24]]
        assert row["lesion_pixels"] == 200


def test_same_inputs_give_the_same_points(hand_made):
    ct = blank_ct(SHAPE)
    lesion = np.zeros(SHAPE, np.uint8)
    xx, yy = np.meshgrid(np.arange(128), np.arange(128), indexing="ij")
    disc = (xx - 70.3) ** 2 + (yy - 50.8) ** 2 <= 9.5**2  # a disc: no preferred axis
    lesion[disc, 3:6] = 1
    hand_made.add("train_1_a_1.nii.gz", ct, lesion[None], ["2b"])
    hand_made.write_index()
    first = _rows(hand_made, BuildOptions())
    second = _rows(hand_made, BuildOptions())
    assert [r["points"] for r in first] == [r["points"] for r in second]
    assert [r["mask_png"] for r in first] == [r["mask_png"] for r in second]
    for row in first:
        (ax, ay), (bx, by) = row["points"]
        assert np.hypot(ax - bx, ay - by) >= 8  # two distinct points, one in each half
        _check_target(Image.open(io.BytesIO(row["mask_png"])), (128, 128), row["grounding_bbox"],
                      row["points"])  # fmt: skip


# written size -> the stored box: 2x up, every native pixel becomes 2 x 2; 2x down, the odd
# rows and columns are read (centre 2i + 1); 48 / 128, the native pixels floor((i + 0.5) * 8 / 3)
RESIZED_BOXES = {256: [20, 80, 140, 120], 64: [5, 20, 15, 30], 48: [4, 15, 11, 22]}


@pytest.mark.parametrize("image_size", sorted(RESIZED_BOXES))
def test_image_size_keeps_box_the_tight_box_of_the_mask(hand_made, image_size):
    """Rescaled images: the mask is resized with nearest neighbour (pixel centres), the box is
    recomputed from it and the points lie inside. The lesion is a blob (x 10-29, y 40-59) joined
    to a smaller one (x 60-69) by a one-pixel bridge on row 50, which downscaling misses: the
    two pieces fall apart and the larger one is kept."""
    ct = blank_ct(SHAPE)
    lesion = np.zeros(SHAPE, np.uint8)
    lesion[10:30, 40:60, SLICES] = 1  # 400 px
    lesion[60:70, 45:55, SLICES] = 1  # 100 px
    lesion[30:60, 50, SLICES] = 1  # the bridge
    hand_made.add("train_1_a_1.nii.gz", ct, lesion[None], ["2c"])
    hand_made.write_index()
    rows = _rows(hand_made, BuildOptions(image_size=image_size))
    native = lesion[:, :, 3].T.astype(bool)  # rows = y, columns = x
    for row in rows:
        plain = Image.open(io.BytesIO(row["plain_png"]))
        mask_image = Image.open(io.BytesIO(row["mask_png"]))
        assert plain.size == (image_size, image_size)
        _check_target(mask_image, plain.size, row["grounding_bbox"], row["points"])
        assert row["grounding_bbox"] == RESIZED_BOXES[image_size]
        mask = np.asarray(mask_image) == 255
        if image_size == 256:
            assert (mask == np.kron(native, np.ones((2, 2), bool))).all()
            assert row["bbox"] == row["grounding_bbox"]  # the classification box agrees
        else:  # only the larger blob's sampled pixels: a full rectangle
            x0, y0, x1, y1 = row["grounding_bbox"]
            assert mask.sum() == (x1 - x0) * (y1 - y0)


def test_a_thin_lesion_that_nearest_neighbour_misses_keeps_a_mask(hand_made):
    """A one-pixel line on row 50 falls between the rows 48-pixel sampling reads: its pixel
    centres are mapped instead, so the row still has its target."""
    ct = blank_ct(SHAPE)
    lesion = np.zeros(SHAPE, np.uint8)
    lesion[10:110, 50, SLICES] = 1  # x 10-109 on row y = 50: 100 px
    hand_made.add("train_1_a_1.nii.gz", ct, lesion[None], ["2a"])
    hand_made.write_index()
    rows = _rows(hand_made, BuildOptions(image_size=48))
    for row in rows:
        _check_target(Image.open(io.BytesIO(row["mask_png"])), (48, 48), row["grounding_bbox"],
                      row["points"])  # fmt: skip
        # centres x + 0.5 of 10..109 -> floor(10.5 * 0.375) = 3 .. floor(109.5 * 0.375) = 41
        assert row["grounding_bbox"] == [3, 18, 42, 19]


# --- options and cache ---


def test_query_template_option_and_its_refusal(hand_made, tmp_path, capsys):
    ct = blank_ct(SHAPE)
    hand_made.add("train_1_a_1.nii.gz", ct, box_mask(SHAPE, slice(40, 60), slice(40, 60),
                                                     SLICES)[None], ["2d"])  # fmt: skip
    hand_made.add("train_2_a_1.nii.gz", ct, box_mask(SHAPE, slice(20, 40), slice(60, 80),
                                                     SLICES)[None], ["2e"])  # fmt: skip
    hand_made.write_index()
    out = tmp_path / "built"
    argv = ["build", "--rex-dir", str(hand_made.rex_dir), "--ctrate-dir",
            str(hand_made.ctrate_dir), "--out", str(out), "--no-progress"]  # fmt: skip
    template = "Where is it? {finding} (answer with a box)"
    assert main([*argv, "--configs", GROUNDING_CONFIG, "--grounding-query", template]) == 0
    manifest = json.loads((out / "build_manifest.json").read_text())
    assert list(manifest["configs"]) == [GROUNDING_CONFIG]
    rows = load_dataset(str(out), GROUNDING_CONFIG)
    queries = [q for split in rows.values() for q in split["query"]]
    findings = [f for split in rows.values() for f in split["finding"]]
    assert queries == [f"Where is it? {f} (answer with a box)" for f in findings]
    assert {"finding 0 (2d)", "finding 0 (2e)"} == set(findings)
    capsys.readouterr()
    assert main([*argv, "--grounding-query", "Where is {lesion}?"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--grounding-query" in err and "{finding}" in err


def test_cache_of_the_earlier_format_is_not_reused(tmp_path):
    """The per-case cache folder is keyed by the cache format and schema as well: a cache
    written before the grounding columns existed (keyed by the options and class map only)
    lies in another folder and is never read."""
    options, class_map = BuildOptions(), load_class_map()
    mapping = json.dumps({"classes": class_map.classes, "codes": class_map.codes}, sort_keys=True)
    earlier = tmp_path / f"cases-{options.fingerprint(mapping)}"
    current = cache_folder(tmp_path, options, class_map)
    assert current != earlier and current.parent == earlier.parent
    # the query template is applied when rows are written: it does not invalidate the cache
    assert cache_folder(tmp_path, BuildOptions(grounding_query="{finding}"), class_map) == current


def test_grounding_row_maps_the_cached_columns():
    cached = {
        "case_id": "train_1_a_1", "patient_id": "train_1", "finding_index": 2, "slice_index": 7,
        "answer": "emphysema", "category_code": "2a", "finding": "Mild emphysema.",
        "lesion_pixels": 120, "spacing_mm": [0.7, 0.7, 1.5], "plain_png": b"plain",
        "mask_png": b"mask", "grounding_bbox": [1, 2, 3, 4], "points": [[1, 2], [2, 3]],
    }  # fmt: skip
    row = grounding_row(cached, "Q: {finding}")
    assert row["id"] == "train_1_a_1-f2-s7" and row["query"] == "Q: Mild emphysema."
    assert row["image"]["bytes"] == b"plain" and row["mask"]["bytes"] == b"mask"
    assert row["bbox"] == [1, 2, 3, 4] and row["points"] == [[1, 2], [2, 3]]
    assert row["label"] == row["answer"] == "emphysema"
