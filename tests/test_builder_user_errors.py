"""User errors of `python -m dataset_builder` (issue 10): exit status 2, one line naming the
file or option and what to do; nothing the builder did not write is ever destroyed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import HfApi, snapshot_download

from dataset_builder import BuildOptions, build_repo
from dataset_builder.cli import main

from .conftest import SYNTH_CASES, blank_ct, box_mask

SHAPE = (96, 96, 8)


def _source(hand_made, codes: tuple[str, ...] = ("2d", "2c")):
    lesion = box_mask(SHAPE, slice(30, 50), slice(30, 50), slice(2, 6))
    for i, code in enumerate(codes, start=1):
        hand_made.add(f"train_{i}_a_1.nii.gz", blank_ct(SHAPE), lesion[None], [code])
    hand_made.write_index()
    return hand_made


def _run(argv: list[str], capsys) -> tuple[int | str | None, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    return code, capsys.readouterr().err.strip()


def _one_line_error(code: int, err: str, *names: str) -> None:
    assert code == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for name in names:
        assert name in err, err


def _build_argv(source, out: Path, *extra: str) -> list[str]:
    rex, ct = str(source.rex_dir), str(source.ctrate_dir)
    return ["build", "--rex-dir", rex, "--ctrate-dir", ct, "--out", str(out), "--no-progress"] + [
        *extra
    ]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


# --- 1, 5: what --out may be ---


def test_unrelated_non_empty_out_is_refused_and_left_as_it_was(hand_made, tmp_path, capsys):
    source = _source(hand_made)
    out = tmp_path / "my-project"
    for name, text in {
        "README.md": "my notes",
        "zoom/train-00000-of-00001.parquet": "mine",
        "plain/keep.txt": "mine",
    }.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    before = _snapshot(out)
    _one_line_error(*_run(_build_argv(source, out), capsys), str(out), "--force")
    # --force still never overwrites a file the builder did not write
    _one_line_error(*_run(_build_argv(source, out, "--force"), capsys), "README.md")
    assert _snapshot(out) == before


def test_force_adds_the_build_and_keeps_the_users_files(hand_made, tmp_path, capsys):
    source = _source(hand_made)
    out = tmp_path / "my-project"
    (out / "zoom").mkdir(parents=True)
    (out / "zoom" / "notes.txt").write_text("mine")
    (out / "data.csv").write_text("mine")
    assert _run(_build_argv(source, out, "--force"), capsys)[0] == 0
    assert (out / "zoom" / "notes.txt").read_text() == "mine"
    assert (out / "data.csv").read_text() == "mine"
    assert list((out / "zoom").glob("train-*.parquet"))


def test_rebuild_into_own_build_keeps_foreign_files(hand_made, tmp_path, capsys):
    source = _source(hand_made)
    out = tmp_path / "ct-rate-vqa"
    assert _run(_build_argv(source, out), capsys)[0] == 0
    (out / "plain" / "mine.txt").write_text("mine")
    stale = out / "plain" / "train-00007-of-00009.parquet"  # a shard name of ours: replaced
    stale.write_text("old")
    assert _run(_build_argv(source, out, "--seed", "1"), capsys)[0] == 0
    assert (out / "plain" / "mine.txt").read_text() == "mine"
    assert not stale.exists()


def test_rebuild_with_fewer_configs_removes_only_our_stale_shards(hand_made, tmp_path, capsys):
    """``--configs zoom`` over a three-config build: the other configs' shards stayed (and were
    pushed, though the card declares only zoom); now only shard files of ours go."""
    source = _source(hand_made)
    out = tmp_path / "ct-rate-vqa"
    assert _run(_build_argv(source, out), capsys)[0] == 0
    stale = ("plain", "grounding", "plain_inspect")
    assert all(list((out / name).glob("*-of-*.parquet")) for name in stale)
    (out / "plain" / "mine.txt").write_text("mine")
    (out / "grounding" / "train.parquet").write_text("mine")  # not a shard name of ours
    assert _run(_build_argv(source, out, "--configs", "zoom"), capsys)[0] == 0
    assert (out / "plain" / "mine.txt").read_text() == "mine"
    assert [p.name for p in (out / "plain").iterdir()] == ["mine.txt"]
    assert [p.name for p in (out / "grounding").iterdir()] == ["train.parquet"]
    assert not (out / "plain_inspect").exists()  # emptied by us: removed
    manifest = json.loads((out / "build_manifest.json").read_text())
    assert set(manifest["configs"]) == {"zoom", "zoom_inspect"}
    declared = {file for config in manifest["configs"].values()
                for files in config["data_files"].values() for file in files}  # fmt: skip
    shards = {p.relative_to(out).as_posix() for p in out.glob("*/*-of-*.parquet")}
    assert shards == declared


@pytest.mark.parametrize("where", ["rex", "ctrate", "inside"])
def test_out_in_an_input_folder_is_refused(hand_made, tmp_path, capsys, where):
    source = _source(hand_made)
    readme = source.rex_dir / "README.md"
    readme.write_text("the source's card")
    out = {
        "rex": source.rex_dir,
        "ctrate": source.ctrate_dir,
        "inside": source.ctrate_dir / "dataset" / "vqa",
    }[where]
    before = _snapshot(source.root)
    _one_line_error(*_run(_build_argv(source, out), capsys), "input folder", "--force")
    assert _snapshot(source.root) == before
    if where == "rex":  # --force does not overwrite the source's own README.md either
        _one_line_error(*_run(_build_argv(source, out, "--force"), capsys), "README.md")
        assert readme.read_text() == "the source's card"


@pytest.mark.parametrize("command", ["build", "synth"])
def test_out_that_is_a_file_is_one_line(hand_made, tmp_path, capsys, command):
    out = tmp_path / "a-file"
    out.write_text("mine")
    if command == "build":
        argv = _build_argv(_source(hand_made), out)
    else:
        argv = ["synth", "--out", str(out), "--cases", "1"]
    _one_line_error(*_run(argv, capsys), str(out), "is a file")
    assert out.read_text() == "mine"


# --- 2: inputs are checked before --out is touched ---


@pytest.mark.parametrize("bad", ["--rex-dir", "--ctrate-dir"])
def test_mistyped_input_leaves_a_complete_build_alone(hand_made, tmp_path, capsys, bad):
    source = _source(hand_made)
    out = tmp_path / "ct-rate-vqa"
    assert _run(_build_argv(source, out), capsys)[0] == 0
    before = _snapshot(out)
    argv = _build_argv(source, out)
    argv[argv.index(bad) + 1] += "-typo"
    _one_line_error(*_run(argv, capsys), "-typo")
    assert _snapshot(out) == before
    assert json.loads((out / "build_manifest.json").read_text())["status"] == "complete"


# --- 3: inputs in the Hugging Face cache layout ---


def test_source_downloaded_into_the_hub_cache_builds(
    local_hub, synthetic_source, built_dataset, tmp_path
):
    api = HfApi(endpoint=local_hub.url, token="hf_local")
    repo = "medreason/rex-and-ctrate"
    api.create_repo(repo, repo_type="dataset")
    root = Path(synthetic_source["rex_dir"]).parent
    api.upload_folder(repo_id=repo, repo_type="dataset", folder_path=root)
    snapshot = Path(
        snapshot_download(
            repo, repo_type="dataset", cache_dir=tmp_path / "hf-cache", endpoint=local_hub.url
        )
    )
    assert (snapshot / "rexgroundingct" / "dataset.json").is_symlink()  # the real cache layout
    manifest = build_repo(
        snapshot / "rexgroundingct",
        snapshot / "ct-rate",
        tmp_path / "out",
        BuildOptions(seed=3),
        progress=False,
    )
    assert manifest["skipped"] == []
    expected = json.loads((built_dataset / "build_manifest.json").read_text())
    assert manifest["counts"]["cases_used"] == expected["counts"]["cases_used"] > 0
    assert manifest["counts"]["cases_listed"] == SYNTH_CASES


# --- 4: option ranges ---

BUILD_OPTIONS = [
    ("--zoom-margin-fraction", "-0.5"),
    ("--zoom-min-crop-fraction", "0"),
    ("--zoom-min-crop-fraction", "5"),
    ("--zoom-border-px", "-2"),
    ("--localisation-box-px", "-1"),
    ("--localisation-box-px", "0"),
    ("--min-box-reference-pixels", "0"),
    ("--min-box-pixels", "-1"),
    ("--num-workers", "0"),
    ("--num-workers", "-3"),
    ("--render-threads", "0"),
    ("--synthetic", "0"),
    ("--synthetic-size", "8"),
    ("--synthetic-slices", "0"),
    ("--seed", "-1"),
    ("--test-fraction", "1"),
    ("--window-width", "nan"),
    ("--window-level", "inf"),
    ("--image-size", "0"),
    ("--png-compress-level", "10"),
    ("--slices-per-case", "0"),
    ("--zoom-patch-fraction", "0.9"),
    ("--max-shard-size", "lots"),
    ("--num-workers", "two"),  # not a number: argparse's error, on one line
]


@pytest.mark.parametrize("option, value", BUILD_OPTIONS)
def test_build_option_out_of_range_is_one_line_naming_it(tmp_path, capsys, option, value):
    out = tmp_path / "out"
    argv = ["build", "--out", str(out), "--no-progress", "--synthetic", "2", option, value]
    if option == "--synthetic":
        argv = argv[:-4] + [option, value]
    _one_line_error(*_run(argv, capsys), option)
    assert not out.exists()  # refused before anything is written


@pytest.mark.parametrize(
    "option, value", [("--cases", "0"), ("--size", "10"), ("--slices", "-1"), ("--seed", "-1")]
)
def test_synth_option_out_of_range_is_one_line_naming_it(tmp_path, capsys, option, value):
    out = tmp_path / "synthetic"
    _one_line_error(*_run(["synth", "--out", str(out), option, value], capsys), option)
    assert not out.exists()


# --- 6: --no-progress hides every bar ---


def test_no_progress_shows_no_bar(tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["build", "--synthetic", "3", "--synthetic-size", "64", "--synthetic-slices", "8"]
    assert main([*argv, "--no-progress", "--min-box-pixels", "200"]) == 0
    err = capfd.readouterr().err
    assert "synthetic CT" not in err and "Processing" not in err and "%|" not in err, err


# --- 7: the real cause when no finding maps to a class ---


def test_no_mapped_code_is_named_as_the_cause(hand_made, tmp_path):
    source = _source(hand_made, codes=("2g", "2g"))  # known codes that map to no class
    with pytest.raises(ValueError, match=r"maps to a class in .*category_classes.json.*'2g' x2"):
        build_repo(source.rex_dir, source.ctrate_dir, tmp_path / "out", progress=False)


# --- 8: no local path in a published file ---


def test_published_files_hold_no_local_path(hand_made, tmp_path):
    source = _source(hand_made, codes=("2d", "2c", "2d"))
    source.ct_path("train_3_a_1.nii.gz").unlink()  # skipped: its reason names the file
    class_map = tmp_path / "maps" / "my_classes.json"
    class_map.parent.mkdir()
    packaged = Path(__file__).parents[1] / "dataset_builder" / "data" / "category_classes.json"
    class_map.write_text(packaged.read_text())
    out = tmp_path / "out"
    manifest = build_repo(
        source.rex_dir, source.ctrate_dir, out, BuildOptions(class_map=str(class_map)),
        progress=False,
    )  # fmt: skip
    assert manifest["skipped"] and "train_3_a_1" in manifest["skipped"][0]["case"]
    published = [p for p in out.rglob("*") if p.is_file() and ".build_cache" not in p.parts]
    for path in published:
        if path.suffix in (".json", ".md", ".yaml"):
            text = path.read_text()
            assert str(tmp_path) not in text and str(tmp_path.resolve()) not in text, path
    assert manifest["source"]["rex_dir"] == "rexgroundingct"
    assert manifest["class_map"]["source"] == "my_classes.json"


def test_synth_refuses_a_folder_of_someone_elses_files(tmp_path, capsys):
    """synth wrote rexgroundingct/dataset.json over whatever was there (a real source, say)."""
    real = tmp_path / "my-data"
    (real / "rexgroundingct").mkdir(parents=True)
    (real / "rexgroundingct" / "dataset.json").write_text('{"train": ["mine"]}')
    argv = ["synth", "--out", str(real), "--cases", "2", "--size", "64", "--slices", "16"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not empty" in err
    assert (real / "rexgroundingct" / "dataset.json").read_text() == '{"train": ["mine"]}'
    fresh = tmp_path / "phantoms"
    assert main([*argv[:2], str(fresh), *argv[3:]]) == 0  # a new folder, then again: ours
    assert main([*argv[:2], str(fresh), *argv[3:]]) == 0
    assert json.loads((fresh / "SYNTHETIC_PHANTOM_DATA.json").read_text())["phantom"] is True
