"""One command for the whole method: SFT, then GRPO, then evaluation, then the final model.

    python -m model_training.run                       # the CPU demo (recipes/demo-cpu.yaml)
    python -m model_training.run --config RECIPE.yaml [--stage sft|grpo|eval|all] \
        [--resume | --overwrite] [--field value ...] [--sft.field value ...] \
        [--grpo.field value ...] [--push-to-hub ORG/NAME]
    python -m model_training.run --config recipes/medreason-r1-qwen2.5-vl-7b/run.yaml \
        --accelerate_config recipes/accelerate/zero2.yaml --num_processes 8

This is a plain driver process. Each step runs in processes of its own, started with
``accelerate launch`` (``accelerate_config`` / ``num_processes``) or plain ``python``:

    sft        python -m model_training.sft --config OUT/recipes/sft.yaml
    grpo       python -m model_training.grpo --config OUT/recipes/grpo.yaml   (from OUT/sft)
    eval/base  python -m model_training.evaluation.evaluate --model BASE ... \
                   --output-dir OUT/eval/base
    eval/sft, eval/grpo   the same for the trained models
    final      OUT/final/: weights, processor, card, curves, results (in the driver)

The driver reads what each step wrote. What is done lives in one file, ``OUT/run_state.json``:
per step, a key (a hash of the step's settings and of the versions of the steps it starts
from: their keys and when they finished) and a status. ``--resume`` keeps a finished step
whose key is unchanged, continues a stage from its last complete checkpoint and an evaluation
from its predictions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from common.hub_ids import hub_id_or_none
from common.names import (
    CLASSIFICATION_TASK,
    FINAL_DIR_NAME,
    GROUNDING_TASK,
    MANIFEST_NAME,
    STAGE_RECIPES_DIR,
)

from .backends import deepspeed_problem, launch_setup, vllm_problem
from .dry_run import PlannedStep, dry_run
from .final_model import assemble_final
from .run_recipe import (
    STAGES,
    RecipeError,
    RunArguments,
    RunPlan,
    eval_tasks,
    help_text,
    parse_run,
)
from .run_summary import (
    EVAL_LABELS,
    STAGE_DONE_FILE,
    card_inputs,
    format_summary,
    run_summary,
    training_logs,
)

logger = logging.getLogger("model_training.run")

STATE_FILE = "run_state.json"
SUMMARY_FILE = "run_summary.json"
STAGE_MODULES = {"sft": "model_training.sft", "grpo": "model_training.grpo"}
EVAL_MODULE = "model_training.evaluation.evaluate"


class StepFailed(RuntimeError):
    """A step's process exited with an error; its own output says why."""

    def __init__(self, step: str, returncode: int):
        super().__init__(
            f"{step} failed (exit status {returncode}); its output above says why. Fix the "
            "cause, then re-run the same command with --resume"
        )
        self.returncode = returncode


# -- the run's state: one file ---------------------------------------------------------------


class RunState:
    """``run_state.json``: {step: {"key", "inputs", "status": "running" | "done", "command"}}.

    A step's ``inputs`` is the hash of the keys of the steps it starts from; its ``key`` adds
    its own settings. A step is current when it is done with the key this command computes."""

    def __init__(self, output_dir: Path):
        self.path = output_dir / STATE_FILE
        self.steps: dict[str, dict] = (
            json.loads(self.path.read_text()) if self.path.is_file() else {}
        )

    def key(self, step: str) -> str | None:
        record = self.steps.get(step)
        return record["key"] if record and record["status"] == "done" else None

    def version(self, step: str) -> str | None:
        """What a later step's inputs hash takes from ``step``: its key and when it finished,
        so that redoing a step with the same settings (``--overwrite --stage sft``) still
        changes what the steps after it start from."""
        key = self.key(step)
        return None if key is None else f"{key}@{self.steps[step].get('finished')}"

    def finish(self, step: str) -> None:
        self.record(step, status="done", finished=time.time_ns())

    def record(self, step: str, **fields) -> None:
        self.steps[step] = {**self.steps.get(step, {}), **fields}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.steps, indent=1))


