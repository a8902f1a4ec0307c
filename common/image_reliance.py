"""Image reliance (ours): how far a model's figures fall when its images are taken away.

An evaluation with real images and one of the same model, on the same rows, with an image
ablation (``--image-ablation blank|shuffle``: ``common.results_schema.IMAGE_ABLATIONS``) give,
per prompt mode:

- classification: micro accuracy and each class's accuracy with the real images, with the
  ablated ones, and the reliance, real minus ablated (in accuracy points: 0 means the answers
  owe nothing to the image), beside chance (``chance_accuracy``: one over the classes); and the
  share of valid answers, which tells a drop in accuracy from a broken answer format;
- grounding: box IoU, IoU >= 0.5, our point-Dice and MedReasoner's pDice with the real images,
  with the ablated ones, their difference, and the mean-box baseline the real evaluation
  carries (the figure a model reaches that answers every row alike, i.e. without the image);
  and the share of complete answers (a box and two points).

The run driver, the leaderboard's ``reliance`` layout and the model card read it from here.
"""

from __future__ import annotations

from common.errors import UserError
from common.names import GROUNDING_TASK, PROMPT_MODES
from common.results_schema import (
    IMAGE_ABLATION,
    IMAGE_ABLATIONS,
    MEAN_BOX_BASELINE,
    NO_ABLATION,
    ablation_mode,
    task_of,
)

# the figures compared, per mode; the answers' well-formedness too, since an ablated image can
# break the format rather than the answer (the tiny demo model's blank-image replies do)
CLASSIFICATION_RELIANCE = ("accuracy_micro", "validity_rate")
GROUNDING_RELIANCE = (
    "iou_mean", "iou_50", "point_dice_mean", "medreasoner_pdice_mean", "complete_rate",
)  # fmt: skip
RELIANCE_LABELS = {  # the figures' names in tables, in table order
    "accuracy_micro": "accuracy", "validity_rate": "valid answers", "iou_mean": "box IoU",
    "iou_50": "IoU >= 0.5", "point_dice_mean": "point-Dice (ours)",
    "medreasoner_pdice_mean": "MedReasoner pDice", "complete_rate": "complete answers",
}  # fmt: skip
SAME_ROWS = ("dataset", "config", "split", "dataset_revision")  # must agree to compare


class RelianceError(UserError):
    """Evaluations that cannot be compared for image reliance; the message says why."""


def chance_accuracy(results: dict) -> float | None:
    """One over the classes of a classification results.json (its ``per_class`` lists every
    class of the dataset); None without them."""
    classes = max((len(m.get("per_class") or {}) for m in results["modes"].values()), default=0)
    return 1 / classes if classes else None


def real_name(results: dict) -> str:
    """The model an evaluation is of, whatever its images (``display_name``, else ``model``)."""
    return str(results.get("display_name") or results["model"])


def comparison_key(results: dict) -> tuple:
    """What a real and an ablated evaluation must share: the model, the task and the rows."""
    return (real_name(results), task_of(results), *(str(results.get(k, "")) for k in SAME_ROWS))


def _triple(real: float | None, ablated: float | None) -> dict:
    both = real is not None and ablated is not None
    return {"real": real, "ablated": ablated, "reliance": real - ablated if both else None}


def image_reliance(real: dict, ablated: dict, source: str = "") -> dict:
    """The reliance of one model on its images, from its results.json with the real images
    (``real``) and with one ablation (``ablated``); refused (``RelianceError``, naming
    ``source``) where the two are not the same model on the same rows."""
    where = f"{source}: " if source else ""
    mode = ablation_mode(ablated)
    if ablation_mode(real) != NO_ABLATION or mode == NO_ABLATION:
        raise RelianceError(
            f"{where}image reliance compares an evaluation with the real images and one with "
            f"--image-ablation {' or '.join(m for m in IMAGE_ABLATIONS if m != NO_ABLATION)}"
        )
    if comparison_key(real) != comparison_key(ablated):
        raise RelianceError(
            f"{where}the evaluations with real and with {mode} images are of different models "
            f"or rows ({comparison_key(real)} vs {comparison_key(ablated)}): evaluate the same "
            "model on the same dataset, config and split"
        )
    task = task_of(real)
    modes = {}
    for prompt in PROMPT_MODES:
        have, lost = real["modes"].get(prompt), ablated["modes"].get(prompt)
        if not have or not lost:
            continue
        if have.get("n") != lost.get("n"):
            raise RelianceError(
                f"{where}mode {prompt!r} was evaluated on {have.get('n')} rows with the real "
                f"images and on {lost.get('n')} with {mode} images: evaluate both on the same "
                "rows (same --limit)"
            )
        figures = CLASSIFICATION_RELIANCE if task != GROUNDING_TASK else GROUNDING_RELIANCE
        entry = {"n": have.get("n"), **{k: _triple(have.get(k), lost.get(k))
                                        for k in figures if k in have or k in lost}}  # fmt: skip
        if task != GROUNDING_TASK:
            lost_classes = lost.get("per_class") or {}
            entry["per_class"] = {
                name: _triple(value["accuracy"], (lost_classes.get(name) or {}).get("accuracy"))
                for name, value in (have.get("per_class") or {}).items()
                if value.get("support")
            }
        modes[prompt] = entry
    if not modes:
        raise RelianceError(
            f"{where}the evaluations with real and with {mode} images share no prompt mode"
        )
    record = {"model": real_name(real), "task": task, IMAGE_ABLATION: ablated[IMAGE_ABLATION],
              "modes": modes}  # fmt: skip
    if task == GROUNDING_TASK:
        baseline = real.get(MEAN_BOX_BASELINE)
        record["without_image"] = (
            {k: baseline[k] for k in GROUNDING_RELIANCE if k in baseline} if baseline else None
        )
    else:
        record["without_image"] = {"accuracy_micro": chance_accuracy(real)}
    return record


