"""The dataclasses of a run (``python -m model_training.run``), passed whole between its
modules: ``RunArguments`` (which stages, the run's folder, the launcher, the demo's inputs,
publishing, the dry-run plan), ``StagePlan`` (one training stage), ``RunPlan`` (the whole run),
and the parser the recipe's parts are read with.

The evaluator's settings are not run fields: they are the recipe's ``eval:`` section, parsed
into the evaluator's own ``EvaluateArguments`` (``run_evaluations``), one per evaluated task in
``RunPlan.evaluations``. Whether to evaluate the starting model (``eval_base_model``) is the
driver's own decision, so it stays a run field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from trl import ModelConfig, SFTConfig

from common.errors import UserError
from common.hub_ids import is_hub_id, spelling_problem
from common.results_schema import BLANK_ABLATION, IMAGE_ABLATIONS, NO_ABLATION, SHUFFLE_ABLATION

from .configs import CTRateVQAArguments, GRPORecipe
from .evaluation.evaluate import EvaluateArguments
from .evaluation.options import DEFAULT_ABLATION_SEED
from .stage_options import StageParser

STAGES = ("sft", "grpo")  # the training stages, in order
STAGE_CHOICES = (*STAGES, "eval", "all")
GPU_MEMORY_GIB = 80.0  # ours: the plan's default GPU, an H100 / A100 80 GB
# ours (issue 21): the final model is also evaluated with these image ablations
RUN_ABLATIONS = (BLANK_ABLATION, SHUFFLE_ABLATION)


class RecipeError(UserError):
    """A recipe or command line that cannot be run; the message says what to change."""


@dataclass
class RunArguments:
    """Run-level settings: the stages, folders, launcher, the demo's inputs, publishing."""

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
            "publish), run_state.json (what is done, and the files each step wrote), "
            "run_summary.json, run.lock (while a driver runs: one at a time). Other files in it "
            "are never touched."
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
            "already started; the files the run wrote for them are deleted first (a step "
            "folder holding any other file is refused, never deleted)."
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
    eval_base_model: bool = field(
        default=True,
        metadata={"help": "Also evaluate the starting model ('before SFT' in the summary)."},
    )
    eval_image_ablations: list[str] = field(
        default_factory=lambda: list(RUN_ABLATIONS),
        metadata={
            "help": "Also evaluate the final model with these image ablations (the evaluator's "
            "--image-ablation: blank, shuffle), into eval/<stage>-<ablation>/, and report its "
            "image reliance (real minus ablated figures) in the summary and the model card. "
            "'none' (or [] in a recipe) evaluates the real images only."
        },
    )
    eval_ablation_seed: int = field(
        default=DEFAULT_ABLATION_SEED,
        metadata={"help": "Seed of the shuffle ablation's permutation (--ablation-seed)."},
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

    def __post_init__(self) -> None:
        self.eval_image_ablations = run_ablations(self.eval_image_ablations)
        if (
            self.eval_ablation_seed != DEFAULT_ABLATION_SEED
            and SHUFFLE_ABLATION not in self.eval_image_ablations
        ):
            raise RecipeError(
                f"eval_ablation_seed={self.eval_ablation_seed} seeds the shuffle ablation, and "
                f"eval_image_ablations {self.eval_image_ablations} has none: drop "
                "eval_ablation_seed, or add shuffle to eval_image_ablations"
            )
        if str(self.accelerate_config).lower() in ("none", "null", ""):
            self.accelerate_config = None  # the command line's way to unset a recipe's config
        if not self.gpu_memory_gib > 0:
            raise RecipeError(f"gpu_memory_gib={self.gpu_memory_gib} must be a positive size")
        if not self.dry_run and self.gpu_memory_gib != GPU_MEMORY_GIB:
            raise RecipeError("gpu_memory_gib sizes the --dry_run plan only: add --dry_run")
        if self.dry_run and self.push_to_hub:
            raise RecipeError("--dry_run trains and pushes nothing: drop --push-to-hub")
        if self.stage not in STAGE_CHOICES:
            raise RecipeError(f"stage={self.stage!r} is not one of {STAGE_CHOICES}")
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
        if self.push_to_hub is not None:
            problem = spelling_problem(self.push_to_hub)
            if problem is not None:
                raise RecipeError(
                    f"push_to_hub {self.push_to_hub!r} is not a Hub repo id: {problem}"
                )
            if self.stage in STAGES:
                raise RecipeError(
                    f"--push-to-hub publishes final/, which --stage {self.stage} does not write: "
                    "use --stage eval or all, or push OUT/final later with python -m hub_cards "
                    "push-model"
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

    def runs(self, stage: str) -> bool:
        """Whether this command carries out ``stage`` (a training stage, or 'eval')."""
        return self.stage in (stage, "all")


def run_ablations(names: list[str] | str | None) -> list[str]:
    """``eval_image_ablations`` checked: ablation names, each once; ``none`` alone (or an empty
    list) for none."""
    names = [names] if isinstance(names, str) else list(names or [])
    if names == [NO_ABLATION]:
        return []
    ablations = [n for n in IMAGE_ABLATIONS if n != NO_ABLATION]
    wrong = [n for n in names if n not in ablations]
    if wrong or len(set(names)) < len(names):
        raise RecipeError(
            f"eval_image_ablations {names}: give each of {', '.join(ablations)} at most once, "
            f"or {NO_ABLATION} alone for none"
        )
    return names


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
    # names. run_recipe.link_stages sets it and model_args.model_name_or_path.
    start_stage: str | None = None

    @property
    def start_model(self) -> str | None:
        """The model the stage starts from (after ``run_recipe.link_stages``)."""
        return self.model_args.model_name_or_path


@dataclass
class RunPlan:
    run: RunArguments
    stages: dict[str, StagePlan]
    recipe_path: Path
    recipe: dict  # the run recipe as run: YAML with the command-line overrides applied
    # per evaluated task, in order: the evaluator's options (model and output_dir: placeholders)
    evaluations: dict[str, EvaluateArguments] = field(default_factory=dict)


class RecipeParser(StageParser):
    """The stage parser whose errors are a RecipeError (one line, for in-process callers
    too): a value of the wrong type in the recipe names the file and section
    (``typed_defaults``), one on the command line its flag."""

    error_class = RecipeError


def option_keys(tokens: list[str]) -> list[str]:
    """The field names of the ``--field`` tokens of a command line."""
    return [t[2:].split("=", 1)[0].replace("-", "_") for t in tokens if t.startswith("--")]


def plain(value: object) -> object:
    """A parsed value as YAML writes it (enums as their value)."""
    return value.value if hasattr(value, "value") else value


def typed(objects: tuple, key: str) -> object:
    """Field ``key`` of the first of ``objects`` (dataclasses) that has it, as YAML writes it."""
    for obj in objects:
        if key in {f.name for f in dataclasses.fields(obj)}:
            return plain(getattr(obj, key))
    raise KeyError(key)


__all__ = [
    "GPU_MEMORY_GIB", "RUN_ABLATIONS", "STAGES", "STAGE_CHOICES", "RecipeError", "RecipeParser",
    "RunArguments", "RunPlan", "StagePlan", "option_keys", "plain", "run_ablations", "typed",
]  # fmt: skip
