"""``reliance``: does each model look at the image? Per model, task, mode and figure: the
figure with the real images, with each image ablation (``evaluate --image-ablation
blank|shuffle``), the drop (real minus ablated, in points), and the figure without the image
(chance for classification, the mean-box baseline for grounding); ``--per-class`` adds each
class's accuracy. Computed by ``common.image_reliance``.

It takes classification and grounding results together: each evaluation with ablated images
beside the same model's evaluation of the same rows with the real images."""

from __future__ import annotations

from functools import partial

from common.image_reliance import (
    RELIANCE_NOTE,
    RelianceError,
    ablation_names,
    comparison_key,
    image_reliance,
    reliance_rows,
    reliance_table,
)
from common.names import CLASSIFICATION_TASK, GROUNDING_TASK
from common.results_schema import NO_ABLATION, ablation_mode

from ..plots import MISSING, bar_figure
from .base import Layout, LeaderboardArguments, LeaderboardError, Loaded, Table, markdown_table
from .reader import by_task, check_comparable

TEXT_COLUMNS = 4  # model, task, mode, figure


def records(loaded: Loaded) -> tuple[list[dict], dict[tuple, str]]:
    """One ``image_reliance`` record per ablated evaluation, against the real one of the same
    model and rows, and the real results' files by (model, task); an ablated evaluation
    without its real one, a real one without any ablated one, or no ablated evaluation at all,
    refused naming the files."""
    real = {comparison_key(r): (p, r) for p, r in loaded if ablation_mode(r) == NO_ABLATION}
    ablated = [(p, r) for p, r in loaded if ablation_mode(r) != NO_ABLATION]
    if not ablated:
        raise LeaderboardError(
            "--layout reliance compares evaluations with the real images and with ablated ones, "
            "and none of these results is ablated: add the same model's results of `evaluate "
            "--image-ablation blank` (or shuffle)"
        )
    found, used = [], set()
    for path, results in ablated:
        key = comparison_key(results)
        if key not in real:
            raise LeaderboardError(
                f"{path}: no results of the same model on the same rows with the real images "
                f"(model {key[0]!r}, config {results['config']!r}, split {results['split']!r}): "
                "pass its evaluation without --image-ablation too"
            )
        used.add(key)
        try:
            found.append(image_reliance(real[key][1], results, str(path)))
        except RelianceError as err:
            raise LeaderboardError(str(err)) from None
    unpaired = [str(p) for key, (p, _) in real.items() if key not in used]
    if unpaired:
        raise LeaderboardError(
            f"{', '.join(unpaired)}: no evaluation of the same model with ablated images; pass "
            "one (evaluate --image-ablation blank or shuffle), or leave these results out"
        )
    return found, {key[:2]: str(path) for key, (path, _) in real.items()}


def render(loaded: Loaded, title: str, options: LeaderboardArguments) -> Table:
    metas = {task: check_comparable(group, options.allow_different_n)
             for task, group in by_task(loaded).items()}  # fmt: skip
    found, sources = records(loaded)
    rows = reliance_rows(found, per_class=options.per_class)
    head, body = reliance_table(rows)
    for row in rows:
        row["source"] = sources[row["model"], row["task"]]
    notes = [
        f"# {title}",
        "",
        *(f"{task}: dataset `{m['dataset']}`, config `{m['config']}`, split `{m['split']}`."
          for task, m in metas.items()),
        "",
        f"In %; the drops in points. {RELIANCE_NOTE} {MISSING}: not measured.",
        "",
    ]  # fmt: skip
    labels = [f"{r[0]}, {r[1]} ({r[2]}): {r[3]}" for r in body]
    real_and_ablated = 1 + len(ablation_names(rows))  # the first value columns
    series = [(head[TEXT_COLUMNS + i], [r[TEXT_COLUMNS + i] for r in body], False)
              for i in range(real_and_ablated)]  # fmt: skip
    series.append(("without the image", [r[-2] for r in body], True))
    draw = partial(bar_figure, title, labels, series, xlabel="%", bar=0.35)
    return Table({"tasks": metas}, rows, [*notes, *markdown_table(head, body, TEXT_COLUMNS)], draw)


RELIANCE = Layout(
    "reliance", "Does the model look at the image? (CT-RATE-VQA image reliance)",
    "image reliance: figures with real vs ablated images (in %), drop in points, chance or the "
    "mean-box baseline", render,
    (CLASSIFICATION_TASK, GROUNDING_TASK), options=("per_class",),
)  # fmt: skip
