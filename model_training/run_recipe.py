"""The recipe of a whole run (``python -m model_training.run``): one YAML for every stage.

A run recipe is a TRL recipe with two optional sections::

    output_dir: outputs/demo-cpu        # the run's folder (stages write into sft/, grpo/, ...)
    model_name_or_path: ...             # shared fields: RunArguments, CTRateVQAArguments,
    learning_rate: 1.0e-5               #   ModelConfig and the trainer configs
    sft:                                # SFTConfig fields for stage 1 only
      num_train_epochs: 2
    grpo:                               # GRPORecipe fields for stage 2 only
      learning_rate: 1.0e-6

A section may also name a stage recipe file (``sft: sft.yaml``, relative to the run recipe),
whose fields then form the section (its ``output_dir`` gives way to the run's).

The command line overrides it the same way: ``--learning_rate 3e-5`` (every stage that has
the field), ``--sft.learning_rate 3e-5`` or ``--grpo.max_steps 10`` (one stage). Each stage
is parsed by ``TrlParser`` with its own dataclasses, so a field's type, default and help are
TRL's; a field that no dataclass knows is an error that names it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from trl import ModelConfig, SFTConfig, TrlParser

from .configs import CTRateVQAArguments, GRPORecipe
from .prompts import MODES

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RECIPE = REPO_ROOT / "recipes" / "demo-cpu.yaml"
STAGES = ("sft", "grpo")  # the training stages, in order
STAGE_CHOICES = (*STAGES, "eval", "all")
TRAINER_CONFIGS = {"sft": SFTConfig, "grpo": GRPORecipe}


class RecipeError(ValueError):
    """A recipe or command line that cannot be run; the message says what to change."""


@dataclass
class RunArguments:
    """Run-level settings: the stages, the folders, the demo's inputs, evaluation, publishing."""

    stage: str = field(
        default="all",
        metadata={
            "help": f"One of {STAGE_CHOICES}: 'sft' or 'grpo' trains one stage; 'eval' "
            "evaluates the run's models (base, sft, grpo) and assembles the final folder; "
            "'all' does everything in that order."
        },
    )
    output_dir: str = field(
        default="outputs/run",
        metadata={
            "help": "The run's folder: sft/, grpo/ (trainer outputs and checkpoints), eval/ "
            "(one evaluation per model), final/ (the model to publish), run_summary.json."
        },
    )
    resume: bool = field(
        default=False,
        metadata={
            "help": "Continue a killed run: finished stages and evaluations are kept, a "
            "stage that stopped part-way restarts from its last checkpoint."
        },
    )
    push_to_hub: str | None = field(
        default=None,
        metadata={
            "help": "Hub repo id (ORG/NAME) to publish the final model folder to, with the "
            "hub_cards publisher (HF_ENDPOINT / HF_TOKEN as usual). Unset: nothing is pushed."
        },
    )
    card_dataset_id: str | None = field(
        default=None,
        metadata={
            "help": "Dataset id named in the model card and .eval_results (leaderboards read "
            "it). Default: dataset_name when it is a Hub id, else the local folder's name."
        },
    )
    synthetic_cases: int | None = field(
        default=None,
        metadata={
            "help": "If set and dataset_name is a local folder without a complete build, "
            "synthesise this many CT cases and build CT-RATE-VQA there first (the demo)."
        },
    )
    synthetic_size: int = field(
        default=128, metadata={"help": "In-plane size of the synthetic cases (pixels)."}
    )
    synthetic_slices: int = field(
        default=32, metadata={"help": "Axial slices of the synthetic cases."}
    )
    synthetic_seed: int = field(
        default=0, metadata={"help": "Seed of the synthetic cases and of the build."}
    )
    tiny_model_if_missing: bool = field(
        default=False,
        metadata={
            "help": "If model_name_or_path is a local folder that does not exist, build the "
            "tiny offline Qwen2.5-VL there first (the demo). Never downloads anything."
        },
    )
    eval_modes: str = field(
        default="both", metadata={"help": f"Prompt modes to evaluate: one of {MODES} or 'both'."}
    )
    eval_split: str = field(default="test", metadata={"help": "Split to evaluate on."})
    eval_limit: int | None = field(
        default=None, metadata={"help": "Evaluate on the first N rows only (smoke runs)."}
    )
    eval_batch_size: int = field(default=16, metadata={"help": "Generation batch size."})
    eval_max_new_tokens: int = field(
        default=96, metadata={"help": "Longest reply generated at evaluation."}
    )
    eval_base_model: bool = field(
        default=True,
        metadata={"help": "Also evaluate the starting model ('before SFT' in the summary)."},
    )

    def __post_init__(self) -> None:
        if self.stage not in STAGE_CHOICES:
            raise RecipeError(f"stage={self.stage!r} is not one of {STAGE_CHOICES}")
        if self.eval_modes not in (*MODES, "both"):
            raise RecipeError(f"eval_modes={self.eval_modes!r} is not one of {MODES} or 'both'")
        if isinstance(self.push_to_hub, bool) or str(self.push_to_hub).lower() in ("true", "false"):
            raise RecipeError(
                "push_to_hub takes the repo id to publish to (ORG/NAME), not true/false"
            )

    @property
    def modes(self) -> tuple[str, ...]:
        return MODES if self.eval_modes == "both" else (self.eval_modes,)


