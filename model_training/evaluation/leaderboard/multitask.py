"""``multitask``: one row per evaluated model (its results of both tasks grouped by ``model``),
in the think mode: what it was trained on and both tasks' metrics, "—" where a model was not
evaluated on a task; then the mean-box baseline the grounding results carry, as its own row."""

from __future__ import annotations

from functools import partial

from common.names import CLASSIFICATION_TASK, GROUNDING_TASK, MULTITASK
from common.results_schema import model_label, model_size, revision_text, task_of

from ..plots import MISSING, bar_figure, percent_text
from .base import (
    MODE_LABELS,
    Layout,
    LeaderboardArguments,
    LeaderboardError,
    Loaded,
    Table,
    markdown_table,
    pct,
    training,
)
from .grounding import GROUNDING_COLUMNS
from .reader import (
    baseline_label,
    baseline_record,
    by_task,
    check_comparable,
    mean_box_baselines,
)

MULTITASK_MODE = "think"  # ours: the multitask table compares the think mode (the demos' mode)
NOT_EVALUATED = "—"  # a task the model was not evaluated on
TASKS = (CLASSIFICATION_TASK, GROUNDING_TASK)
TRAINED_ON = {CLASSIFICATION_TASK: "classification", GROUNDING_TASK: "grounding", MULTITASK: "both"}
CLASSIFICATION_COLUMNS = {"accuracy_micro": "accuracy", "accuracy_macro": "macro accuracy",
                          "validity_rate": "validity", "fallback_rate": "fallback"}  # fmt: skip
COLUMNS = {CLASSIFICATION_TASK: CLASSIFICATION_COLUMNS, GROUNDING_TASK: GROUNDING_COLUMNS}


def trained_on(entries: Loaded) -> tuple[str | None, str]:
    """(what a model was trained on: classification, grounding, both; None: no training
    recorded) and where that was read: ``training.task``, else the tasks it was evaluated on
    (a run evaluates the task(s) it trains)."""
    record = next((training(r) for _, r in entries if training(r)), {})
    if not record:
        return None, "no training recorded"
    task = record.get("task")
    if task is not None:
        if task not in TRAINED_ON:
            raise LeaderboardError(
                f"{entries[0][0]}: training.task {task!r} is none of {', '.join(TRAINED_ON)}; "
                "re-evaluate, or correct the file"
            )
        return TRAINED_ON[task], "training record"
    tasks = {task_of(r) for _, r in entries}
    return ("both" if len(tasks) > 1 else TRAINED_ON[tasks.pop()]), "evaluated tasks"


def task_meta(loaded: Loaded, allow_different_n: bool) -> dict[str, dict]:
    """{task: its common dataset, config and split}; each task's results comparable among
    themselves, both tasks present, on one dataset and split, evaluated in the think mode."""
    groups = by_task(loaded)
    if len(groups) < 2:
        (task,) = groups
        raise LeaderboardError(
            f"--layout multitask compares models on both tasks, and these results are all "
            f"{task}: add the other task's results (a multitask run's eval/<model>-grounding), "
            "or use --layout leaderboard"
        )
    for path, results in loaded:
        if MULTITASK_MODE not in results["modes"]:
            raise LeaderboardError(
                f"{path}: the multitask table compares the {MULTITASK_MODE} mode, and "
                f"{model_label(results)} was evaluated in {', '.join(results['modes'])} only: "
                f"evaluate it in the {MULTITASK_MODE} mode"
            )
    meta = {task: check_comparable(entries, allow_different_n) for task, entries in groups.items()}
    if len({(m["dataset"], m["split"]) for m in meta.values()}) > 1:
        detail = "; ".join(f"{t}: dataset {m['dataset']!r} split {m['split']!r}"
                           for t, m in meta.items())  # fmt: skip
        raise LeaderboardError(
            f"the two tasks' results are on different datasets/splits ({detail}); make one "
            "table per dataset and split"
        )
    return {task: meta[task] for task in TASKS}


def multitask_rows(loaded: Loaded, baselines: list[dict]) -> list[dict]:
    """One row per evaluated model (``model``), in input order: what it was trained on and both
    tasks' metrics in the think mode, in % (None: not evaluated or measured); the baselines."""
    by_model: dict[str, Loaded] = {}
    for path, results in loaded:
        by_model.setdefault(model_label(results), []).append((path, results))
    rows = []
    for entries in by_model.values():
        tasks = {task_of(results): (path, results) for path, results in entries}
        on, read_from = trained_on(entries)
        row = {"model": model_label(entries[0][1]), "size": model_size(entries[0][1]),
               "trained_on": on, "trained_on_from": read_from,
               "tasks_evaluated": [t for t in TASKS if t in tasks]}  # fmt: skip
        for task, columns in COLUMNS.items():
            metrics = tasks[task][1]["modes"][MULTITASK_MODE] if task in tasks else {}
            row |= {key: pct(metrics.get(key)) for key in columns}
            row[f"n_{task}"] = metrics.get("n")
        row["sources"] = {task: str(path) for task, (path, _) in tasks.items()}
        rows.append(row)
    for b in baselines:
        rows.append(
            {"model": baseline_label(b, baselines), "size": "", "trained_on": None,
             "trained_on_from": "the grounding training rows' mean box and points",
             "tasks_evaluated": [GROUNDING_TASK],
             **{key: None for key in CLASSIFICATION_COLUMNS}, f"n_{CLASSIFICATION_TASK}": None,
             **{key: pct(b.get(key)) for key in GROUNDING_COLUMNS},
             f"n_{GROUNDING_TASK}": b["n"], "sources": {}}
        )  # fmt: skip
    return rows


