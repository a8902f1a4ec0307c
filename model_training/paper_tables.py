r"""The paper's tables, one command each: train and evaluate what a table compares, then render
it in the paper's layout.

    python -m model_training.paper_tables --table table3                # the CPU miniature
    python -m model_training.paper_tables --table all \
        --spec recipes/paper-tables/medreason-r1-qwen2.5-vl-7b.yaml     # the 7B recipe set

A *spec* (``recipes/paper-tables/*.yaml``) names a run recipe, the runs the tables need (each
the recipe plus command-line overrides of ``python -m model_training.run``) and, per table, the
models it compares as ``RUN/MODEL`` (MODEL: ``base``, ``sft`` or ``grpo``, the run's
``eval/MODEL`` results). A run may start its GRPO from another run's SFT model
(``grpo_from: RUN``), so that the reward ablations share one SFT model as in the paper.

A run's ``overrides`` are the run recipe's fields as the run driver's command line gives them
(``FIELD``, ``sft.FIELD``, ``grpo.FIELD``, ``eval.FIELD``); each run is planned in this process
(``run_recipe.plan_run``) and carried out by the run driver's ``run(plan)``. Each run goes to
``OUT/RUN`` and is resumed, never redone: a finished step is kept (the run driver's state
file), so asking for a second table reuses the runs of the first. Each table is rendered by the
leaderboard (``build_leaderboard``, layout TABLE) into ``OUT/tables/TABLE/`` (``TABLE.md``,
``.json``, ``.png``): a folder of its own, never a run's (a run and a table may share a
name). Table 1 also evaluates the baselines file the spec names (the baselines command's
``run``, with ``baseline_options`` as its fields).

Tables: ``table1`` (models, with / without thinking), ``table3`` (SFT with the zoom-in patch vs
plain images), ``table4`` (GRPO reward ablations), ``fig3`` (chain of thought forced after
SFT; reasoning-answer consistency, SFT vs SFT + RL), ``multitask`` (ours, issue 12: a model
trained on both tasks against single-task ones, both tasks' metrics per model; its spec is
``recipes/paper-tables/demo-multitask-cpu.yaml``). ``--table all`` makes the tables the spec
defines.

A ``multitask`` table's ``RUN/MODEL`` brings every task result the run has for the model:
``eval/MODEL/results.json`` (the run's first task: classification, or grounding for a
grounding-only run) and ``eval/MODEL-grounding/results.json`` (a multitask run's grounding
evaluation); the mean-box baseline row comes from the grounding results themselves.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from common.cli_options import parse_options
from common.errors import UserError, user_errors
from common.names import GROUNDING_TASK

from .evaluation.baselines import PAPER_FIGURES_FILE, BaselinesArguments
from .evaluation.baselines import run as run_baselines_command
from .evaluation.leaderboard import LeaderboardArguments, build_leaderboard
from .run import StepFailed
from .run import run as run_driver
from .run_arguments import RunPlan
from .run_recipe import REPO_ROOT, load_recipe, plan_run, with_overrides

MULTITASK_TABLE = "multitask"  # ours: both tasks' metrics per model (its leaderboard layout)
TABLES = ("table1", "table3", "table4", "fig3", MULTITASK_TABLE)
MODELS = ("base", "sft", "grpo")  # the run driver's eval/<label> folders
DEFAULT_SPEC = "recipes/paper-tables/demo-cpu.yaml"  # ours: the CPU miniature (find_path)
SPEC_KEYS = {"recipe", "output_dir", "runs", "tables", "baselines", "baseline_options"}
TABLES_DIR = "tables"  # OUT/tables/TABLE/: the rendered tables, beside the runs' OUT/RUN/
BASELINES_DIR = "baselines"  # OUT/baselines/: Table 1's baselines
RESERVED_RUN_NAMES = (TABLES_DIR, BASELINES_DIR)  # folders of OUT that are not runs
RUN_KEYS = {"overrides", "grpo_from"}


class TablesError(UserError):
    """A spec or option that cannot be carried out; the message says what to do."""


@dataclass
class PaperTablesArguments:
    """The options of ``python -m model_training.paper_tables``."""

    table: str = field(
        default="all", metadata={"help": f"which table: one of {', '.join(TABLES)}, or all"}
    )
    spec: str = field(
        default=DEFAULT_SPEC,
        metadata={"help": "the tables' spec: run recipe, runs and the models each table compares"},
    )
    output_dir: str | None = field(
        default=None, metadata={"help": "where runs and tables go (default: the spec's output_dir)"}
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={"help": "Table 1: also evaluate the baselines that need their repo's own code"},
    )
    dry_run: bool = field(
        default=False, metadata={"help": "print the commands that would run, run nothing"}
    )


@dataclass
class Spec:
    recipe: str
    output_dir: str
    runs: dict[str, dict]
    tables: dict[str, list[str]]
    baselines: str | None = None
    baseline_options: dict = field(default_factory=dict)
    path: Path | None = None  # the spec file (for messages)


def find_path(path: str | Path, spec: Path | None = None) -> Path:
    """A path as the user or a spec gives it: from the working directory; a relative one that
    is not there is looked up beside ``spec`` and then in the toolkit's checkout (the shipped
    specs name their recipes from its root), so that the defaults work from any folder, as
    ``model_training.run``'s default recipe does."""
    path = Path(path).expanduser()
    if path.exists() or path.is_absolute():
        return path
    for root in ([spec.parent] if spec else []) + [REPO_ROOT]:
        if (root / path).exists():
            return root / path
    return path


