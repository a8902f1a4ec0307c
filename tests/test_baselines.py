"""The Table 1 baselines command: the paper's baselines file, a run on two tiny local models (a
Qwen2.5-VL and a Qwen2-VL) with a remote-code entry and an entry without a checkpoint, resuming,
and bad input (one line, exit status 2, nothing written)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from common.names import PROMPT_MODES
from model_training.evaluation import paper
from model_training.evaluation.baselines import (
    PAPER_FIGURES_FILE,
    STATUS_FILE,
    TABLE_FOLDER,
    main,
    read_baselines,
    skip_reason,
)
from model_training.evaluation.progress import SETTINGS_FILE
from model_training.tiny_model import build_tiny_model

RECIPE = Path(__file__).resolve().parents[1] / "recipes/paper-tables/table1-baselines.yaml"
LIMIT = 8


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("baseline-models")
    return {
        "qwen2_5_vl": build_tiny_model(root / "tiny-qwen2.5-vl"),
        "qwen2_vl": build_tiny_model(root / "tiny-qwen2-vl", architecture="qwen2_vl"),
    }


def exit_status(argv: list[str]) -> int | str | None:
    """main's exit status, whether returned or raised (argparse's usage errors)."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


def write_baselines(path: Path, models: list[dict]) -> Path:
    path.write_text(yaml.safe_dump({"models": models}, sort_keys=False))
    return path


def entries(tiny_models: dict[str, Path]) -> list[dict]:
    return [
        {
            "name": "Tiny Qwen2.5-VL",
            "path": str(tiny_models["qwen2_5_vl"]),
            "size": "0.4M",
            "paper": {"think": 22.38, "no-think": 23.86},
        },
        {
            "name": "Tiny Qwen2-VL",
            "path": str(tiny_models["qwen2_vl"]),
            "paper": {"think": 20.98, "no-think": 20.26},
        },
        {
            "name": "Remote Code VLM",
            "hub_id": "example-org/remote-code-vlm",
            "trust_remote_code": True,
            "paper": {"think": 17.57, "no-think": 26.65},
        },
        {
            "name": "No Checkpoint 7B",
            "hub_id": None,
            "paper": {"think": None, "no-think": 7.44},
            "note": "no Hub checkpoint known",
        },
    ]


def test_the_paper_baselines_file(tmp_path: Path) -> None:
    listed = read_baselines(RECIPE)
    # the same figures, sizes and order as the paper's Table 1 (model_training.evaluation.paper)
    assert [(b.paper["think"], b.paper["no-think"], b.size) for b in listed] == [
        (row.think, row.no_think, row.size) for row in paper.TABLE1
    ]
    for b, row in zip(listed, paper.TABLE1, strict=True):
        assert b.hub_id in (*row.hub_ids, None) or not row.hub_ids, (b.name, row.name)
    baselines = {b.name: b for b in listed}
    assert baselines["Qwen2.5-VL 72B"].hub_id == "Qwen/Qwen2.5-VL-72B-Instruct"
    assert baselines["MedVLM-R1 2B"].hub_id == "JZPeterPan/MedVLM-R1"
    med_r1 = baselines["Med-R1 7B"]
    assert med_r1.hub_id == "yuxianglai117/Med-R1" and med_r1.needs_subfolder
    # its checkpoint folder inside the repo is unverified: skipped (not failed) until it is set
    assert "set subfolder" in skip_reason(med_r1, trust_remote_code=True)
    assert skip_reason(replace(med_r1, subfolder="CT"), trust_remote_code=False) is None
    huatuo = baselines["HuatuoGPT-Vision 7B"]
    assert huatuo.hub_id == "FreedomIntelligence/HuatuoGPT-Vision-7B" and huatuo.trust_remote_code
    assert baselines["BiRD 7B"].hub_id is None and baselines["BiRD 7B"].path is None
    assert [b for b in baselines.values() if b.trust_remote_code] == [huatuo]
    # every figure carries its source comment
    for line in RECIPE.read_text().splitlines():
        if line.strip().startswith(("think:", "no-think:")):
            assert "# paper: Table 1" in line, line


