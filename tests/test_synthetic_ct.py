"""The synthetic chest-CT source writes exactly the ReXGroundingCT + CT-RATE layout."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from dataset_builder.class_map import load_class_map
from dataset_builder.sources import ENTRY_SCHEMA, entry_problems
from dataset_builder.synthetic_ct import (
    SynthConfig,
    config_help,
    ct_relative_path,
    synthesize,
)
from dataset_builder.synthetic_ct.plan import PAD_VALUE, PAD_VALUE_ALT, _plan
from dataset_builder.synthetic_ct.writer import MARKER_NAME

CASES, SEED, SIZE, SLICES = 14, 5, 128, 24
NAME = re.compile(r"^(train|valid)_(\d+)_([a-h])_(\d+)\.nii\.gz$")
ENTRY_KEYS = {"name", "findings", "entity_counts", "shape", "pixels", "categories", "protocol"}
BUILDER_MIN_PIXELS = 1300 * (SIZE / 512) ** 2  # the builder's 1300 px at 512, scaled by area
HU_SIGNATURES = {  # code: (lowest, highest) mean HU inside its mask
    "2d": (-100, 200),  # solid nodule / mass
    "2c": (-750, -300),  # ground glass
    "1c": (-1024, -900),  # emphysema
    "2e": (0, 30),  # effusion
    "2b": (-200, 100),  # consolidation
}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("synthetic_ct")
    summary = synthesize(out, SynthConfig(cases=CASES, seed=SEED, size=SIZE, slices=SLICES))
    dataset = json.loads((Path(summary["rex_dir"]) / "dataset.json").read_text())
    return {"out": out, "summary": summary, "dataset": dataset}


def _patient(name: str) -> str:
    return "_".join(name.split("_")[:2])


def _entries(source: dict) -> list[dict]:
    return source["dataset"]["train"] + source["dataset"]["val"]


def _ct_image(source: dict, name: str) -> nib.Nifti1Image:
    return nib.load(Path(source["summary"]["ctrate_dir"]) / ct_relative_path(name))


def _mask_image(source: dict, name: str) -> nib.Nifti1Image:
    return nib.load(Path(source["summary"]["rex_dir"]) / "segmentations" / name)


def _channels(source: dict, name: str) -> np.ndarray:
    """Mask as (F, H, W, D), whether it was written 3-D or 4-D."""
    mask = np.asanyarray(_mask_image(source, name).dataobj)
    return mask[None] if mask.ndim == 3 else mask


def _ct(source: dict, name: str) -> np.ndarray:
    return np.asanyarray(_ct_image(source, name).dataobj)


# ------------------------------------------------------------------------------------------
# Layout and dataset.json
# ------------------------------------------------------------------------------------------
def test_layout_has_exactly_the_expected_files(source):
    out, summary = source["out"], source["summary"]
    assert summary["rex_dir"] == str(out / "rexgroundingct")
    assert summary["ctrate_dir"] == str(out / "ct-rate")
    names = [e["name"] for e in _entries(source)]
    assert len(names) == len(set(names)) == CASES == summary["cases"]
    expected = {Path("rexgroundingct/dataset.json"), Path(MARKER_NAME)}  # + "ours, phantom"
    for name in names:
        expected.add(Path("rexgroundingct/segmentations") / name)
        parts = name.removesuffix(".nii.gz").split("_")
        folder = "valid_fixed" if parts[0] == "valid" else "train_fixed"
        patient, scan = "_".join(parts[:2]), "_".join(parts[:3])
        expected.add(Path("ct-rate/dataset") / folder / patient / scan / name)
    written = {p.relative_to(out) for p in out.rglob("*") if p.is_file()}
    assert written == expected


def test_dataset_json_schema(source):
    dataset = source["dataset"]
    assert set(dataset) == {"train", "val", "test"} and dataset["test"] == []
    class_map = load_class_map()
    for entry in _entries(source):
        assert set(entry) == ENTRY_KEYS
        assert NAME.match(entry["name"]), entry["name"]
        assert entry["shape"] == [SIZE, SIZE, SLICES]
        assert entry["protocol"] == "protocol1"
        keys = [str(i) for i in range(len(entry["findings"]))]
        assert 1 <= len(keys) <= 3
        for field in ("findings", "entity_counts", "pixels", "categories"):
            assert list(entry[field]) == keys, field
        for key in keys:
            sentence = entry["findings"][key]
            assert isinstance(sentence, str) and len(sentence) > 10 and sentence.endswith(".")
            assert class_map.is_known(entry["categories"][key])
            assert 1 <= entry["entity_counts"][key] <= 3
            assert entry["pixels"][key] > 0


def test_dataset_json_fits_the_builders_schema(source):
    """The writer and the builder's one schema check (sources.ENTRY_SCHEMA) agree: every
    entry, and every field the schema knows."""
    assert set(ENTRY_SCHEMA) == ENTRY_KEYS
    assert all(entry_problems(entry) == [] for entry in _entries(source))
    entry = _entries(source)[0]
    assert entry_problems({**entry, "shape": ["a", SIZE, SLICES]}) == [
        f"field 'shape' must be a list of 3 positive integers [H, W, D], got [\"a\", {SIZE}, "
        f"{SLICES}]"
    ]


def test_summary_counts_match_dataset_json(source):
    summary, entries = source["summary"], _entries(source)
    codes: dict[str, int] = defaultdict(int)
    for entry in entries:
        for code in entry["categories"].values():
            codes[code] += 1
    assert summary["codes"] == dict(codes)
    assert summary["findings"] == sum(len(e["findings"]) for e in entries)
    patients = {_patient(e["name"]) for e in entries}
    assert summary["patients"] == len(patients)


def test_val_split_holds_whole_patients(source):
    val = source["dataset"]["val"]
    assert 1 <= len(val) <= round(0.3 * CASES)
    train = source["dataset"]["train"]
    assert not {_patient(e["name"]) for e in val} & {_patient(e["name"]) for e in train}


def test_valid_patients_live_under_valid_fixed(source):
    names = [e["name"] for e in _entries(source)]
    valid = [n for n in names if n.startswith("valid_")]
    assert valid and len(valid) < len(names)
    for name in valid:
        assert ct_relative_path(name).parts[:2] == ("dataset", "valid_fixed")


def test_patients_have_several_scans_and_reconstructions(source):
    volumes: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for entry in _entries(source):
        prefix, number, scan, recon = NAME.match(entry["name"]).groups()
        volumes[f"{prefix}_{number}"].append((scan, recon))
    multi = [v for v in volumes.values() if len(v) > 1]
    assert len(multi) >= 2
    assert any(len({s for s, _ in v}) > 1 for v in multi)  # two scans
    assert any(len(v) > len({s for s, _ in v}) for v in multi)  # two reconstructions


def test_reconstructions_share_anatomy_and_mask_but_not_noise(source):
    by_scan: dict[str, list[str]] = defaultdict(list)
    for entry in _entries(source):
        by_scan["_".join(entry["name"].split("_")[:3])].append(entry["name"])
    pairs = [names for names in by_scan.values() if len(names) > 1]
    assert pairs
    first, second = pairs[0][:2]
    assert np.array_equal(_channels(source, first), _channels(source, second))
    assert np.allclose(_ct_image(source, first).affine, _ct_image(source, second).affine)
    ct1, ct2 = _ct(source, first).astype(int), _ct(source, second).astype(int)
    inside = (ct1 > -1100) & (ct2 > -1100)
    assert not np.array_equal(ct1, ct2)
    assert abs(np.mean(ct1[inside] - ct2[inside])) < 5  # same anatomy, different noise


# ------------------------------------------------------------------------------------------
# CT volumes
# ------------------------------------------------------------------------------------------
def test_ct_is_int16_hu_stored_lps_with_realistic_spacing(source):
    for entry in _entries(source):
        image = _ct_image(source, entry["name"])
        assert image.get_data_dtype() == np.int16
        assert image.dataobj.slope == 1 and image.dataobj.inter == 0
        assert np.asanyarray(image.dataobj).dtype == np.int16
        assert image.shape == tuple(entry["shape"])
        assert nib.aff2axcodes(image.affine) == ("L", "P", "S")
        sx, sy, sz = (float(z) for z in image.header.get_zooms())
        assert sx == pytest.approx(sy)
        assert 320 <= sx * SIZE <= 400  # field of view ~350 mm at any size
        assert 300 <= sz * SLICES <= 380  # the chest spans the slices


def test_simpleitk_reads_the_ct_as_lps_int16(source):
    name = _entries(source)[0]["name"]
    image = sitk.ReadImage(str(Path(source["summary"]["ctrate_dir"]) / ct_relative_path(name)))
    assert image.GetPixelID() == sitk.sitkInt16
    assert np.allclose(image.GetDirection(), np.eye(3).ravel())  # ITK is LPS: identity
    assert np.array_equal(sitk.GetArrayFromImage(image).T, _ct(source, name))


def test_padding_outside_the_circular_field_of_view(source):
    r = np.arange(SIZE) - (SIZE - 1) / 2
    radius2 = r[:, None] ** 2 + r[None, :] ** 2
    outside, inside = radius2 > (SIZE / 2) ** 2, radius2 <= (SIZE / 2 - 1) ** 2
    pads = set()
    for entry in _entries(source):
        ct = _ct(source, entry["name"])
        corner = np.unique(ct[outside])
        assert len(corner) == 1 and corner[0] <= -2048
        pads.add(int(corner[0]))
        assert ct[inside].min() >= -1024
    assert pads == {PAD_VALUE, PAD_VALUE_ALT}


def test_anatomy_is_in_radiological_orientation(source):
    left_over_right = []
    for entry in _entries(source):
        ct = _ct(source, entry["name"])
        h, w, d = ct.shape
        spine = np.nonzero(ct[h // 2 - 3 : h // 2 + 3] > 300)[1]
        assert spine.mean() > w / 2  # bone on the midline is posterior: high axis-1 index
        trachea = ct[h // 2 - 4 : h // 2 + 4, : int(w * 0.6), -2] < -950
        assert trachea.any()  # air in the midline at the top
        lung = (ct > -950) & (ct < -700)
        heart_level = lung[:, :, int(d * 0.3) : int(d * 0.5)]
        left_over_right.append(heart_level[h // 2 :].sum() / heart_level[: h // 2].sum())
    assert np.median(left_over_right) < 0.95  # the heart displaces the LEFT (high axis-0) lung


# ------------------------------------------------------------------------------------------
# Masks
# ------------------------------------------------------------------------------------------
def test_mask_format_matches_the_real_files(source):
    ndims = set()
    for entry in _entries(source):
        image = _mask_image(source, entry["name"])
        assert np.array_equal(image.affine, np.eye(4))
        assert image.get_data_dtype() in (np.uint8, np.uint16)
        findings = len(entry["findings"])
        if findings == 1:
            assert image.shape == tuple(entry["shape"])
        else:
            assert image.shape == (findings, *entry["shape"])
        assert image.shape[-3:] == _ct_image(source, entry["name"]).shape
        ndims.add(len(image.shape))
    assert ndims == {3, 4}


def test_pixels_and_entity_counts_equal_the_mask(source):
    for entry in _entries(source):
        channels = _channels(source, entry["name"])
        for key in entry["findings"]:
            channel = channels[int(key)]
            values = np.unique(channel[channel > 0])
            assert entry["pixels"][key] == int(np.count_nonzero(channel))
            assert entry["entity_counts"][key] == len(values)
            assert list(values) == list(range(1, len(values) + 1))


def test_every_class_and_lesion_survives_the_builder_threshold(source):
    class_map = load_class_map()
    classes = set()
    for entry in _entries(source):
        channels = _channels(source, entry["name"])
        for key, code in entry["categories"].items():
            classes.add(class_map.lookup(code))
            channel = channels[int(key)]
            for value in range(1, entry["entity_counts"][key] + 1):
                instance = channel == value
                big_slices = 0
                for k in range(instance.shape[2]):
                    labels, n = ndimage.label(instance[:, :, k], structure=np.ones((3, 3)))
                    if n and np.bincount(labels.ravel())[1:].max() >= BUILDER_MIN_PIXELS:
                        big_slices += 1
                assert big_slices >= 2, (entry["name"], code, value)
    assert set(class_map.classes) <= classes


def test_each_lesion_class_has_its_hu_signature(source):
    means: dict[str, list[float]] = defaultdict(list)
    for entry in _entries(source):
        ct, channels = _ct(source, entry["name"]), _channels(source, entry["name"])
        for key, code in entry["categories"].items():
            inside = ct[channels[int(key)] > 0].astype(float)
            means[code].append(inside.mean())
            if code in ("1a", "1b"):  # bronchial walls around air lumens
                assert (inside < -900).mean() > 0.02 and (inside > -100).mean() > 0.05
            if code in ("1d", "2a", "2f"):  # reticular walls and cysts
                assert (inside > -250).mean() > 0.05 and (inside < -700).mean() > 0.2
    assert set(HU_SIGNATURES) <= set(means)
    for code, (low, high) in HU_SIGNATURES.items():
        assert all(low < m < high for m in means[code]), (code, means[code])


# ------------------------------------------------------------------------------------------
# Determinism, options, validation
# ------------------------------------------------------------------------------------------
def _snapshot(out: Path) -> dict[str, object]:
    files = sorted(p for p in out.rglob("*.nii.gz"))
    arrays = {str(p.relative_to(out)): np.asanyarray(nib.load(p).dataobj) for p in files}
    return {"json": (out / "rexgroundingct" / "dataset.json").read_text(), "arrays": arrays}


def test_same_seed_same_files_different_seed_different(tmp_path):
    config = SynthConfig(cases=3, seed=11, size=64, slices=12)
    synthesize(tmp_path / "a", config)
    synthesize(tmp_path / "b", config)
    synthesize(tmp_path / "c", SynthConfig(cases=3, seed=12, size=64, slices=12))
    a, b, c = (_snapshot(tmp_path / x) for x in "abc")
    assert a["json"] == b["json"]
    assert a["arrays"].keys() == b["arrays"].keys()
    assert all(np.array_equal(a["arrays"][k], b["arrays"][k]) for k in a["arrays"])
    assert a["json"] != c["json"]


def test_full_size_volumes(tmp_path):
    summary = synthesize(tmp_path, SynthConfig(cases=1, seed=2, full_size=True))
    entry = json.loads((Path(summary["rex_dir"]) / "dataset.json").read_text())["train"][0]
    image = nib.load(Path(summary["ctrate_dir"]) / ct_relative_path(entry["name"]))
    h, w, d = image.shape
    assert (h, w) == (512, 512) and 260 <= d <= 340 and entry["shape"] == [h, w, d]
    sx, _, sz = (float(z) for z in image.header.get_zooms())
    assert 0.6 <= sx <= 0.8 and 0.9 <= sz <= 1.5


def test_plan_mixes_all_classes_and_a_few_unused_codes():
    class_map = load_class_map()
    plan = _plan(SynthConfig(cases=300, seed=1))
    codes = [f.code for scan in plan.scans for f in scan.findings]
    classes = [class_map.lookup(c) for c in codes]
    unused = classes.count(None) / len(classes)
    assert 0.01 < unused < 0.12
    counts = [classes.count(name) for name in class_map.classes]
    assert min(counts) > 0.6 * max(counts)  # roughly even across the seven classes
    assert {"1e", "2g"} & set(codes)


def test_progress_bar(tmp_path, capsys):
    synthesize(tmp_path, SynthConfig(cases=1, size=64, slices=8), progress=True)
    assert "synthetic CT" in capsys.readouterr().err


def test_every_option_has_help():
    assert set(config_help()) == {"cases", "seed", "size", "slices", "full_size"}
    assert all(text for text in config_help().values())


@pytest.mark.parametrize(
    ("option", "value"),
    [("cases", 0), ("size", 32), ("slices", 4), ("seed", -1), ("cases", 2.5)],
)
def test_bad_options_raise_clear_errors(option, value, tmp_path):
    with pytest.raises(ValueError, match=option):
        synthesize(tmp_path, SynthConfig(**{option: value}))
    assert not any(tmp_path.iterdir())
