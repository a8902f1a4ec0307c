"""The paper's layouts (MedReason-R1, arXiv 2510.19626: ``evaluation.paper``), its figures
beside ours: ``table1`` (Model, Size, accuracy with / without think; the paper's figures from
``--paper-figures`` and, for models it does not name, Table 1), ``table3`` (zoom-in patch vs
plain, one row per training data config), ``table4`` (one row per GRPO reward set, in the
paper's order) and ``fig3`` ((a) the SFT model with vs without think, (b) the reasoning-answer
consistency of the SFT and SFT+GRPO models)."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

from common.names import CLASSIFICATION_TASK, STAGE_LABELS
from common.names import PROMPT_MODES as MODES
from common.results_schema import is_number, model_label, model_size

from .. import paper
from ..plots import MISSING, bar_figure, bar_panels
from .base import (
    MODE_LABELS,
    Layout,
    LeaderboardArguments,
    LeaderboardError,
    Loaded,
    Table,
    accuracy,
    data_line,
    markdown_table,
    stage_text,
    stages,
    training,
)
from .reader import check_comparable

PAPER_SOURCE = "MedReason-R1 (Li et al. 2025, arXiv 2510.19626)"
PAPER_METRIC = "accuracy % (micro); consistency %"
SFT_ONLY, SFT_GRPO = ("sft",), ("sft", "grpo")  # training.stages of an SFT, an SFT+GRPO model
NOT_RUN_SIZE = "?"  # a Table 1 row shown with the paper's figures only
XLABEL = "accuracy % (micro)"


def reward_set(results: dict) -> tuple[str, ...] | None:
    """The GRPO reward functions the model was trained with, sorted; None if not recorded."""
    names = training(results).get("reward_funcs")
    return tuple(sorted(map(str, names))) if isinstance(names, list) and names else None


def paper_header(title: str, meta: dict, rows: int, source: str) -> list[str]:
    """The title, the data compared and what the paper columns are."""
    return [
        f"# {title}",
        "",
        f"{data_line(meta)}; {rows} model{'s' if rows != 1 else ''}.",
        "",
        f'Accuracy in % (micro: correct answers / all questions). "paper" columns: {source}; '
        f"{MISSING} where the paper gives no figure or a mode was not evaluated.",
        "",
    ]


def load_paper_figures(path: str | Path) -> dict[str, dict[str, float | None]]:
    """The ``--paper-figures`` file: {model display name or Hub id: {"think": % or None,
    "no-think": % or None}}; anything else is refused, naming the file."""
    path = Path(path)
    shape = '{model display name or Hub id: {"think": %, "no-think": %}}'
    try:
        figures = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise LeaderboardError(
            f"--paper-figures {path} could not be read as JSON ({err}); pass a JSON file {shape}"
        ) from None
    if not isinstance(figures, dict):
        raise LeaderboardError(f"--paper-figures {path} must be a JSON object {shape}")
    for name, entry in figures.items():
        if not (
            isinstance(entry, dict)
            and set(entry) <= set(MODES)
            and all(v is None or (is_number(v) and 0 <= v <= 100) for v in entry.values())
        ):
            raise LeaderboardError(
                f"--paper-figures {path}: {name!r} maps to {entry!r}; give "
                '{"think": %, "no-think": %} with accuracies in % (0-100) or null'
            )
    return {name: {mode: entry.get(mode) for mode in MODES} for name, entry in figures.items()}


def is_medreason(results: dict) -> bool:
    """Whether the model was trained as MedReason-R1: SFT, GRPO with all three rewards, zoom."""
    return (
        stages(results) == SFT_GRPO
        and training(results).get("dataset_config") == paper.ZOOM
        and reward_set(results) == tuple(sorted(paper.TABLE4_THINK[-1][0]))
    )


def paper_row(
    results: dict, figures: dict[str, dict[str, float | None]]
) -> tuple[str | None, float | None, float | None]:
    """(the paper's row, its accuracy with think, without think) for a model: its
    ``--paper-figures`` entry (display name or Hub id), else its Table 1 row (Hub id or name),
    else, for our model trained as MedReason-R1, that row."""
    label, model = model_label(results), str(results["model"])
    for key in (label, model):
        if key in figures:
            return key, figures[key]["think"], figures[key]["no-think"]
    for row in paper.TABLE1:
        names = {row.name.lower(), *(hub_id.lower() for hub_id in row.hub_ids)}
        if label.lower() in names or model.lower() in names:
            return row.name, row.think, row.no_think
    if is_medreason(results):
        row = paper.MEDREASON_R1
        return f"{row.name} (trained as it was)", row.think, row.no_think
    return None, None, None


def table1(loaded: Loaded, title: str, options: LeaderboardArguments) -> Table:
    """The paper's Table 1: Model, Size, accuracy with / without think, the paper's beside."""
    meta = check_comparable(loaded, options.allow_different_n)
    figures = load_paper_figures(options.paper_figures) if options.paper_figures else {}
    rows = []
    for path, results in loaded:
        row_name, think, no_think = paper_row(results, figures)
        rows.append(
            {"model": model_label(results), "size": model_size(results),
             "model_parameters": results.get("model_parameters"),
             "think": accuracy(results, "think"), "paper_think": think,
             "no_think": accuracy(results, "no-think"), "paper_no_think": no_think,
             "paper_row": row_name, "source": str(path)}
        )  # fmt: skip
    matched = {r["paper_row"] for r in rows}
    for name, figure in figures.items():  # a --paper-figures entry without results: not run
        if name not in matched:
            rows.append(
                {"model": f"{name} (not run)", "size": NOT_RUN_SIZE, "model_parameters": None,
                 "think": None, "paper_think": figure["think"], "no_think": None,
                 "paper_no_think": figure["no-think"], "paper_row": name, "source": None}
            )  # fmt: skip
    columns = {"Model": "model", "Size": "size", "with think": "think",
               "with think (paper)": "paper_think", "without think": "no_think",
               "without think (paper)": "paper_no_think", "paper's row": "paper_row"}  # fmt: skip
    source = "Table 1" + (", and --paper-figures" if figures else "")
    labels = [f"{r['model']} ({r['size']})" for r in rows]
    return _paper_table(title, meta, rows, source, columns, 2, labels)


def _paper_table(title: str, meta: dict, rows: list[dict], source: str, columns: dict,
                 text_columns: int, labels: list[str], note: str = "") -> Table:  # fmt: skip
    """The Table of a paper layout: ``columns`` {heading: row key} (the figure: the columns of
    a "think" key, those headed "(paper)" hatched), the note under the table."""
    body = markdown_table(list(columns), [[r[k] for k in columns.values()] for r in rows],
                          text_columns)  # fmt: skip
    series = [(name, [r[key] for r in rows], "paper" in name)
              for name, key in columns.items() if key.endswith("think")]  # fmt: skip
    lines = [*paper_header(title, meta, len(rows), f"{PAPER_SOURCE}, {source}"), *body]
    lines += ["", note] if note else []
    draw = partial(bar_figure, title, labels, series, xlabel=XLABEL)
    return Table({**meta, "paper": PAPER_SOURCE}, rows, lines, draw)


def table3(loaded: Loaded, title: str, options: LeaderboardArguments) -> Table:
    """The paper's Table 3: one row per training data config (zoom-in patch vs plain)."""
    meta = check_comparable(loaded, options.allow_different_n, across_configs=True)
    by_config: dict[str, tuple[Path, dict]] = {}
    for path, results in loaded:
        config = str(training(results).get("dataset_config") or results["config"])
        if config not in paper.TABLE3_LABELS:
            raise LeaderboardError(
                f"{path}: table3 compares models trained on the {' and '.join(paper.TABLE3_LABELS)}"
                f" configs; {model_label(results)} was trained on {config!r}"
            )
        if config in by_config:
            raise LeaderboardError(
                f"table3 has one row per training config, and {by_config[config][0]} and {path} "
                f"were both trained on {config!r}: pass one of them"
            )
        by_config[config] = (path, results)
    rows = [
        {"training_data": label, "training_config": config,
         "evaluated_on": results["config"], "model": model_label(results),
         "stages": stage_text(results), "think": accuracy(results, "think"),
         "no_think": accuracy(results, "no-think"),
         # the paper's Table 3 models are SFT models
         "paper_no_think": paper.TABLE3_NO_THINK[config] if stages(results) == SFT_ONLY else None,
         "source": str(path)}
        for config, label in paper.TABLE3_LABELS.items() if config in by_config
        for path, results in [by_config[config]]
    ]  # fmt: skip
    columns = {"Training data": "training_data", "Model": "model", "Training": "stages",
               "Evaluated on": "evaluated_on", "with think": "think",
               "without think": "no_think", "without think (paper)": "paper_no_think"}  # fmt: skip
    note = ("The paper's figures are for SFT models answering without think; they are shown "
            "beside SFT models only.")  # fmt: skip
    labels = [f"{r['training_data']}\n{r['model']}" for r in rows]
    return _paper_table(title, meta, rows, "Table 3", columns, 4, labels, note)


def table4(loaded: Loaded, title: str, options: LeaderboardArguments) -> Table:
    """The paper's Table 4: one row per GRPO reward set, in the paper's order."""
    meta = check_comparable(loaded, options.allow_different_n)
    by_set: dict[tuple[str, ...], tuple[Path, dict]] = {}
    for path, results in loaded:
        rewards = reward_set(results)
        if rewards is None:
            raise LeaderboardError(
                f"{path}: {model_label(results)} records no GRPO reward set "
                "(training.reward_funcs); table4 compares models trained with GRPO: evaluate "
                "their checkpoint folders (outputs/<run>/grpo or final) with this evaluator"
            )
        if rewards in by_set:
            raise LeaderboardError(
                f"table4 has one row per reward set, and {by_set[rewards][0]} and {path} were "
                f"both trained with {' + '.join(rewards)}: pass one of them"
            )
        by_set[rewards] = (path, results)
    paper_sets = {tuple(sorted(n)): (label, value) for n, label, value in paper.TABLE4_THINK}
    order = [s for s in paper_sets if s in by_set] + [s for s in by_set if s not in paper_sets]
    rows = []
    for rewards in order:
        path, results = by_set[rewards]
        label, value = paper_sets.get(rewards, (" + ".join(rewards), None))
        weights, names = training(results).get("reward_weights"), training(results)["reward_funcs"]
        rows.append(
            {"rewards": label, "reward_funcs": list(names), "reward_weights": weights,
             "weights": ", ".join(f"{n} {w:g}" for n, w in zip(names, weights, strict=True))
             if isinstance(weights, list) and len(weights) == len(names) else ", ".join(names),
             "model": model_label(results), "stages": stage_text(results),
             "think": accuracy(results, "think"),
             "paper_think": value if stages(results) == SFT_GRPO else None,
             "no_think": accuracy(results, "no-think"), "source": str(path)}
        )  # fmt: skip
    columns = {"Rewards": "rewards", "Weights": "weights", "Model": "model", "Training": "stages",
               "with think": "think", "with think (paper)": "paper_think",
               "without think": "no_think"}  # fmt: skip
    note = ("The paper's figures are for SFT + GRPO models answering with think; they are shown "
            "beside SFT+GRPO models only.")  # fmt: skip
    labels = [f"{r['rewards']}\n{r['model']}" for r in rows]
    return _paper_table(title, meta, rows, "Table 4", columns, 4, labels, note)


def _consistency(path: Path, results: dict) -> float:
    value = results["modes"].get("think", {}).get("consistency")
    if not is_number(value):
        raise LeaderboardError(
            f"{path}: {model_label(results)} has no reasoning-answer consistency "
            "(modes.think.consistency): evaluate it with --judge MODEL_OR_URL (and the think mode)"
        )
    return round(100.0 * float(value), 2)


def fig3(loaded: Loaded, title: str, options: LeaderboardArguments) -> Table:
    """The paper's Fig. 3: (a) the SFT model with vs without think; (b) the consistency of the
    SFT and SFT+GRPO models. Needs one of each, told apart by their recorded training stages."""
    meta = check_comparable(loaded, options.allow_different_n)
    found: dict[tuple[str, ...], Loaded] = {SFT_ONLY: [], SFT_GRPO: []}
    for path, results in loaded:
        if stages(results) not in found:
            raise LeaderboardError(
                f"{path}: fig3 compares an SFT model with an SFT+GRPO model, and "
                f"{model_label(results)} was trained with {stage_text(results)} "
                "(training.stages): pass the evaluations of a run's sft and grpo (or final) models"
            )
        found[stages(results)].append((path, results))
    for kind, entries in found.items():
        if len(entries) != 1:
            files = f" ({', '.join(str(p) for p, _ in entries)})" if entries else ""
            raise LeaderboardError(
                f"fig3 needs exactly one {'+'.join(STAGE_LABELS[s] for s in kind)} model, got "
                f"{len(entries)}{files}: pass the evaluations of one run's sft and grpo (or final)"
                " models"
            )
    (sft_path, sft), (rl_path, rl) = found[SFT_ONLY][0], found[SFT_GRPO][0]
    missing = [m for m in MODES if m not in sft["modes"]]
    if missing:
        raise LeaderboardError(
            f"{sft_path}: fig3 (a) needs the SFT model with and without think, and it was not "
            f"evaluated in {', '.join(missing)}: evaluate it with --mode both"
        )
    consistency = {"SFT": _consistency(sft_path, sft), "SFT+GRPO": _consistency(rl_path, rl)}
    rows = [
        {"panel": "a", "model": model_label(sft), "measure": f"accuracy % ({MODE_LABELS[m]})",
         "ours": accuracy(sft, m), "paper": paper.FIG3A_SFT[m], "source": str(sft_path)}
        for m in ("think", "no-think")
    ] + [
        {"panel": "b", "model": model_label(results), "measure": f"consistency % ({name})",
         "ours": consistency[name], "paper": paper.FIG3B_CONSISTENCY[name], "source": str(path)}
        for name, (path, results) in (("SFT", (sft_path, sft)), ("SFT+GRPO", (rl_path, rl)))
    ]  # fmt: skip
    keys = ["panel", "model", "measure", "ours", "paper"]
    head = ["Panel", "Model", "Measure", "ours", "paper"]
    table = markdown_table(head, [[r[k] for k in keys] for r in rows], 3)
    note = (
        "(a) The SFT model forced to reason first (with think) vs answering directly. (b) The "
        "share of answers that the judge, reading only the <think> text, names the same class."
    )

    panels = [(f"(a) SFT: {model_label(sft)}", "accuracy %", rows[:2]),
              ("(b) reasoning-answer consistency", "consistency %", rows[2:])]  # fmt: skip
    draw = partial(bar_panels, title, [
        (name, xlabel, [r["measure"].split("(")[1].rstrip(")") for r in chosen],
         [("ours", [r["ours"] for r in chosen], False),
          ("paper", [r["paper"] for r in chosen], True)])
        for name, xlabel, chosen in panels
    ])  # fmt: skip

    lines = [*paper_header(title, meta, 2, f"{PAPER_SOURCE}, Fig. 3"), *table, "", note]
    return Table({**meta, "paper": PAPER_SOURCE}, rows, lines, draw)


def _layout(name: str, title: str, render) -> Layout:
    return Layout(name, title, PAPER_METRIC, render, (CLASSIFICATION_TASK,))


TABLE1 = Layout(
    "table1", "Table 1: accuracy on CT-RATE-VQA, ours beside the paper's", PAPER_METRIC, table1,
    (CLASSIFICATION_TASK,), options=("paper_figures",),
)  # fmt: skip
TABLE3 = _layout("table3", "Table 3: SFT with vs without the zoom-in patch", table3)
TABLE4 = _layout("table4", "Table 4: GRPO reward ablations (SFT + RL)", table4)
FIG3 = _layout(
    "fig3", "Fig. 3: forcing reasoning after SFT, and reasoning-answer consistency", fig3
)