@dataclass
class StagePlan:
    """The parsed settings of one training stage."""

    name: str
    args: CTRateVQAArguments
    training: SFTConfig | GRPORecipe
    model_args: ModelConfig
    model_from_recipe: bool  # model_name_or_path set in this stage's section or override


@dataclass
class RunPlan:
    run: RunArguments
    stages: dict[str, StagePlan]
    recipe_path: Path
    recipe: dict  # the recipe as run: YAML with the command-line overrides applied


def _parser(*types) -> TrlParser:
    return TrlParser(types, allow_abbrev=False)


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
    """Command line -> (common tokens, {stage: tokens}) by the ``--sft.`` / ``--grpo.`` prefix."""
    common: list[str] = []
    per_stage: dict[str, list[str]] = {s: [] for s in STAGES}
    target = common
    for token in argv:
        if token.startswith("--"):
            name = token[2:]
            stage, dot, rest = name.partition(".")
            if dot and stage in STAGES:
                target = per_stage[stage]
                token = "--" + rest
            else:
                target = common
        target.append(token)
    return common, per_stage


def _flags(tokens: list[str]) -> set[str]:
    return {t.split("=", 1)[0] for t in tokens if t.startswith("--")}


def _override_keys(tokens: list[str]) -> list[str]:
    return [t[2:].split("=", 1)[0] for t in tokens if t.startswith("--")]


def _parsed_value(plans: list[StagePlan], key: str):
    """The typed value a stage parsed for ``key`` (enums as their value), for the record."""
    for plan in plans:
        for obj in (plan.args, plan.training, plan.model_args):
            if key in {f.name for f in dataclasses.fields(obj)}:
                value = getattr(obj, key)
                return value.value if hasattr(value, "value") else value
    return None


def load_recipe(path: Path) -> dict:
    if not path.is_file():
        raise RecipeError(f"recipe {path} does not exist; pass --config PATH to a recipe YAML")
    try:
        recipe = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise RecipeError(f"recipe {path} is not valid YAML: {err}") from err
    if not isinstance(recipe, dict):
        raise RecipeError(f"recipe {path} must be a YAML mapping of field: value")
    for stage in STAGES:
        section = recipe.get(stage) or {}
        if isinstance(section, str):  # a stage recipe file, relative to this one
            section = load_recipe(path.parent / section)
            section.pop("output_dir", None)  # the run writes the stage to <output_dir>/<stage>
            recipe[stage] = section
        if not isinstance(section, dict):
            raise RecipeError(
                f"recipe {path}: the '{stage}' section must be a mapping or a recipe file name"
            )
    return recipe


def stage_parser(stage: str) -> TrlParser:
    return _parser(CTRateVQAArguments, TRAINER_CONFIGS[stage], ModelConfig)


def help_text() -> str:
    parts = [
        "usage: python -m model_training.run [--config RECIPE.yaml] [--stage "
        + "|".join(STAGE_CHOICES)
        + "] [--field value ...] [--sft.field value ...] [--grpo.field value ...]\n",
        __doc__ or "",
        f"Without --config the default recipe is {DEFAULT_RECIPE.relative_to(REPO_ROOT)}.\n",
        "== run fields ==",
        _parser(RunArguments).format_help(),
    ]
    for stage in STAGES:
        parts += [
            f"== {stage} stage fields (--{stage}.FIELD for this stage only) ==",
            stage_parser(stage).format_help(),
        ]
    return "\n".join(parts)