WITHOUT_IMAGE = {GROUNDING_TASK: "mean-box baseline"}  # per task; others: chance


def reliance_rows(records: list[dict], per_class: bool = False) -> list[dict]:
    """``image_reliance`` records (any models, tasks and ablations) as table rows, one per
    (model, task, mode, figure[, class]) in the order first seen: ``real`` and, by ablation
    name, ``ablated`` and ``reliance`` (fractions; None where not measured), and
    ``without_image`` (chance, or the mean-box baseline) with its ``reference`` name."""
    rows: dict[tuple, dict] = {}
    for record in records:
        ablation = record[IMAGE_ABLATION]["mode"]
        reference = WITHOUT_IMAGE.get(record["task"], "chance")
        for mode, entry in record["modes"].items():
            figures = [(k, RELIANCE_LABELS[k], entry[k]) for k in RELIANCE_LABELS if k in entry]
            if per_class:
                figures += [(f"per_class:{name}", f"accuracy: {name}", triple)
                            for name, triple in entry.get("per_class", {}).items()]  # fmt: skip
            for key, label, triple in figures:
                row = rows.setdefault((record["model"], record["task"], mode, key), {
                    "model": record["model"], "task": record["task"], "mode": mode,
                    "figure": label, "n": entry["n"], "real": triple["real"], "ablated": {},
                    "reliance": {}, "reference": reference,
                    "without_image": None if key.startswith("per_class:")
                    else (record.get("without_image") or {}).get(key),
                })  # fmt: skip
                row["ablated"][ablation] = triple["ablated"]
                row["reliance"][ablation] = triple["reliance"]
    return list(rows.values())


def _in_percent(value: float | None) -> float | None:
    return None if value is None else round(100.0 * value, 2)


def images_label(ablation: str) -> str:
    """How tables name an ablation's images (``blank images``)."""
    return IMAGE_ABLATIONS[ablation].strip(" []")


def ablation_names(rows: list[dict]) -> list[str]:
    """The ablations ``reliance_rows`` hold, in the order first seen."""
    return list(dict.fromkeys(name for row in rows for name in row["ablated"]))


def reliance_table(rows: list[dict]) -> tuple[list[str], list[list[object]]]:
    """``reliance_rows`` as a table: (head, body), values in % (differences in points), None
    where not measured; one column per ablation seen."""
    names = ablation_names(rows)
    labels = [images_label(name) for name in names]
    head = [
        "model", "task", "mode", "figure", "real images %", *(f"{x} %" for x in labels),
        *(f"drop with {x} (points)" for x in labels), "without the image %", "without the image",
    ]  # fmt: skip
    body = [
        [row["model"], row["task"], row["mode"], row["figure"], _in_percent(row["real"]),
         *(_in_percent(row["ablated"].get(name)) for name in names),
         *(_in_percent(row["reliance"].get(name)) for name in names),
         _in_percent(row["without_image"]),
         row["reference"] if row["without_image"] is not None else ""]
        for row in rows
    ]  # fmt: skip
    return head, body


RELIANCE_NOTE = (
    "The same rows evaluated again with every image replaced: blank (a uniform grey image of "
    "the same size) or shuffled (another row's image, by a seeded permutation that never keeps "
    "a row's own). The drop, real minus ablated, is how much the figure owes to the image: near "
    "0, the answers do not use it. Without the image: chance (one over the classes) for "
    "classification, the mean-box baseline (the training rows' mean box and points for every "
    "row) for grounding. Ours: neither MedReason-R1 nor MedReasoner reports it."
)


__all__ = [
    "CLASSIFICATION_RELIANCE", "GROUNDING_RELIANCE", "RELIANCE_LABELS", "RelianceError",
    "RELIANCE_NOTE", "WITHOUT_IMAGE", "ablation_names", "chance_accuracy", "comparison_key",
    "image_reliance", "images_label", "real_name", "reliance_rows", "reliance_table",
]  # fmt: skip
