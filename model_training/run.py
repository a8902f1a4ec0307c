"""One command for the whole method: SFT, then GRPO, then evaluation, then the final model.

    python -m model_training.run                       # the CPU demo (recipes/demo-cpu.yaml)
    python -m model_training.run --config RECIPE.yaml [--stage sft|grpo|eval|all] \
        [--resume | --overwrite] [--field value ...] [--sft.field value ...] \
        [--grpo.field value ...] [--eval.field value ...] [--push-to-hub ORG/NAME]
    python -m model_training.run --config recipes/medreason-r1-qwen2.5-vl-7b/run.yaml \
        --accelerate_config recipes/accelerate/zero2.yaml --num_processes 8

This is a plain driver process. Each step runs in processes of its own, started with
``accelerate launch`` (``accelerate_config`` / ``num_processes``) or plain ``python``:

    sft        python -m model_training.sft --config OUT/recipes/sft.yaml
    grpo       python -m model_training.grpo --config OUT/recipes/grpo.yaml   (from OUT/sft)
    eval/base  python -m model_training.evaluation.evaluate --model BASE ... \
                   --output-dir OUT/eval/base      (the recipe's eval: section, as options)
    eval/sft, eval/grpo   the same for the trained models
    final      OUT/final/: weights, processor, card, curves, results (in the driver)

The driver reads what each step wrote. What is done lives in one file, ``OUT/run_state.json``
(``run_state``): ``--resume`` keeps a finished step whose key is unchanged, continues a stage
from its last complete checkpoint and an evaluation from its predictions. From Python:
``run(parse_run(argv))``, or ``run(plan_run(path, with_overrides(load_recipe(path), {...})))``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

from common.errors import report, user_errors
from common.folder_lock import FolderLock
from common.names import (
    CLASSIFICATION_TASK,
    FINAL_DIR_NAME,
    STAGE_RECIPES_DIR,
)
from common.names import TRAINING_SUMMARY_NAME as STAGE_DONE_FILE
from common.results_schema import (
    IMAGE_ABLATIONS,
    NO_ABLATION,
    RESULTS_FILE,
    SHUFFLE_ABLATION,
    read_results,
)

from .backends import deepspeed_problem, launch_setup, vllm_problem
from .dry_run import PlannedStep, dry_run
from .evaluation.evaluate import EvaluateArguments
from .evaluation.options import DEFAULT_ABLATION_SEED, evaluator_process
from .final_model import assemble_final
from .run_arguments import STAGES, RecipeError, RunPlan
from .run_evaluations import eval_tasks
from .run_files import (
    LOCK_FILE,
    SUMMARY_FILE,
    check_run_files,
    folder_entries,
    make_folder,
    remove_if_empty,
    remove_own,
)
from .run_inputs import build_complete, ensure_base_model, ensure_dataset
from .run_launch import StepFailed, launch, launcher
from .run_recipe import help_text, parse_run
from .run_state import RunState, check_ours, model_fingerprint, plan_step
from .run_summary import EVAL_LABELS, card_inputs, format_summary, run_summary, training_logs

logger = logging.getLogger("model_training.run")

STAGE_MODULES = {"sft": "model_training.sft", "grpo": "model_training.grpo"}
EVAL_UNKEYED = ("batch_size", "overwrite", "progress")  # how, not what: not in the step's key


def _clear(state: RunState, step: str, folder: Path) -> None:
    """Delete what the run wrote in a step's folder; a folder holding anything else is refused
    first (``run_files``: never deleted)."""
    check_ours(state, step, folder)
    remove_own(state.steps.get(step), step, folder)


def stage_done(state: RunState, output_dir: str | Path, name: str) -> bool:
    return state.key(name) is not None and (Path(output_dir) / STAGE_DONE_FILE).is_file()


def check_backends(plan: RunPlan) -> None:
    """Refuse, before any step starts, a run whose launcher needs DeepSpeed or whose GRPO
    needs vLLM where they cannot be imported (or vLLM is outside TRL's supported range)."""
    stages = [plan.stages[name] for name in STAGES if plan.run.runs(name)]
    sources = {
        launch_setup(plan.run.accelerate_config, plan.run.num_processes, deepspeed).deepspeed_source
        for deepspeed in [s.training.deepspeed for s in stages] or [None]
    } - {None}
    if sources:  # one import check for every launch that asks for DeepSpeed
        problem = deepspeed_problem(min(sources), check_import=True)
        if problem:
            raise RecipeError(problem)
    vllm = [s.name for s in stages if getattr(s.training, "use_vllm", False)]
    problem = vllm_problem(check_import=True) if vllm else None
    if problem:
        raise RecipeError(f"{vllm[0]}: use_vllm is true, but {problem}; or set use_vllm: false")


def planned_steps(plan: RunPlan) -> list[PlannedStep]:
    """The steps this command would start, in order (every stage it trains, then every
    evaluation, assuming the stages finish)."""
    steps = [PlannedStep(name, stage_command(plan, name), stage=name)
             for name in STAGES if plan.run.runs(name)]  # fmt: skip
    if plan.run.runs("eval"):
        models = {"base": plan.stages[STAGES[0]].start_model} if plan.run.eval_base_model else {}
        models |= {name: plan.stages[name].training.output_dir for name in STAGES}
        for task in eval_tasks(plan.stages):
            for label, model in models.items():
                options = eval_options(plan, label, model, task)
                steps.append(PlannedStep(eval_folder(plan, label, task), eval_command(
                    plan, options), model=model, task=task))  # fmt: skip
            final = STAGES[-1]  # the final model, assuming the stages finish
            for ablation in plan.run.eval_image_ablations:
                options = eval_options(plan, final, models[final], task, ablation)
                steps.append(PlannedStep(eval_folder(plan, final, task, ablation), eval_command(
                    plan, options), model=models[final], task=task))  # fmt: skip
    return steps


def train_stage(plan: RunPlan, state: RunState, name: str) -> None:
    """Train one stage in its own process(es) from its stage recipe. A stage that continues
    this run's previous stage (``StagePlan.start_stage``) starts from that stage's output, and
    its key includes that stage's key: a redone SFT makes GRPO start afresh."""
    stage = plan.stages[name]
    recipe = dict(stage.recipe)
    inputs, start = [], None
    if stage.start_stage is not None:
        previous = plan.stages[stage.start_stage]
        if not stage_done(state, previous.training.output_dir, previous.name):
            raise RecipeError(
                f"{name} starts from the {previous.name} model in {previous.training.output_dir}"
                f", which is not there yet: run --stage {previous.name} first, or set "
                f"{name}.model_name_or_path"
            )
        inputs = [previous.name]
    else:
        start = model_fingerprint(stage.start_model)
    out = Path(stage.training.output_dir)
    decision, key, inputs_hash = plan_step(state, plan.run, name, out, recipe, inputs, start)
    if decision == "skip":
        logger.info("%s: finished earlier, kept (%s)", name, out)
        return
    check_ours(state, name, out)  # also where the step continues
    if decision == "fresh":
        _clear(state, name, out)
    (out / STAGE_DONE_FILE).unlink(missing_ok=True)  # unfinished until the model is saved
    state.record(name, key=key, inputs=inputs_hash, status="running")  # before its recipe
    recipe_file = stage_recipe_file(plan, name)
    recipe_file.parent.mkdir(parents=True, exist_ok=True)
    recipe_file.write_text(
        f"# {name} stage of {plan.recipe_path} (written by model_training.run)\n"
        + yaml.safe_dump(recipe, sort_keys=False)
    )
    resume = ["--resume_from_checkpoint", "last"] if decision == "continue" else []
    launch(state, name, [*stage_command(plan, name), *resume], out)
    if not (out / STAGE_DONE_FILE).is_file():
        raise StepFailed(name, 1)
    state.finish(name)


def models_to_evaluate(plan: RunPlan, state: RunState) -> dict[str, str]:
    """{label: model} of the run's models that exist: base, sft, grpo."""
    models = {}
    if plan.run.eval_base_model:
        models["base"] = plan.stages[STAGES[0]].model_args.model_name_or_path
    for name in STAGES:
        out = plan.stages[name].training.output_dir
        if stage_done(state, out, name):
            models[name] = out
    return models


def eval_folder(plan: RunPlan, label: str, task: str, ablation: str = NO_ABLATION) -> str:
    """``eval/<label>`` for the run's first task; ``eval/<label>-<task>`` for a second one (the
    grounding evaluation of a multitask run); ``-<ablation>`` added for an image ablation
    (``eval/grpo-blank``)."""
    first = eval_tasks(plan.stages)[0]
    folder = f"eval/{label}" if task == first else f"eval/{label}-{task}"
    return folder if ablation == NO_ABLATION else f"{folder}-{ablation}"


def stage_recipe_file(plan: RunPlan, name: str) -> Path:
    return Path(plan.run.output_dir) / STAGE_RECIPES_DIR / f"{name}.yaml"


def stage_command(plan: RunPlan, name: str) -> list[str]:
    """The command that trains stage ``name`` from its stage recipe file."""
    recipe = stage_recipe_file(plan, name)
    return [*launcher(plan.run), "-m", STAGE_MODULES[name], "--config", str(recipe)]


def eval_options(
    plan: RunPlan, label: str, model: str, task: str, ablation: str = NO_ABLATION
) -> EvaluateArguments:
    """The evaluator's options for one model, task and image ablation: the task's
    (``RunPlan.evaluations``) with the model, the step's folder and the ablation filled in."""
    out = Path(plan.run.output_dir) / eval_folder(plan, label, task, ablation)
    seed = plan.run.eval_ablation_seed if ablation == SHUFFLE_ABLATION else DEFAULT_ABLATION_SEED
    return dataclasses.replace(
        plan.evaluations[task], model=model, output_dir=str(out), image_ablation=ablation,
        ablation_seed=seed,
    )  # fmt: skip


def eval_command(plan: RunPlan, options: EvaluateArguments) -> list[str]:
    """The evaluator's process for ``options``: the one dataclass-to-argv helper."""
    return [*launcher(plan.run), *evaluator_process(options)]


def evaluate_model(
    plan: RunPlan,
    state: RunState,
    label: str,
    model: str,
    task: str = CLASSIFICATION_TASK,
    ablation: str = NO_ABLATION,
) -> dict:
    """Evaluate one model on ``task``'s config (with ``ablation``'s images) in its own
    process(es) into ``output_dir/<eval_folder>``; its results.json."""
    run = plan.run
    step = eval_folder(plan, label, task, ablation)
    out = Path(run.output_dir) / step
    options = eval_options(plan, label, model, task, ablation)
    settings = {k: v for k, v in dataclasses.asdict(options).items() if k not in EVAL_UNKEYED}
    inputs = [label] if label in STAGES else []
    start = None if inputs else model_fingerprint(model)
    decision, key, inputs_hash = plan_step(state, run, step, out, settings, inputs, start)
    if decision != "skip":
        logger.info("%s (%s%s): %s", step, EVAL_LABELS[label], IMAGE_ABLATIONS[ablation], model)
        check_ours(state, step, out)
        if decision == "fresh":  # an earlier evaluation's plots and results go too
            _clear(state, step, out)
        state.record(step, key=key, inputs=inputs_hash, status="running")
        options = dataclasses.replace(options, overwrite=decision == "fresh")
        launch(state, step, eval_command(plan, options), out)
        state.finish(step)
    else:
        logger.info("%s: finished earlier, kept (%s)", step, out)
    return read_results(out / RESULTS_FILE)


def evaluate_ablations(
    plan: RunPlan, state: RunState, models: dict[str, str]
) -> tuple[str | None, dict[str, dict[str, dict]]]:
    """The final model (the run's last trained stage) evaluated with each of the run's image
    ablations: (its label, {task: {ablation: results.json}}); (None, {}) when no stage was
    trained or no ablation is asked for."""
    trained = [label for label in STAGES if label in models]
    if not trained or not plan.run.eval_image_ablations:
        return None, {}
    label = trained[-1]
    return label, {
        task: {ablation: evaluate_model(plan, state, label, models[label], task, ablation)
               for ablation in plan.run.eval_image_ablations}
        for task in eval_tasks(plan.stages)
    }  # fmt: skip


def finish(
    plan: RunPlan,
    state: RunState,
    reports: dict[str, dict[str, dict]],
    ablated: tuple[str | None, dict[str, dict[str, dict]]] = (None, {}),
) -> dict:
    """Write final/ (with its copy of the summary); return the summary. ``reports``:
    {task: {label: results.json}}; ``ablated``: the final model's label and its evaluations
    with image ablations, {task: {ablation: results.json}} (``evaluate_ablations``)."""
    logs = training_logs(plan)
    summary = run_summary(plan, reports, logs, ablated)
    trained = [name for name in STAGES if name in logs and stage_done(
        state, plan.stages[name].training.output_dir, name)]  # fmt: skip
    if trained:
        final = Path(plan.run.output_dir) / FINAL_DIR_NAME
        check_ours(state, "final", final)  # assemble_final replaces the folder: ours only
        state.record("final", key=None, inputs=None, status="running")
        training, dataset_id = card_inputs(plan, logs)
        try:
            assemble_final(
                final,
                plan.stages[trained[-1]].training.output_dir,
                plan.recipe,
                str(plan.recipe_path),
                logs,
                training,
                final_results(reports, trained[-1]),
                summary,
                dataset_id,
                [r for by_ablation in ablated[1].values() for r in by_ablation.values()],
            )
        finally:
            state.record("final", files=folder_entries(final) if final.is_dir() else [])
        state.record("final", status="done")
        summary["final_model"] = str(final)
    return summary


def final_results(reports: dict[str, dict[str, dict]], label: str) -> dict | list[dict] | None:
    """The evaluation of the final model for its card: one task's results.json, or a list of
    both (multitask; the card shows both tasks), or None when it was not evaluated."""
    found = [by_label[label] for by_label in reports.values() if label in by_label]
    return found[0] if len(found) == 1 else found or None


def check_push_target(plan: RunPlan) -> None:
    """``--push-to-hub``: refuse, before any step runs, a Hub that cannot be reached (the push
    comes last, after the training). The repo id was checked when the recipe was parsed."""
    if not plan.run.push_to_hub:
        return
    from hub_cards.publish import hub_problem

    problem = hub_problem(plan.run.push_to_hub, "--push-to-hub")
    if problem:
        raise RecipeError(problem)


def publish(plan: RunPlan, summary: dict) -> None:
    from hub_cards.publish import PublishError, push_model

    final = summary.get("final_model")
    if not final:
        raise RecipeError("--push-to-hub needs a trained model: run the sft or grpo stage first")
    repo = plan.run.push_to_hub
    try:
        report = push_model(final, repo)
    except PublishError as err:
        raise RecipeError(
            f"--push-to-hub {repo}: {err} (the run's outputs are kept: `python -m hub_cards "
            f"push-model {final} --repo-id {repo}` pushes {final} alone)"
        ) from None
    print(f"published {final} -> {repo} ({report})")


def run(plan: RunPlan) -> dict | None:
    """Carry out a parsed run; return the summary (None when it evaluates nothing). One driver
    at a time in an output_dir (``OUT/run.lock``); a run refused before it wrote anything
    leaves nothing behind."""
    if plan.run.dry_run:
        dry_run(plan, planned_steps(plan))
        return None
    check_backends(plan)
    check_push_target(plan)
    made = make_folder(Path(plan.run.output_dir))
    try:
        with FolderLock(Path(plan.run.output_dir) / LOCK_FILE, "model_training.run") as lock:
            return run_locked(plan, lock)
    finally:
        remove_if_empty(made)


def check_run_folder(plan: RunPlan, state: RunState) -> None:
    """Before anything runs: every folder this command may write holds only the run's own
    files (``run_files``), and the run-level files are the run's."""
    out = Path(plan.run.output_dir)
    check_run_files(out, state.steps, STAGES)
    folders = {step.step: out / step.step for step in planned_steps(plan)}
    if plan.run.runs("eval"):
        folders[FINAL_DIR_NAME] = out / FINAL_DIR_NAME
    for step, folder in folders.items():
        check_ours(state, step, folder)


def run_locked(plan: RunPlan, lock: FolderLock) -> dict | None:
    """:func:`run` while it holds the output_dir's lock."""
    started = time.monotonic()
    state = RunState(Path(plan.run.output_dir))
    state.lock = lock
    check_run_folder(plan, state)
    ensure_dataset(plan)
    ensure_base_model(plan)
    for name in STAGES:
        if plan.run.runs(name):
            train_stage(plan, state, name)
    if not plan.run.runs("eval"):
        return None
    models = models_to_evaluate(plan, state)
    reports = {
        task: {label: evaluate_model(plan, state, label, model, task)
               for label, model in models.items()}
        for task in eval_tasks(plan.stages)
    }  # fmt: skip
    summary = finish(plan, state, reports, evaluate_ablations(plan, state, models))
    summary["wall_seconds"] = round(time.monotonic() - started, 1)
    (Path(plan.run.output_dir) / SUMMARY_FILE).write_text(json.dumps(summary, indent=1))
    print(format_summary(summary) + f"\nwall time: {summary['wall_seconds']:.0f} s")
    print(f"outputs: {plan.run.output_dir} (final model: {summary.get('final_model')})")
    if plan.run.push_to_hub:
        publish(plan, summary)
    return summary


@contextlib.contextmanager
def sigterm_stops() -> Iterator[None]:
    """SIGTERM exits as Ctrl-C does: the running step is stopped, its files are recorded and
    the lock is released (the default SIGTERM would leave the step running)."""

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread: nothing to install
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@user_errors
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "-h" in argv or "--help" in argv:
        print(help_text())
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    # checked before parsing: TRL's configs would start torch.distributed
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise RecipeError(
            "model_training.run starts the processes of each step itself: run it with "
            "`python -m model_training.run`, not under accelerate launch or torchrun, and "
            "give the launcher as --accelerate_config FILE --num_processes N (or in the recipe)"
        )
    try:
        with sigterm_stops():
            run(parse_run(argv))
    except StepFailed as err:  # the step's own exit status: 2 (its user error) or 1
        report(err)
        return 2 if err.returncode == 2 else 1
    return 0


__all__ = [
    "SUMMARY_FILE", "StepFailed", "build_complete", "check_backends", "check_push_target",
    "check_run_folder", "ensure_dataset", "evaluate_model", "launcher", "main", "plan_step",
    "planned_steps", "run",
]  # fmt: skip

if __name__ == "__main__":
    sys.exit(main())