def _hash(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def check_ours(state: RunState, step: str, folder: Path) -> None:
    """Refuse a step folder that holds files this run did not write (never delete those)."""
    if step not in state.steps and folder.exists() and any(folder.iterdir()):
        raise RecipeError(
            f"{folder} exists but this run did not write it (no '{step}' in {state.path}); "
            "move it away or choose another output_dir"
        )


def model_fingerprint(model: str | None) -> list | None:
    """What identifies a local start model's current files (name, size and modification time
    of its config and weights), so that a step starting from a folder another run rewrote
    (paper_tables' ``grpo_from``) starts afresh; None for a Hub id or no model."""
    folder = Path(model) if model else None
    if folder is None or not folder.is_dir():
        return None
    files = sorted(p for p in folder.iterdir() if p.name == "config.json" or p.suffix in (
        ".safetensors", ".json") and p.name.startswith(("model", "adapter")))  # fmt: skip
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def plan_step(
    state: RunState, run: RunArguments, step: str, folder: Path, settings: dict, inputs: list[str],
    start: list | None = None,
) -> tuple[str, str, str]:  # fmt: skip
    """Decide a step: ('skip' | 'continue' | 'fresh', key, inputs hash). ``continue`` keeps
    the step's partial work (checkpoints, predictions); ``fresh`` deletes what it wrote. The
    inputs hash covers the versions of the ``inputs`` steps (:meth:`RunState.version`) and the
    ``start`` model's fingerprint."""
    inputs_hash = _hash([state.version(name) for name in inputs], *([start] if start else []))
    key = _hash(settings, inputs_hash)
    record = state.steps.get(step)
    if record is None:
        check_ours(state, step, folder)
        return "fresh", key, inputs_hash
    if not (run.resume or run.overwrite):
        raise RecipeError(
            f"{folder} holds the '{step}' step of an earlier run: pass --resume to keep and "
            "continue it, or --overwrite to redo it"
        )
    if run.resume and record["status"] == "done" and record["key"] == key and folder.exists():
        return "skip", key, inputs_hash
    if run.resume and record.get("inputs") == inputs_hash:
        return "continue", key, inputs_hash
    return "fresh", key, inputs_hash


# -- launching ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launcher(run: RunArguments) -> list[str]:
    """The command prefix before ``-m MODULE``: plain python, or ``accelerate launch``."""
    if run.accelerate_config is None and (run.num_processes or 1) == 1:
        return [sys.executable]
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    if run.accelerate_config:
        command += ["--config_file", run.accelerate_config]
    else:
        # accelerate 1.15: `--cpu --num_processes N` starts ONE process (its simple launcher);
        # `--multi_gpu` starts N with torchrun, and processes whose configs say use_cpu then
        # join over gloo (CPU) instead of NCCL.
        command += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
        command += ["--multi_gpu"] if (run.num_processes or 1) > 1 else []
    if run.num_processes:
        command += ["--num_processes", str(run.num_processes)]
    return [*command, "--main_process_port", str(_free_port())]


def launch(state: RunState, step: str, command: list[str]) -> None:
    logger.info("%s: %s", step, " ".join(command))
    process = subprocess.Popen(command)
    state.record(step, command=command[1:], pid=process.pid, status="running")
    returncode = process.wait()
    if returncode:
        raise StepFailed(step, returncode)


def _clear(folder: Path) -> None:
    """Delete a step's folder, which this run wrote (plan_step checked the record)."""
    if folder.exists():
        shutil.rmtree(folder)


# -- inputs of the demo ------------------------------------------------------------------------


def build_complete(folder: Path, configs: set[str] | frozenset[str] = frozenset()) -> bool:
    """A finished build that holds ``configs`` (a build made before a config existed, e.g. the
    classification demo's before `grounding`, is built again: the per-case cache is reused)."""
    manifest = folder / MANIFEST_NAME
    try:
        record = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return False
    return record.get("status") == "complete" and configs <= set(record.get("configs") or [])


def ensure_dataset(plan: RunPlan) -> None:
    """Build the synthetic CT-RATE-VQA where the recipe asks for it and it is not there yet."""
    run = plan.run
    if run.synthetic_cases is None:
        return
    needed: dict[str, set[str]] = {}
    for stage in plan.stages.values():
        configs = {stage.args.config_of(task) for task in stage.args.tasks}
        needed.setdefault(stage.args.dataset_name, set()).update(configs)
    for name in sorted(needed):
        folder = Path(name)
        if build_complete(folder, needed[name]):
            continue
        if hub_id_or_none(name):  # never phantom data under a name that reads as a Hub id
            logger.info(
                "dataset_name %s reads as a Hub dataset id: it is loaded from the Hub and "
                "nothing is synthesised (a local folder of that name: write ./%s)",
                name,
                name,
            )
            continue
        from dataset_builder.cli import main as build_main

        command = [
            "build",
            "--synthetic", str(run.synthetic_cases),
            "--synthetic-size", str(run.synthetic_size),
            "--synthetic-slices", str(run.synthetic_slices),
            "--seed", str(run.synthetic_seed),
            "--out", str(folder),
        ]  # fmt: skip
        logger.warning(
            "building a SYNTHETIC dataset of %d PHANTOM cases into %s (synthetic_cases): not "
            "patient data; set dataset_name to a built CT-RATE-VQA to train on real data: "
            "python -m dataset_builder %s",
            run.synthetic_cases,
            folder,
            " ".join(command),
        )
        if build_main(command) != 0:
            raise RecipeError(
                f"the synthetic dataset build into {folder} failed (its message is above); "
                "fix it or set dataset_name to a built CT-RATE-VQA"
            )


def ensure_base_model(plan: RunPlan) -> None:
    """Build the tiny offline Qwen2.5-VL where the recipe asks for it and it is missing."""
    path = plan.stages[STAGES[0]].model_args.model_name_or_path
    if not plan.run.tiny_model_if_missing or not path or Path(path).exists():
        return
    if hub_id_or_none(path):  # a Hub model id: from_pretrained loads it; nothing is built
        return
    from .tiny_model import build_tiny_model

    logger.info("building the tiny Qwen2.5-VL: python -m model_training.tiny_model --out %s", path)
    build_tiny_model(Path(path))


# -- steps -------------------------------------------------------------------------------------


def stage_done(state: RunState, output_dir: str | Path, name: str) -> bool:
    return state.key(name) is not None and (Path(output_dir) / STAGE_DONE_FILE).is_file()


def check_backends(plan: RunPlan) -> None:
    """Refuse, before any step starts, a run whose launcher needs DeepSpeed or whose GRPO
    needs vLLM where they cannot be imported (or vLLM is outside TRL's supported range)."""
    stages = [plan.stages[name] for name in STAGES if plan.run.stage in (name, "all")]
    sources = {
        launch_setup(plan.run.accelerate_config, plan.run.num_processes, deepspeed)
        .deepspeed_source
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
    stage = plan.run.stage
    steps = [
        PlannedStep(name, stage_command(plan, name), stage=name)
        for name in STAGES
        if stage in (name, "all")
    ]
    if stage in ("eval", "all"):
        models = {"base": plan.stages[STAGES[0]].start_model} if plan.run.eval_base_model else {}
        models |= {name: plan.stages[name].training.output_dir for name in STAGES}
        for task in eval_tasks(plan.stages):
            for label, model in models.items():
                steps.append(PlannedStep(eval_folder(plan, label, task),
                                         eval_command(plan, label, model, task),
                                         model=model, task=task))  # fmt: skip
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
    if decision == "fresh":
        _clear(out)
    (out / STAGE_DONE_FILE).unlink(missing_ok=True)  # unfinished until the model is saved
    recipe_file = stage_recipe_file(plan, name)
    recipe_file.parent.mkdir(parents=True, exist_ok=True)
    recipe_file.write_text(
        f"# {name} stage of {plan.recipe_path} (written by model_training.run)\n"
        + yaml.safe_dump(recipe, sort_keys=False)
    )
    state.record(name, key=key, inputs=inputs_hash)
    resume = ["--resume_from_checkpoint", "last"] if decision == "continue" else []
    launch(state, name, [*stage_command(plan, name), *resume])
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


def eval_folder(plan: RunPlan, label: str, task: str) -> str:
    """``eval/<label>`` for the run's first task; ``eval/<label>-<task>`` for a second one (the
    grounding evaluation of a multitask run)."""
    first = eval_tasks(plan.stages)[0]
    return f"eval/{label}" if task == first else f"eval/{label}-{task}"


def stage_recipe_file(plan: RunPlan, name: str) -> Path:
    return Path(plan.run.output_dir) / STAGE_RECIPES_DIR / f"{name}.yaml"


def stage_command(plan: RunPlan, name: str) -> list[str]:
    """The command that trains stage ``name`` from its stage recipe file."""
    recipe = stage_recipe_file(plan, name)
    return [*launcher(plan.run), "-m", STAGE_MODULES[name], "--config", str(recipe)]


def eval_args(plan: RunPlan, label: str, model: str, task: str) -> list[str]:
    """The evaluator's options for one model and task (what its step's key hashes)."""
    run, data = plan.run, plan.stages[STAGES[-1]].args
    out = Path(run.output_dir) / eval_folder(plan, label, task)
    args = [
        "--model", model,
        "--dataset", data.dataset_name,
        "--config", data.config_of(task),
        "--split", run.eval_split,
        "--mode", run.eval_modes,
        "--max-new-tokens", str(run.eval_max_new_tokens),
        "--output-dir", str(out),
    ]  # fmt: skip
    if run.eval_limit is not None:
        args += ["--limit", str(run.eval_limit)]
    if task == GROUNDING_TASK:
        args += ["--sam-model", run.eval_sam_model]
    else:
        for flag, value in (("--judge", run.eval_judge), ("--judge-model", run.eval_judge_model)):
            if value is not None:
                args += [flag, value]
    return args


def eval_command(plan: RunPlan, label: str, model: str, task: str) -> list[str]:
    args = [*eval_args(plan, label, model, task), "--batch-size", str(plan.run.eval_batch_size)]
    return [*launcher(plan.run), "-m", EVAL_MODULE, *args]


def evaluate_model(
    plan: RunPlan, state: RunState, label: str, model: str, task: str = CLASSIFICATION_TASK
) -> dict:
    """Evaluate one model on ``task``'s config in its own process(es) into
    ``output_dir/<eval_folder>``."""
    run = plan.run
    step = eval_folder(plan, label, task)
    out = Path(run.output_dir) / step
    args = eval_args(plan, label, model, task)
    inputs = [label] if label in STAGES else []
    start = None if inputs else model_fingerprint(model)
    decision, key, inputs_hash = plan_step(state, run, step, out, args, inputs, start)
    if decision != "skip":
        logger.info("%s (%s): %s", step, EVAL_LABELS[label], model)
        state.record(step, key=key, inputs=inputs_hash)
        overwrite = ["--overwrite"] if decision == "fresh" else []
        launch(state, step, [*eval_command(plan, label, model, task), *overwrite])
        state.finish(step)
    else:
        logger.info("%s: finished earlier, kept (%s)", step, out)
    return json.loads((out / "results.json").read_text())


def finish(plan: RunPlan, state: RunState, reports: dict[str, dict[str, dict]]) -> dict:
    """Write final/ (with its copy of the summary); return the summary. ``reports``:
    {task: {label: results.json}}."""
    logs = training_logs(plan)
    summary = run_summary(plan, reports, logs)
    trained = [name for name in STAGES if name in logs and stage_done(
        state, plan.stages[name].training.output_dir, name)]  # fmt: skip
    if trained:
        final = Path(plan.run.output_dir) / FINAL_DIR_NAME
        check_ours(state, "final", final)  # assemble_final replaces the folder
        state.record("final", key=None, inputs=None, status="running")
        training, dataset_id = card_inputs(plan, logs)
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
        )
        state.record("final", status="done")
        summary["final_model"] = str(final)
    return summary


def final_results(reports: dict[str, dict[str, dict]], label: str) -> dict | list[dict] | None:
    """The evaluation of the final model for its card: one task's results.json, or a list of
    both (multitask; the card shows both tasks), or None when it was not evaluated."""
    found = [by_label[label] for by_label in reports.values() if label in by_label]
    return found[0] if len(found) == 1 else found or None


def publish(plan: RunPlan, summary: dict) -> None:
    from hub_cards.publish import push_model

    final = summary.get("final_model")
    if not final:
        raise RecipeError("--push-to-hub needs a trained model: run the sft or grpo stage first")
    report = push_model(final, plan.run.push_to_hub)
    print(f"published {final} -> {plan.run.push_to_hub} ({report})")


# -- entry point ---------------------------------------------------------------------------------


def run(plan: RunPlan) -> dict | None:
    """Carry out a parsed run; return the summary (None when it evaluates nothing)."""
    if plan.run.dry_run:
        dry_run(plan, planned_steps(plan))
        return None
    check_backends(plan)
    started = time.monotonic()
    state = RunState(Path(plan.run.output_dir))
    ensure_dataset(plan)
    ensure_base_model(plan)
    stage = plan.run.stage
    for name in STAGES:
        if stage in (name, "all"):
            train_stage(plan, state, name)
    if stage not in ("eval", "all"):
        return None
    models = models_to_evaluate(plan, state)
    reports = {
        task: {label: evaluate_model(plan, state, label, model, task)
               for label, model in models.items()}
        for task in eval_tasks(plan.stages)
    }  # fmt: skip
    summary = finish(plan, state, reports)
    summary["wall_seconds"] = round(time.monotonic() - started, 1)
    (Path(plan.run.output_dir) / SUMMARY_FILE).write_text(json.dumps(summary, indent=1))
    print(format_summary(summary) + f"\nwall time: {summary['wall_seconds']:.0f} s")
    print(f"outputs: {plan.run.output_dir} (final model: {summary.get('final_model')})")
    if plan.run.push_to_hub:
        publish(plan, summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "-h" in argv or "--help" in argv:
        print(help_text())
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        # checked before parsing: TRL's configs would start torch.distributed
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise RecipeError(
                "model_training.run starts the processes of each step itself: run it with "
                "`python -m model_training.run`, not under accelerate launch or torchrun, and "
                "give the launcher as --accelerate_config FILE --num_processes N (or in the recipe)"
            )
        run(parse_run(argv))
    except RecipeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except StepFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 2 if err.returncode == 2 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
