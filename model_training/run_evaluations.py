"""The run's evaluations: the recipe's ``eval:`` section (and ``--eval.FIELD`` overrides) parsed
into the evaluator's own ``EvaluateArguments``, with its defaults, and checked once per
evaluated task through the evaluator's task registry (``TASKS[task].check_options``).

The run fills in what differs per evaluation (``model``, ``dataset``, ``config``, ``output_dir``,
``overwrite``) and what the stages share (``allow_incomplete_build``): a section that sets one
is refused, and so is a recipe that still uses a run field the section replaced (``eval_limit``
& co.: the error names the new key). The evaluator's defaults hold: ``sam_model`` is MedSAM,
so an offline grounding run says ``sam_model: none`` (the CPU demo recipes do).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import NoReturn

from common.cli_options import OptionsParser, typed_values
from common.errors import UserError

from .evaluation.evaluate import EvaluateArguments
from .evaluation.tasks import TASKS
from .run_arguments import STAGES, RecipeError, StagePlan, option_keys

EVAL_SECTION = "eval"
# what the driver fills in for each evaluation (placeholders while the section is parsed)
EVAL_PLACEHOLDERS = {"model": "-", "dataset": "-", "output_dir": "-"}
# ... and what it takes from the stages' shared fields, set once for the whole run
RUN_FILLED = (*EVAL_PLACEHOLDERS, "config", "overwrite", "allow_incomplete_build")
# the run fields the eval: section replaced, and their field there
OLD_EVAL_KEYS = {
    "eval_modes": "mode", "eval_split": "split", "eval_limit": "limit",
    "eval_batch_size": "batch_size", "eval_max_new_tokens": "max_new_tokens",
    "eval_judge": "judge", "eval_judge_model": "judge_model", "eval_sam_model": "sam_model",
}  # fmt: skip
# the evaluator's image-ablation fields, and the run fields that set them for the final model
RUN_ABLATION_FIELDS = {
    "image_ablation": "eval_image_ablations", "ablation_seed": "eval_ablation_seed",
}  # fmt: skip
# the evaluator's mean-box baseline reads the rows the run trains on: {its field: the stage's}
TRAINING_ROWS = {"baseline_split": "dataset_train_split", "baseline_limit": "dataset_limit"}


class EvalParser(OptionsParser):
    """The evaluator's own option parser (``none`` reads as None, as on its command line),
    with the section as defaults and its usage errors a RecipeError."""

    def __init__(self, defaults: dict):
        super().__init__(EvaluateArguments, allow_abbrev=False)
        self.set_defaults(**defaults)
        for action in self._actions:
            action.required = action.required and action.dest not in defaults

    def error(self, message: str) -> NoReturn:
        raise RecipeError(message)  # parse_eval names the section


def check_old_keys(recipe_path: Path, keys: list[str]) -> None:
    """Refuse the run fields the eval: section replaced, naming their new key."""
    old = [key for key in keys if key in OLD_EVAL_KEYS]
    if old:
        new = OLD_EVAL_KEYS[old[0]]
        raise RecipeError(
            f"recipe {recipe_path}: {old[0]} is now the eval section's {new}: write "
            f"`eval: {{{new}: ...}}` in the recipe, or --eval.{new} on the command line"
        )


def parse_eval(recipe_path: Path, section: dict, tokens: list[str]) -> EvaluateArguments:
    """The ``eval:`` section and ``--eval.FIELD`` tokens as the evaluator's options, with
    placeholders where the run fills in each evaluation's own."""
    ablation = sorted({*section, *option_keys(tokens)} & set(RUN_ABLATION_FIELDS))
    if ablation:
        raise RecipeError(
            f"recipe {recipe_path}: the eval section sets {ablation}: the run evaluates every "
            "model with the real images, and its final model also with each image ablation of "
            f"the run field {RUN_ABLATION_FIELDS['image_ablation']} (the shuffle's seed: "
            f"{RUN_ABLATION_FIELDS['ablation_seed']}): set those instead"
        )
    filled = sorted({*section, *option_keys(tokens)} & set(RUN_FILLED))
    if filled:
        raise RecipeError(
            f"recipe {recipe_path}: the eval section sets {filled}, which the run fills in for "
            "each evaluation (its model, dataset_name, the task's config, OUT/eval/MODEL, "
            "--overwrite, the shared allow_incomplete_build): remove them"
        )
    unknown = set(section) - {f.name for f in dataclasses.fields(EvaluateArguments)}
    if unknown:
        raise RecipeError(
            f"recipe {recipe_path}: unknown field(s) {sorted(unknown)} in the 'eval' section "
            "(see --help)"
        )
    try:  # each value's type, before the evaluator's parser reads it
        section = typed_values(EvaluateArguments, section, f"recipe {recipe_path}, 'eval' section")
    except UserError as err:
        raise RecipeError(str(err)) from None
    parser = EvalParser({**EVAL_PLACEHOLDERS, **section})
    try:
        options, rest = parser.parse_args_into_dataclasses(
            args=tokens, return_remaining_strings=True
        )
    except (ValueError, TypeError) as err:
        raise RecipeError(f"eval section: {err}") from err
    if rest:
        raise RecipeError(f"unknown eval field(s) {sorted(option_keys(rest))} (see --help)")
    return options


def eval_tasks(stages: dict[str, StagePlan]) -> tuple[str, ...]:
    """The tasks the run's models are evaluated on: those the last stage trains."""
    return stages[STAGES[-1]].args.tasks


def task_evaluations(
    options: EvaluateArguments, stages: dict[str, StagePlan], recipe_path: Path
) -> dict[str, EvaluateArguments]:
    """Each evaluated task's evaluator options: the eval section's on the run's dataset and
    the task's config, less the options of another of the run's tasks (a field's ``task``
    metadata: a multitask run's judge goes to its classification evaluations, its SAM to its
    grounding ones), with the mean-box baseline of the rows the run trains on (unless the
    section sets it). Each task checks its options here, once (``TASKS[task].check_options``):
    an option that no evaluated task takes is refused. Stages that train different tasks are
    refused too (the run evaluates every model on the same tasks)."""
    tasks = {name: plan.args.task for name, plan in stages.items()}
    if len(set(tasks.values())) > 1:
        raise RecipeError(
            f"recipe {recipe_path}: the stages train different tasks {tasks}; set task once, "
            "for the whole run"
        )
    data, evaluated = stages[STAGES[-1]].args, eval_tasks(stages)
    evaluations = {}
    for task in evaluated:
        fields = {f.name: f for f in dataclasses.fields(options)}
        others = {name: f.default for name, f in fields.items()
                  if f.metadata.get("task") in set(evaluated) - {task}}  # fmt: skip
        rows = {  # the baseline's rows: where this task reads them and the section is silent
            name: getattr(data, source)
            for name, source in TRAINING_ROWS.items()
            if fields[name].metadata.get("task") in (None, task)
            and getattr(options, name) == fields[name].default
        }
        try:
            evaluation = dataclasses.replace(
                options,
                dataset=data.dataset_name,
                config=data.config_of(task),
                allow_incomplete_build=data.allow_incomplete_build,
                **others,
                **rows,
            )
            TASKS[task].check_options(evaluation)
        except UserError as err:
            raise RecipeError(
                f"recipe {recipe_path}: eval section ({task} evaluation): {err}"
            ) from err
        evaluations[task] = evaluation
    return evaluations


__all__ = [
    "EVAL_SECTION", "OLD_EVAL_KEYS", "RUN_FILLED", "check_old_keys", "eval_tasks", "parse_eval",
    "task_evaluations",
]  # fmt: skip
