"""The leaderboard's paper layouts (Table 1, Table 3, Table 4, Fig. 3) and what the evaluator
records for them (the model's parameter count, a readable name, its training).

The results come from real evaluations of the tiny model (with the real tiny judge) whose
checkpoint folders are laid out as a run leaves them: stage folders with the
``training_summary.json`` the stages write (``policy.write_training_summary`` of their
``policy.stage_record``, the model's history included), and a ``final/`` folder written by the
real ``assemble_final``. Layouts that need trained models (reward sets) read hand-written
results.json files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForImageTextToText, Qwen2Config, Qwen2ForCausalLM
from trl import ModelConfig

from common.names import TRAINING_SUMMARY_NAME
from model_training.configs import CTRateVQAArguments
from model_training.evaluation import paper
from model_training.evaluation.evaluate import EvaluateArguments, evaluate
from model_training.evaluation.leaderboard import main
from model_training.evaluation.results_header import parameter_count
from model_training.final_model import assemble_final
from model_training.policy import stage_record, write_training_summary
from model_training.rewards import DEFAULT_REWARD_WEIGHTS, DEFAULT_REWARDS
from model_training.tiny_model import build_tiny_model, train_tokenizer
from model_training.training_history import training_record

LIMIT = 4  # rows evaluated per mode


def _one_line(capsys: pytest.CaptureFixture, *names: str) -> None:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    for name in names:
        assert name in err, err


# -- checkpoint folders as a run leaves them ------------------------------------------------


SCOPE = {"trainable_scope": "full", "trainable_parameters": 1, "total_parameters": 1}


def stage_folder(tiny: Path, run: Path, stage: str, config: str, start: Path) -> Path:
    """``<run>/<stage>`` as a stage trained from ``start`` leaves it: the weights, and the
    training_summary.json the trainer writes with the stage script's own record (its history
    chained to ``start``'s)."""
    out = run / stage
    shutil.copytree(tiny, out)
    rewards = (list(DEFAULT_REWARDS), list(DEFAULT_REWARD_WEIGHTS)) if stage == "grpo" else ()
    args = CTRateVQAArguments(dataset_config=config, trainable_scope="full")
    start_model = ModelConfig(model_name_or_path=str(start))
    record = stage_record(stage, args, start_model, str(out), *rewards)
    write_training_summary(out, SCOPE, 1, [], **record)
    return out


