"""What a run reports: the summary of its evaluations and GRPO rewards, and the card's inputs.

Read from the files the stages wrote (``training_summary.json`` per stage, ``results.json`` per
evaluation); printed by the driver and kept as ``run_summary.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from hub_cards.model_card import HUB_ID_RE
from hub_cards.names import TRAINING_SUMMARY_NAME as STAGE_DONE_FILE

from .curves import reward_trend
from .run_recipe import STAGES, RunPlan, stage_hyperparameters

EVAL_LABELS = {"base": "before SFT", "sft": "after SFT", "grpo": "after GRPO"}
SUMMARY_METRICS = ("n", "accuracy_micro", "accuracy_macro", "format_rate", "validity_rate")
JUDGE_METRICS = ("consistency", "consistency_judged")  # think mode, with eval_judge


def hub_id_or_none(name: str) -> str | None:
    """``name`` if it reads as a Hub repo id rather than a local folder."""
    return name if HUB_ID_RE.match(name) and not Path(name).exists() else None


def training_logs(plan: RunPlan) -> dict[str, dict]:
    """{stage: its training_summary.json} for the stages that finished."""
    logs = {}
    for name in STAGES:
        path = Path(plan.stages[name].training.output_dir) / STAGE_DONE_FILE
        if path.is_file():
            logs[name] = json.loads(path.read_text())
    return logs


def run_summary(plan: RunPlan, reports: dict[str, dict], logs: dict[str, dict]) -> dict:
    evaluations = {
        EVAL_LABELS[label]: {
            "model": report["model"],
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
    classes = max(
        (len(m["per_class"]) for r in reports.values() for m in r["modes"].values()), default=0
    )
    return {
        "recipe": str(plan.recipe_path),
        "output_dir": plan.run.output_dir,
        "chance_accuracy": 1 / classes if classes else None,
        "evaluations": evaluations,
        "grpo_reward": reward_trend(logs.get("grpo", {}).get("log_history", [])),
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
        judged = {k: v["think"]["consistency"] for k, v in evaluations.items()
                  if "consistency" in v.get("think", {})}  # fmt: skip
        if judged:
            lines.append(
                "reasoning-answer consistency (think): "
                + ", ".join(f"{k} {100 * v:.1f} %" for k, v in judged.items())
            )
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
