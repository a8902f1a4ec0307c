"""The leaderboard (the paper's Table 1 from results.json files) and the results dataset repo,
pushed with the real huggingface_hub / datasets clients to the local test Hub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import load_dataset
from huggingface_hub import DatasetCard

from common.results_schema import ResultsError, human_size, model_size
from hub_cards.publish import push_folder
from hub_cards.results_repo import ResultsRepoError, push_results, results_rows
from model_training.evaluation.leaderboard import (
    LeaderboardArguments,
    LeaderboardError,
    build_leaderboard,
    main,
)

REPO = "medreason/ct-rate-vqa-results"
CLASSES = ("pulmonary nodules/masses", "ground-glass opacity")


def _mode(micro: float, macro: float, per_class: tuple[float, float], n: int = 40) -> dict:
    return {
        "n": n,
        "accuracy_micro": micro,
        "accuracy_macro": macro,
        "per_class": {
            c: {"accuracy": a, "support": n // 2} for c, a in zip(CLASSES, per_class, strict=True)
        },
        "format_rate": 0.95,
        "validity_rate": 0.975,
    }


def _results(model: str, modes: dict, config: str = "zoom", **extra) -> dict:
    return {
        "model": model,
        "dataset": extra.pop("dataset", "org/ct-rate-vqa"),
        "config": config,
        "split": "test",
        "dataset_revision": None,
        "prompts": {},
        "modes": modes,
        **extra,
    }


def _write(folder: Path, results: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "results.json"
    path.write_text(json.dumps(results))
    return path


@pytest.fixture
def two_results(tmp_path: Path) -> list[Path]:
    medreason = _results(
        "outputs/medreason-r1/final",
        {"think": _mode(0.5218, 0.51, (0.6, 0.42)), "no-think": _mode(0.5168, 0.5, (0.55, 0.45))},
        model_size="7B",
        display_name="MedReason-R1",
    )
    qwen = _results("Qwen/Qwen2.5-VL-72B-Instruct", {"no-think": _mode(0.1626, 0.15, (0.2, 0.1))})
    return [_write(tmp_path / "eval" / "a", medreason), _write(tmp_path / "eval" / "b", qwen)]


def test_table_values_sizes_and_missing_mode(two_results, tmp_path):
    out = tmp_path / "board"
    board = build_leaderboard(
        LeaderboardArguments(
            str(out), [str(two_results[0]), str(two_results[1].parent)], per_class=True
        )
    )
    assert (board["dataset"], board["config"], board["split"]) == (
        "org/ct-rate-vqa",
        "zoom",
        "test",
    )
    first, second = board["rows"]
    assert (first["model"], first["size"]) == ("MedReason-R1", "7B")
    assert (first["accuracy_micro_think"], first["accuracy_micro_no_think"]) == (52.18, 51.68)
    assert first["accuracy_macro_think"] == 51.0
    assert first["per_class_think"] == {CLASSES[0]: 60.0, CLASSES[1]: 42.0}
    assert (second["model"], second["size"]) == ("Qwen/Qwen2.5-VL-72B-Instruct", "72B")
    assert second["accuracy_micro_think"] is None and second["accuracy_micro_no_think"] == 16.26
    assert json.loads((out / "leaderboard.json").read_text()) == board

    md = (out / "leaderboard.md").read_text()
    assert "`org/ct-rate-vqa`" in md and "`zoom`" in md and "`test`" in md and "micro" in md
    assert "| MedReason-R1 | 7B | 52.18 | 51.68 |" in md
    assert "| Qwen/Qwen2.5-VL-72B-Instruct | 72B | – | 16.26 |" in md
    assert "pulmonary nodules/masses % (with think)" in md  # --per-class columns
    assert (out / "leaderboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("model", "size"),
    [
        ("Qwen/Qwen2.5-VL-7B-Instruct", "7B"),
        ("Qwen/Qwen2.5-VL-32B-Instruct", "32B"),
        ("org/medvlm-r1-2b", "2B"),
        ("org/tiny-0.5b", "0.5B"),
        ("outputs/demo-cpu/final", "?"),
        ("liyf001/MEDREASON-R1", "?"),
    ],
)
def test_model_size_from_name(model, size):
    assert model_size({"model": model}) == size


@pytest.mark.parametrize(
    ("parameters", "text"),
    [(8_292_166_656, "8.29B"), (234_848, "235K"), (381_000, "381K"), (72_000_000_000, "72B"),
     (1_500_000, "1.5M"), (999_999, "1M"), (512, "512"), (0, "0")],
)  # fmt: skip
def test_human_size(parameters, text):
    assert human_size(parameters) == text


def test_model_size_prefers_the_recorded_parameter_count():
    recorded = {"model": "Qwen/Qwen2.5-VL-7B-Instruct", "model_parameters": 8_292_166_656}
    assert model_size(recorded) == "8.29B"  # measured, not the name's "7B"
    assert model_size({"model": "outputs/run/final", "model_parameters": 234_848}) == "235K"
    assert model_size({"model": "outputs/run/final", "model_parameters": None}) == "?"
    assert model_size({"model": "org/m-3B", "model_parameters": None}) == "3B"  # old: the name


def test_published_rows_carry_no_local_paths(tmp_path):
    dataset = tmp_path / "built" / "ct-rate-vqa"
    dataset.mkdir(parents=True)
    model = tmp_path / "outputs" / "demo-cpu" / "final"
    trained = _results(str(model), {"think": _mode(0.5, 0.5, (0.5, 0.5))},
                       display_name="demo-cpu (SFT+GRPO)", model_parameters=234_848,
                       dataset=str(dataset))  # fmt: skip
    old = _results(
        str(model.parent / "sft"), {"think": _mode(0.4, 0.4, (0.4, 0.4))}, dataset=str(dataset)
    )  # fmt: skip  (an old results.json: no display_name)
    rows = results_rows(trained) + results_rows(old)
    assert [(r["model"], r["dataset"], r["model_size"]) for r in rows] == [
        ("demo-cpu (SFT+GRPO)", "ct-rate-vqa", "235K"),
        ("sft", "ct-rate-vqa", "?"),
    ]
    assert rows[0]["model_parameters"] == 234_848
    assert str(tmp_path) not in json.dumps(rows)
    hub = results_rows(
        _results("Qwen/Qwen2.5-VL-7B-Instruct", {"think": _mode(0.2, 0.2, (0.2, 0.2))})
    )
    assert (hub[0]["model"], hub[0]["dataset"]) == (
        "Qwen/Qwen2.5-VL-7B-Instruct",
        "org/ct-rate-vqa",
    )


def test_cli_writes_markdown_and_png(two_results, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main([str(tmp_path / "eval"), "--output", str(out), "--title", "Table 1"]) == 0
    md = (out / "leaderboard.md").read_text()
    files = ", ".join(str(out / f"leaderboard.{ext}") for ext in ("md", "json", "png"))
    assert md.startswith("# Table 1") and capsys.readouterr().out == f"{md}\nwrote {files}\n"
    assert "pulmonary" not in md  # no per-class columns unless asked
    assert (out / "leaderboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mixed_configs_are_refused_naming_the_files(two_results, tmp_path, capsys):
    plain = _write(
        tmp_path / "plain", _results("org/m-7B", {"think": _mode(0.3, 0.3, (0.3, 0.3))}, "plain")
    )
    with pytest.raises(LeaderboardError, match="not comparable") as err:
        build_leaderboard(
            LeaderboardArguments(str(tmp_path / "out"), [*map(str, two_results), str(plain)])
        )
    for path in (*two_results, plain):
        assert str(path) in str(err.value)
    assert main([str(two_results[0]), str(plain), "--output", str(tmp_path / "o")]) == 2
    assert str(plain) in capsys.readouterr().err
    assert not (tmp_path / "o" / "leaderboard.md").exists()


def test_bad_inputs_name_the_file(tmp_path):
    with pytest.raises(ResultsError, match="neither a results.json"):
        build_leaderboard(LeaderboardArguments(str(tmp_path / "out"), [str(tmp_path / "nowhere")]))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ResultsError, match=str(broken)):
        build_leaderboard(LeaderboardArguments(str(tmp_path / "out"), [str(broken)]))


def test_results_rows(two_results):
    rows = results_rows(json.loads(two_results[0].read_text()))
    assert [r["mode"] for r in rows] == ["think", "no-think"]
    think = rows[0]
    assert think == {
        "model": "MedReason-R1",  # a local checkpoint goes by its display name, not its path
        "model_size": "7B",
        "model_parameters": None,
        "mode": "think",
        "dataset": "org/ct-rate-vqa",
        "config": "zoom",
        "split": "test",
        "dataset_revision": None,
        "n": 40,
        "accuracy_micro": 0.5218,
        "accuracy_macro": 0.51,
        "format_rate": 0.95,
        "validity_rate": 0.975,
        "accuracy_pulmonary_nodules_masses": 0.6,
        "accuracy_ground_glass_opacity": 0.42,
    }


def _loaded(repo: str) -> dict[tuple[str, str], dict]:
    return {(r["model"], r["mode"]): r for r in load_dataset(repo, split="train").to_list()}


def test_push_results_then_merge(local_hub, two_results, tmp_path):
    rows = [r for p in two_results for r in results_rows(json.loads(p.read_text()))]
    report = push_results(rows, REPO)
    assert report.commit and {"data/results.parquet", "README.md"} <= set(
        local_hub.files(REPO, repo_type="dataset")
    )
    loaded = _loaded(REPO)
    assert len(loaded) == 3
    assert loaded[("MedReason-R1", "think")] == rows[0]
    card = DatasetCard.load(REPO, repo_type="dataset")
    assert card.data.license == "cc-by-nc-sa-4.0"
    assert card.data.to_dict()["configs"] == [
        {"config_name": "default", "data_files": "data/results.parquet"}
    ]
    assert "research only" in card.text.lower()

    updated = _results(
        "Qwen/Qwen2.5-VL-72B-Instruct",
        {"think": _mode(0.2142, 0.2, (0.3, 0.1)), "no-think": _mode(0.2, 0.2, (0.2, 0.2))},
    )
    report = push_results(results_rows(updated), REPO)
    assert report.commit
    loaded = _loaded(REPO)
    assert len(loaded) == 4  # 72B gained its think row; its no-think row was replaced
    assert loaded[("Qwen/Qwen2.5-VL-72B-Instruct", "no-think")]["accuracy_micro"] == 0.2
    assert loaded[("Qwen/Qwen2.5-VL-72B-Instruct", "think")]["accuracy_micro"] == 0.2142
    assert loaded[("MedReason-R1", "no-think")]["accuracy_micro"] == 0.5168
    assert local_hub.commit_count(REPO, repo_type="dataset") == 2


def test_push_results_refuses_a_repo_of_another_kind(local_hub, two_results, tmp_path):
    other = tmp_path / "other"
    (other / "zoom").mkdir(parents=True)
    (other / "zoom" / "test-00000-of-00001.parquet").write_bytes(b"PAR1")
    push_folder(other, REPO, repo_type="dataset")
    head = local_hub.head(REPO, repo_type="dataset")
    rows = results_rows(json.loads(two_results[0].read_text()))
    with pytest.raises(ResultsRepoError, match="zoom/test-00000-of-00001.parquet"):
        push_results(rows, REPO)
    assert local_hub.head(REPO, repo_type="dataset") == head
