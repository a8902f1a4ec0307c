"""The ``results.json`` schema, read and checked in one place.

The evaluator (``python -m model_training.evaluation.evaluate``) writes one ``results.json`` per
evaluation; the leaderboard, the run summary and the model card read it through here:

- ``model``, ``config``, ``split`` and ``modes`` ({"think" | "no-think": metrics}) always;
  ``dataset``, ``dataset_revision``, ``task`` (``classification``, the default, or
  ``grounding``), ``display_name`` (string or null), ``model_parameters`` (a count or null),
  ``training`` (an object or null) where recorded.
- ``modes``: at least one, each a prompt mode (``think``, ``no-think``).
- classification metrics: numeric ``accuracy_micro`` (and ``accuracy_macro``, ``n`` where
  given), ``per_class`` {class: {"accuracy", "support"}}; fractions in [0, 1].
- grounding metrics: numeric ``n``, ``iou_mean``, ``iou_50``, ``point_dice_mean`` (our
  point-Dice, a true Dice); ``medreasoner_pdice_mean`` (MedReasoner's pDice, 2 inter / union,
  max 2) numeric where given (files written before it lack it); ``mask_dice_mean`` and
  ``oracle_dice_mean`` numeric where a SAM was run; and, beside the modes, ``mean_box_baseline``
  (the mean box and points of the training rows answered for every evaluated row) with numeric
  ``n``, ``iou_mean``, ``iou_50``, ``point_dice_mean`` (and ``medreasoner_pdice_mean`` where
  given) where the evaluator measured it.
- ``image_ablation`` (``IMAGE_ABLATION``): ``{"mode": <one of IMAGE_ABLATIONS>, "seed": <int or
  null>}``, the images the evaluation prompted with (``--image-ablation``); files written before
  it lack it and read as ``none``, the real images (``ablation_mode``).

Values are checked where present, wherever they appear (a mode's metrics, its ``per_class``
entries, the mean-box baseline): counts (``COUNTS``: ``n``, ``support``, ...) are integers >= 0,
rates, accuracies and means (``RANGES``) lie in [0, 1] (MedReasoner's pDice in [0, 2]);
``model_parameters`` is a count or null.

A file that does not fit is refused (``ResultsError``) in one line naming the file and the field.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from common.errors import UserError
from common.names import CLASSIFICATION_TASK, GROUNDING_TASK, PROMPT_MODES, TASKS

RESULTS_FILE = "results.json"
MEAN_BOX_BASELINE = "mean_box_baseline"  # grounding: the trivial baseline, beside the modes
REQUIRED = ("model", "config", "split", "modes")
GROUNDING_REQUIRED = ("n", "iou_mean", "iou_50", "point_dice_mean")  # per mode, and the baseline
GROUNDING_SAM = ("mask_dice_mean", "oracle_dice_mean")  # per mode, where a SAM was run
GROUNDING_OPTIONAL = ("medreasoner_pdice_mean", *GROUNDING_SAM)  # numeric where present
# the numbers the evaluator writes, and their ranges: counts, then fractions / means
COUNTS = ("n", "support", "consistency_judged", "train_rows")
FRACTIONS = (
    "accuracy_micro", "accuracy_macro", "accuracy_micro_tags_only", "accuracy", "format_rate",
    "validity_rate", "fallback_rate", "consistency", "iou_mean", "iou_50", "point_dice_mean",
    "mask_dice_mean", "oracle_dice_mean", "parse_rate", "box_rate", "points_rate",
    "complete_rate",
)  # fmt: skip
PDICE_MAX = 2.0  # MedReasoner's pDice, 2 inter / (union + 1e-5) of two circles: below 2
RANGES = {key: (0.0, 1.0) for key in FRACTIONS} | {"medreasoner_pdice_mean": (0.0, PDICE_MAX)}
SIZE_UNITS = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))  # 8292166656 -> 8.29B
UNKNOWN_SIZE = "?"
_SIZE_IN_NAME = re.compile(r"(?:^|[^a-z0-9.])(\d+(?:\.\d+)?)b(?![a-z0-9])", re.IGNORECASE)
_FIX = "re-evaluate, or correct the file"
# the evaluator's image ablations (model_training/evaluation/image_ablation.py runs them), and
# the label that tells an ablated evaluation's model apart (model_label)
IMAGE_ABLATION = "image_ablation"
NO_ABLATION, BLANK_ABLATION, SHUFFLE_ABLATION = "none", "blank", "shuffle"
IMAGE_ABLATIONS = {NO_ABLATION: "", BLANK_ABLATION: " [blank images]",
                   SHUFFLE_ABLATION: " [shuffled images]"}  # fmt: skip


class ResultsError(UserError):
    """A results.json that does not fit the schema; the message names the file and the field."""


def is_number(value: object) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def task_of(results: dict) -> str:
    """The task a results.json was evaluated on (old files: classification)."""
    return str(results.get("task", CLASSIFICATION_TASK))


def find_results(paths: list[str | Path]) -> list[Path]:
    """``results.json`` files from files or folders (a folder: its own, or its sub-folders')."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_file():
            found.append(path)
        elif (path / RESULTS_FILE).is_file():
            found.append(path / RESULTS_FILE)
        elif path.is_dir() and sorted(path.glob(f"*/{RESULTS_FILE}")):
            found.extend(sorted(path.glob(f"*/{RESULTS_FILE}")))
        else:
            raise ResultsError(
                f"{path} is neither a {RESULTS_FILE} file nor a folder holding one: pass the "
                "--output-dir of `python -m model_training.evaluation.evaluate` (or its "
                "results.json)"
            )
    return found


def read_results(path: str | Path) -> dict:
    """One ``results.json``, read and checked (``check_results``)."""
    path = Path(path)
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ResultsError(
            f"{path} could not be read as JSON ({err}); re-run the evaluation"
        ) from None
    return check_results(results, str(path))


def check_results(results: object, source: str) -> dict:
    """``results`` when it fits the schema; else a ``ResultsError`` naming ``source``."""
    missing = [k for k in REQUIRED if k not in results] if isinstance(results, dict) else REQUIRED
    if missing or not isinstance(results["modes"], dict):
        raise ResultsError(
            f"{source} is not a results.json of `python -m model_training.evaluation.evaluate` "
            f"(missing {list(missing)}); re-run the evaluation"
        )
    if task_of(results) not in TASKS:
        raise ResultsError(
            f"{source}: unknown task {results['task']!r} (expected {' or '.join(TASKS)}); {_FIX}"
        )
    unknown = [mode for mode in results["modes"] if mode not in PROMPT_MODES]
    if unknown or not results["modes"]:
        raise ResultsError(
            f"{source}: modes must hold the prompt modes {' and/or '.join(PROMPT_MODES)}, not "
            f"{unknown or 'none'}; {_FIX}"
        )
    grounding = task_of(results) == GROUNDING_TASK
    check = _check_grounding if grounding else _check_classification
    for mode, metrics in results["modes"].items():
        where = f"{source}: mode {mode!r}"
        check(where, metrics)
        check_values(where, metrics)
        if not isinstance(metrics.get("per_class", {}), dict):
            raise ResultsError(f"{where} has a malformed per_class; {_FIX}")
        for name, values in metrics.get("per_class", {}).items():
            check_values(f"{where} per_class[{name!r}]", values, nullable=grounding)
    parameters = results.get("model_parameters")
    if parameters is not None and not is_count(parameters):
        raise ResultsError(
            f"{source}: model_parameters must be a parameter count or null, not {parameters!r}; "
            + _FIX
        )
    if not isinstance(results.get("training") or {}, dict) or not isinstance(
        results.get("display_name") or "", str
    ):
        raise ResultsError(
            f"{source}: training must be an object (or null) and display_name a string (or "
            f"null); {_FIX}"
        )
    _check_ablation(source, results)
    if MEAN_BOX_BASELINE in results:
        baseline = results[MEAN_BOX_BASELINE]
        _numbers(f"{source}: {MEAN_BOX_BASELINE}", baseline, GROUNDING_REQUIRED)
        _optional_numbers(f"{source}: {MEAN_BOX_BASELINE}", baseline)
        check_values(f"{source}: {MEAN_BOX_BASELINE}", baseline)
    return results


def _check_ablation(source: str, results: dict) -> None:
    """Refuse an ``image_ablation`` that is not ``{"mode": known name, "seed": int or null}``."""
    if IMAGE_ABLATION not in results:
        return
    ablation = results[IMAGE_ABLATION]
    mode = ablation.get("mode") if isinstance(ablation, dict) else None
    seed = ablation.get("seed") if isinstance(ablation, dict) else None
    known = isinstance(mode, str) and mode in IMAGE_ABLATIONS
    if not known or not (seed is None or is_integer(seed)):
        raise ResultsError(
            f'{source}: {IMAGE_ABLATION} must be {{"mode": {" | ".join(IMAGE_ABLATIONS)}, '
            f'"seed": an integer or null}}, not {ablation!r}; {_FIX}'
        )


def ablation_mode(results: dict) -> str:
    """The image ablation a results.json was evaluated with (files before it: ``none``)."""
    return str((results.get(IMAGE_ABLATION) or {}).get("mode", NO_ABLATION))


def is_integer(value: object) -> bool:
    """An int (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_count(value: object) -> bool:
    """An int >= 0 (not a bool)."""
    return is_integer(value) and value >= 0


def check_values(where: str, values: object, nullable: bool = False) -> None:
    """Refuse a count (``COUNTS``) that is not an int >= 0, or a fraction or mean (``RANGES``)
    outside its range, among ``values`` (a metrics dict; other keys pass); ``nullable``: a
    mean may be null (a grounding class with no rows)."""
    if not isinstance(values, dict):
        raise ResultsError(f"{where} is not an object of metrics; {_FIX}")
    for key, value in values.items():
        if key in COUNTS and not is_count(value):
            raise ResultsError(
                f"{where}: {key} is {value!r}, not a count (an integer >= 0); {_FIX}"
            )
        if key in RANGES and not (nullable and value is None):
            low, high = RANGES[key]
            if not (is_number(value) and low <= value <= high):
                raise ResultsError(
                    f"{where}: {key} is {value!r}, not a number in [{low:g}, {high:g}]; {_FIX}"
                )


def _check_classification(where: str, metrics: object) -> None:
    if not isinstance(metrics, dict) or "accuracy_micro" not in metrics:
        raise ResultsError(f"{where} has no accuracy_micro; re-evaluate")
    values = {k: metrics[k] for k in ("accuracy_micro", "accuracy_macro", "n") if k in metrics}
    per_class = metrics.get("per_class", {})
    if not isinstance(per_class, dict) or not all(isinstance(v, dict) for v in per_class.values()):
        raise ResultsError(f"{where} has a malformed per_class; re-evaluate")
    values |= {f"per_class[{c!r}]": v.get("accuracy") for c, v in per_class.items()}
    for key, value in values.items():
        if not is_number(value):
            raise ResultsError(f"{where} has a non-numeric {key} ({value!r}); {_FIX}")


def _check_grounding(where: str, metrics: object) -> None:
    _optional_numbers(where, _numbers(f"{where} (grounding)", metrics, GROUNDING_REQUIRED))


def _optional_numbers(where: str, checked: dict) -> None:
    for key in GROUNDING_OPTIONAL:
        if key in checked and not is_number(checked[key]):
            raise ResultsError(f"{where} has a non-numeric {key} ({checked[key]!r}); {_FIX}")


def _numbers(where: str, values: object, keys: tuple[str, ...]) -> dict:
    if not isinstance(values, dict) or not all(is_number(values.get(k)) for k in keys):
        raise ResultsError(f"{where} lacks a numeric {', '.join(keys)}; {_FIX}")
    return values


# -- what the results say about the model and the data ---------------------------------------


def human_size(parameters: int) -> str:
    """A parameter count, readable: 8292166656 -> ``8.29B``, 234848 -> ``235K``, 512 -> ``512``."""
    for scale, unit in SIZE_UNITS:
        if parameters >= scale * 0.9995:  # 999,600 reads 1.00M, not 1e+03K
            return f"{parameters / scale:.3g}{unit}"
    return str(parameters)


def model_size(results: dict) -> str:
    """The size of the evaluated model: its parameter count as the evaluator read it from the
    checkpoint (``model_parameters``), else ``model_size``, else (old results) the size in the
    model's name (``...-7B-...`` -> 7B), else ``?``."""
    if is_number(results.get("model_parameters")):
        return human_size(int(results["model_parameters"]))
    if results.get("model_size"):
        return str(results["model_size"])
    match = _SIZE_IN_NAME.search(Path(str(results["model"])).name)
    return f"{match.group(1)}B" if match else UNKNOWN_SIZE


def model_label(results: dict) -> str:
    """The model's readable name: its ``display_name``, else ``model``; an ablated evaluation's
    with its ablation (``... [blank images]``), so that no table merges it with the real one."""
    name = str(results.get("display_name") or results["model"])
    return name + IMAGE_ABLATIONS.get(ablation_mode(results), "")


def revision_text(revisions: list[str] | tuple[str, ...] | str | None) -> str:
    """``, revision `r1, r2``` as reports and tables print a dataset revision; empty if none."""
    if not revisions:
        return ""
    items = [revisions] if isinstance(revisions, str) else list(revisions)
    return f", revision `{', '.join(items)}`"
