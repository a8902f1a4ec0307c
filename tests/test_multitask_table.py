"""The multitask comparison (issue 12): ``python -m model_training.paper_tables --table
multitask`` trains a multitask run and one run per task for real on the tiny model, and the
leaderboard's ``multitask`` layout shows both tasks' metrics per model beside the mean-box
baseline (which the grounding results carry); the shipped spec's runs parse in the run driver;
bad layout inputs are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from common.names import CLASSIFICATION_TASK, GROUNDING_TASK
from model_training import paper_tables
from model_training.evaluation.leaderboard import main
from model_training.evaluation.leaderboard.multitask import NOT_EVALUATED
from model_training.grounding_rewards import GROUNDING_SOFT_REWARDS
from model_training.paper_tables import load_spec, run_plans
from model_training.rewards import DEFAULT_REWARDS
from model_training.run_recipe import eval_tasks, parse_run

from .test_run import TINY_RUN, write_recipe

SPEC = Path(__file__).parents[1] / "recipes" / "paper-tables" / "demo-multitask-cpu.yaml"
TABLE = ["multitask/sft", "multitask/grpo", "classification/sft", "classification/grpo",
         "grounding/sft", "grounding/grpo"]  # fmt: skip


def _one_line(capsys: pytest.CaptureFixture, *names: str) -> None:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    for name in names:
        assert name in err, err


# -- the shipped spec -----------------------------------------------------------------------


def test_shipped_spec_runs_parse_in_the_run_driver(tmp_path):
    """Each run's command parses into a run plan (no training) with no option refused; the
    single-task runs train their task alone, with its rewards and half the GRPO steps."""
    spec = load_spec(SPEC)
    recipe = yaml.safe_load(Path(spec.recipe).read_text())
    assert recipe["task"] == "multitask" and spec.tables == {"multitask": TABLE}
    assert set(spec.runs) == {"multitask", "classification", "grounding"}
    expected = {
        "multitask": ("multitask", recipe["grounding_fraction"], recipe["grpo"]["reward_funcs"],
                      recipe["grpo"]["max_steps"], (CLASSIFICATION_TASK, GROUNDING_TASK)),
        "classification": ("classification", None, DEFAULT_REWARDS,
                           recipe["grpo"]["max_steps"] // 2, (CLASSIFICATION_TASK,)),
        "grounding": ("grounding", None, list(GROUNDING_SOFT_REWARDS),
                      recipe["grpo"]["max_steps"] // 2, (GROUNDING_TASK,)),
    }  # fmt: skip
    for name, (task, fraction, rewards, steps, evaluated) in expected.items():
        (plan,) = run_plans(spec, tmp_path, name)
        grpo = plan.stages["grpo"]
        assert {stage.args.task for stage in plan.stages.values()} == {task}, name
        assert {stage.args.grounding_fraction for stage in plan.stages.values()} == {fraction}
        assert list(grpo.training.reward_funcs) == list(rewards), name
        assert len(grpo.training.reward_weights) == len(rewards), name
        assert grpo.training.max_steps == steps and eval_tasks(plan.stages) == evaluated, name
        assert plan.run.eval_base_model is False


def test_a_null_override_reaches_the_run_driver_as_none(tmp_path):
    """The spec's ``grounding_fraction: null`` unsets the recipe's 0.5 in the run driver."""
    spec = load_spec(SPEC)
    assert spec.runs["grounding"]["overrides"]["grounding_fraction"] is None
    mixed = parse_run(["--config", spec.recipe, "--output_dir", str(tmp_path / "run")])
    assert mixed.stages["sft"].args.grounding_fraction == 0.5
    (single,) = run_plans(spec, tmp_path, "grounding")
    assert [s.args.grounding_fraction for s in single.stages.values()] == [None, None]


def test_multitask_table_needs_the_spec_that_defines_it(capsys):
    """The CPU paper-tables spec has no multitask table: asked for, it is refused."""
    assert paper_tables.main(["--table", "multitask", "--dry-run"]) == 2
    assert "defines no multitask" in capsys.readouterr().err


def test_dry_run_names_both_tasks_results(tmp_path, capsys):
    """The mean-box baseline travels in the grounding results: no run_summary.json is named."""
    assert paper_tables.main(["--spec", str(SPEC), "--dry-run", "--output_dir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    render = next(line for line in printed.splitlines() if "leaderboard" in line)
    assert "layout multitask" in render and "run_summary.json" not in render
    assert f"{tmp_path}/grounding/eval/grpo/results.json" in render
    assert f"{tmp_path}/multitask/eval/grpo-grounding/results.json" in render
    assert not list(tmp_path.iterdir())  # nothing ran


# -- the real miniature ---------------------------------------------------------------------


def test_a_miniature_of_the_multitask_table(tmp_path, built_dataset, capsys):
    """Three tiny runs (both tasks, classification, grounding), trained, evaluated and rendered:
    the table's figures are the runs' own results, "—" where a model was not evaluated on a
    task, and the mean-box baseline has its row; asking again reruns nothing."""
    recipe = write_recipe(
        tmp_path / "recipe.yaml",
        {"model_name_or_path": str(tmp_path / "tiny"), "dataset_name": str(built_dataset),
         **{k: v for k, v in TINY_RUN.items() if k != "dataset_limit"},
         "output_dir": str(tmp_path / "unused"), "task": "multitask", "dataset_config": "zoom",
         "grounding_config": "grounding", "grounding_fraction": 0.5, "dataset_limit": 8,
         "eval": {**{k: v for k, v in TINY_RUN["eval"].items() if k != "judge"}, "mode": "think",
                  "max_new_tokens": 16, "sam_model": "none"},
         "eval_base_model": False,
         "grpo": {**TINY_RUN["grpo"], "max_completion_length": 16,
                  "reward_funcs": [*DEFAULT_REWARDS, *GROUNDING_SOFT_REWARDS],
                  "reward_weights": [1.0, 1.0, 2.0, 1.0, 1.0, 1.0, 1.0]}},
    )  # fmt: skip
    spec = {
        "recipe": str(recipe),
        "output_dir": str(tmp_path / "tables"),
        "runs": {
            "multitask": {},
            "classification": {
                "overrides": {
                    "task": "classification",
                    "grounding_fraction": None,
                    "grpo.reward_funcs": list(DEFAULT_REWARDS),
                    "grpo.reward_weights": [1.0, 1.0, 2.0],
                    "grpo.max_steps": 1,
                }
            },
            "grounding": {
                "overrides": {
                    "task": "grounding",
                    "grounding_fraction": None,
                    "grpo.reward_funcs": list(GROUNDING_SOFT_REWARDS),
                    "grpo.reward_weights": [1.0, 1.0, 1.0, 1.0],
                    "grpo.max_steps": 1,
                }
            },
        },
        "tables": {"multitask": TABLE},
    }
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert paper_tables.main(["--spec", str(spec_file), "--table", "multitask"]) == 0
    out = tmp_path / "tables"
    table = out / "tables" / "multitask"  # the run "multitask" is out / "multitask"
    assert {p.name for p in table.iterdir()} >= {"multitask.md", "multitask.json", "multitask.png"}
    board = json.loads((table / "multitask.json").read_text())
    rows = {row["model"]: row for row in board["rows"]}

    def results(run: str, folder: str) -> dict:
        report = json.loads((out / run / "eval" / folder / "results.json").read_text())
        return report["modes"]["think"]

    def pct(value: float) -> float:
        return round(100 * value, 2)

    expected_on = {"multitask": "both", "classification": "classification",
                   "grounding": "grounding"}  # fmt: skip
    for run, trained_on in expected_on.items():
        for model, stages in (("sft", "SFT"), ("grpo", "SFT+GRPO")):
            row = rows[f"{run} ({stages})"]
            folders = {CLASSIFICATION_TASK: model, GROUNDING_TASK: f"{model}-grounding"}
            if run != "multitask":
                folders = {run: model}
            assert row["sources"] == {
                task: str(out / run / "eval" / folder / "results.json")
                for task, folder in folders.items()
            }
            training = json.loads(
                Path(row["sources"][run if run != "multitask" else CLASSIFICATION_TASK]).read_text()
            )["training"]
            assert row["trained_on"] == trained_on
            assert row["trained_on_from"] == "training record"  # the evaluator records the task
            assert (training["task"], training["dataset_config"]) == {
                "multitask": ("multitask", "zoom+grounding"),
                "classification": ("classification", "zoom"),
                "grounding": ("grounding", "grounding"),
            }[run]  # the configs its rows came from
            if run != "grounding":
                metrics = results(run, model)
                assert row["accuracy_micro"] == pct(metrics["accuracy_micro"])
                assert row["accuracy_macro"] == pct(metrics["accuracy_macro"])
            else:
                assert row["accuracy_micro"] is None and row["tasks_evaluated"] == [GROUNDING_TASK]
            if run != "classification":
                metrics = results(run, model if run == "grounding" else f"{model}-grounding")
                assert row["iou_mean"] == pct(metrics["iou_mean"])
                assert row["point_dice_mean"] == pct(metrics["point_dice_mean"])
            else:
                assert row["iou_mean"] is None and row["tasks_evaluated"] == [CLASSIFICATION_TASK]
    # the mean-box baseline: the one the grounding results carry (every run's the same)
    baselines = [json.loads(p.read_text())["mean_box_baseline"]
                 for p in out.glob("*/eval/*/results.json")
                 if json.loads(p.read_text()).get("task") == GROUNDING_TASK]  # fmt: skip
    baseline = baselines[0]
    assert len(baselines) == 4 and all(b == baseline for b in baselines)
    assert board["grounding_baseline"] == baseline and baseline["n"] == 4
    assert rows["mean-box baseline"]["iou_mean"] == pct(baseline["iou_mean"])
    assert rows["mean-box baseline"]["point_dice_mean"] == pct(baseline["point_dice_mean"])
    assert len(rows) == 7
    lines = (table / "multitask.md").read_text().splitlines()
    line = {row.split(" | ")[0].lstrip("| "): row for row in lines if row.startswith("| ")}
    cells = [c.strip() for c in line["classification (SFT)"].strip("|").split("|")]
    assert cells[2] == "classification" and cells[-3:] == [NOT_EVALUATED] * 3
    cells = [c.strip() for c in line["grounding (SFT+GRPO)"].strip("|").split("|")]
    assert cells[3:7] == [NOT_EVALUATED] * 4 and NOT_EVALUATED not in cells[7:]
    assert f"{pct(baseline['iou_mean']):.2f}" in line["mean-box baseline"]
    assert "multitask" in capsys.readouterr().out

    # a second call finds every step finished: no training, no evaluation
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/eval/*/results.json")}
    assert len(stamps) == 8
    assert paper_tables.main(["--spec", str(spec_file), "--table", "multitask"]) == 0
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}


# -- the layout's refusals (hand-written results) -------------------------------------------


def _write(folder: Path, model: str, task: str, metrics: dict, **extra) -> Path:
    results = {
        "model": model,
        "dataset": "org/ct-rate-vqa",
        "config": "grounding" if task == GROUNDING_TASK else "zoom",
        "split": "test",
        "task": task,
        "modes": {"think": {"n": 40, **metrics}},
        **extra,
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results))
    return folder / "results.json"


ACCURACY = {"accuracy_micro": 0.5, "accuracy_macro": 0.25, "validity_rate": 0.9,
            "fallback_rate": 0.05, "per_class": {}}  # fmt: skip
BOXES = {"iou_mean": 0.3, "iou_50": 0.2, "point_dice_mean": 0.4, "mask_dice_mean": 0.35,
         "oracle_dice_mean": 0.6}  # fmt: skip


@pytest.fixture
def two_models(tmp_path) -> list[Path]:
    """A multitask model (its training record names the task) on both tasks, and a Hub model
    on classification only."""
    training = {"run": "mt", "stages": ["sft"], "dataset_config": "zoom", "task": "multitask"}
    return [
        _write(tmp_path / "mt", "runs/mt/sft", CLASSIFICATION_TASK, ACCURACY, training=training,
               display_name="mt (SFT)"),
        _write(tmp_path / "mt-grounding", "runs/mt/sft", GROUNDING_TASK, BOXES,
               training=training, display_name="mt (SFT)"),
        _write(tmp_path / "hub", "org/model", CLASSIFICATION_TASK, ACCURACY),
    ]  # fmt: skip


def test_layout_reads_the_training_record_and_shows_sam_columns(two_models, tmp_path):
    out = tmp_path / "board"
    assert main([*map(str, two_models), "--output", str(out), "--layout", "multitask"]) == 0
    rows = json.loads((out / "multitask.json").read_text())["rows"]
    assert [(r["model"], r["trained_on"], r["trained_on_from"]) for r in rows] == [
        ("mt (SFT)", "both", "training record"),
        ("org/model", None, "no training recorded"),
    ]
    assert rows[0]["mask_dice_mean"] == 35.0 and rows[0]["oracle_dice_mean"] == 60.0
    lines = (out / "multitask.md").read_text().splitlines()
    assert "mask Dice %" in lines[-4] and "oracle Dice %" in lines[-4]
    hub = [c.strip() for c in lines[-1].strip("|").split("|")]
    assert hub[2] == NOT_EVALUATED and hub[3:7] == ["50.00", "25.00", "90.00", "5.00"]
    assert hub[7:] == [NOT_EVALUATED] * 5


# a grounding results.json's mean_box_baseline, with the keys the grounding evaluator writes
BASELINE = {"n": 40, "train_rows": 8, "box_fraction": [0.25, 0.25, 0.5, 0.5],
            "points_fraction": [[0.3, 0.3], [0.4, 0.4]], "iou_mean": 0.1, "iou_50": 0.0,
            "point_dice_mean": 0.2}  # fmt: skip


def test_the_baseline_row_comes_from_the_grounding_results(two_models, tmp_path):
    """Each layout with grounding columns shows the mean-box baseline the grounding results
    carry (``mean_box_baseline``) as its own row; different ones each get a row only with
    --allow-different-n."""
    grounding = json.loads(two_models[1].read_text())
    two_models[1].write_text(json.dumps(grounding | {"mean_box_baseline": BASELINE}))
    out = tmp_path / "board"
    assert main([*map(str, two_models), "--output", str(out), "--layout", "multitask"]) == 0
    board = json.loads((out / "multitask.json").read_text())
    row = board["rows"][-1]
    assert board["grounding_baseline"] == BASELINE and len(board["rows"]) == 3
    assert (row["model"], row["iou_mean"], row["point_dice_mean"], row["n_grounding"]) == (
        "mean-box baseline", 10.0, 20.0, 40,
    )  # fmt: skip
    line = (out / "multitask.md").read_text().splitlines()[-1]
    assert line.startswith("| mean-box baseline |  | — | — | — | — | — | 10.00 | 0.00 | 20.00 |")

    other = _write(tmp_path / "other-grounding", "org/model", GROUNDING_TASK, BOXES,
                   mean_box_baseline=BASELINE | {"n": 40, "iou_mean": 0.12})  # fmt: skip
    assert main([str(two_models[1]), str(other), "--output", str(out)]) == 2  # grounding table
    assert main([str(two_models[1]), str(other), "--output", str(out), "--allow-different-n"]) == 0
    board = json.loads((out / "grounding.json").read_text())
    assert board["layout"] == "grounding" and board["grounding_baseline"] == [
        BASELINE, BASELINE | {"iou_mean": 0.12}
    ]  # fmt: skip
    assert [r["model"] for r in board["rows"]] == ["mt (SFT)", "org/model"]  # (model, mode) rows
    md = (out / "grounding.md").read_text()
    assert "| mean-box baseline (n = 40) |  | — | 10.00 | 0.00 | 20.00 | – | – |" in md
    assert "| mean-box baseline (n = 40) |  | — | 12.00 |" in md


@pytest.mark.parametrize(
    ("case", "names"),
    [
        ("one task", ["--layout multitask", "all classification"]),
        ("no think", ["no-think only", "think mode"]),
        ("other split", ["different datasets/splits"]),
        ("baselines differ", ["different mean-box baselines", "IoU 0.1000 over 8 training rows",
                              "IoU 0.1200", "--allow-different-n"]),
        ("baseline broken", ["mean_box_baseline", "numeric", "mt-grounding"]),
        ("missing", ["neither a results.json"]),
    ],
)  # fmt: skip
def test_bad_layout_inputs_are_refused_in_one_line(two_models, tmp_path, capsys, case, names):
    files, extra = list(map(str, two_models)), ["--layout", "multitask"]
    if case == "one task":
        files = [str(two_models[0]), str(two_models[2])]
    elif case == "no think":
        data = json.loads(two_models[2].read_text())
        data["modes"] = {"no-think": data["modes"]["think"]}
        two_models[2].write_text(json.dumps(data))
    elif case == "other split":
        data = json.loads(two_models[1].read_text())
        two_models[1].write_text(json.dumps(data | {"split": "validation"}))
    elif case in ("baselines differ", "baseline broken"):
        data = json.loads(two_models[1].read_text())
        broken = {"iou_mean": "high"} if case == "baseline broken" else {}
        two_models[1].write_text(json.dumps(data | {"mean_box_baseline": BASELINE | broken}))
        files.append(str(_write(tmp_path / "hub-grounding", "org/model", GROUNDING_TASK, BOXES,
                                mean_box_baseline=BASELINE | {"iou_mean": 0.12})))  # fmt: skip
    elif case == "missing":
        files.append(str(tmp_path / "nowhere"))
    assert main([*files, "--output", str(tmp_path / "board"), *extra]) == 2
    _one_line(capsys, *names)


def test_medreasoner_pdice_column_beside_ours_where_the_results_have_it(two_models, tmp_path):
    """issue 21: our point-Dice and MedReasoner's pDice side by side, each named; results
    written before the pDice key show no such column."""
    grounding = json.loads(two_models[1].read_text())
    grounding["modes"]["think"]["medreasoner_pdice_mean"] = 0.5714  # 2D / (2 - D), D = 0.4
    two_models[1].write_text(json.dumps(grounding))
    out = tmp_path / "board"
    assert main([*map(str, two_models), "--output", str(out), "--layout", "multitask"]) == 0
    rows = json.loads((out / "multitask.json").read_text())["rows"]
    assert (rows[0]["point_dice_mean"], rows[0]["medreasoner_pdice_mean"]) == (40.0, 57.14)
    text = (out / "multitask.md").read_text()
    assert "| point-Dice % | MedReasoner pDice % |" in text and "comparable with the paper" in text
    grounding["modes"]["think"].pop("medreasoner_pdice_mean")
    two_models[1].write_text(json.dumps(grounding))
    assert main([*map(str, two_models), "--output", str(out), "--layout", "multitask"]) == 0
    assert "MedReasoner pDice" not in (out / "multitask.md").read_text()