def parse_run(argv: list[str] | None = None) -> RunPlan:
    """Recipe YAML + command line -> a RunPlan (run settings and one plan per stage)."""
    argv = list(argv or [])
    config = _pop_value(argv, "--config")
    recipe_path = Path(config) if config else DEFAULT_RECIPE
    recipe = load_recipe(recipe_path)
    sections = {s: dict(recipe.get(s) or {}) for s in STAGES}
    shared = {k: v for k, v in recipe.items() if k not in STAGES}

    common, per_stage = _split_overrides(argv)
    run_parser = _parser(RunArguments)
    run_fields = {f.name for f in dataclasses.fields(RunArguments)}
    run_parser.set_defaults_with_config(**{k: v for k, v in shared.items() if k in run_fields})
    run, rest = run_parser.parse_args_into_dataclasses(args=common, return_remaining_strings=True)
    for stage in STAGES:
        for key in sections[stage]:
            if key in run_fields:
                raise RecipeError(
                    f"recipe {recipe_path}: '{key}' is a run field; move it out of the "
                    f"'{stage}' section"
                )
    shared = {k: v for k, v in shared.items() if k not in run_fields}

    stages: dict[str, StagePlan] = {}
    unknown_shared: set[str] | None = None
    unknown_common: set[str] | None = None
    for stage in STAGES:
        parser = stage_parser(stage)
        defaults = {**shared, **sections[stage], "output_dir": str(Path(run.output_dir) / stage)}
        left = parser.set_defaults_with_config(**defaults)
        left_keys = {t[2:] for t in left[::2]}
        bad_section = left_keys & set(sections[stage])
        if bad_section:
            raise RecipeError(
                f"recipe {recipe_path}: unknown field(s) {sorted(bad_section)} in the "
                f"'{stage}' section (see --help)"
            )
        unknown_shared = left_keys if unknown_shared is None else unknown_shared & left_keys
        try:
            args, training, model_args, remaining = parser.parse_args_into_dataclasses(
                args=rest + per_stage[stage], return_remaining_strings=True
            )
        except (ValueError, TypeError) as err:
            raise RecipeError(f"{stage} stage: {err}") from err
        bad_stage = _flags(remaining) & _flags(per_stage[stage])
        if bad_stage:
            raise RecipeError(f"unknown {stage} field(s) {sorted(bad_stage)} (see --help)")
        left_common = _flags(remaining)
        unknown_common = left_common if unknown_common is None else unknown_common & left_common
        model_from_recipe = "model_name_or_path" in sections[stage] or any(
            t.split("=", 1)[0] == "--model_name_or_path" for t in per_stage[stage]
        )
        stages[stage] = StagePlan(stage, args, training, model_args, model_from_recipe)
    if unknown_shared:
        raise RecipeError(f"recipe {recipe_path}: unknown field(s) {sorted(unknown_shared)}")
    if unknown_common:
        raise RecipeError(f"unknown field(s) {sorted(unknown_common)} (see --help)")

    every = list(stages.values())
    as_run = {**shared, **{k: _parsed_value(every, k) for k in _override_keys(rest)}}
    for key in run_fields:
        value = getattr(run, key)
        if value != RunArguments.__dataclass_fields__[key].default:
            as_run[key] = value
    for stage in STAGES:
        overrides = _override_keys(per_stage[stage])
        section = {
            **sections[stage],
            **{k: _parsed_value([stages[stage]], k) for k in overrides},
        }
        if section:
            as_run[stage] = section
    return RunPlan(run, stages, recipe_path, as_run)


def stage_hyperparameters(plan: StagePlan) -> dict:
    """The settings of a stage worth printing in a model card (non-default, readable)."""
    keys = [
        "trainable_scope",
        "prompt_mode",
        "sft_target",
        "dataset_config",
        "num_train_epochs",
        "max_steps",
        "learning_rate",
        "lr_scheduler_type",
        "warmup_steps",
        "per_device_train_batch_size",
        "gradient_accumulation_steps",
        "num_generations",
        "max_completion_length",
        "loss_type",
        "beta",
        "temperature",
        "reward_funcs",
        "reward_weights",
        "seed",
    ]
    if plan.name != "sft":
        keys.remove("sft_target")
    if plan.name != "grpo":
        for key in (
            "num_generations",
            "max_completion_length",
            "beta",
            "temperature",
            "reward_funcs",
            "reward_weights",
            "loss_type",
        ):
            keys.remove(key)
    out = {}
    for key in keys:
        for obj in (plan.args, plan.training, plan.model_args):
            if hasattr(obj, key):
                value = getattr(obj, key)
                out[key] = value.value if hasattr(value, "value") else value
                break
    if plan.training.max_steps and plan.training.max_steps > 0:
        out.pop("num_train_epochs", None)
    return out


__all__ = [
    "DEFAULT_RECIPE",
    "RecipeError",
    "RunArguments",
    "RunPlan",
    "STAGES",
    "StagePlan",
    "help_text",
    "load_recipe",
    "parse_run",
    "stage_hyperparameters",
]
