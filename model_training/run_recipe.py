"""The recipe of a whole run (``python -m model_training.run``): one YAML for every stage.

A run recipe is a TRL recipe with two optional sections::

    output_dir: outputs/demo-cpu        # run fields (RunArguments): folders, launcher, evaluation
    accelerate_config: recipes/accelerate/zero2.yaml
    model_name_or_path: ...             # shared fields: CTRateVQAArguments, ModelConfig and the
    learning_rate: 1.0e-5               #   trainer configs, for every stage that has them
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

The parse ends in one plain stage recipe per stage (``StagePlan.recipe``): the YAML that
``python -m model_training.sft|grpo --config`` reads, written by the driver to
``<output_dir>/recipes/<stage>.yaml``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from trl import ModelConfig, SFTConfig, TrlParser

from common.errors import UserError
from common.hub_ids import is_hub_id
from common.names import CLASSIFICATION_TASK, GROUNDING_TASK

from .configs import CTRateVQAArguments, GRPORecipe, check_model_config
from .evaluation.evaluate import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_MODE,
    DEFAULT_SPLIT,
)
from .evaluation.sam import NO_SAM, sam_or_none
from .prompts import MODES

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RECIPE = REPO_ROOT / "recipes" / "demo-cpu.yaml"
STAGES = ("sft", "grpo")  # the training stages, in order
STAGE_CHOICES = (*STAGES, "eval", "all")
GPU_MEMORY_GIB = 80.0  # ours: the plan's default GPU, an H100 / A100 80 GB
TRAINER_CONFIGS = {"sft": SFTConfig, "grpo": GRPORecipe}
GRPO_ONLY = (
    "num_generations",
    "max_completion_length",
    "loss_type",
    "beta",
    "temperature",
    "reward_funcs",
    "reward_weights",
)  # card hyperparameters of GRPO only


class RecipeError(UserError):
    """A recipe or command line that cannot be run; the message says what to change."""


@dataclass
class RunArguments:
    """Run-level settings: the stages, folders, launcher, the demo's inputs, evaluation."""

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
            "help": "The run's folder: recipes/ (one stage recipe each), sft/, grpo/ (trainer "
            "outputs and checkpoints), eval/ (one evaluation per model), final/ (the model to "
            "publish), run_state.json (what is done), run_summary.json."
        },
    )
    resume: bool = field(
        default=False,
        metadata={
            "help": "Continue the run in output_dir: finished steps are kept, a stage that "
            "stopped part-way restarts from its last checkpoint, an evaluation from its "
            "predictions."
        },
    )
    overwrite: bool = field(
        default=False,
        metadata={
            "help": "Redo the steps of this command that an earlier run in output_dir has "
            "already started; their outputs are deleted first."
        },
    )
    accelerate_config: str | None = field(
        default=None,
        metadata={
            "help": "accelerate config file (recipes/accelerate/*.yaml) each training stage "
            "and each evaluation is launched with: `accelerate launch --config_file FILE`. "
            "Unset, with num_processes unset or 1: each runs in one plain python process."
        },
    )
    num_processes: int | None = field(
        default=None,
        metadata={
            "help": "Processes (GPUs) per stage and evaluation, passed to `accelerate launch "
            "--num_processes`. Default: the accelerate config's, else 1."
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
            "help": "Hub dataset id (ORG/NAME) the model card's evaluation results "
            "(model-index, .eval_results) are attached to, e.g. the repo you pushed the built "
            "dataset to. Default: dataset_name when it is a Hub id; for a local build the card "
            "reports the results without attaching them."
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
        default=DEFAULT_MODE,
        metadata={"help": f"Prompt modes to evaluate: one of {MODES} or 'both'."},
    )
    eval_split: str = field(default=DEFAULT_SPLIT, metadata={"help": "Split to evaluate on."})
    eval_limit: int | None = field(
        default=None, metadata={"help": "Evaluate on the first N rows only (smoke runs)."}
    )
    eval_batch_size: int = field(
        default=DEFAULT_BATCH_SIZE, metadata={"help": "Generation batch size per process."}
    )
    eval_max_new_tokens: int = field(
        default=DEFAULT_MAX_NEW_TOKENS, metadata={"help": "Longest reply generated at evaluation."}
    )
    eval_base_model: bool = field(
        default=True,
        metadata={"help": "Also evaluate the starting model ('before SFT' in the summary)."},
    )
    eval_judge: str | None = field(
        default=None,
        metadata={
            "help": "Reasoning-answer consistency judge of the think mode (the paper's Fig. 3), "
            "as the evaluator's --judge: a causal LM id or path, an OpenAI-compatible URL, or "
            "'keyword' (no model). Unset: no consistency is measured."
        },
    )
    eval_judge_model: str | None = field(
        default=None,
        metadata={"help": "Model name at an eval_judge endpoint (the evaluator's --judge-model)."},
    )
    dry_run: bool = field(
        default=False,
        metadata={
            "help": "Print the plan and stop (model_training.dry_run): per step its command, "
            "processes, memory per GPU by part and checkpoint disk; the installed backends. "
            "No weights, no GPU. Exit status 2 when a step cannot fit in gpu_memory_gib."
        },
    )
    gpu_memory_gib: float = field(
        default=GPU_MEMORY_GIB,
        metadata={
            "help": "Memory of one GPU, in GiB, that --dry_run's plan must fit (80: an H100 / "
            "A100 80 GB; 141: an H200). vLLM colocate takes vllm_gpu_memory_utilization of it."
        },
    )
    eval_sam_model: str = field(
        default=NO_SAM,
        metadata={
            "help": "Grounding evaluations (task grounding or multitask): the frozen SAM / SAM2 "
            "checkpoint, folder or Hub id, prompted with the predicted box and points for mask "
            f"Dice (the evaluator's --sam-model). '{NO_SAM}' (default, offline): box IoU and "
            "point-Dice only."
        },
    )

    def __post_init__(self) -> None:
        if str(self.accelerate_config).lower() in ("none", "null", ""):
            self.accelerate_config = None  # the command line's way to unset a recipe's config
        if not self.gpu_memory_gib > 0:
            raise RecipeError(f"gpu_memory_gib={self.gpu_memory_gib} must be a positive size")
        if not self.dry_run and self.gpu_memory_gib != GPU_MEMORY_GIB:
            raise RecipeError("gpu_memory_gib sizes the --dry_run plan only: add --dry_run")
        if self.dry_run and self.push_to_hub:
            raise RecipeError("--dry_run trains and pushes nothing: drop --push-to-hub")
        if not self.eval_sam_model:
            raise RecipeError(f"eval_sam_model is empty: name a SAM checkpoint or '{NO_SAM}'")
        if self.stage not in STAGE_CHOICES:
            raise RecipeError(f"stage={self.stage!r} is not one of {STAGE_CHOICES}")
        if self.eval_modes not in (*MODES, "both"):
            raise RecipeError(f"eval_modes={self.eval_modes!r} is not one of {MODES} or 'both'")
        if self.eval_judge_model is not None and not str(self.eval_judge).startswith(
            ("http://", "https://")
        ):
            raise RecipeError(
                "eval_judge_model names the model at a judge endpoint: set eval_judge to its "
                "http(s)://.../v1 URL, or drop eval_judge_model"
            )
        if self.card_dataset_id is not None and not is_hub_id(
            self.card_dataset_id, namespaced=True
        ):
            raise RecipeError(
                f"card_dataset_id={self.card_dataset_id!r} is not a Hub dataset id (ORG/NAME): "
                "name the Hub repo the dataset was pushed to, or leave it unset"
            )
        if isinstance(self.push_to_hub, bool) or str(self.push_to_hub).lower() in ("true", "false"):
            raise RecipeError(
                "push_to_hub takes the repo id to publish to (ORG/NAME), not true/false"
            )
        if self.resume and self.overwrite:
            raise RecipeError("resume and overwrite exclude each other: choose one")
        if self.num_processes is not None and self.num_processes < 1:
            raise RecipeError(f"num_processes={self.num_processes} must be 1 or more")
        if self.accelerate_config and not Path(self.accelerate_config).is_file():
            raise RecipeError(
                f"accelerate_config {self.accelerate_config} does not exist; give the path of "
                "an accelerate config file (see recipes/accelerate/)"
            )

    @property
    def modes(self) -> tuple[str, ...]:
        return MODES if self.eval_modes == "both" else (self.eval_modes,)

    @property
    def sam_model(self) -> str | None:
        """The SAM of the grounding evaluations, None for no mask Dice."""
        return sam_or_none(self.eval_sam_model)


@dataclass
class StagePlan:
    """One training stage: its parsed settings and the plain recipe its process reads."""

    name: str
    args: CTRateVQAArguments
    training: SFTConfig | GRPORecipe
    model_args: ModelConfig
    recipe: dict  # the stage recipe YAML (shared fields, section, typed overrides)
    model_from_recipe: bool  # model_name_or_path set in this stage's section or override
    # the stage of this run it starts from (its output folder), or None: the model the recipe
    # names. link_stages sets it and model_args.model_name_or_path.
    start_stage: str | None = None

    @property
    def start_model(self) -> str | None:
        """The model the stage starts from (after :func:`link_stages`)."""
        return self.model_args.model_name_or_path


@dataclass
class RunPlan:
    run: RunArguments
    stages: dict[str, StagePlan]
    recipe_path: Path
    recipe: dict  # the run recipe as run: YAML with the command-line overrides applied


def _parser(*types) -> TrlParser:
    return TrlParser(types, allow_abbrev=False)


def stage_parser(stage: str) -> TrlParser:
    return _parser(CTRateVQAArguments, TRAINER_CONFIGS[stage], ModelConfig)


def _fields(parser: TrlParser) -> set[str]:
    return {action.dest for action in parser._actions}


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
            stage, dot, rest = token[2:].partition(".")
            target = per_stage[stage] if dot and stage in STAGES else common
            token = "--" + rest if target is not common else token
        target.append(token)
    return common, per_stage


def _keys(tokens: list[str]) -> list[str]:
    return [t[2:].split("=", 1)[0] for t in tokens if t.startswith("--")]


def _plain(value):
    """A parsed value as YAML writes it (enums as their value)."""
    return value.value if hasattr(value, "value") else value


def _typed(objects: tuple, key: str):
    for obj in objects:
        if key in {f.name for f in dataclasses.fields(obj)}:
            return _plain(getattr(obj, key))
    raise KeyError(key)


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
    """The run recipe with both stage sections as mappings (a section may name a file)."""
    recipe = _read_yaml(path)
    for stage in STAGES:
        section = recipe.get(stage) or {}
        if isinstance(section, str):  # a stage recipe file, relative to this one
            section = _read_yaml(path.parent / section)
            section.pop("output_dir", None)  # the run writes the stage to <output_dir>/<stage>
        if not isinstance(section, dict):
            raise RecipeError(
                f"recipe {path}: the '{stage}' section must be a mapping or a recipe file name"
            )
        recipe[stage] = section
    return recipe


def help_text() -> str:
    parts = [
        "usage: python -m model_training.run [--config RECIPE.yaml] [--stage "
        + "|".join(STAGE_CHOICES)
        + "] [--resume | --overwrite] [--field value ...] [--sft.field value ...] "
        "[--grpo.field value ...]\n",
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


def _parse_stage(
    stage: str, recipe_path: Path, shared: dict, section: dict, common: list[str],
    own: list[str], output_dir: str, plan_only: bool = False,
) -> tuple[StagePlan, set[str], set[str]]:  # fmt: skip
    """One stage's plan, plus the shared keys and common flags this stage does not know.
    ``plan_only`` (--dry_run): a GPU recipe parses on a machine without one (TrainingArguments
    refuses bf16 there unless use_cpu); the plan still reads the stage as a GPU stage."""
    parser = stage_parser(stage)
    known = _fields(parser)
    unknown_section = set(section) - known
    if unknown_section:
        raise RecipeError(
            f"recipe {recipe_path}: unknown field(s) {sorted(unknown_section)} in the "
            f"'{stage}' section (see --help)"
        )
    yaml_fields = {k: v for k, v in shared.items() if k in known} | section
    forced_cpu = plan_only and "use_cpu" not in {*yaml_fields, *_keys(common + own)}
    parser.set_defaults_with_config(
        **yaml_fields, output_dir=output_dir, **({"use_cpu": True} if forced_cpu else {})
    )
    try:
        args, training, model_args, remaining = parser.parse_args_into_dataclasses(
            args=common + own, return_remaining_strings=True
        )
        check_model_config(model_args, args, training)  # refused fields, before any stage runs
    except (ValueError, TypeError) as err:
        raise RecipeError(f"{stage} stage: {err}") from err
    if forced_cpu:
        training.use_cpu = False
    unknown_own = set(_keys(remaining)) & set(_keys(own))
    if unknown_own:
        raise RecipeError(f"unknown {stage} field(s) {sorted(unknown_own)} (see --help)")
    parsed = (args, training, model_args)
    overrides = [k for k in _keys(common) + _keys(own) if k in known]
    recipe = {
        **yaml_fields,
        **{k: _typed(parsed, k) for k in overrides},
        "output_dir": output_dir,
    }
    model_from_recipe = "model_name_or_path" in section or "model_name_or_path" in _keys(own)
    plan = StagePlan(stage, args, training, model_args, recipe, model_from_recipe)
    return plan, set(shared) - known, set(_keys(remaining))


def parse_run(argv: list[str] | None = None) -> RunPlan:
    """Recipe YAML + command line -> a RunPlan (run settings and one plan per stage)."""
    argv = list(argv or [])
    config = _pop_value(argv, "--config")
    recipe_path = Path(config) if config else DEFAULT_RECIPE
    recipe = load_recipe(recipe_path)
    run_fields = {f.name for f in dataclasses.fields(RunArguments)}
    for stage in STAGES:
        misplaced = run_fields & set(recipe[stage])
        if misplaced:
            raise RecipeError(
                f"recipe {recipe_path}: {sorted(misplaced)} are run fields; move them out of "
                f"the '{stage}' section"
            )
    shared = {k: v for k, v in recipe.items() if k not in STAGES and k not in run_fields}
    beside = recipe_path.parent / str(recipe.get("accelerate_config"))  # from any folder
    if isinstance(recipe.get("accelerate_config"), str) and beside.is_file():
        recipe["accelerate_config"] = os.path.normpath(beside)

    common, per_stage = _split_overrides(argv)
    run_parser = _parser(RunArguments)
    run_parser.set_defaults_with_config(**{k: v for k, v in recipe.items() if k in run_fields})
    try:
        run, rest = run_parser.parse_args_into_dataclasses(
            args=common, return_remaining_strings=True
        )
    except (ValueError, TypeError) as err:
        raise RecipeError(str(err)) from err

    stages, unknown_shared, unknown_flags = {}, set(shared), set(_keys(rest))
    for stage in STAGES:
        output_dir = str(Path(run.output_dir) / stage)
        stages[stage], not_shared, not_flags = _parse_stage(
            stage,
            recipe_path,
            shared,
            recipe[stage],
            rest,
            per_stage[stage],
            output_dir,
            plan_only=run.dry_run,
        )
        unknown_shared &= not_shared
        unknown_flags &= not_flags
    if unknown_shared:
        raise RecipeError(f"recipe {recipe_path}: unknown field(s) {sorted(unknown_shared)}")
    if unknown_flags:
        raise RecipeError(f"unknown field(s) {sorted(unknown_flags)} (see --help)")

    check_eval_tasks(run, stages, recipe_path)
    link_stages(stages)
    as_run = {k: v for k, v in recipe.items() if k not in STAGES}
    as_run |= {
        k: _plain(getattr(run, k))
        for k in run_fields
        if getattr(run, k) != RunArguments.__dataclass_fields__[k].default
    }
    every = [(s.args, s.training, s.model_args) for s in stages.values()]
    for key in _keys(rest):
        as_run[key] = next(_typed(objs, key) for objs in every if key in _all_fields(objs))
    for stage, plan in stages.items():
        objs = (plan.args, plan.training, plan.model_args)
        section = recipe[stage] | {k: _typed(objs, k) for k in _keys(per_stage[stage])}
        if plan.start_stage is not None:  # the link, not a model of the user's: not recorded
            section.pop("model_name_or_path", None)
        if section:
            as_run[stage] = section
    return RunPlan(run, stages, recipe_path, as_run)


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


def eval_tasks(stages: dict[str, StagePlan]) -> tuple[str, ...]:
    """The tasks the run's models are evaluated on: those the last stage trains."""
    return stages[STAGES[-1]].args.tasks


def check_eval_tasks(run: RunArguments, stages: dict[str, StagePlan], recipe_path: Path) -> None:
    """Refuse evaluation options that no evaluation of this run would use, and stages that
    train different tasks (the run evaluates every model on the same task(s))."""
    tasks = {name: plan.args.task for name, plan in stages.items()}
    if len(set(tasks.values())) > 1:
        raise RecipeError(
            f"recipe {recipe_path}: the stages train different tasks {tasks}; set task once, "
            "for the whole run"
        )
    evaluated = eval_tasks(stages)
    if run.sam_model is not None and GROUNDING_TASK not in evaluated:
        raise RecipeError(
            f"eval_sam_model={run.eval_sam_model!r} measures grounding masks, but the run "
            f"evaluates {list(evaluated)}: remove eval_sam_model (or set task: grounding)"
        )
    if CLASSIFICATION_TASK not in evaluated:
        for name in ("eval_judge", "eval_judge_model"):
            if getattr(run, name) is not None:
                raise RecipeError(
                    f"{name} judges classification answers, but the run evaluates "
                    f"{list(evaluated)} only: remove {name}"
                )


def _all_fields(objects: tuple) -> set[str]:
    return {f.name for obj in objects for f in dataclasses.fields(obj)}


def stage_hyperparameters(plan: StagePlan) -> dict:
    """The settings of a stage worth printing in a model card (non-default, readable)."""
    keys = [
        "task", "trainable_scope", "prompt_mode", "sft_target", "dataset_config",
        "grounding_config", "grounding_fraction", "num_train_epochs",
        "max_steps", "learning_rate", "lr_scheduler_type", "warmup_steps",
        "per_device_train_batch_size", "gradient_accumulation_steps", "num_generations",
        "max_completion_length", "loss_type", "beta", "temperature", "reward_funcs",
        "reward_weights", "seed",
    ]  # fmt: skip
    objects = (plan.args, plan.training, plan.model_args)
    skipped = GRPO_ONLY if plan.name == "sft" else ("sft_target",)
    out = {k: _typed(objects, k) for k in keys if k in _all_fields(objects) and k not in skipped}
    if plan.training.max_steps and plan.training.max_steps > 0:
        out.pop("num_train_epochs", None)
    unread = {  # the task options a task does not read
        CLASSIFICATION_TASK: ("grounding_config", "grounding_fraction"),
        GROUNDING_TASK: ("dataset_config", "grounding_fraction"),
    }.get(plan.args.task, ())
    for key in unread:
        out.pop(key, None)
    if out.get("grounding_fraction") is None:
        out.pop("grounding_fraction", None)
    return out


__all__ = [
    "DEFAULT_RECIPE",
    "RecipeError",
    "RunArguments",
    "RunPlan",
    "STAGES",
    "StagePlan",
    "check_eval_tasks",
    "eval_tasks",
    "help_text",
    "link_stages",
    "load_recipe",
    "parse_run",
    "stage_hyperparameters",
]
