"""Never build bad data silently (issue 20, class 2): non-finite voxels, dataset.json entries
that do not fit ReXGroundingCT's schema, and a dataset.json of the wrong shape; and a dataset
whose build is incomplete is refused for training unless the user allows it."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from datasets import load_dataset

from dataset_builder import BuildOptions, build_repo
from dataset_builder.cli import main
from dataset_builder.sources import CaseError
from model_training.configs import CTRateVQAArguments
from model_training.data import DatasetError, load_task_rows, load_vqa

from .conftest import LPS_AFFINE, blank_ct, box_mask, write_nifti

SHAPE = (64, 64, 6)
LESION = (slice(20, 40), slice(20, 40), slice(1, 5))


def _add(source, number: int, code: str = "2d") -> str:
    """A good case ``train_<number>_a_1``; returns its name."""
    name = f"train_{number}_a_1.nii.gz"
    source.add(name, blank_ct(SHAPE), box_mask(SHAPE, *LESION)[None], [code])
    return name


def _one_line_error(code: object, err: str, *names: str) -> None:
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for name in names:
        assert name in err, err


def _build_argv(source, out: Path, *extra: str) -> list[str]:
    return ["build", "--rex-dir", str(source.rex_dir), "--ctrate-dir", str(source.ctrate_dir),
            "--out", str(out), "--no-progress", *extra]  # fmt: skip


# --- non-finite voxels: the case is skipped, naming the file -----------------------------------


def _non_finite_source(hand_made):
    _add(hand_made, 1)
    nan_ct, inf_ct, nan_mask, huge_mask = (_add(hand_made, n) for n in (2, 3, 4, 5))
    ct = np.full(SHAPE, np.nan, dtype=np.float32)  # all NaN: a flat grey image before
    write_nifti(hand_made.ct_path(nan_ct), ct, LPS_AFFINE)
    ct = blank_ct(SHAPE).astype(np.float32)
    ct[0, 0, 0] = np.inf
    write_nifti(hand_made.ct_path(inf_ct), ct, LPS_AFFINE)
    mask = box_mask(SHAPE, *LESION).astype(np.float32)
    mask[:8, :8, :] = np.nan  # a lesion at [0, 0, 8, 8] on every slice before
    write_nifti(hand_made.rex_dir / "segmentations" / nan_mask, mask[None], np.eye(4))
    mask = box_mask(SHAPE, *LESION).astype(np.float32)
    mask[:8, :8, :] = 1e12  # no int32 label: it wrapped around before
    write_nifti(hand_made.rex_dir / "segmentations" / huge_mask, mask[None], np.eye(4))
    hand_made.write_index()
    return hand_made


def test_non_finite_voxels_skip_the_case_naming_the_file(hand_made, tmp_path):
    source = _non_finite_source(hand_made)
    out = tmp_path / "out"
    manifest = build_repo(source.rex_dir, source.ctrate_dir, out, BuildOptions(), progress=False)
    reasons = {s["case"]: s["reason"] for s in manifest["skipped"]}
    assert "all 24576 voxels not finite" in reasons["train_2_a_1.nii.gz"]
    assert "1 of 24576 voxels not finite" in reasons["train_3_a_1.nii.gz"]
    for case in ("train_2_a_1", "train_3_a_1"):
        assert f"CT volume ct-rate/dataset/train_fixed/{case[:7]}/" in reasons[f"{case}.nii.gz"]
    assert "mask rexgroundingct/segmentations/train_4_a_1.nii.gz" in reasons["train_4_a_1.nii.gz"]
    assert "NaN" in reasons["train_4_a_1.nii.gz"]
    assert "beyond" in reasons["train_5_a_1.nii.gz"]
    rows = load_dataset(str(out), "zoom")
    assert {case for split in rows.values() for case in split["case_id"]} == {"train_1_a_1"}
    assert all(split["bbox"].count([0, 0, 8, 8]) == 0 for split in rows.values())
    card = (out / "README.md").read_text()
    assert all(f"train_{n}_a_1.nii.gz" in card for n in (2, 3, 4, 5))


def test_strict_stops_on_a_nan_ct_in_one_line_with_workers(hand_made, tmp_path, capsys):
    """Two worker processes: the case's error comes back from its process (it hung before)."""
    source = _non_finite_source(hand_made)
    source.entries = source.entries[:2]
    source.write_index()
    code = main(_build_argv(source, tmp_path / "out", "--strict", "--num-workers", "2"))
    _one_line_error(code, capsys.readouterr().err, "train_2_a_1.nii.gz", "not finite", "CT")
    error = pickle.loads(pickle.dumps(CaseError("train_2_a_1.nii.gz", "why")))
    assert (error.case, error.reason) == ("train_2_a_1.nii.gz", "why")


# --- dataset.json entries: one schema, a bad entry skipped naming the case and field -----------

BAD_ENTRIES = {  # what the entry is given -> the field the reason names
    "no categories": ({"categories": None}, "'categories' is missing"),
    "empty categories": ({"categories": {}}, "'categories' must be a non-empty object"),
    "shape of text": ({"shape": ["a", 64, 16]}, "'shape' must be a list of 3 positive"),
    "categories list": ({"categories": [1, 2]}, "'categories' must be"),
    "code not text": ({"categories": {"0": 5}}, "'categories' must be"),
    "channel not index": ({"findings": {"x": "a"}, "categories": {"x": "2d"}}, "'findings'"),
    "sentence not text": ({"findings": {"0": ["a"]}}, "'findings' must be"),
    "channels differ": ({"findings": {"1": "a"}}, "must list the same mask channels"),
    "pixels negative": ({"pixels": {"0": -3}}, "'pixels' must be"),
    "name not text": ({"name": 7}, "'name' must be"),
}