def _spec_problem(raw: dict) -> str | None:
    """What in a spec mapping has the wrong shape or type, naming the field; or None."""
    for key in ("recipe", "output_dir"):
        if not isinstance(raw[key], str) or not raw[key]:
            return f"{key} must be a path (got {raw[key]!r})"
    if raw.get("baselines") is not None and not isinstance(raw["baselines"], str):
        return f"baselines must be a path (got {raw['baselines']!r})"
    if not isinstance(raw.get("baseline_options") or {}, dict):
        return "baseline_options must be a mapping of the baselines command's fields"
    runs, tables = raw["runs"], raw["tables"]
    if not isinstance(runs, dict) or not runs:
        return "runs must be a mapping of run name: {overrides: ..., grpo_from: RUN}"
    for name, run in runs.items():
        if name in RESERVED_RUN_NAMES:
            return f"run {name!r}: OUT/{name}/ holds the {name}, not a run: name the run otherwise"
        if run is not None and (not isinstance(run, dict) or set(run) - RUN_KEYS):
            return f"run {name!r} must be a mapping and takes only {sorted(RUN_KEYS)}"
        run = run or {}
        if not isinstance(run.get("overrides") or {}, dict):
            return f"run {name!r}: overrides must be a mapping of FIELD: value"
        source = run.get("grpo_from")
        if source is None:
            continue
        target = runs.get(source) if isinstance(source, str) else None
        if source == name or not isinstance(source, str) or source not in runs:
            return f"run {name!r} has grpo_from {source!r}, not another run"
        target = target or {}
        stage = (target.get("overrides") or {}).get("stage", "all")
        if target.get("grpo_from") is not None or stage not in ("all", "sft"):
            why = (
                "its GRPO starts from another run" if target.get("grpo_from") else f"stage {stage}"
            )
            return (
                f"run {name!r} has grpo_from {source!r}, which trains no SFT model ({why}): "
                "name a run that trains SFT"
            )
    if not isinstance(tables, dict) or not tables:
        return f"tables must be a mapping of table: [RUN/MODEL, ...] (tables: {', '.join(TABLES)})"
    for table, models in tables.items():
        if table not in TABLES:
            return f"unknown table {table!r}; tables are {', '.join(TABLES)}"
        if not isinstance(models, list) or not models:
            return f"table {table} must list its models as [RUN/MODEL, ...]"
        for ref in models:
            run, _, model = str(ref).partition("/")
            if not isinstance(ref, str) or run not in runs or model not in MODELS:
                return (
                    f"table {table} names {ref!r}; write RUN/MODEL with a run of the spec and "
                    f"MODEL one of {', '.join(MODELS)}"
                )
    return None


