"""The recipe of a whole run (``python -m model_training.run``): one YAML for every stage.

A run recipe is a TRL recipe with three optional sections::

    output_dir: outputs/demo-cpu        # run fields (RunArguments): folders, launcher, inputs
    accelerate_config: recipes/accelerate/zero2.yaml
    model_name_or_path: ...             # shared fields: CTRateVQAArguments, ModelConfig and the
    learning_rate: 1.0e-5               #   trainer configs, for every stage that has them
    sft:                                # SFTConfig fields for stage 1 only
      num_train_epochs: 2
    grpo:                               # GRPORecipe fields for stage 2 only
      learning_rate: 1.0e-6
    eval:                               # the evaluator's EvaluateArguments, for every evaluation
      mode: think
      sam_model: none

A stage section may also name a stage recipe file (``sft: sft.yaml``, relative to the run
recipe), whose fields then form the section (its ``output_dir`` gives way to the run's).

The command line overrides it the same way: ``--learning_rate 3e-5`` (every stage that has
the field), ``--sft.learning_rate 3e-5``, ``--grpo.max_steps 10`` or ``--eval.limit 4`` (one
section). Each stage is parsed by ``TrlParser`` with its own dataclasses, so a field's type,
default and help are TRL's; the ``eval:`` section is parsed into the evaluator's own
``EvaluateArguments`` with its defaults (``sam_model``: MedSAM; the CPU demos say ``none``),
less what the run fills in per evaluation (``model``, ``dataset``, ``config``, ``output_dir``,
``overwrite``: refused in the section). Each evaluated task checks the section once, here,
through the evaluator's task registry. A field that no dataclass knows is an error that names it.

The parse ends in one plain stage recipe per stage (``StagePlan.recipe``): the YAML that
``python -m model_training.sft|grpo --config`` reads, written by the driver to
``<output_dir>/recipes/<stage>.yaml``; and one ``EvaluateArguments`` per evaluated task
(``RunPlan.evaluations``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import yaml
from trl import ModelConfig, SFTConfig

from .configs import CTRateVQAArguments, GRPORecipe, check_model_config
from .run_arguments import (
    STAGE_CHOICES,
    STAGES,
    RecipeError,
    RecipeParser,
    RunArguments,
    RunPlan,
    StagePlan,
    option_keys,
    plain,
    typed,
)
from .run_evaluations import (
    EVAL_SECTION,
    RUN_FILLED,
    EvalParser,
    check_old_keys,
    eval_tasks,
    parse_eval,
    task_evaluations,
)
from .run_files import check_output_dir
from .stage_options import check_ranges

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RECIPE = REPO_ROOT / "recipes" / "demo-cpu.yaml"
TRAINER_CONFIGS = {"sft": SFTConfig, "grpo": GRPORecipe}
SECTIONS = (*STAGES, EVAL_SECTION)


def stage_parser(stage: str) -> RecipeParser:
    return RecipeParser(CTRateVQAArguments, TRAINER_CONFIGS[stage], ModelConfig)


def _pop_value(argv: list[str], flag: str) -> str | None:
    for i, token in enumerate(argv):
        if token == flag:
            if i + 1 >= len(argv):
                raise RecipeError(f"{flag} needs a value")
            value = argv[i + 1]
            del argv[i : i + 2]
            return value
        if token.startswith(flag + "="):
            del argv[i]
            return token.split("=", 1)[1]
    return None


def _split_overrides(argv: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Command line -> (common tokens, {section: tokens}) by the ``--sft.`` / ``--grpo.`` /
    ``--eval.`` prefix."""
    common: list[str] = []
    per_section: dict[str, list[str]] = {s: [] for s in SECTIONS}
    target = common
    for token in argv:
        if token.startswith("--"):
            section, dot, rest = token[2:].partition(".")
            target = per_section[section] if dot and section in SECTIONS else common
            token = "--" + rest if target is not common else token
        target.append(token)
    return common, per_section


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise RecipeError(f"recipe {path} does not exist; pass --config PATH to a recipe YAML")
    try:
        recipe = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise RecipeError(f"recipe {path} is not valid YAML: {err}") from err
    if not isinstance(recipe, dict):
        raise RecipeError(f"recipe {path} must be a YAML mapping of field: value")
    return recipe


def load_recipe(path: Path) -> dict:
    """The run recipe with its sections as mappings (a stage section may name a file)."""
    recipe = _read_yaml(path)
    for name in SECTIONS:
        section = recipe.get(name) or {}
        if isinstance(section, str) and name in STAGES:  # a stage recipe file, beside this one
            section = _read_yaml(path.parent / section)
            section.pop("output_dir", None)  # the run writes the stage to <output_dir>/<stage>
        if not isinstance(section, dict):
            raise RecipeError(f"recipe {path}: the '{name}' section must be a mapping"
                              + (" or a recipe file name" if name in STAGES else ""))  # fmt: skip
        recipe[name] = section
    return recipe


