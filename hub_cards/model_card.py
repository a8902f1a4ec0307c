"""Model cards and evaluation-result files of trained checkpoints, generated from data.

Inputs (written by training and evaluation):

- ``training``: {"base_model", "datasets": [ids], "stages": [{"name", "hyperparameters": {}}],
  "trainable_scope", "trainable_parameters", "total_parameters", "plots": [file names]}
- ``results``: ``results.json`` of the evaluator (``common.results_schema``, which checks it):
  {"model", "dataset", "config", "split", "dataset_revision", "modes": {"think" | "no-think":
  {"n", "accuracy_micro", "accuracy_macro", "per_class": {class: {"accuracy", "support"}},
  "format_rate", "validity_rate"}}} with accuracies as fractions in [0, 1].

Outputs: the card's ``model-index`` (``huggingface_hub.EvalResult``) and
``.eval_results/ct-rate-vqa.yaml`` (``huggingface_hub.EvalResultEntry``), with values in %.

Both are written only for a dataset id that is a Hub repo id (``dataset_id``: the recipe's
``card_dataset_id``, or the Hub dataset that was evaluated): the Hub attaches a result only to a
dataset repo that exists, carries the Benchmark tag and declares the ``task_id`` in its
``eval.yaml``. Results on a local build are reported in the card's text, which says so.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from huggingface_hub import EvalResult, EvalResultEntry, ModelCard, ModelCardData
from huggingface_hub._eval_results import eval_result_entries_to_yaml

from common.hub_ids import hub_id_or_none, is_hub_id
from common.image_reliance import RELIANCE_NOTE, image_reliance, reliance_rows, reliance_table
from common.names import DATA_LICENSE as LICENSE
from common.names import GROUNDING_TASK
from common.names import PROMPT_MODES as MODES
from common.results_schema import check_results, task_of

from .publish import CARD_NAME

EVAL_RESULTS_DIR = ".eval_results"
EVAL_RESULTS_FILE = "ct-rate-vqa.yaml"
# every model card says it (push_model refuses a card without publish.NOTICE_MARKER)
RESEARCH_NOTICE = "For research only. Not a medical device; never use it for clinical decisions."


def _hub_ids(names: list[str]) -> list[str] | None:
    """Only the names that are Hub repo ids: the card's metadata must not link local folders."""
    ids = [n for n in names if is_hub_id(n, namespaced=True)]
    return ids or None


def _percent(value: float) -> float:
    return round(100.0 * float(value), 2)


def hub_dataset_id(results: dict | None, dataset_id: str | None = None) -> str | None:
    """The Hub dataset id results can be attached to: ``dataset_id`` when given, else the
    evaluated dataset when it is a Hub id; None for a local build."""
    if dataset_id is not None:
        if not is_hub_id(dataset_id, namespaced=True):
            raise ValueError(
                f"dataset id {dataset_id!r} is not a Hub repo id (ORG/NAME): evaluation results "
                "attach only to a dataset on the Hub"
            )
        return dataset_id
    evaluated = (results or {}).get("dataset")
    return hub_id_or_none(evaluated)


def dataset_label(results: dict | None, dataset_id: str | None) -> str:
    """How the card names the evaluated data: the Hub id, or a local build's folder name (never
    a local path)."""
    if dataset_id:
        return f"`{dataset_id}`"
    name = Path(str((results or {}).get("dataset") or "CT-RATE-VQA")).name
    return f"a local build of CT-RATE-VQA (`{name}`), not a Hub dataset"


def eval_result_entries(results: dict, dataset_id: str) -> list[EvalResultEntry]:
    """One ``.eval_results`` entry per mode: micro accuracy (%) on the task = the config."""
    return [
        EvalResultEntry(
            dataset_id=dataset_id,
            task_id=results["config"],
            value=_percent(metrics["accuracy_micro"]),
            dataset_revision=results.get("dataset_revision"),
            notes=f"{mode}; micro accuracy on the {results['split']} split "
            f"(macro {_percent(metrics['accuracy_macro'])})",
        )
        for mode, metrics in results["modes"].items()
    ]


def write_eval_results(folder: str | Path, entries: list[EvalResultEntry]) -> Path:
    path = Path(folder) / EVAL_RESULTS_DIR / EVAL_RESULTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(eval_result_entries_to_yaml(entries), sort_keys=False))
    return path


def model_index_results(results: dict, dataset_id: str) -> list[EvalResult]:
    """The legacy ``model-index`` form of the same results (still read by the Hub)."""
    out = []
    for mode, metrics in results["modes"].items():
        for kind in ("micro", "macro"):
            out.append(
                EvalResult(
                    task_type="visual-question-answering",
                    dataset_type=dataset_id,
                    dataset_name=f"CT-RATE-VQA ({results['config']})",
                    dataset_config=results["config"],
                    dataset_split=results["split"],
                    dataset_revision=results.get("dataset_revision"),
                    metric_type="accuracy",
                    metric_name=f"accuracy {kind} ({mode})",
                    metric_value=_percent(metrics[f"accuracy_{kind}"]),
                )
            )
    return out


