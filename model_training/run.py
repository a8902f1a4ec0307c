"""One command for the whole method: SFT, then GRPO, then evaluation, then the final model.

    python -m model_training.run                       # the CPU demo (recipes/demo-cpu.yaml)
    python -m model_training.run --config RECIPE.yaml [--stage sft|grpo|eval|all] \
        [--field value ...] [--sft.field value ...] [--grpo.field value ...] [--resume] \
        [--push-to-hub ORG/NAME]
    accelerate launch --config_file recipes/accelerate/zero2.yaml -m model_training.run \
        --config recipes/medreason-r1-qwen2.5-vl-7b/run.yaml

recipe -> (demo inputs) -> SFT -> GRPO -> evaluate base / SFT / GRPO -> final/ -> summary
-> Hub. Everything is written under the recipe's ``output_dir``; see ``run_recipe`` for the
recipe format and ``final_model`` for the final folder.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
import time
from pathlib import Path

from accelerate import PartialState

from hub_cards.model_card import HUB_ID_RE

from .curves import reward_trend
from .evaluate import PROGRESS_FILE, evaluate
from .final_model import assemble_final
from .run_recipe import (
    STAGES,
    RecipeError,
    RunPlan,
    StagePlan,
    help_text,
    parse_run,
    stage_hyperparameters,
)

logger = logging.getLogger("model_training.run")

SUMMARY_FILE = "run_summary.json"
STAGE_DONE_FILE = "training_summary.json"  # written by a stage when its model is saved
EVAL_LABELS = {"base": "before SFT", "sft": "after SFT", "grpo": "after GRPO"}


def _hub_id_or_none(name: str) -> str | None:
    """``name`` if it reads as a Hub repo id rather than a local folder."""
    return name if HUB_ID_RE.match(name) and not Path(name).exists() else None


# -- inputs of the demo ------------------------------------------------------------------------


def build_complete(folder: Path) -> bool:
    manifest = folder / "build_manifest.json"
    if not manifest.is_file():
        return False
    try:
        return json.loads(manifest.read_text()).get("status") == "complete"
    except (OSError, ValueError):
        return False


def ensure_dataset(plan: RunPlan) -> None:
    """Build the synthetic CT-RATE-VQA where the recipe asks for it and it is not there yet."""
    run = plan.run
    if run.synthetic_cases is None:
        return
    for folder in sorted({Path(s.args.dataset_name) for s in plan.stages.values()}):
        if build_complete(folder):
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
        logger.info("building the dataset: python -m dataset_builder %s", " ".join(command))
        build_main(command)


def ensure_base_model(plan: RunPlan) -> None:
    """Build the tiny offline Qwen2.5-VL where the recipe asks for it and it is missing."""
    path = plan.stages[STAGES[0]].model_args.model_name_or_path
    if not plan.run.tiny_model_if_missing or not path or Path(path).exists():
        return
    from .tiny_model import build_tiny_model

    logger.info("building the tiny Qwen2.5-VL: python -m model_training.tiny_model --out %s", path)
    build_tiny_model(Path(path))


# -- training stages ---------------------------------------------------------------------------


def stage_done(output_dir: str | Path) -> bool:
    return (Path(output_dir) / STAGE_DONE_FILE).is_file()


def _check_generation_backend(stage: StagePlan) -> None:
    if getattr(stage.training, "use_vllm", False) and importlib.util.find_spec("vllm") is None:
        raise RecipeError(
            f"{stage.name}: use_vllm is true but vllm is not installed; `pip install vllm` "
            "(GPU machines) or set use_vllm: false"
        )


def start_model(plan: RunPlan, name: str) -> str:
    """The model a stage starts from: GRPO continues this run's SFT model unless its section
    names another ``model_name_or_path``."""
    stage = plan.stages[name]
    index = STAGES.index(name)
    if index == 0:
        return stage.model_args.model_name_or_path
    previous = plan.stages[STAGES[index - 1]].training.output_dir
    named = stage.model_args.model_name_or_path
    if stage.model_from_recipe and Path(named).resolve() != Path(previous).resolve():
        return named
    if not stage_done(previous):
        raise RecipeError(
            f"{name} starts from the {STAGES[index - 1]} model in {previous}, which is not "
            f"there yet: run --stage {STAGES[index - 1]} first, or set "
            f"{name}.model_name_or_path in the recipe"
        )
    return previous


def train_stage(plan: RunPlan, name: str) -> Path:
    """Train one stage (skipped with --resume when it already finished)."""
    from .grpo import train_grpo
    from .sft import train_sft

    stage = plan.stages[name]
    out = Path(stage.training.output_dir)
    if plan.run.resume and stage_done(out):
        logger.info("%s: finished earlier, kept (%s)", name, out)
        return out
    _check_generation_backend(stage)
    stage.model_args.model_name_or_path = start_model(plan, name)
    (out / STAGE_DONE_FILE).unlink(missing_ok=True)  # unfinished until the model is saved
    logger.info("%s: from %s into %s", name, stage.model_args.model_name_or_path, out)
    train = train_sft if name == "sft" else train_grpo
    return train(stage.args, stage.training, stage.model_args, resume=plan.run.resume)


# -- evaluation ------------------------------------------------------------------------------


def models_to_evaluate(plan: RunPlan) -> dict[str, str]:
    """{label: model path} of the run's models that exist: base, sft, grpo."""
    models = {}
    if plan.run.eval_base_model:
        models["base"] = plan.stages[STAGES[0]].model_args.model_name_or_path
    for name in STAGES:
        out = plan.stages[name].training.output_dir
        if stage_done(out):
            models[name] = out
    return models