def with_overrides(recipe: dict, overrides: dict[str, object]) -> dict:
    """``recipe`` (``load_recipe``'s) with ``overrides`` applied as the command line applies
    them: ``SECTION.FIELD`` sets the field in one section; a plain field is set for the whole
    run and replaces the stage sections' own value (as ``--field`` does)."""
    recipe = {**recipe, **{name: dict(recipe.get(name) or {}) for name in SECTIONS}}
    for key, value in overrides.items():
        section, dot, name = key.partition(".")
        if dot and section in SECTIONS:
            recipe[section][name] = value
            continue
        recipe[key] = value
        for stage in STAGES:
            recipe[stage].pop(key, None)
    return recipe


def help_text() -> str:
    parts = [
        "usage: python -m model_training.run [--config RECIPE.yaml] [--stage "
        + "|".join(STAGE_CHOICES)
        + "] [--resume | --overwrite] [--field value ...] [--sft.field value ...] "
        "[--grpo.field value ...] [--eval.field value ...]\n",
        __doc__ or "",
        f"Without --config the default recipe is {DEFAULT_RECIPE.relative_to(REPO_ROOT)}.\n",
        "== run fields ==",
        RecipeParser(RunArguments).format_help(),
    ]
    for stage in STAGES:
        parts += [
            f"== {stage} stage fields (--{stage}.FIELD for this stage only) ==",
            stage_parser(stage).format_help(),
        ]
    parts += [
        f"== eval section fields (--eval.FIELD; the run fills in {', '.join(RUN_FILLED)}) ==",
        EvalParser({}).format_help(),
    ]
    return "\n".join(parts)


def _parse_stage(
    stage: str, recipe_path: Path, shared: dict, section: dict, common: list[str],
    own: list[str], output_dir: str, plan_only: bool = False,
) -> tuple[StagePlan, set[str], set[str]]:  # fmt: skip
    """One stage's plan, plus the shared keys and common flags this stage does not know.
    ``plan_only`` (--dry_run): a GPU recipe parses on a machine without one (TrainingArguments
    refuses bf16 there unless use_cpu); the plan still reads the stage as a GPU stage."""
    parser = stage_parser(stage)
    known = parser.fields()
    unknown_section = set(section) - known
    if unknown_section:
        raise RecipeError(
            f"recipe {recipe_path}: unknown field(s) {sorted(unknown_section)} in the "
            f"'{stage}' section (see --help)"
        )
    # each value's type, named where it is written: the run recipe, or its stage section
    parser.typed_defaults({k: v for k, v in shared.items() if k in known}, f"recipe {recipe_path}")
    parser.typed_defaults(section, f"recipe {recipe_path}, '{stage}' section")
    yaml_fields = {k: v for k, v in shared.items() if k in known} | section
    forced_cpu = plan_only and "use_cpu" not in {*yaml_fields, *option_keys(common + own)}
    parser.set_defaults_with_config(
        output_dir=output_dir, **({"use_cpu": True} if forced_cpu else {})
    )
    try:
        args, training, model_args, remaining = parser.parse_args_into_dataclasses(
            args=common + own, return_remaining_strings=True
        )
        check_model_config(model_args, args, training)  # refused fields, before any stage runs
    except (ValueError, TypeError) as err:
        raise RecipeError(f"{stage} stage: {err}") from err
    check_ranges((args, training, model_args), f"{stage} stage", RecipeError)
    if forced_cpu:
        training.use_cpu = False
    unknown_own = set(option_keys(remaining)) & set(option_keys(own))
    if unknown_own:
        raise RecipeError(f"unknown {stage} field(s) {sorted(unknown_own)} (see --help)")
    parsed = (args, training, model_args)
    overrides = [k for k in option_keys(common) + option_keys(own) if k in known]
    recipe = {
        **yaml_fields,
        **{k: typed(parsed, k) for k in overrides},
        "output_dir": output_dir,
    }
    model_from_recipe = "model_name_or_path" in section or "model_name_or_path" in option_keys(own)
    plan = StagePlan(stage, args, training, model_args, recipe, model_from_recipe)
    return plan, set(shared) - known, set(option_keys(remaining))


def parse_run(argv: list[str] | None = None) -> RunPlan:
    """Recipe YAML + command line -> a RunPlan (run settings, one plan per stage, the
    evaluator's options per evaluated task)."""
    argv = list(argv or [])
    config = _pop_value(argv, "--config")
    recipe_path = Path(config) if config else DEFAULT_RECIPE
    return plan_run(recipe_path, load_recipe(recipe_path), argv)


