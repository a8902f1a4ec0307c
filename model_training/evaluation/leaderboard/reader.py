"""The one reader of the results files: each found, read and checked once
(``common.results_schema``); and the checks that results are comparable in one table."""

from __future__ import annotations

import json
from pathlib import Path

from common.names import GROUNDING_TASK
from common.results_schema import (
    MEAN_BOX_BASELINE,
    find_results,
    model_label,
    read_results,
    task_of,
)

from .base import BASELINE_LABEL, LeaderboardError, Loaded


def read_all(paths: list[str | Path]) -> Loaded:
    """Every results file that ``paths`` name, read and checked once."""
    files = find_results(paths)
    if not files:
        raise LeaderboardError("no results given: pass results.json files or their folders")
    return [(path, read_results(path)) for path in files]


def by_task(loaded: Loaded) -> dict[str, Loaded]:
    """The results grouped by their task, in the order first seen."""
    groups: dict[str, Loaded] = {}
    for path, results in loaded:
        groups.setdefault(task_of(results), []).append((path, results))
    return groups


def check_same_n(loaded: Loaded) -> None:
    """Refuse results of one mode on different numbers of questions (``n``)."""
    for mode in sorted({m for _, results in loaded for m in results["modes"]}):
        counts: dict[object, list[str]] = {}
        for path, results in loaded:
            if mode in results["modes"]:
                counts.setdefault(results["modes"][mode].get("n"), []).append(str(path))
        if len(counts) > 1:
            detail = "; ".join(f"n = {n}: {', '.join(files)}" for n, files in counts.items())
            raise LeaderboardError(
                f"mode {mode!r} was evaluated on different numbers of questions ({detail}); "
                "evaluate every model on the same rows (same --limit), or pass "
                "--allow-different-n to rank them anyway"
            )


def check_comparable(
    loaded: Loaded, allow_different_n: bool = False, across_configs: bool = False
) -> dict:
    """The common dataset, config, split and revisions; refuse a mix, the same model twice, or
    (unless ``allow_different_n``) one mode on different numbers of questions. With
    ``across_configs`` (Table 3) the configs may differ: ``config`` is then the list of them."""
    groups: dict[tuple, list[str]] = {}
    for path, results in loaded:
        config = None if across_configs else results["config"]
        key = (str(results.get("dataset")), config, results["split"])
        groups.setdefault(key, []).append(str(path))
    if len(groups) > 1:
        what = "datasets/splits" if across_configs else "datasets/configs/splits"
        detail = "; ".join(
            f"dataset {d!r}{'' if across_configs else f' config {c!r}'} split {s!r}: "
            f"{', '.join(files)}"
            for (d, c, s), files in groups.items()
        )
        raise LeaderboardError(
            f"the results are on different {what} and are not comparable ({detail}); make one "
            f"{'table' if across_configs else 'leaderboard'} per dataset"
            f"{'' if across_configs else ', config'} and split"
        )
    seen: dict[str, Path] = {}
    for path, results in loaded:
        label = model_label(results)
        if label in seen:
            raise LeaderboardError(
                f"model {label!r} appears twice ({seen[label]} and {path}); pass one of them, "
                'or tell them apart with a "display_name" key in results.json'
            )
        seen[label] = path
    dataset, config, split = next(iter(groups))
    if across_configs:
        config = list(dict.fromkeys(results["config"] for _, results in loaded))
    if not allow_different_n:
        check_same_n(loaded)
    revisions = sorted({str(r["dataset_revision"]) for _, r in loaded if r.get("dataset_revision")})
    return {"dataset": dataset, "config": config, "split": split, "dataset_revision": revisions}


def mean_box_baselines(loaded: Loaded, allow_different_n: bool) -> list[dict]:
    """The mean-box baselines the grounding results carry: none, or one; different ones are
    refused, naming the files, unless ``allow_different_n`` (then each is shown)."""
    found: dict[str, tuple[dict, list[str]]] = {}
    for path, results in loaded:
        if task_of(results) == GROUNDING_TASK and MEAN_BOX_BASELINE in results:
            baseline = results[MEAN_BOX_BASELINE]
            key = json.dumps(baseline, sort_keys=True)
            found.setdefault(key, (baseline, []))[1].append(str(path))
    if len(found) > 1 and not allow_different_n:
        detail = "; ".join(
            f"n = {b['n']}, IoU {b['iou_mean']:.4f}"
            + (f" over {b['train_rows']} training rows" if "train_rows" in b else "")
            + f": {', '.join(files)}"
            for b, files in found.values()
        )
        raise LeaderboardError(
            f"the grounding results carry different mean-box baselines ({detail}); evaluate "
            "models trained on the same rows on the same rows, or pass --allow-different-n to "
            "show each baseline"
        )
    return [baseline for baseline, _ in found.values()]


def baseline_label(baseline: dict, baselines: list[dict]) -> str:
    """A baseline's row label: with its ``n`` when there are several."""
    return BASELINE_LABEL + ("" if len(baselines) == 1 else f" (n = {baseline['n']})")


def baseline_record(baselines: list[dict]) -> dict | list[dict] | None:
    """The JSON's ``grounding_baseline``: the baseline, the list of them, or None."""
    return baselines[0] if len(baselines) == 1 else baselines or None