def markdown(rows: list[dict], meta: dict[str, dict], title: str) -> list[str]:
    """Mask and oracle Dice columns only where some row has them (a SAM was given), MedReasoner's
    pDice only where some row has it (results written before it lack it)."""
    columns = [(CLASSIFICATION_TASK, k, h) for k, h in CLASSIFICATION_COLUMNS.items()] + [
        (GROUNDING_TASK, key, heading) for key, heading in GROUNDING_COLUMNS.items()
        if key in ("iou_mean", "iou_50", "point_dice_mean") or any(r[key] is not None for r in rows)
    ]  # fmt: skip
    head = ["model", "size", "trained on", *(f"{h} %" for _, _, h in columns)]
    shown = [[r["model"], r["size"], r["trained_on"] or NOT_EVALUATED] + [
        percent_text(r[k]) if t in r["tasks_evaluated"] else NOT_EVALUATED for t, k, _ in columns
    ] for r in rows]  # fmt: skip
    sam = any(key == "mask_dice_mean" for _, key, _ in columns)
    pdice = any(key == "medreasoner_pdice_mean" for _, key, _ in columns)
    described = [
        f"- {task}: dataset `{info['dataset']}`, config `{info['config']}`, split "
        f"`{info['split']}`{revision_text(info['dataset_revision'])} ("
        + ", ".join(map(str, sorted({r[f"n_{task}"] for r in rows if r[f"n_{task}"] is not None})))
        + " rows)"
        for task, info in meta.items()
    ]
    notes = [
        f"# {title}",
        "",
        *described,
        "",
        f"In %, {MODE_LABELS[MULTITASK_MODE]}: classification accuracy (micro; macro: the mean of "
        "the per-class accuracies), validity (replies naming a valid class in the answer tags) "
        "and fallback (answers read from untagged text); box IoU (mean), IoU >= 0.5, "
        "point-Dice (ours, a true Dice)"
        + (", MedReasoner pDice (2 inter / union, comparable with the paper's)" if pdice else "")
        + (" and mask / oracle Dice (SAM)" if sam else "")
        + ". "
        f"{NOT_EVALUATED}: the model was not evaluated on that task; {MISSING}: not measured.",
        "",
        '"trained on": the task of its training as its results record it, else the task(s) it '
        f"was evaluated on (a run evaluates the task(s) it trains); {NOT_EVALUATED} for a model "
        "with no training recorded. The mean-box baseline (from the grounding results) answers "
        "every grounding row with the mean box and points of the grounding training rows.",
        "",
    ]
    return [*notes, *markdown_table(head, shown, 3)]


def render(loaded: Loaded, title: str, options: LeaderboardArguments) -> Table:
    meta = task_meta(loaded, options.allow_different_n)
    baselines = mean_box_baselines(loaded, options.allow_different_n)
    rows = multitask_rows(loaded, baselines)
    labels = [f"{r['model']} ({r['trained_on'] or NOT_EVALUATED})" if r["size"] else r["model"]
              for r in rows]  # fmt: skip
    series = [
        (f"accuracy ({MODE_LABELS[MULTITASK_MODE]})", [r["accuracy_micro"] for r in rows], False),
        (f"box IoU ({MODE_LABELS[MULTITASK_MODE]})", [r["iou_mean"] for r in rows], False),
    ]
    draw = partial(bar_figure, title, labels, series, xlabel="%")  # 2 series: 0.5 in a model
    head = {"mode": MULTITASK_MODE, "tasks": meta, "grounding_baseline": baseline_record(baselines)}
    return Table(head, rows, markdown(rows, meta, title), draw)


METRIC = ("%: classification accuracy (micro, macro), validity, fallback; grounding box IoU "
          "(mean), IoU>=0.5, point-Dice (ours), MedReasoner pDice, mask Dice, oracle Dice; null: "
          "not evaluated")  # fmt: skip
MULTITASK_LAYOUT = Layout(
    "multitask", "Multitask vs single-task models: classification and grounding", METRIC, render,
    TASKS,
)  # fmt: skip
