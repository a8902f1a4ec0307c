r"""Gather evaluation results into the paper's tables and, optionally, a Hub results dataset.

    python -m model_training.evaluation.leaderboard RESULTS... --output DIR [--per-class] \
        [--macro] [--title T] [--push-results ORG/NAME] [--allow-different-n]
    python -m model_training.evaluation.leaderboard RESULTS... --output DIR \
        --layout table1|table3|table4|fig3 [--paper-figures FILE]
    python -m model_training.evaluation.leaderboard RESULTS... --output DIR [--layout grounding]
    python -m model_training.evaluation.leaderboard RESULTS... --output DIR --layout multitask
    python -m model_training.evaluation.leaderboard REAL ABLATED... --output DIR --layout reliance

Options: the fields of ``LeaderboardArguments`` (``--per-class`` = ``--per_class``). RESULTS,
positional (before the options) or ``--results A B``, are ``results.json`` files of
``python -m model_training.evaluation.evaluate``, folders holding one, or folders whose
sub-folders hold one each (``outputs/demo-cpu/eval``). A model is named by its
``display_name`` and sized by its ``model_parameters`` (``8.29B``).

The layout writes ``DIR/<layout>.md`` (printed, then the files written), ``.png`` and ``.json``
(its rows, the data compared, ``files``). Results on different datasets, configs or splits are
refused, naming the files, and so are results of one mode on different numbers of questions
(``n``) unless ``--allow-different-n`` (the table then warns). A layout refuses (one line, exit
status 2) results and options that do not fit it; tasks are never mixed in a one-task layout.

- ``leaderboard`` (default for classification results): per model, size and micro accuracy
  with and without thinking, in % (``--macro``, ``--per-class``: more columns).
- the paper's (MedReason-R1, arXiv 2510.19626), its figures beside ours: ``table1`` (accuracy
  with / without think; the paper's figures from ``--paper-figures FILE``, JSON {model display
  name or Hub id: {"think": % or null, "no-think": % or null}}, else its Table 1 by Hub id or
  name, or MedReason-R1's for our SFT+GRPO model trained on ``zoom`` with all three rewards);
  ``table3`` (one row per training config, zoom vs plain); ``table4`` (one row per recorded
  GRPO reward set); ``fig3`` ((a) the SFT model with vs without think, (b) the SFT and SFT+GRPO
  models' reasoning-answer consistency: evaluate with ``--judge``).
- ``grounding`` (default for grounding results): per model and mode, box IoU, IoU >= 0.5,
  point-Dice, mask and oracle Dice (SAM prompted with the predicted / true box and points).
- ``multitask``: one row per model (its results of both tasks, grouped by ``model``): what it
  was trained on, accuracy with think (micro, macro), validity, fallback, grounding metrics.

- ``reliance``: does each model look at the image? Per model, task, mode and figure: with the
  real images, with each image ablation (``evaluate --image-ablation``), the drop, and the
  figure without the image (chance; the mean-box baseline); ``--per-class`` adds each class.
  Each ablated result needs the same model's real one on the same rows.

``grounding`` and ``multitask`` add the mean-box baseline that the grounding results carry as
a row; different baselines are refused unless ``--allow-different-n`` (then each has its row).
``--push-results ORG/NAME`` merges one row per (model, mode) into that Parquet dataset repo
(``hub_cards.results_repo``): rows of the same (model, mode, dataset, config, split) replaced.
Its repo id is checked and the Hub asked once (``hub_cards.publish.hub_problem``) before any file is
written; ``--private`` without it is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

from common.cli_options import parse_options
from common.errors import user_errors
from hub_cards.publish import check_repo_id, hub_problem
from hub_cards.results_repo import push_results, results_rows

from ..preflight import check_output_folder
from .base import DEFAULT_LAYOUT, Layout, LeaderboardArguments, LeaderboardError, Loaded, Table
from .layouts import LAYOUTS
from .reader import by_task, read_all

PROG = "python -m model_training.evaluation.leaderboard"
EXTENSIONS = ("md", "json", "png")  # the files each layout writes: <layout>.<extension>
# what may be in its --output: its own files, and folders, which it never writes into (e.g.
# paper_tables' evaluations beside a table)
LEADERBOARD_FILES = (*(f"{name}.{ext}" for name in LAYOUTS for ext in EXTENSIONS), "*/")


def check_options(options: LeaderboardArguments, layout: Layout) -> None:
    """Refuse options that apply to other layouts only."""
    for name in dict.fromkeys(o for other in LAYOUTS.values() for o in other.options):
        if getattr(options, name) and name not in layout.options:
            owners = " or ".join(other.name for other in LAYOUTS.values() if name in other.options)
            raise LeaderboardError(
                f"--{name.replace('_', '-')} applies to --layout {owners} only (not "
                f"{layout.name}): drop it, or use --layout {owners}"
            )


def choose_layout(name: str, loaded: Loaded) -> Layout:
    """The layout asked for (the default: the one for the results' task); refuses results of a
    task it does not take, and mixed tasks in a one-task layout."""
    tasks = by_task(loaded)
    layout = LAYOUTS[name]
    defaults = {other.default_for: other for other in LAYOUTS.values() if other.default_for}
    if name == DEFAULT_LAYOUT and len(tasks) == 1:
        layout = defaults.get(next(iter(tasks)), layout)
    if len(tasks) > 1 and len(layout.tasks) == 1:
        detail = "; ".join(f"{t}: {', '.join(str(p) for p, _ in e)}" for t, e in tasks.items())
        raise LeaderboardError(
            f"the results are of different tasks ({detail}); make one table per task, or use "
            "--layout multitask"
        )
    for task in tasks:
        if task not in layout.tasks:
            raise LeaderboardError(
                f"--layout {layout.name} takes {' and '.join(layout.tasks)} results, and these "
                f"are {task} results: use --layout {defaults[task].name} (or no --layout)"
            )
    return layout


def write_table(output: Path, layout: Layout, title: str, table: Table) -> dict:
    """The one writer: ``<layout>.{md,png,json}`` in ``output``; the JSON's content."""
    output.mkdir(parents=True, exist_ok=True)
    files = {ext: output / f"{layout.name}.{ext}" for ext in EXTENSIONS}
    files["md"].write_text("\n".join([*table.lines, ""]))
    table.draw(files["png"])
    board = {"layout": layout.name, "title": title, "metric": layout.metric, **table.head,
             "rows": table.rows, "files": {k: str(path) for k, path in files.items()}}  # fmt: skip
    files["json"].write_text(json.dumps(board, indent=1, ensure_ascii=False))
    return board


def check_push(options: LeaderboardArguments) -> None:
    """Refuse ``--private`` without ``--push-results`` (it would be ignored); for a push, a
    misspelt repo id or a Hub that does not answer (one short request), before any file is
    written."""
    if options.push_results is None:
        if options.private:
            raise LeaderboardError(
                "--private makes the --push-results repo private, and no --push-results is "
                "given: drop --private, or add --push-results ORG/NAME"
            )
        return
    check_repo_id(options.push_results)
    problem = hub_problem(options.push_results, "--push-results", repo_type="dataset")
    if problem:
        raise LeaderboardError(problem)


def render(options: LeaderboardArguments) -> tuple[dict, Loaded]:
    """Write the chosen layout's files; (the JSON's content, the results read)."""
    if options.layout not in LAYOUTS:
        raise LeaderboardError(f"--layout {options.layout!r}: use one of {', '.join(LAYOUTS)}")
    check_output_folder(options.output, "--output", LeaderboardError, LEADERBOARD_FILES)
    check_options(options, LAYOUTS[options.layout])
    loaded = read_all(options.results)
    layout = choose_layout(options.layout, loaded)
    check_options(options, layout)
    title = options.title or layout.title
    table = layout.render(loaded, title, options)
    return write_table(Path(options.output), layout, title, table), loaded


def build_leaderboard(options: LeaderboardArguments) -> dict:
    """Write ``<layout>.{md,png,json}`` into ``options.output``; the JSON's content (its
    ``layout``: the layout written, ``files``: the files)."""
    return render(options)[0]


@user_errors
def main(argv: list[str] | None = None) -> int:
    options, positionals = parse_options(
        LeaderboardArguments, argv, PROG, __doc__, positionals=True
    )
    options.results = [*positionals, *options.results]
    check_push(options)
    board, loaded = render(options)
    print(Path(board["files"]["md"]).read_text())
    print("wrote " + ", ".join(board["files"].values()))
    if options.push_results:
        rows = [row for _, results in loaded for row in results_rows(results)]
        report = push_results(rows, options.push_results, private=options.private)
        state = f"commit {report.commit}" if report.commit else "unchanged, no commit"
        print(f"results of {len(loaded)} models pushed to {report.url} ({state})")
    return 0
