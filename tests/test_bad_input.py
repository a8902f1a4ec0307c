"""Bad input is reported with the case and the reason, skipped (or fatal with strict), and
listed in the manifest; the good cases still build."""

from __future__ import annotations

import json

import numpy as np
import pytest
from datasets import load_dataset

from dataset_builder import BuildOptions, build_repo
from dataset_builder.sources import CaseError

from .conftest import blank_ct, box_mask

SHAPE = (96, 96, 8)


def _lesion() -> np.ndarray:
    return box_mask(SHAPE, slice(30, 50), slice(30, 50), slice(2, 6))


def _bad_source(hand_made):
    good = _lesion()
    hand_made.add("train_1_a_1.nii.gz", blank_ct(SHAPE), good[None], ["2d"])
    hand_made.add("train_2_a_1.nii.gz", blank_ct(SHAPE), good[None], ["2c"])
    hand_made.add("train_3_a_1.nii.gz", blank_ct(SHAPE), good[None], ["2d"], write_ct=False)
    hand_made.add("train_4_a_1.nii.gz", blank_ct(SHAPE), good[None], ["2d"])
    truncated = hand_made.ct_path("train_4_a_1.nii.gz")
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    hand_made.add(
        "train_5_a_1.nii.gz",
        blank_ct(SHAPE),
        box_mask((96, 80, 8), slice(30, 50), slice(30, 50), slice(2, 6))[None],
        ["2d"],
    )
    hand_made.add("train_6_a_1.nii.gz", blank_ct(SHAPE), np.zeros((1, *SHAPE)), ["2d"])
    hand_made.add("train_7_a_1.nii.gz", blank_ct(SHAPE), np.stack([good, good]), ["9z", "2b"])
    hand_made.add("train_8_a_1.nii.gz", blank_ct(SHAPE), good[None], ["2g"])  # known, unused
    escape = {
        "name": "../../../etc/passwd.nii.gz",
        "findings": {"0": "x"},
        "categories": {"0": "2d"},
    }
    hand_made.write_index(extra=[escape, {**escape, "name": "/abs/train_9_a_1.nii.gz"}])
    return hand_made


def test_bad_cases_are_skipped_with_reasons_and_good_ones_build(hand_made, tmp_path):
    source = _bad_source(hand_made)
    out = tmp_path / "out"
    manifest = build_repo(source.rex_dir, source.ctrate_dir, out, BuildOptions(), progress=False)
    reasons = {s["case"]: s["reason"] for s in manifest["skipped"]}
    assert "CT volume not found" in reasons["train_3_a_1.nii.gz"]
    assert "truncated or corrupt" in reasons["train_4_a_1.nii.gz"]
    assert "does not match CT shape" in reasons["train_5_a_1.nii.gz"]
    assert "is empty" in reasons["train_6_a_1.nii.gz"]
    assert "unknown category code '9z'" in reasons["train_7_a_1.nii.gz"]
    escapes = [r for c, r in reasons.items() if "passwd" in c or "abs" in c]
    assert len(escapes) == 2 and all("path" in r for r in escapes)
    assert manifest["counts"]["unused_codes"] == {"2g": 1}
    assert manifest["counts"]["cases_without_rows"] == ["train_8_a_1.nii.gz"]
    assert manifest["status"] == "complete"
    on_disk = json.loads((out / "build_manifest.json").read_text())
    assert on_disk["skipped"] == manifest["skipped"]
    rows = load_dataset(str(out), "zoom")
    cases = {case for split in rows.values() for case in split["case_id"]}
    assert cases == {"train_1_a_1", "train_2_a_1", "train_7_a_1"}  # 7 keeps its 2b finding
    card = (out / "README.md").read_text()
    assert "train_3_a_1.nii.gz" in card  # the card lists skipped cases too


@pytest.mark.parametrize(
    "name, message",
    [
        ("train_3_a_1.nii.gz", "CT volume not found"),
        ("train_7_a_1.nii.gz", "unknown category code"),
    ],
)
def test_strict_stops_at_a_bad_case_and_names_it(hand_made, tmp_path, name, message):
    source = _bad_source(hand_made)
    source.entries = [e for e in source.entries if e["name"] in (name, "train_1_a_1.nii.gz")]
    source.write_index()
    with pytest.raises(CaseError) as info:
        build_repo(
            source.rex_dir,
            source.ctrate_dir,
            tmp_path / "out",
            BuildOptions(),
            strict=True,
            progress=False,
        )
    assert info.value.case == name and message in str(info.value)


def test_strict_refuses_path_escape(hand_made, tmp_path):
    source = _bad_source(hand_made)
    with pytest.raises(CaseError, match="path"):
        build_repo(
            source.rex_dir,
            source.ctrate_dir,
            tmp_path / "out",
            BuildOptions(),
            strict=True,
            progress=False,
        )


def test_missing_dataset_json_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset.json"):
        build_repo(tmp_path / "nope", tmp_path / "nope2", tmp_path / "out", progress=False)
