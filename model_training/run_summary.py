"""What a run reports: the summary of its evaluations (classification accuracy; grounding box
IoU, point-Dice and mask Dice, against the mean-box baseline the grounding evaluations write)
and GRPO rewards, and the card's inputs.

Read from the files the stages wrote (``training_summary.json`` per stage, ``results.json`` per
evaluation, read through ``common.results_schema``); printed by the driver and kept as
``run_summary.json``, which a run's ``final/`` publishes: it names the recipe, the output folder
and the models by name, never by a local path (``public_path``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from common.hub_ids import hub_id_or_none
from common.image_reliance import chance_accuracy, image_reliance, images_label, reliance_rows
from common.names import CLASSIFICATION_TASK, GROUNDING_TASK
from common.names import TRAINING_SUMMARY_NAME as STAGE_DONE_FILE
from common.results_schema import MEAN_BOX_BASELINE
from hub_cards.local_paths import without_local_paths

from .curves import reward_trend
from .evaluation.results_header import source_name
from .run_arguments import STAGES, RunPlan, StagePlan, typed
from .run_recipe import REPO_ROOT
from .training_history import recorded_name

EVAL_LABELS = {"base": "before SFT", "sft": "after SFT", "grpo": "after GRPO"}
SUMMARY_METRICS = ("n", "accuracy_micro", "accuracy_macro", "format_rate", "validity_rate")
JUDGE_METRICS = ("consistency", "consistency_judged")  # think mode, with eval_judge
GROUNDING_METRICS = (  # the grounding evaluator's means and rates (mask Dice with a SAM)
    "n", "iou_mean", "iou_50", "point_dice_mean", "medreasoner_pdice_mean", "mask_dice_mean",
    "oracle_dice_mean", "format_rate", "parse_rate", "complete_rate",
)  # fmt: skip
CARD_HYPERPARAMETERS = (  # a stage's settings worth printing in a model card
    "task", "trainable_scope", "prompt_mode", "sft_target", "dataset_config",
    "grounding_config", "grounding_fraction", "num_train_epochs",
    "max_steps", "learning_rate", "lr_scheduler_type", "warmup_steps",
    "per_device_train_batch_size", "gradient_accumulation_steps", "num_generations",
    "max_completion_length", "loss_type", "beta", "temperature", "reward_funcs",
    "reward_weights", "seed",
)  # fmt: skip
GRPO_ONLY = (  # card hyperparameters of GRPO only
    "num_generations", "max_completion_length", "loss_type", "beta", "temperature",
    "reward_funcs", "reward_weights",
)  # fmt: skip


def public_path(path: str | Path) -> str:
    """How a published file names a local file: one of this project's own (a recipe under
    ``recipes/``) by its path in the project, any other by its name only."""
    resolved = Path(path).expanduser().resolve()
    if resolved.is_relative_to(REPO_ROOT):
        return resolved.relative_to(REPO_ROOT).as_posix()
    return recorded_name(str(path))


def training_logs(plan: RunPlan) -> dict[str, dict]:
    """{stage: its training_summary.json} for the stages that finished."""
    logs = {}
    for name in STAGES:
        path = Path(plan.stages[name].training.output_dir) / STAGE_DONE_FILE
        if path.is_file():
            logs[name] = json.loads(path.read_text())
    return logs


def run_summary(
    plan: RunPlan,
    reports: dict[str, dict[str, dict]],
    logs: dict[str, dict],
    ablated: tuple[str | None, dict[str, dict[str, dict]]] = (None, {}),
) -> dict:
    """The run's summary from ``reports`` ({task: {label: results.json}}) and the stages'
    training logs: classification accuracies (``evaluations``), grounding metrics
    (``grounding_evaluations``) with the mean-box baseline, the final model's image reliance
    (``ablated``: its label and {task: {ablation: results.json}}), the GRPO reward trend,
    times."""
    summary = {
        "recipe": public_path(plan.recipe_path),
        "output_dir": recorded_name(plan.run.output_dir),
        **classification_summary(reports.get(CLASSIFICATION_TASK, {})),
    }
    if GROUNDING_TASK in reports:
        summary["grounding_evaluations"] = {
            EVAL_LABELS[label]: grounding_metrics(report)
            for label, report in reports[GROUNDING_TASK].items()
        }
        summary["grounding_baseline"] = next(  # every grounding evaluation of a run: the same
            (r[MEAN_BOX_BASELINE] for r in reports[GROUNDING_TASK].values()
             if r.get(MEAN_BOX_BASELINE)), None,
        )  # fmt: skip
    label, by_task = ablated
    if label is not None and by_task:
        summary["image_reliance"] = {
            "model": EVAL_LABELS[label],
            "records": [image_reliance(reports[task][label], results, f"eval/{label}")
                        for task, by_ablation in by_task.items()
                        for results in by_ablation.values()],
        }  # fmt: skip
    return without_local_paths({
        **summary,
        "grpo_reward": reward_trend(logs.get("grpo", {}).get("log_history", [])),
        "stage_seconds": {
            name: next(
                (r["train_runtime"] for r in log.get("log_history", []) if "train_runtime" in r),
                None,
            )
            for name, log in logs.items()
        },
    })  # fmt: skip


def grounding_metrics(report: dict) -> dict:
    """The model and, per mode, the summary's grounding metrics of one results.json."""
    return {
        "model": source_name(str(report["model"])),
        **{
            mode: {key: metrics[key] for key in GROUNDING_METRICS if key in metrics}
            for mode, metrics in report["modes"].items()
        },
    }