def load_spec(path: str | Path) -> Spec:
    """A tables spec, checked: the shape and type of every field; every table names known runs
    and models; a run's GRPO starts from a run that trains SFT. Its recipe and baselines paths
    are found as :func:`find_path` says."""
    given = path
    path = find_path(path)
    if not path.is_file():
        raise TablesError(
            f"spec {given} does not exist; pass --spec recipes/paper-tables/NAME.yaml"
        )
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise TablesError(f"spec {path} cannot be read as YAML: {first}") from None
    if not isinstance(raw, dict) or not {"recipe", "output_dir", "runs", "tables"} <= set(raw):
        raise TablesError(f"spec {path} needs the keys recipe, output_dir, runs and tables")
    unknown = set(raw) - SPEC_KEYS
    if unknown:
        raise TablesError(
            f"spec {path}: unknown key(s) {sorted(unknown)}; allowed {sorted(SPEC_KEYS)}"
        )
    problem = _spec_problem(raw)
    if problem:
        raise TablesError(f"spec {path}: {problem}")
    spec = Spec(**raw)
    spec.runs = {name: run or {} for name, run in spec.runs.items()}
    spec.recipe = str(find_path(spec.recipe, path))
    if spec.baselines is not None:
        spec.baselines = str(find_path(spec.baselines, path))
        if not Path(spec.baselines).is_file():
            raise TablesError(f"spec {path}: baselines file {raw['baselines']} does not exist")
    spec.path = path
    return spec


def run_plans(spec: Spec, out: Path, name: str, plan_only: bool = False) -> list[RunPlan]:
    """The run driver's plans for one run: train what it trains, then evaluate (resumed).
    ``plan_only`` (``--dry-run``): parsed as the run driver's ``--dry_run`` parses them, so a
    GPU recipe plans on a machine without one."""
    run_spec = spec.runs[name]
    overrides = dict(run_spec.get("overrides") or {})
    stage = str(overrides.pop("stage", "all"))
    overrides |= {"output_dir": str(out / name), "resume": True, "dry_run": plan_only}
    source = run_spec.get("grpo_from")
    if source is not None:
        if stage not in ("all", "grpo"):
            raise TablesError(f"run {name!r}: grpo_from trains GRPO; drop stage {stage!r}")
        overrides["grpo.model_name_or_path"] = str(out / source / "sft")
        stage = "grpo"
    recipe = load_recipe(Path(spec.recipe))
    stages = ["all"] if stage == "all" else [stage, "eval"]
    return [plan_run(Path(spec.recipe), with_overrides(recipe, overrides | {"stage": s}))
            for s in stages]  # fmt: skip


def runs_needed(spec: Spec, tables: list[str]) -> list[str]:
    """The runs the tables compare, each after the run its GRPO starts from."""
    wanted = {str(ref).partition("/")[0] for t in tables for ref in spec.tables.get(t) or []}
    order: list[str] = []

    def visit(name: str) -> None:
        source = spec.runs[name].get("grpo_from")
        if source is not None:
            visit(source)
        if name not in order:
            order.append(name)

    for name in spec.runs:  # the spec's order
        if name in wanted:
            visit(name)
    return order


def results_path(out: Path, ref: str, suffix: str = "") -> Path:
    """``OUT/RUN/eval/MODEL<suffix>/results.json`` (suffix ``-grounding``: the grounding
    evaluation of a multitask run, the run driver's ``eval_folder``)."""
    run, _, model = ref.partition("/")
    return out / run / "eval" / f"{model}{suffix}" / "results.json"


def task_results(out: Path, ref: str, dry_run: bool = False) -> list[Path]:
    """A multitask table's ref: each of its task results that exists (``eval/MODEL`` and
    ``eval/MODEL-grounding``); a dry run, before the runs, names both."""
    candidates = [results_path(out, ref), results_path(out, ref, f"-{GROUNDING_TASK}")]
    found = [path for path in candidates if path.is_file()]
    if found or dry_run:
        return found or candidates
    raise TablesError(
        f"table {MULTITASK_TABLE} names {ref!r}, and its run evaluated it on no task (neither "
        f"{candidates[0]} nor {candidates[1]} exists): evaluate that model (the run's eval stage)"
        " or drop it from the table"
    )