def test_the_command_evaluates_skips_resumes_and_renders_table_1(
    tiny_models: dict[str, Path],
    built_dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    baselines = write_baselines(tmp_path / "baselines.yaml", entries(tiny_models))
    out = tmp_path / "table1-run"
    argv = ["--baselines", str(baselines), "--dataset", str(built_dataset), "--out", str(out)]
    argv += ["--limit", str(LIMIT), "--max-new-tokens", "4", "--batch-size", "4", "--no-progress"]

    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Remote Code VLM: skipped: needs remote code: pass --trust-remote-code" in printed
    assert "No Checkpoint 7B: skipped: no hub_id or path" in printed
    assert "no Hub checkpoint known" in printed
    assert not (out / "remote-code-vlm").exists() and not (out / "no-checkpoint-7b").exists()

    for folder, name, model in (
        ("tiny-qwen2.5-vl", "Tiny Qwen2.5-VL", tiny_models["qwen2_5_vl"]),
        ("tiny-qwen2-vl", "Tiny Qwen2-VL", tiny_models["qwen2_vl"]),
    ):
        results = json.loads((out / folder / "results.json").read_text())
        settings = json.loads((out / folder / SETTINGS_FILE).read_text())  # the local path
        assert settings["model"] == str(model) and results["display_name"] == name
        assert set(results["modes"]) == set(PROMPT_MODES)
        assert all(results["modes"][mode]["n"] == LIMIT for mode in PROMPT_MODES)
    assert json.loads((out / "tiny-qwen2.5-vl" / "results.json").read_text())["model_size"] == (
        "0.4M"
    )

    assert json.loads((out / PAPER_FIGURES_FILE).read_text()) == {
        "Tiny Qwen2.5-VL": {"think": 22.38, "no-think": 23.86},
        "Tiny Qwen2-VL": {"think": 20.98, "no-think": 20.26},
        "Remote Code VLM": {"think": 17.57, "no-think": 26.65},
        "No Checkpoint 7B": {"think": None, "no-think": 7.44},
    }
    status = json.loads((out / STATUS_FILE).read_text())
    assert {name: s["status"] for name, s in status.items()} == {
        "Tiny Qwen2.5-VL": "evaluated",
        "Tiny Qwen2-VL": "evaluated",
        "Remote Code VLM": "skipped",
        "No Checkpoint 7B": "skipped",
    }
    table = (out / TABLE_FOLDER / "table1.md").read_text()
    assert "Tiny Qwen2.5-VL" in table and "Tiny Qwen2-VL" in table
    # the models not run are rows with the paper's figures only
    assert "| Remote Code VLM (not run) | ? | – | 17.57 | – | 26.65 | Remote Code VLM |" in table
    assert "| No Checkpoint 7B (not run) | ? | – | – | – | 7.44 | No Checkpoint 7B |" in table
    assert "Tiny Qwen2-VL (not run)" not in table

    # resumable: complete results are not evaluated again
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/predictions.parquet")}
    assert len(stamps) == 2
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.count("already evaluated") == 2
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/predictions.parquet")} == stamps

    # --models selects; an unreadable model is reported, the others still run (exit status 1)
    broken = entries(tiny_models)[:1] + [{"name": "Missing", "path": str(tmp_path / "nowhere")}]
    baselines = write_baselines(tmp_path / "broken.yaml", broken)
    argv[1] = str(baselines)
    assert main([*argv, "--models", "Missing,Tiny Qwen2.5-VL"]) == 1
    captured = capsys.readouterr()
    assert "Missing: not run: model " in captured.out and "does not exist" in captured.out
    assert "already evaluated" in captured.out and "not evaluated: Missing" in captured.err


BAD_ENTRIES = {
    "unknown key": ({"name": "A", "path": "x", "weights": "y"}, "unknown key(s) weights"),
    "hub id and path": ({"name": "A", "path": "x", "hub_id": "o/a"}, "both hub_id and path"),
    "no name": ({"hub_id": "o/a"}, "has no name"),
    "bad hub id": ({"name": "A", "hub_id": "not a repo id!"}, "is not a Hub id"),
    "subfolder of a path": ({"name": "A", "path": "x", "subfolder": "ct"}, "hub_id only"),
    "figure out of range": ({"name": "A", "paper": {"think": 152.18}}, "accuracy in %"),
    "unknown mode": ({"name": "A", "paper": {"reasoning": 1.0}}, "paper must map"),
    "remote code flag": ({"name": "A", "trust_remote_code": "yes"}, "true or false"),
}


@pytest.mark.parametrize("case", BAD_ENTRIES)
def test_malformed_entries_are_one_line_errors(
    case: str, built_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    entry, expected = BAD_ENTRIES[case]
    baselines = write_baselines(tmp_path / "bad.yaml", [entry])
    out = tmp_path / "out"
    argv = ["--baselines", str(baselines), "--dataset", str(built_dataset), "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert str(baselines) in err and expected in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--models", "Tiny Qwen2-VL,Nope"], "--models: 'Nope' not in"),
        (["--limit", "0"], "--limit=0"),
        (["--baselines", "missing.yaml"], "--baselines missing.yaml: no such file"),
        (["--dataset", "no/such/folder"], "dataset no/such/folder does not exist"),
        (["--tensor-parallel-size", "2"], "applies to --backend vllm only"),
        (["--colour", "red"], "unrecognized argument"),
    ],
)
def test_bad_options_are_one_line_errors(
    extra: list[str],
    expected: str,
    tiny_models: dict[str, Path],
    built_dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    baselines = write_baselines(tmp_path / "baselines.yaml", entries(tiny_models))
    out = tmp_path / "out"
    argv = ["--baselines", str(baselines), "--dataset", str(built_dataset), "--out", str(out)]
    assert exit_status([*argv, *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert expected in err
    assert not out.exists()


def test_not_yaml_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    baselines = tmp_path / "broken.yaml"
    baselines.write_text("models:\n  - name: A\n    paper: {think: 1\n")
    out = str(tmp_path / "table")
    assert main(["--baselines", str(baselines), "--dataset", "d", "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not valid YAML (line" in err and str(baselines) in err