def _entry(source, number: int, change: dict) -> dict:
    entry = {**source.entries[0], "name": f"train_{number}_a_1.nii.gz", **change}
    return {key: value for key, value in entry.items() if value is not None}


def test_bad_entries_are_skipped_naming_file_case_and_field(hand_made, tmp_path):
    _add(hand_made, 1)
    extra = [_entry(hand_made, n, change) for n, (change, _) in enumerate(BAD_ENTRIES.values(), 2)]
    hand_made.write_index(extra=[*extra, 5])
    out = tmp_path / "out"
    manifest = build_repo(
        hand_made.rex_dir, hand_made.ctrate_dir, out, BuildOptions(), progress=False
    )
    reasons = {s["case"]: s["reason"] for s in manifest["skipped"]}
    for n, (label, (_, field)) in enumerate(BAD_ENTRIES.items(), 2):  # train[0] is the good one
        case = (
            f"dataset.json train[{n - 1}]" if label == "name not text" else f"train_{n}_a_1.nii.gz"
        )
        assert field in reasons[case] and "rexgroundingct/dataset.json" in reasons[case], label
    assert "not an object (got 5)" in reasons[f"dataset.json train[{len(BAD_ENTRIES) + 1}]"]
    assert len(reasons) == len(BAD_ENTRIES) + 1
    assert manifest["counts"]["cases_used"] == 1
    card = (out / "README.md").read_text()
    assert "train_2_a_1.nii.gz" in card and "'categories' is missing" in card


def test_strict_stops_on_a_bad_entry_before_out_is_touched(hand_made, tmp_path, capsys):
    _add(hand_made, 1)
    hand_made.write_index(extra=[_entry(hand_made, 2, {"shape": ["a", 64, 16]})])
    out = tmp_path / "out"
    code = main(_build_argv(hand_made, out, "--strict"))
    err = capsys.readouterr().err
    _one_line_error(code, err, "train_2_a_1.nii.gz", "dataset.json", "'shape'")
    assert not out.exists()


# --- dataset.json's top level: one line naming the file and field, --out untouched ------------

BAD_INDEXES = {
    "split not a list": ('{"train": [], "val": 5}', "field 'val' must be a list"),
    "split an object": ('{"train": {}, "val": []}', "field 'train' must be a list"),
    "a number": ("5", "expected an object of split lists"),
    "no cases": ('{"train": [], "val": []}', "lists no case"),
    "an empty list": ("[]", "lists no case"),
    "empty file": ("", "not valid JSON"),
}


@pytest.mark.parametrize("text, message", BAD_INDEXES.values(), ids=list(BAD_INDEXES))
def test_bad_dataset_json_stops_before_out_is_touched(hand_made, tmp_path, capsys, text, message):
    _add(hand_made, 1)
    hand_made.write_index()
    (hand_made.rex_dir / "dataset.json").write_text(text)
    out = tmp_path / "out"
    code = main(_build_argv(hand_made, out))
    _one_line_error(code, capsys.readouterr().err, "dataset.json", message)
    assert not out.exists()


def test_bad_dataset_json_as_users_see_it(hand_made, tmp_path):
    _add(hand_made, 1)
    hand_made.write_index()
    (hand_made.rex_dir / "dataset.json").write_text('{"train": [], "val": 5}')
    argv = _build_argv(hand_made, tmp_path / "out")
    done = subprocess.run([sys.executable, "-m", "dataset_builder", *argv],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    _one_line_error(done.returncode, done.stderr.strip(), "dataset.json", "'val'")


# --- an incomplete build is refused for training unless allowed --------------------------------


@pytest.fixture
def incomplete_build(built_dataset: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "ct-rate-vqa"
    shutil.copytree(built_dataset, folder, ignore=shutil.ignore_patterns(".build_cache"))
    manifest = json.loads((folder / "build_manifest.json").read_text())
    manifest["status"] = "in_progress"
    (folder / "build_manifest.json").write_text(json.dumps(manifest))
    return folder


def test_incomplete_build_is_refused_for_training_unless_allowed(incomplete_build):
    manifest = str(incomplete_build / "build_manifest.json")
    with pytest.raises(DatasetError) as refused:
        load_vqa(str(incomplete_build), "zoom", "train")
    message = str(refused.value)
    assert manifest in message and "'in_progress'" in message and "\n" not in message
    args = CTRateVQAArguments(dataset_name=str(incomplete_build), dataset_limit=2)
    with pytest.raises(DatasetError, match="allow_incomplete_build"):
        load_task_rows(args)
    args = CTRateVQAArguments(
        dataset_name=str(incomplete_build), dataset_limit=2, allow_incomplete_build=True
    )
    assert len(load_task_rows(args)["classification"]) == 2


def test_a_training_stage_refuses_an_incomplete_build_in_one_line(incomplete_build, capsys):
    from model_training.sft import main as sft_main

    out = incomplete_build.parent / "sft"
    argv = ["--dataset_name", str(incomplete_build), "--output_dir", str(out),
            "--model_name_or_path", "unused", "--use_cpu", "true", "--bf16", "false"]  # fmt: skip
    code = sft_main(argv)  # the dataset is read before the model
    _one_line_error(code, capsys.readouterr().err, "build_manifest.json", "allow_incomplete_build")
    assert not out.exists()