def _evaluation_current(results: Path, model: str, modes: tuple[str, ...]) -> bool:
    """True if ``results`` evaluated ``model`` in ``modes`` after the model was last trained."""
    if not results.is_file():
        return False
    report = json.loads(results.read_text())
    if report.get("model") != str(model) or tuple(report.get("modes", ())) != modes:
        return False
    trained = Path(model) / STAGE_DONE_FILE
    return not trained.is_file() or trained.stat().st_mtime_ns <= results.stat().st_mtime_ns


def evaluate_run(plan: RunPlan) -> dict[str, dict]:
    """Evaluate each model of the run into ``output_dir/eval/<label>``; {label: results}."""
    run = plan.run
    data = plan.stages[STAGES[-1]].args
    reports = {}
    for label, model in models_to_evaluate(plan).items():
        out = Path(run.output_dir) / "eval" / label
        done = out / "results.json"
        if run.resume and _evaluation_current(done, model, run.modes):
            logger.info("eval %s: finished earlier, kept (%s)", label, done)
            reports[label] = json.loads(done.read_text())
            continue
        logger.info("eval %s (%s): %s", label, EVAL_LABELS[label], model)
        progress, trained = out / PROGRESS_FILE, Path(model) / STAGE_DONE_FILE
        stale = (
            progress.is_file()
            and trained.is_file()
            and trained.stat().st_mtime_ns > progress.stat().st_mtime_ns
        )
        reports[label] = evaluate(
            model,
            data.dataset_name,
            out,
            config=data.dataset_config,
            split=run.eval_split,
            modes=run.modes,
            limit=run.eval_limit,
            batch_size=run.eval_batch_size,
            max_new_tokens=run.eval_max_new_tokens,
            overwrite=not run.resume or stale,  # --resume keeps finished predictions
        )
    return reports


# -- final folder and summary ----------------------------------------------------------------


def _training_logs(plan: RunPlan) -> dict[str, dict]:
    logs = {}
    for name in STAGES:
        path = Path(plan.stages[name].training.output_dir) / STAGE_DONE_FILE
        if path.is_file():
            logs[name] = json.loads(path.read_text())
    return logs


def run_summary(plan: RunPlan, reports: dict[str, dict], logs: dict[str, dict]) -> dict:
    evaluations = {}
    classes = 0
    for label, report in reports.items():
        evaluations[EVAL_LABELS[label]] = {
            "model": report["model"],
            **{
                mode: {
                    key: metrics[key]
                    for key in (
                        "n",
                        "accuracy_micro",
                        "accuracy_macro",
                        "format_rate",
                        "validity_rate",
                    )
                }
                for mode, metrics in report["modes"].items()
            },
        }
        classes = max(classes, *(len(m["per_class"]) for m in report["modes"].values()))
    grpo_log = logs.get("grpo", {}).get("log_history", [])
    return {
        "recipe": str(plan.recipe_path),
        "output_dir": plan.run.output_dir,
        "chance_accuracy": 1 / classes if classes else None,
        "evaluations": evaluations,
        "grpo_reward": reward_trend(grpo_log),
        "stage_seconds": {
            name: next(
                (r["train_runtime"] for r in log.get("log_history", []) if "train_runtime" in r),
                None,
            )
            for name, log in logs.items()
        },
    }


