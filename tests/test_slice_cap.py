"""``slice_cap_unit``: ``slices_per_case`` caps each finding (mask channel) or the whole volume,
on hand-made NIfTI cases through the real builder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from datasets import load_dataset
from huggingface_hub import DatasetCard

from dataset_builder import BuildOptions, build_repo
from dataset_builder.case_processing import process_case
from dataset_builder.class_map import load_class_map
from dataset_builder.cli import main
from dataset_builder.sources import load_cases

from .conftest import blank_ct, box_mask

SHAPE = (96, 96, 64)
CAP = 20
# two findings of one volume, each qualifying on 40 slices (10 x 10 = 100 px > 1300 * 96^2 /
# 512^2 = 45.7 px): finding 0 on slices 0-39, finding 1 on slices 20-59
FIRST = (slice(10, 20), slice(10, 20), slice(0, 40))
SECOND = (slice(60, 70), slice(60, 70), slice(20, 60))


def _source(hand_made, name: str = "train_1_a_1.nii.gz"):
    masks = np.stack([box_mask(SHAPE, *FIRST), box_mask(SHAPE, *SECOND)])
    hand_made.add(name, blank_ct(SHAPE), masks, ["2d", "2b"])
    hand_made.write_index()
    specs, refused = load_cases(hand_made.rex_dir, hand_made.ctrate_dir, ["train"])
    assert not refused
    return next(s for s in specs if s.name == name)


def _evenly_spaced(first: int, last: int) -> list[int]:
    """Slices np.linspace picks: CAP of first..last, both ends included."""
    return [first + int(i) for i in np.linspace(0, last - first, CAP).round()]


def test_finding_unit_keeps_the_cap_per_finding_evenly_spaced(hand_made):
    spec = _source(hand_made)
    options = BuildOptions(slices_per_case=CAP, slice_cap_unit="finding")
    rows, report = process_case(spec, options, load_class_map())
    assert report.candidates == 80 and report.rows == 2 * CAP
    by_finding = {f: [r["slice_index"] for r in rows if r["finding_index"] == f] for f in (0, 1)}
    assert by_finding[0] == _evenly_spaced(0, 39)
    assert by_finding[1] == _evenly_spaced(20, 59)
    gaps = np.diff(by_finding[0])
    assert set(gaps.tolist()) <= {2, 3}  # 40 slices / 20 rows: every second or third slice
    assert report.class_counts == {
        "consolidation/atelectasis": CAP,
        "pulmonary nodules/masses": CAP,
    }
    keys = [(r["slice_index"], r["finding_index"]) for r in rows]
    assert keys == sorted(keys)  # rows stay in (slice, finding) order
    again, _ = process_case(spec, options, load_class_map())
    assert [(r["slice_index"], r["finding_index"], r["zoom_png"]) for r in again] == [
        (r["slice_index"], r["finding_index"], r["zoom_png"]) for r in rows
    ]


def test_volume_unit_keeps_the_cap_for_the_whole_volume(hand_made):
    spec = _source(hand_made)
    options = BuildOptions(slices_per_case=CAP, slice_cap_unit="volume")
    rows, report = process_case(spec, options, load_class_map())
    assert report.candidates == 80 and report.rows == CAP
    # evenly spaced over the 80 candidates in (slice, finding) order
    ordered = sorted([(k, 0) for k in range(40)] + [(k, 1) for k in range(20, 60)])
    picks = np.linspace(0, len(ordered) - 1, CAP).round().astype(int)
    assert [(r["slice_index"], r["finding_index"]) for r in rows] == [ordered[i] for i in picks]


def test_few_candidates_are_all_kept_under_either_unit(hand_made):
    spec = _source(hand_made)
    for unit in ("finding", "volume"):
        rows, report = process_case(
            spec, BuildOptions(slices_per_case=100, slice_cap_unit=unit), load_class_map()
        )
        assert (
            report.rows == 80 and len({(r["slice_index"], r["finding_index"]) for r in rows}) == 80
        )


def test_unit_changes_the_cache_key_and_the_built_rows(hand_made, tmp_path):
    _source(hand_made)
    volume, finding = BuildOptions(slice_cap_unit="volume"), BuildOptions(slice_cap_unit="finding")
    assert volume.fingerprint() != finding.fingerprint()
    assert BuildOptions(split_strategy="random").fingerprint() == finding.fingerprint()
    out = tmp_path / "out"
    for options, rows in ((volume, CAP), (finding, 2 * CAP)):
        manifest = build_repo(
            hand_made.rex_dir, hand_made.ctrate_dir, out, options, variants=("plain",),
            progress=False,
        )  # fmt: skip
        assert manifest["counts"]["cases_reused_from_cache"] == 0  # not the other unit's rows
        assert len(load_dataset(str(out), "plain")["train"]) == rows
        assert manifest["parameters"]["slice_cap_unit"] == options.slice_cap_unit
    card = DatasetCard.load(out / "README.md").text
    assert "| `slice_cap_unit` | `finding` | ours: reading of the paper's 84,088" in card
    assert "At most `slices_per_case` candidates per\n   finding (`slice_cap_unit`)" in card
    assert "27.6" in card and "one ReXGroundingCT report sentence" in card
    written = json.loads((out / "build_manifest.json").read_text())
    assert written["parameter_docs"]["slice_cap_unit"]["source"].startswith("ours: reading")


@pytest.mark.parametrize("option", ["--slice-cap-unit", "--split-strategy"])
def test_unknown_choice_is_one_line_naming_the_option(tmp_path, capsys, option):
    out = tmp_path / "out"
    argv = ["build", "--synthetic", "2", "--out", str(out), "--no-progress", option, "case"]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert option in err and "invalid choice" in err
    assert not out.exists()


@pytest.mark.parametrize("name", ["slice_cap_unit", "split_strategy"])
def test_unknown_choice_in_python_names_the_option(name):
    with pytest.raises(ValueError, match=f"BuildOptions.{name} .*must be one of"):
        BuildOptions(**{name: "case"})
