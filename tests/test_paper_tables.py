"""``python -m model_training.paper_tables``: specs are checked, runs are planned and shared,
and a miniature of Table 3, Table 4 and Fig. 3 is trained, evaluated and rendered for real."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from model_training import paper_tables
from model_training.paper_tables import (
    MULTITASK_TABLE,
    TABLES,
    load_spec,
    run_plans,
    runs_needed,
)

from .test_run import TINY_RUN, write_recipe

RECIPES = Path(__file__).parents[1] / "recipes" / "paper-tables"


SPECS = ["demo-cpu.yaml", "medreason-r1-qwen2.5-vl-7b.yaml"]  # the baselines file is no spec
PAPER_TABLES = set(TABLES) - {MULTITASK_TABLE}  # the paper's; multitask has its own spec


@pytest.mark.parametrize("name", SPECS)
def test_shipped_specs_name_real_runs_and_tables(name):
    spec = load_spec(RECIPES / name)
    assert Path(spec.recipe).is_file() and set(spec.tables) == PAPER_TABLES
    # Table 4's rows are the paper's reward sets, all from one SFT model
    sources = {spec.runs[ref.split("/")[0]].get("grpo_from") for ref in spec.tables["table4"]}
    assert sources == {"zoom", None} and spec.tables["table4"][-1] == "zoom/grpo"


def test_runs_are_planned_once_and_after_their_sft(tmp_path):
    spec = load_spec(RECIPES / "demo-cpu.yaml")
    assert runs_needed(spec, ["table4"])[0] == "zoom"  # the ablations start from zoom's SFT
    assert runs_needed(spec, ["table3", "fig3"]) == ["zoom", "plain"]
    plans = run_plans(spec, tmp_path, "correctness")  # the run driver's own plans
    assert [p.run.stage for p in plans] == ["grpo", "eval"]
    grpo = plans[0].stages["grpo"]
    assert grpo.start_model == str(tmp_path / "zoom" / "sft") and grpo.start_stage is None
    assert grpo.training.reward_funcs == ["correctness"] and grpo.training.reward_weights == [2.0]
    for plan in plans:
        assert plan.run.resume and plan.run.output_dir == str(tmp_path / "correctness")
        assert plan.run.eval_base_model is False
    plain = run_plans(spec, tmp_path, "plain")
    assert [p.run.stage for p in plain] == ["sft", "eval"]
    assert {s.args.dataset_config for s in plain[0].stages.values()} == {"plain"}
    (zoom,) = run_plans(spec, tmp_path, "zoom")  # a spec's eval.FIELD reaches the evaluator
    assert zoom.run.stage == "all" and zoom.evaluations["classification"].judge == "keyword"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"tables": {"table9": []}}, "unknown table"),
        ({"tables": {"table3": ["zoom/final"]}}, "RUN/MODEL"),
        ({"tables": {"table3": ["nowhere/sft"]}}, "RUN/MODEL"),
        ({"runs": {"zoom": {"grpo_from": "zoom"}}}, "grpo_from"),
        ({"runs": {"zoom": {"recipe": "x.yaml"}}}, "takes only"),
        ({"extra": 1}, "unknown key"),
        ({"baselines": "missing.yaml"}, "does not exist"),
        # issue 20: tracebacks before
        (
            {
                "runs": {"a": {"grpo_from": "b"}, "b": {"grpo_from": "a"}},
                "tables": {"table4": ["a/grpo"]},
            },
            "run 'a' has grpo_from 'b', which trains no SFT",
        ),
        ({"runs": ["zoom", "plain"]}, "runs must be a mapping"),
        ({"tables": ["table3"]}, "tables must be a mapping"),
        ({"tables": {"table3": "zoom/sft"}}, "table table3 must list its models"),
        ({"recipe": 3}, "recipe must be a path"),
        ({"runs": {"zoom": {"overrides": ["stage", "sft"]}}}, "run 'zoom': overrides must be"),
        ({"runs": {"zoom": 3}}, "run 'zoom' must be a mapping"),
        ({"runs": {"tables": {}}}, "OUT/tables/ holds the tables, not a run"),
        ({"baseline_options": [1]}, "baseline_options must be a mapping"),
        (
            {
                "runs": {"zoom": {"overrides": {"sft.max_steps": -3}}},
                "tables": {"table3": ["zoom/sft"]},
            },
            "run 'zoom': sft stage: max_steps=-3",
        ),
    ],
)
def test_bad_specs_are_refused_in_one_line(tmp_path, capsys, edit, message):
    raw = yaml.safe_load((RECIPES / "demo-cpu.yaml").read_text())
    raw.update(edit)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    assert paper_tables.main(["--spec", str(bad), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and str(bad) in err


def test_the_default_spec_works_from_any_folder(tmp_path, monkeypatch, capsys):
    """issue 20: its default path was relative to the working directory."""
    monkeypatch.chdir(tmp_path)
    assert paper_tables.main(["--table", "table3", "--dry-run"]) == 0
    assert (
        "run zoom (stage all): " + str(RECIPES.parent / "demo-cpu.yaml") in capsys.readouterr().out
    )
    assert list(tmp_path.iterdir()) == []  # a dry run writes nothing


def test_unknown_table_option_is_refused(capsys):
    assert paper_tables.main(["--table", "table2", "--dry-run"]) == 2
    assert "--table 'table2'" in capsys.readouterr().err


def test_trust_remote_code_without_baselines_is_refused(capsys):
    """Accepted and ignored otherwise: the CPU spec has no baselines, table3 runs none."""
    assert paper_tables.main(["--table", "table3", "--trust-remote-code", "--dry-run"]) == 2
    assert "--trust-remote-code runs Table 1's baselines" in capsys.readouterr().err


def test_a_miniature_of_table3_table4_and_fig3(tmp_path, built_dataset, capsys):
    """The real flow on the tiny model: three runs (one GRPO from another run's SFT model),
    trained, evaluated and rendered; asking again reruns nothing."""
    recipe = write_recipe(
        tmp_path / "recipe.yaml",
        {"model_name_or_path": str(tmp_path / "tiny"), "dataset_name": str(built_dataset),
         **TINY_RUN, "output_dir": str(tmp_path / "unused")},
    )  # fmt: skip
    spec = {
        "recipe": str(recipe),
        "output_dir": str(tmp_path / "tables"),
        "runs": {
            "zoom": {"overrides": {"dataset_config": "zoom"}},
            "plain": {
                "overrides": {"dataset_config": "plain", "stage": "sft", "eval_base_model": False}
            },  # fmt: skip
            "correctness": {
                "grpo_from": "zoom",
                "overrides": {
                    "eval_base_model": False,
                    "grpo.reward_funcs": ["correctness"],
                    "grpo.reward_weights": [2.0],
                },  # fmt: skip
            },
        },
        "tables": {
            "table3": ["zoom/sft", "plain/sft"],
            "table4": ["correctness/grpo", "zoom/grpo"],
            "fig3": ["zoom/sft", "zoom/grpo"],
        },
    }
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert paper_tables.main(["--spec", str(spec_file)]) == 0
    out = tmp_path / "tables"
    for table in ("table3", "table4", "fig3"):
        folder = out / "tables" / table  # a namespace of its own: never a run's folder
        assert (folder / f"{table}.md").is_file() and (folder / f"{table}.png").is_file()

    # the ablation's GRPO started from the zoom run's SFT model, with its own reward set
    grpo_recipe = yaml.safe_load((out / "correctness" / "recipes" / "grpo.yaml").read_text())
    assert grpo_recipe["model_name_or_path"] == str(out / "zoom" / "sft")
    assert (
        grpo_recipe["reward_funcs"] == ["correctness"]
        and not (out / "correctness" / "sft").exists()
    )
    summary = json.loads((out / "correctness" / "grpo" / "training_summary.json").read_text())
    assert summary["reward_funcs"] == ["correctness"]

    # each table's figures are the evaluations' own
    def accuracy(ref: str, mode: str) -> float:
        results = json.loads((out / ref.replace("/", "/eval/") / "results.json").read_text())
        return results["modes"][mode]["accuracy_micro"]

    table3 = json.loads((out / "tables" / "table3" / "table3.json").read_text())
    table4 = json.loads((out / "tables" / "table4" / "table4.json").read_text())
    fig3 = json.loads((out / "tables" / "fig3" / "fig3.json").read_text())
    for rendered, refs in ((table3, spec["tables"]["table3"]), (table4, spec["tables"]["table4"])):
        assert sorted(json.dumps(rendered).count(str(round(100 * accuracy(r, "think"), 2)))
                      for r in refs)[0] >= 1  # fmt: skip
    assert "consistency" in json.dumps(fig3)
    printed = capsys.readouterr().out
    assert "table3" in printed and "table4" in printed and "fig3" in printed

    # a second call finds every step finished: no training, no evaluation
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/eval/*/results.json")}
    assert paper_tables.main(["--spec", str(spec_file), "--table", "fig3"]) == 0
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}