def leaderboard_options(
    spec: Spec, out: Path, table: str, baseline_results: list[Path], dry_run: bool = False
) -> LeaderboardArguments:
    """The leaderboard's options for one table: its results (and Table 1's baselines)."""
    refs = [str(ref) for ref in spec.tables[table]]
    if table == MULTITASK_TABLE:
        results = [str(p) for ref in refs for p in task_results(out, ref, dry_run)]
    else:
        results = [str(results_path(out, ref)) for ref in refs]
    figures = out / BASELINES_DIR / PAPER_FIGURES_FILE
    return LeaderboardArguments(
        output=str(out / TABLES_DIR / table),
        results=[*results, *map(str, baseline_results)],
        layout=table,
        paper_figures=str(figures) if table == "table1" and figures.is_file() else None,
    )


def make_tables(options: PaperTablesArguments) -> dict[str, Path]:
    """Run what the tables need and render them; return {table: its markdown file}."""
    spec = load_spec(options.spec)
    if options.table != "all" and options.table not in TABLES:
        raise TablesError(f"--table {options.table!r}: use one of {', '.join(TABLES)}, or all")
    tables = [t for t in TABLES if t in spec.tables and options.table in (t, "all")]
    if not tables:
        raise TablesError(
            f"spec {options.spec} defines no {options.table}; it has {list(spec.tables)}"
        )
    if options.trust_remote_code and not ("table1" in tables and spec.baselines is not None):
        raise TablesError(
            "--trust-remote-code runs Table 1's baselines, and this call evaluates none (no "
            "table1, or a spec without a baselines file): drop it"
        )
    out = Path(options.output_dir or spec.output_dir)
    for name in runs_needed(spec, tables):
        try:
            plans = run_plans(spec, out, name, plan_only=options.dry_run)
        except UserError as err:  # a recipe field the run driver refuses: the run names it
            raise TablesError(f"spec {spec.path}: run {name!r}: {err}") from None
        for plan in plans:
            print(f"run {name} (stage {plan.run.stage}): {spec.recipe} with {spec.runs[name]} "
                  f"-> {plan.run.output_dir}", flush=True)  # fmt: skip
            if options.dry_run:
                continue
            try:
                run_driver(plan)
            except (UserError, StepFailed) as err:
                raise TablesError(f"run {name!r} failed: {err}") from err
    baseline_results: list[Path] = []
    if "table1" in tables and spec.baselines is not None:
        baseline_results = run_baselines(spec, out, options)
    made = {}
    for table in tables:
        board = leaderboard_options(spec, out, table, baseline_results, options.dry_run)
        print(f"leaderboard: layout {board.layout}, results {' '.join(board.results)} -> "
              f"{board.output}", flush=True)  # fmt: skip
        if not options.dry_run:
            build_leaderboard(board)
            made[table] = out / TABLES_DIR / table / f"{table}.md"
    return made


def run_baselines(spec: Spec, out: Path, options: PaperTablesArguments) -> list[Path]:
    """Evaluate the spec's baselines file (Table 1); return their results.json files."""
    fields = {k.replace("-", "_"): v for k, v in (spec.baseline_options or {}).items()}
    try:
        baselines = BaselinesArguments(
            baselines=str(spec.baselines), out=str(out / BASELINES_DIR),
            trust_remote_code=options.trust_remote_code, **fields,
        )  # fmt: skip
    except TypeError as err:  # a field the baselines command does not have, or one missing
        raise TablesError(f"spec {options.spec}: baseline_options: {err}") from None
    print(f"baselines: {spec.baselines} -> {baselines.out}", flush=True)
    if options.dry_run:
        return []
    if run_baselines_command(baselines) != 0:
        raise TablesError("the baselines' evaluation failed (its message is above)")
    return sorted((out / BASELINES_DIR).glob("*/results.json"))


@user_errors
def main(argv: list[str] | None = None) -> int:
    (options,) = parse_options(
        PaperTablesArguments, argv, "python -m model_training.paper_tables", __doc__
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    made = make_tables(options)
    for table, path in made.items():
        print(f"\n{table}: {path}\n{path.read_text()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