def _results_table(results: dict) -> str:
    modes = [m for m in MODES if m in results["modes"]]
    classes = list(next(iter(results["modes"].values()))["per_class"])
    head = "| class | support | " + " | ".join(f"accuracy % ({m})" for m in modes) + " |"
    rows = [head, "|---" * (len(modes) + 2) + "|"]
    first = results["modes"][modes[0]]
    for name in classes:
        values = " | ".join(
            f"{_percent(results['modes'][m]['per_class'][name]['accuracy'])}" for m in modes
        )
        rows.append(f"| {name} | {first['per_class'][name]['support']} | {values} |")
    for kind in ("macro", "micro"):
        values = " | ".join(
            f"**{_percent(results['modes'][m][f'accuracy_{kind}'])}**" for m in modes
        )
        rows.append(f"| **{kind} average** | {first['n']} | {values} |")
    for rate in ("format_rate", "validity_rate"):
        values = " | ".join(f"{_percent(results['modes'][m][rate])}" for m in modes)
        rows.append(f"| {rate.replace('_', ' ')} % | | {values} |")
    return "\n".join(rows)


def _stages(training: dict) -> str:
    parts = []
    for stage in training.get("stages", []):
        params = "\n".join(f"| `{k}` | `{v}` |" for k, v in stage["hyperparameters"].items())
        parts.append(f"### {stage['name']}\n\n| hyperparameter | value |\n|---|---|\n{params}")
    return "\n\n".join(parts) or "No training stages recorded."


Results = dict | list[dict] | None  # one results.json, or one per task (multitask)


def _by_task(results: Results) -> tuple[dict | None, dict | None]:
    """(the classification results, the grounding results) among ``results``, each checked
    against the results.json schema."""
    listed = [] if results is None else [results] if isinstance(results, dict) else list(results)
    classification = grounding = None
    for item in listed:
        if task_of(check_results(item, "the model card's results")) == GROUNDING_TASK:
            grounding = item
        else:
            classification = item
    return classification, grounding


GROUNDING_COLUMNS = (  # (results key, the card's column): means over the split's rows
    ("iou_mean", "box IoU %"),
    ("iou_50", "IoU >= 0.5 %"),
    ("point_dice_mean", "point-Dice % (ours, true Dice)"),
    ("medreasoner_pdice_mean", "MedReasoner pDice % (2 inter / union)"),
    ("mask_dice_mean", "mask Dice % (SAM)"),
    ("oracle_dice_mean", "oracle Dice % (SAM, true prompts)"),
)


def _grounding_table(results: dict) -> str:
    """Per mode: IoU, IoU >= 0.5, our point-Dice, MedReasoner's pDice where the results have it,
    and mask / oracle Dice when a SAM was run."""
    modes = [m for m in MODES if m in results["modes"]]
    shown = [(k, name) for k, name in GROUNDING_COLUMNS
             if any(k in results["modes"][m] for m in modes)]  # fmt: skip
    rows = ["| mode | n | " + " | ".join(name for _, name in shown) + " |",
            "|---" * (len(shown) + 2) + "|"]  # fmt: skip
    for mode in modes:
        metrics = results["modes"][mode]
        values = " | ".join(f"{_percent(metrics[k])}" if k in metrics else "–" for k, _ in shown)
        rows.append(f"| {mode} | {metrics.get('n', '')} | {values} |")
    sam = results.get("sam_model")
    pdice = (
        "\n\nPoint-Dice (ours): the true Dice 2 |A n B| / (|A| + |B|) of the circles whose "
        "diameters are the predicted and the true point pairs (max 100 %). MedReasoner pDice: "
        "MedReasoner's 2 |A n B| / |A u B| of the same circles (twice their IoU, max 200 %), the "
        "only one of the two comparable with the paper's pDice (26.55)."
        if any("medreasoner_pdice_mean" in results["modes"][m] for m in modes)
        else ""
    )
    note = (
        f"\n\nMask Dice: the mask the frozen SAM `{sam}` gives for the predicted box and points; "
        "oracle Dice: the same SAM prompted with the true box and points. The mask Dice depends "
        "on the segmentation expert: MedReasoner's main table (mask Dice 37.78) uses MedSAM2, so "
        "this figure is comparable with the paper's only when the SAM above is MedSAM2."
        if sam
        else ""
    )
    return "\n".join(rows) + pdice + note


def _reliance_section(real: list[dict], ablated: list[dict]) -> str:
    """The image-reliance table (``common.image_reliance``): each ablated evaluation against
    the model's evaluation of the same task with the real images."""
    by_task = {task_of(results): results for results in real}
    records = [
        image_reliance(by_task[task_of(lost)], check_results(lost, "the model card's ablations"))
        for lost in ablated
        if task_of(lost) in by_task
    ]
    if not records:
        return ""
    head, body = reliance_table(reliance_rows(records, per_class=True))
    shown = [
        [("–" if value is None else str(value)) for value in row[1:]]  # the card's one model
        for row in body
    ]
    lines = [
        "| " + " | ".join(head[1:]) + " |",
        "|---" * (len(head) - 1) + "|",
        *("| " + " | ".join(row) + " |" for row in shown),
    ]
    return "### Does the model look at the image?\n\n" + RELIANCE_NOTE + "\n\n" + "\n".join(lines)