def plan_run(recipe_path: Path, recipe: dict, argv: list[str] | None = None) -> RunPlan:
    """A loaded recipe (``load_recipe``, maybe ``with_overrides``) and command-line overrides
    -> a RunPlan."""
    recipe = {**recipe, **{name: dict(recipe.get(name) or {}) for name in SECTIONS}}
    run_fields = {f.name for f in dataclasses.fields(RunArguments)}
    for stage in STAGES:
        misplaced = run_fields & set(recipe[stage])
        if misplaced:
            raise RecipeError(
                f"recipe {recipe_path}: {sorted(misplaced)} are run fields; move them out of "
                f"the '{stage}' section"
            )
    shared = {k: v for k, v in recipe.items() if k not in SECTIONS and k not in run_fields}
    beside = recipe_path.parent / str(recipe.get("accelerate_config"))  # from any folder
    if isinstance(recipe.get("accelerate_config"), str) and beside.is_file():
        recipe["accelerate_config"] = os.path.normpath(beside)

    common, per_section = _split_overrides(list(argv or []))
    check_old_keys(recipe_path, [*recipe, *option_keys(common), *recipe["sft"], *recipe["grpo"]])
    run_parser = RecipeParser(RunArguments)
    run_parser.typed_defaults(
        {k: v for k, v in recipe.items() if k in run_fields}, f"recipe {recipe_path}"
    )
    try:
        run, rest = run_parser.parse_args_into_dataclasses(
            args=common, return_remaining_strings=True
        )
    except (ValueError, TypeError) as err:
        raise RecipeError(str(err)) from err
    check_output_dir(run.output_dir)

    stages, unknown_shared, unknown_flags = {}, set(shared), set(option_keys(rest))
    for stage in STAGES:
        output_dir = str(Path(run.output_dir) / stage)
        stages[stage], not_shared, not_flags = _parse_stage(
            stage, recipe_path, shared, recipe[stage], rest, per_section[stage], output_dir,
            plan_only=run.dry_run,
        )  # fmt: skip
        unknown_shared &= not_shared
        unknown_flags &= not_flags
    if unknown_shared:
        raise RecipeError(f"recipe {recipe_path}: unknown field(s) {sorted(unknown_shared)}")
    if unknown_flags:
        raise RecipeError(f"unknown field(s) {sorted(unknown_flags)} (see --help)")

    options = parse_eval(recipe_path, recipe[EVAL_SECTION], per_section[EVAL_SECTION])
    evaluations = task_evaluations(options, stages, recipe_path)
    link_stages(stages)
    as_run = {k: v for k, v in recipe.items() if k not in SECTIONS}
    as_run |= {
        k: plain(getattr(run, k))
        for k in run_fields
        if getattr(run, k) != RunArguments.__dataclass_fields__[k].default
    }
    every = tuple(obj for s in stages.values() for obj in (s.args, s.training, s.model_args))
    for key in option_keys(rest):
        as_run[key] = typed(every, key)
    for stage, plan in stages.items():
        objs = (plan.args, plan.training, plan.model_args)
        section = recipe[stage] | {k: typed(objs, k) for k in option_keys(per_section[stage])}
        if plan.start_stage is not None:  # the link, not a model of the user's: not recorded
            section.pop("model_name_or_path", None)
        if section:
            as_run[stage] = section
    section = recipe[EVAL_SECTION] | {
        k: typed((options,), k) for k in option_keys(per_section[EVAL_SECTION])
    }
    if section:
        as_run[EVAL_SECTION] = section
    return RunPlan(run, stages, recipe_path, as_run, evaluations)


def link_stages(stages: dict[str, StagePlan]) -> None:
    """Set each stage's start: the first stage's is ``model_name_or_path``; a later stage's is
    this run's previous stage (its ``output_dir``, also where its recipe names that folder),
    unless its own section or override names another model (paper_tables' ``grpo_from``). The
    stage recipe the driver writes carries the start as its ``model_name_or_path``."""
    previous: StagePlan | None = None
    for name in STAGES:
        plan = stages[name]
        named = plan.model_args.model_name_or_path if plan.model_from_recipe else None
        if previous is not None:
            out = previous.training.output_dir
            if not named or Path(named).resolve() == Path(out).resolve():  # the link itself
                plan.start_stage, plan.model_args.model_name_or_path = previous.name, out
        if plan.start_model is not None:
            plan.recipe["model_name_or_path"] = plan.start_model
        previous = plan


__all__ = [
    "DEFAULT_RECIPE", "EVAL_SECTION", "STAGES", "RecipeError", "RunArguments", "RunPlan",
    "StagePlan", "eval_tasks", "help_text", "link_stages", "load_recipe", "parse_run",
    "plan_run", "with_overrides",
]  # fmt: skip