def final_folder(run: Path, config: str) -> Path:
    """``<run>/final`` assembled by the real assemble_final from the run's stage folders."""
    logs = {s: json.loads((run / s / TRAINING_SUMMARY_NAME).read_text()) for s in ("sft", "grpo")}
    recipe = {"output_dir": str(run), "dataset_config": config, "sft": {}, "grpo": {}}
    training = {"base_model": "tiny", "datasets": [], "stages": [], "trainable_scope": "full"}
    return assemble_final(run / "final", run / "grpo", recipe, "run.yaml", logs, training,
                          None, {}, None)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_judge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2 causal LM with the tiny tokenizer (as tests/test_judge.py)."""
    out = tmp_path_factory.mktemp("judge") / "tiny-judge"
    tokenizer = train_tokenizer()
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    Qwen2ForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def evals(tmp_path_factory, built_dataset: Path, tiny_judge: Path) -> dict[str, Path]:
    """results.json of real evaluations: the SFT models of a zoom run and a plain run, and the
    zoom run's final (SFT+GRPO) model; the zoom run's with the judge."""
    root = tmp_path_factory.mktemp("paper-layouts")
    tiny = build_tiny_model(root / "tiny")
    zoom, plain = root / "zoomrun", root / "plainrun"
    sft = stage_folder(tiny, zoom, "sft", "zoom", tiny)
    stage_folder(tiny, zoom, "grpo", "zoom", sft)
    models = {
        "sft": (sft, "zoom", str(tiny_judge)),
        "final": (final_folder(zoom, "zoom"), "zoom", str(tiny_judge)),
        "plain": (stage_folder(tiny, plain, "sft", "plain", tiny), "plain", None),
    }
    out = {}
    for name, (model, config, judge) in models.items():
        evaluate(
            EvaluateArguments(
                str(model), str(built_dataset), str(root / "eval" / name), config=config,
                limit=LIMIT, batch_size=LIMIT, max_new_tokens=8, judge=judge, progress=False,
            )
        )  # fmt: skip
        out[name] = root / "eval" / name / "results.json"
    out["tiny"] = tiny
    return out


def _read(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def _pct(results: dict, mode: str) -> float:
    return round(100 * results["modes"][mode]["accuracy_micro"], 2)


# (think, no-think) accuracies and think consistency given to copies of the real results, so
# that every number of a layout is told apart (the random tiny model scores 0 everywhere)
RESCORED = {
    "final": (0.5218, 0.5168, 0.9798),
    "sft": (0.376, 0.4854, 0.9117),
    "plain": (0.31, 0.4532, None),
}
AS_EVALUATED = pytest.mark.parametrize("rescore", [False, True], ids=["evaluated", "rescored"])


def _sources(evals: dict, tmp_path: Path, rescore: bool, *names: str) -> list[Path]:
    """The real results.json files ``names``, or copies of them with RESCORED accuracies."""
    if not rescore:
        return [evals[name] for name in names]
    paths = []
    for name in names:
        results = _read(evals[name])
        think, no_think, consistency = RESCORED[name]
        results["modes"]["think"]["accuracy_micro"] = think
        results["modes"]["no-think"]["accuracy_micro"] = no_think
        if consistency is not None:
            results["modes"]["think"]["consistency"] = consistency
        folder = tmp_path / "rescored" / name
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps(results))
        paths.append(folder / "results.json")
    return paths


def _render(out: Path, layout: str, *args: str | Path) -> dict:
    assert main([*map(str, args), "--layout", layout, "--output", str(out)]) == 0
    assert (out / f"{layout}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    board = _read(out / f"{layout}.json")
    assert board["layout"] == layout
    return board


# -- what the evaluator records ---------------------------------------------------------------


def test_results_record_parameters_name_and_training(evals):
    sft, final, plain = _read(evals["sft"]), _read(evals["final"]), _read(evals["plain"])
    loaded = AutoModelForImageTextToText.from_pretrained(evals["tiny"])
    assert sft["model_parameters"] == final["model_parameters"] == loaded.num_parameters()
    assert (sft["display_name"], final["display_name"], plain["display_name"]) == (
        "zoomrun (SFT)", "zoomrun (SFT+GRPO)", "plainrun (SFT)",
    )  # fmt: skip
    assert sft["training"] == {
        "run": "zoomrun", "stages": ["sft"], "dataset_config": "zoom",
        "dataset_configs": {"sft": "zoom"}, "trainable_scope": "full", "task": "classification",
    }  # fmt: skip
    assert final["training"]["stages"] == ["sft", "grpo"]
    assert final["training"]["reward_funcs"] == list(DEFAULT_REWARDS)
    assert final["training"]["reward_weights"] == list(DEFAULT_REWARD_WEIGHTS)
    assert plain["training"]["dataset_config"] == "plain"
    for results in (sft, final, plain):  # no local path in what the evaluator adds
        added = json.dumps({k: results.get(k) for k in ("display_name", "training")})
        assert str(evals["tiny"].parent) not in added and "/" not in added


def test_stage_folder_chain_and_sharded_parameter_count(evals, tmp_path):
    tiny = evals["tiny"]
    run = tmp_path / "ablation"
    sft = stage_folder(tiny, run, "sft", "plain", tiny)
    grpo = stage_folder(tiny, run, "grpo", "zoom", sft)
    record = training_record(str(grpo))
    assert record["stages"] == ["sft", "grpo"] and record["run"] == "ablation"
    assert record["dataset_configs"] == {"sft": "plain", "grpo": "zoom"}
    assert record["dataset_config"] == "plain"  # the first stage's data
    assert training_record(str(tiny)) is None  # no training records: an untrained folder
    model = AutoModelForImageTextToText.from_pretrained(tiny)
    model.save_pretrained(tmp_path / "sharded", max_shard_size="200KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    assert parameter_count(str(tmp_path / "sharded")) == model.num_parameters() == 234848
    assert parameter_count("Qwen/Qwen2.5-VL-7B-Instruct") is None  # not cached: unknown


# -- Table 1 ----------------------------------------------------------------------------------


@AS_EVALUATED
def test_table1_beside_the_paper_and_the_figures_file(evals, tmp_path, rescore):
    final_path, sft_path = _sources(evals, tmp_path, rescore, "final", "sft")
    final, sft = _read(final_path), _read(sft_path)
    qwen = dict(sft, model="Qwen/Qwen2.5-VL-72B-Instruct", display_name=None,
                model_parameters=73_416_000_000, training=None)  # fmt: skip
    (tmp_path / "qwen").mkdir()
    (tmp_path / "qwen" / "results.json").write_text(json.dumps(qwen))
    figures = tmp_path / "figures.json"
    figures.write_text(json.dumps({"zoomrun (SFT)": {"think": 30.5, "no-think": None}}))
    board = _render(tmp_path / "t1", "table1", final_path, sft_path, tmp_path / "qwen",
                    "--paper-figures", figures)  # fmt: skip
    ours, sft_row, qwen_row = board["rows"]
    assert (ours["model"], ours["size"], ours["paper_row"]) == (
        "zoomrun (SFT+GRPO)", "235K", "MedReason-R1 (trained as it was)",
    )  # fmt: skip
    assert (ours["think"], ours["no_think"]) == (_pct(final, "think"), _pct(final, "no-think"))
    assert (ours["paper_think"], ours["paper_no_think"]) == (52.18, 51.68)
    assert (sft_row["paper_think"], sft_row["paper_no_think"]) == (30.5, None)
    assert (qwen_row["model"], qwen_row["size"]) == ("Qwen/Qwen2.5-VL-72B-Instruct", "73.4B")
    assert (qwen_row["paper_think"], qwen_row["paper_no_think"]) == (21.42, 16.26)
    md = (tmp_path / "t1" / "table1.md").read_text()
    assert (
        f"| zoomrun (SFT+GRPO) | 235K | {_pct(final, 'think'):.2f} | 52.18 | "
        f"{_pct(final, 'no-think'):.2f} | 51.68 | MedReason-R1 (trained as it was) |"
    ) in md
    assert f"| zoomrun (SFT) | 235K | {_pct(sft, 'think'):.2f} | 30.50 | " in md
    assert "| with think | with think (paper) | without think | without think (paper) |" in md


def test_table1_paper_constants():
    assert {r.name: (r.think, r.no_think, r.size) for r in paper.TABLE1} == {
        "MedReason-R1": (52.18, 51.68, "7B"),
        "Qwen2.5-VL-7B": (22.38, 23.86, "7B"),
        "Qwen2.5-VL-32B": (25.43, 13.65, "32B"),
        "Qwen2.5-VL-72B": (21.42, 16.26, "72B"),
        "HuatuoGPT-Vision-7B": (17.57, 26.65, "7B"),
        "MedVLM-R1": (20.98, 20.26, "2B"),
        "Med-R1": (24.31, 24.64, "7B"),
        "BiRD": (None, 7.44, "7B"),
    }


@pytest.mark.parametrize(
    ("content", "names"),
    [
        ("{not json", ["figures.json", "JSON"]),
        ('["a"]', ["figures.json", "JSON object"]),
        ('{"m": {"think": 150}}', ["figures.json", "'m'", "0-100"]),
        ('{"m": {"with think": 50}}', ["figures.json", "'m'"]),
        ('{"m": {"think": "50"}}', ["figures.json", "'m'"]),
    ],
)
def test_bad_paper_figures_file_is_refused(evals, tmp_path, capsys, content, names):
    figures = tmp_path / "figures.json"
    figures.write_text(content)
    argv = [str(evals["sft"]), "--layout", "table1", "--paper-figures", str(figures)]
    assert main([*argv, "--output", str(tmp_path / "out")]) == 2
    _one_line(capsys, "--paper-figures", *names)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        (["--layout", "table3", "--paper-figures", "f.json"], ["--paper-figures", "table1"]),
        (["--layout", "table1", "--per-class"], ["--per-class", "leaderboard"]),
        (["--layout", "fig3", "--macro"], ["--macro", "leaderboard"]),
        (["--layout", "table9"], ["--layout", "table9"]),
    ],
)
def test_options_that_do_not_fit_the_layout_are_refused(evals, tmp_path, capsys, extra, names):
    argv = [str(evals["sft"]), *extra, "--output", str(tmp_path / "out")]
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse's own refusal of an unknown --layout choice
        status = exit_.code
    assert status == 2
    _one_line(capsys, *names)
    assert not (tmp_path / "out").exists()


# -- Table 3 ----------------------------------------------------------------------------------


@AS_EVALUATED
def test_table3_compares_configs_that_the_leaderboard_refuses(evals, tmp_path, capsys, rescore):
    zoom_path, plain_path = _sources(evals, tmp_path, rescore, "sft", "plain")
    zoom, plain = _read(zoom_path), _read(plain_path)
    board = _render(tmp_path / "t3", "table3", plain_path, zoom_path)
    assert board["config"] == ["plain", "zoom"]
    first, second = board["rows"]  # the paper's order: zoom first
    assert (first["training_config"], first["training_data"], first["evaluated_on"]) == (
        "zoom", "with zoom-in patch", "zoom",
    )  # fmt: skip
    assert (first["think"], first["no_think"]) == (_pct(zoom, "think"), _pct(zoom, "no-think"))
    assert (second["training_config"], second["model"]) == ("plain", "plainrun (SFT)")
    assert (second["think"], second["no_think"]) == (_pct(plain, "think"), _pct(plain, "no-think"))
    assert (first["paper_no_think"], second["paper_no_think"]) == (48.54, 45.32)
    md = (tmp_path / "t3" / "table3.md").read_text()
    assert (
        f"| with zoom-in patch | zoomrun (SFT) | SFT | zoom | {_pct(zoom, 'think'):.2f} | "
        f"{_pct(zoom, 'no-think'):.2f} | 48.54 |"
    ) in md
    # the one-table leaderboard still refuses the mix
    assert main([str(plain_path), str(zoom_path), "--output", str(tmp_path / "lb")]) == 2
    _one_line(capsys, "not comparable", str(plain_path))


def test_table3_refuses_other_splits_and_two_models_of_one_config(evals, tmp_path, capsys):
    other = dict(_read(evals["plain"]), split="train")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "results.json").write_text(json.dumps(other))
    out = tmp_path / "t3"
    assert main([str(evals["sft"]), str(tmp_path / "other"), "--layout", "table3",
                 "--output", str(out)]) == 2  # fmt: skip
    _one_line(capsys, "different datasets/splits", "'train'", "'test'")
    twin = dict(_read(evals["sft"]), display_name="another zoom model")
    (tmp_path / "twin").mkdir()
    (tmp_path / "twin" / "results.json").write_text(json.dumps(twin))
    assert main([str(evals["sft"]), str(tmp_path / "twin"), "--layout", "table3",
                 "--output", str(out)]) == 2  # fmt: skip
    _one_line(capsys, "one row per training config", "'zoom'", str(evals["sft"]))
    assert not out.exists()


# -- Table 4 (hand-written results of GRPO-trained models) -----------------------------------


def _grpo_results(folder: Path, rewards: list[str] | None, think: float, n: int = 40) -> Path:
    metrics = {"n": n, "accuracy_micro": think, "accuracy_macro": think, "per_class": {}}
    training = {"run": folder.name, "stages": ["sft", "grpo"], "dataset_config": "zoom"}
    if rewards is not None:
        training |= {"reward_funcs": rewards, "reward_weights": [1.0] * len(rewards)}
    results = {
        "model": f"outputs/{folder.name}/final", "display_name": f"{folder.name} (SFT+GRPO)",
        "model_parameters": 8_292_166_656, "dataset": "org/ct-rate-vqa", "config": "zoom",
        "split": "test", "training": training,
        "modes": {"think": metrics, "no-think": dict(metrics, accuracy_micro=think / 2)},
    }  # fmt: skip
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(results))
    return folder / "results.json"


def test_table4_rows_follow_the_paper_order(tmp_path):
    files = [
        _grpo_results(tmp_path / "all3", ["format", "validity", "correctness"], 0.5),
        _grpo_results(tmp_path / "corr", ["correctness"], 0.4),
        _grpo_results(tmp_path / "corr-valid", ["validity", "correctness"], 0.45),
        _grpo_results(tmp_path / "corr-fmt", ["correctness", "format"], 0.425),
    ]
    board = _render(tmp_path / "t4", "table4", *files)
    rows = board["rows"]
    assert [r["rewards"] for r in rows] == ["correctness only", "+ format", "+ validity",
                                            "all three"]  # fmt: skip
    assert [r["think"] for r in rows] == [40.0, 42.5, 45.0, 50.0]
    assert [r["no_think"] for r in rows] == [20.0, 21.25, 22.5, 25.0]
    assert [r["paper_think"] for r in rows] == [46.95, 50.86, 51.22, 52.18]
    assert rows[3]["weights"] == "format 1, validity 1, correctness 1"
    md = (tmp_path / "t4" / "table4.md").read_text()
    assert (
        "| + format | correctness 1, format 1 | corr-fmt (SFT+GRPO) | SFT+GRPO | 42.50 | 50.86 | "
        "21.25 |"
    ) in md


def test_table4_refuses_a_model_without_rewards_and_a_repeated_set(tmp_path, capsys):
    good = _grpo_results(tmp_path / "corr", ["correctness"], 0.4)
    bare = _grpo_results(tmp_path / "bare", None, 0.3)
    out = tmp_path / "t4"
    assert main([str(good), str(bare), "--layout", "table4", "--output", str(out)]) == 2
    _one_line(capsys, str(bare), "bare (SFT+GRPO)", "reward")
    again = _grpo_results(tmp_path / "again", ["correctness"], 0.41)
    assert main([str(good), str(again), "--layout", "table4", "--output", str(out)]) == 2
    _one_line(capsys, "one row per reward set", str(good), str(again))
    assert not out.exists()


# -- Fig. 3 -----------------------------------------------------------------------------------


@AS_EVALUATED
def test_fig3_from_real_evaluations_with_the_judge(evals, tmp_path, rescore):
    final_path, sft_path = _sources(evals, tmp_path, rescore, "final", "sft")
    sft, final = _read(sft_path), _read(final_path)
    board = _render(tmp_path / "f3", "fig3", final_path, sft_path)
    rows = {(r["panel"], r["measure"]): r for r in board["rows"]}
    assert len(rows) == 4
    a_think = rows[("a", "accuracy % (with think)")]
    a_direct = rows[("a", "accuracy % (without think)")]
    assert (a_think["ours"], a_think["paper"]) == (_pct(sft, "think"), 37.60)
    assert (a_direct["ours"], a_direct["paper"]) == (_pct(sft, "no-think"), 48.54)
    b_sft, b_rl = rows[("b", "consistency % (SFT)")], rows[("b", "consistency % (SFT+GRPO)")]
    assert b_sft["ours"] == round(100 * sft["modes"]["think"]["consistency"], 2)
    assert b_rl["ours"] == round(100 * final["modes"]["think"]["consistency"], 2)
    assert (b_sft["paper"], b_rl["paper"]) == (91.17, 97.98)
    assert (b_sft["model"], b_rl["model"]) == ("zoomrun (SFT)", "zoomrun (SFT+GRPO)")
    md = (tmp_path / "f3" / "fig3.md").read_text()
    think = _pct(sft, "think")
    assert f"| a | zoomrun (SFT) | accuracy % (with think) | {think:.2f} | 37.60 |" in md


def test_fig3_refusals(evals, tmp_path, capsys):
    out = tmp_path / "f3"
    unjudged = _read(evals["sft"])
    unjudged["modes"]["think"].pop("consistency")
    (tmp_path / "unjudged").mkdir()
    (tmp_path / "unjudged" / "results.json").write_text(json.dumps(unjudged))
    argv = ["--layout", "fig3", "--output", str(out)]
    assert main([str(tmp_path / "unjudged"), str(evals["final"]), *argv]) == 2
    _one_line(capsys, "unjudged", "consistency", "--judge")
    assert main([str(evals["final"]), *argv]) == 2  # no SFT model
    _one_line(capsys, "exactly one SFT model, got 0")
    untrained = dict(_read(evals["sft"]), training=None, display_name="base")
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "results.json").write_text(json.dumps(untrained))
    assert main([str(tmp_path / "base"), str(evals["sft"]), str(evals["final"]), *argv]) == 2
    _one_line(capsys, "base", "not recorded", "training.stages")
    assert not out.exists()