def model_card(
    training: dict,
    results: Results = None,
    dataset_id: str | None = None,
    model_name: str = "MedReason-R1",
    ablated: list[dict] | None = None,
) -> ModelCard:
    """The model card of a checkpoint, from its training summary and evaluation results
    (classification, grounding, or both), and its evaluations with image ablations
    (``ablated``: their image reliance, against ``results`` of the same task).

    ``model-index`` results only for a Hub dataset id (see :func:`hub_dataset_id`) and only for
    the classification task, the one the dataset's Benchmark declares."""
    classification, grounding = _by_task(results)
    evaluated = classification or grounding
    hub_id = hub_dataset_id(evaluated, dataset_id)
    card_data = ModelCardData(
        model_name=model_name,
        license=LICENSE,
        base_model=(_hub_ids([training["base_model"]]) or [None])[0],
        datasets=_hub_ids([*training.get("datasets", []), *([hub_id] if hub_id else [])]),
        language=["en"],
        library_name="transformers",
        pipeline_tag="image-text-to-text",
        tags=["medical", "radiology", "chest-ct", "medreason-r1", "grpo", "trl"],
        eval_results=model_index_results(classification, hub_id)
        if classification and hub_id
        else None,
    )
    plots = "\n".join(f"![{Path(p).stem}]({p})" for p in training.get("plots", []))
    sections = []
    if classification:
        sections.append(
            f"### Lesion classification\n\nOn {dataset_label(classification, hub_id)}, config "
            f"`{classification['config']}`, {classification['split']} split.\n\n"
            + _results_table(classification)
        )
    if grounding:
        sections.append(
            f"### Grounding (MedReasoner's task)\n\nOn {dataset_label(grounding, hub_id)}, "
            f"config `{grounding['config']}`, {grounding['split']} split.\n\n"
            + _grounding_table(grounding)
        )
    reliance = _reliance_section([r for r in (classification, grounding) if r], ablated or [])
    sections += [reliance] if reliance else []
    evaluation = "\n\n".join(sections) or "Not evaluated yet."
    if evaluated and hub_id is None:
        evaluation += (
            "\n\nThese results come from a local build, so the card lists no Hub evaluation "
            "results (`model-index`, `.eval_results/`): the Hub attaches results only to a "
            "dataset repo with a Benchmark `eval.yaml`. Push the dataset "
            "(`python -m dataset_builder push`) and set `card_dataset_id` to its repo."
        )
    elif grounding and hub_id:
        evaluation += (
            "\n\nOnly the classification results are attached to the dataset's Benchmark "
            "(`model-index`, `.eval_results/`): its `eval.yaml` declares the classification "
            "tasks only."
        )
    scope = training.get("trainable_scope", "unknown")
    counts = ""
    if training.get("trainable_parameters") and training.get("total_parameters"):
        counts = (
            f" ({training['trainable_parameters']:,} of "
            f"{training['total_parameters']:,} parameters trained)"
        )
    body = f"""# {model_name}

A vision-language model for chest CT, trained with the medreason-r1 toolkit on CT-RATE-VQA:
lesion classification posed as visual question answering, following MedReason-R1
(arXiv 2510.19626: supervised fine-tuning, then GRPO with format, validity and correctness
rewards), and/or reasoning grounding, following MedReasoner (arXiv 2508.08177: a box and two
points for a report sentence, GRPO with format and geometry rewards).

**{RESEARCH_NOTICE}**

- Base model: `{training["base_model"]}`
- Dataset: {dataset_label(evaluated, hub_id) if evaluated or hub_id else "CT-RATE-VQA"}
- Trainable scope: `{scope}`{counts}

## Training

{_stages(training)}

## Evaluation

{evaluation}

{plots}

## Limitations

Trained on single axial slices of non-contrast chest CT with one lesion class per question;
accuracy on other scanners, protocols, or patient populations is unknown. Outputs can be wrong
with confident reasoning.

## License

The training data (ReXGroundingCT, CT-RATE, hence CT-RATE-VQA) is CC BY-NC-SA 4.0, so these
weights are released under CC BY-NC-SA 4.0 as well, on top of the base model's own license.
"""
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}")


def write_model_card(
    folder: str | Path,
    training: dict,
    results: Results = None,
    dataset_id: str | None = None,
    ablated: list[dict] | None = None,
) -> ModelCard:
    """Write README.md and, with classification results on a Hub dataset,
    ``.eval_results/ct-rate-vqa.yaml`` into ``folder``."""
    card = model_card(training, results, dataset_id, ablated=ablated)
    card.save(Path(folder) / CARD_NAME)
    classification, grounding = _by_task(results)
    hub_id = hub_dataset_id(classification or grounding, dataset_id)
    if classification and hub_id:
        write_eval_results(folder, eval_result_entries(classification, hub_id))
    return card