def classification_summary(reports: dict[str, dict]) -> dict:
    """``chance_accuracy`` and ``evaluations`` of the classification reports {label: report}."""
    evaluations = {
        EVAL_LABELS[label]: {
            "model": source_name(str(report["model"])),
            **{
                mode: {
                    key: metrics[key]
                    for key in (*SUMMARY_METRICS, *JUDGE_METRICS)
                    if key in SUMMARY_METRICS or key in metrics
                }
                for mode, metrics in report["modes"].items()
            },
        }
        for label, report in reports.items()
    }
    chances = [chance_accuracy(report) for report in reports.values()]
    return {"chance_accuracy": min(filter(None, chances), default=None), "evaluations": evaluations}


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
        judged = {k: v["think"]["consistency"] for k, v in evaluations.items()
                  if "consistency" in v.get("think", {})}  # fmt: skip
        if judged:
            lines.append(
                "reasoning-answer consistency (think): "
                + ", ".join(f"{k} {100 * v:.1f} %" for k, v in judged.items())
            )
    lines += format_grounding(summary)
    lines += format_reliance(summary)
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


def format_grounding(summary: dict) -> list[str]:
    """Lines of the grounding metrics, per mode: the mean-box baseline, then each model."""
    evaluations = summary.get("grounding_evaluations") or {}
    if not evaluations:
        return []
    baseline = summary.get("grounding_baseline") or {}
    modes = [m for m in next(iter(evaluations.values())) if m != "model"]
    lines = []
    for mode in modes:
        first = next(iter(evaluations.values()))[mode]
        masks = "mask_dice_mean" in first
        lines.append(
            f"grounding ({mode}), test box IoU / IoU>=0.5 / point-Dice (ours) / MedReasoner pDice"
            + (" / mask Dice" if masks else "")
            + f" (n = {first['n']}):"
        )
        if baseline:
            lines.append(
                f"  {'mean-box baseline':<18}{100 * baseline['iou_mean']:6.1f} % / "
                f"{100 * baseline['iou_50']:5.1f} % / {100 * baseline['point_dice_mean']:5.1f} % / "
                f"{_percent(baseline.get('medreasoner_pdice_mean'))}"
            )
        for label, result in evaluations.items():
            m = result[mode]
            cells = (
                f"{100 * m['iou_mean']:6.1f} % / {100 * m['iou_50']:5.1f} % / "
                f"{100 * m['point_dice_mean']:5.1f} % / {_percent(m.get('medreasoner_pdice_mean'))}"
            )
            if masks:
                cells += f" / {100 * m.get('mask_dice_mean', 0.0):5.1f} %"
            rates = f"  (complete answers {100 * m['complete_rate']:.0f} %)"
            lines.append(f"  {label:<18}{cells}{rates}")
    return lines


def format_reliance(summary: dict) -> list[str]:
    """Lines of the final model's image reliance: per task, mode and figure, the figure with
    the real images, with each ablation (and the drop), and without the image (chance or the
    mean-box baseline)."""
    reliance = summary.get("image_reliance")
    if not reliance:
        return []
    lines = [
        f"image reliance of the final model ({reliance['model']}): real images, then each "
        "ablation (real minus ablated, in points), then without the image:"
    ]
    for row in reliance_rows(reliance["records"]):
        ablations = "; ".join(
            f"{images_label(name)} {_percent(value)} ({_points(row['reliance'][name])})"
            for name, value in row["ablated"].items()
        )
        without = row["without_image"]
        reference = "" if without is None else f"; {row['reference']} {_percent(without)}"
        lines.append(
            f"  {row['task']} ({row['mode']}) {row['figure']}: real {_percent(row['real'])}; "
            f"{ablations}{reference}"
        )
    return lines


def _points(value: float | None) -> str:
    """A difference of fractions in points (``+12.3 pts``)."""
    return "n/a" if value is None else f"{100 * value:+.1f} pts"


def _percent(value: float | None) -> str:
    """A fraction as ``12.3 %`` (``  n/a`` for a figure the results do not hold)."""
    return "  n/a" if value is None else f"{100 * value:5.1f} %"


def stage_hyperparameters(plan: StagePlan) -> dict:
    """The settings of a stage worth printing in a model card (non-default, readable)."""
    objects = (plan.args, plan.training, plan.model_args)
    present = {f.name for obj in objects for f in dataclasses.fields(obj)}
    skipped = GRPO_ONLY if plan.name == "sft" else ("sft_target",)
    out = {k: typed(objects, k) for k in CARD_HYPERPARAMETERS if k in present and k not in skipped}
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


def card_inputs(plan: RunPlan, logs: dict[str, dict]) -> tuple[dict, str | None]:
    """(the hub_cards ``training`` dict, the Hub dataset id the card's evaluation results are
    attached to: ``card_dataset_id``, else the trained-on dataset when it is a Hub id; None
    for a local build, whose results the card reports without attaching them)."""
    first = plan.stages[STAGES[0]]
    dataset = first.args.dataset_name
    dataset_id = plan.run.card_dataset_id or hub_id_or_none(dataset)
    base = first.model_args.model_name_or_path
    last = logs[list(logs)[-1]] if logs else {}
    training = {
        "base_model": hub_id_or_none(base) or Path(base).name,
        "datasets": [dataset_id] if dataset_id else [],
        "stages": [
            {"name": name.upper(), "hyperparameters": stage_hyperparameters(plan.stages[name])}
            for name in logs
        ],
        "trainable_scope": last.get("trainable_scope"),
        "trainable_parameters": last.get("trainable_parameters"),
        "total_parameters": last.get("total_parameters"),
    }
    return training, dataset_id