def format_summary(summary: dict) -> str:
    lines = ["", "=== medreason-r1 run summary ==="]
    evaluations = summary["evaluations"]
    if evaluations:
        chance = summary.get("chance_accuracy")
        first = next(iter(evaluations.values()))
        modes = [m for m in first if m != "model"]
        n = first[modes[0]]["n"] if modes else 0
        lines.append(
            f"test accuracy, micro / macro (n = {n}"
            + (f", chance {100 * chance:.1f} %" if chance else "")
            + "):"
        )
        lines.append(f"  {'':<12}" + "".join(f"{m:>24}" for m in modes))
        for label, result in evaluations.items():
            cells = "".join(
                f"{100 * result[m]['accuracy_micro']:>11.1f} %"
                f" / {100 * result[m]['accuracy_macro']:4.1f} %"
                for m in modes
            )
            lines.append(f"  {label:<12}{cells}")
    trend = summary.get("grpo_reward") or {}
    if trend:
        parts = ", ".join(
            f"{name} {v['first']:.2f} -> {v['last']:.2f}" for name, v in trend["components"].items()
        )
        lines.append(
            f"GRPO mean reward, first -> last {trend['window']} logged steps: "
            f"{trend['total']['first']:.2f} -> {trend['total']['last']:.2f} ({parts})"
        )
    seconds = {k: v for k, v in summary.get("stage_seconds", {}).items() if v}
    if seconds:
        lines.append("training time: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
    return "\n".join(lines)


def card_inputs(plan: RunPlan, logs: dict[str, dict]) -> tuple[dict, str]:
    """(the hub_cards ``training`` dict, the dataset id named in the card)."""
    first = plan.stages[STAGES[0]]
    dataset = first.args.dataset_name
    dataset_id = plan.run.card_dataset_id or _hub_id_or_none(dataset) or Path(dataset).name
    base = first.model_args.model_name_or_path
    last = logs[list(logs)[-1]] if logs else {}
    training = {
        "base_model": _hub_id_or_none(base) or Path(base).name,
        "datasets": [dataset_id],
        "stages": [
            {"name": name.upper(), "hyperparameters": stage_hyperparameters(plan.stages[name])}
            for name in logs
        ],
        "trainable_scope": last.get("trainable_scope"),
        "trainable_parameters": last.get("trainable_parameters"),
        "total_parameters": last.get("total_parameters"),
    }
    return training, dataset_id


def finish(plan: RunPlan, reports: dict[str, dict]) -> dict:
    """Write final/ (with its copy of the summary); return the summary."""
    logs = _training_logs(plan)
    summary = run_summary(plan, reports, logs)
    out = Path(plan.run.output_dir)
    trained = [name for name in STAGES if name in logs]
    if trained:
        last = trained[-1]
        training, dataset_id = card_inputs(plan, logs)
        final = assemble_final(
            out / "final",
            plan.stages[last].training.output_dir,
            plan.recipe,
            str(plan.recipe_path),
            logs,
            training,
            reports.get(last),
            summary,
            dataset_id,
        )
        summary["final_model"] = str(final)
    return summary


def publish(plan: RunPlan, summary: dict) -> None:
    from hub_cards.publish import push_model

    final = summary.get("final_model")
    if not final:
        raise RecipeError("--push-to-hub needs a trained model: run the sft or grpo stage first")
    report = push_model(final, plan.run.push_to_hub)
    logger.info("published %s to %s", final, plan.run.push_to_hub)
    print(f"published {final} -> {plan.run.push_to_hub} ({report})")


# -- entry point ---------------------------------------------------------------------------------


def run(plan: RunPlan) -> dict | None:
    """Carry out a parsed run; return the summary (None on non-main processes)."""
    state = PartialState()
    stage = plan.run.stage
    started = time.monotonic()
    with state.main_process_first():
        ensure_dataset(plan)
        ensure_base_model(plan)
    for name in STAGES:
        if stage in (name, "all"):
            train_stage(plan, name)
    summary = None
    if state.is_main_process and stage in ("eval", "all"):
        reports = evaluate_run(plan)
        summary = finish(plan, reports)
        summary["wall_seconds"] = round(time.monotonic() - started, 1)
        out = Path(plan.run.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=1))
        print(format_summary(summary) + f"\nwall time: {summary['wall_seconds']:.0f} s")
        print(f"outputs: {plan.run.output_dir} (final model: {summary.get('final_model')})")
        if plan.run.push_to_hub:
            publish(plan, summary)
    state.wait_for_everyone()
    return summary


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "-h" in argv or "--help" in argv:
        print(help_text())
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        plan = parse_run(argv)
        run(plan)
    except RecipeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
