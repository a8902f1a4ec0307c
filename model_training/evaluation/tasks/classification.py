"""Classification rows (MedReason-R1's lesion classes; configs zoom, plain): accuracy per class,
macro and micro, per prompt mode; with ``--judge``, the think mode's reasoning-answer
consistency (``model_training.evaluation.judge``).

Scoring: the class inside the reply's last ``<answer>...</answer>``. A reply without answer
tags (a baseline not trained on our format) is scored by a fallback: the single class whose
full name appears in its text. Fallback answers count towards accuracy; ``fallback_rate``
and ``accuracy_micro_tags_only`` report them separately.
"""

from __future__ import annotations

from collections import Counter

from common.names import CLASSIFICATION_TASK

from ...answers import fallback_class, parse_reply
from ..judge import JUDGE_FILE, check_judge
from ..options import EvaluateArguments
from ..plots import confusion_plot, per_class_bars
from ..results_header import source_name
from .base import EvalTask, Evaluated, write_results


def read_reply(reply: str, options: list[str]) -> dict:
    """The scored fields of one reply: answer, how it was found, and the format check."""
    parsed = parse_reply(reply, options)
    answer, how = parsed.answer, "tags" if parsed.answer is not None else None
    if parsed.answer_text is None:
        answer = fallback_class(reply, options)
        how = "fallback" if answer is not None else None
    return {
        "answer": answer,
        "parsed_by": how,
        "well_formed": parsed.well_formed,
        "think": parsed.think,
    }


def score(rows: list[dict], classes: list[str]) -> dict:
    """Metrics of one mode from prediction rows {gold, answer, well_formed[, parsed_by]}."""
    n = len(rows)
    support = Counter(r["gold"] for r in rows)
    hits = Counter(r["gold"] for r in rows if r["answer"] == r["gold"])
    parsed_by = [r.get("parsed_by", "tags" if r["answer"] is not None else None) for r in rows]
    per_class = {
        c: {"accuracy": hits[c] / support[c] if support[c] else 0.0, "support": support[c]}
        for c in classes
    }
    present = [c for c in classes if support[c]]
    strict_hits = sum(
        r["answer"] == r["gold"] for r, how in zip(rows, parsed_by, strict=True) if how == "tags"
    )
    return {
        "n": n,
        "accuracy_micro": sum(hits.values()) / n if n else 0.0,
        "accuracy_macro": sum(per_class[c]["accuracy"] for c in present) / len(present)
        if present
        else 0.0,
        "per_class": per_class,
        "format_rate": sum(r["well_formed"] for r in rows) / n if n else 0.0,
        "validity_rate": parsed_by.count("tags") / n if n else 0.0,
        "fallback_rate": parsed_by.count("fallback") / n if n else 0.0,
        "accuracy_micro_tags_only": strict_hits / n if n else 0.0,
    }


PER_CLASS_PLOT = "per_class_accuracy.png"
CONFUSION_PLOT = "confusion_{mode}.png"


class Classification(EvalTask):
    name = CLASSIFICATION_TASK
    output_files = (PER_CLASS_PLOT, CONFUSION_PLOT.format(mode="*"), JUDGE_FILE)

    def check_inputs(self, options: EvaluateArguments) -> None:
        """The judge (``--judge``) must be able to run: it runs after every reply is generated,
        so it is checked before the first (``judge.check_judge``)."""
        if options.judge is not None:
            check_judge(options.judge, options.judge_model)

    def reply_rows(self, rows: list[dict], replies: list[str], mode: str) -> list[dict]:
        """Each reply scored at once: its answer, how it was read, whether it is correct."""
        done = []
        for row, reply in zip(rows, replies, strict=True):
            read = read_reply(reply, row["options"])
            done.append(
                {
                    "id": row["id"],
                    "mode": mode,
                    "gold": row["answer"],
                    "output": reply,
                    **read,
                    "correct": read["answer"] == row["answer"],
                }
            )
        return done

    def write_report(self, evaluated: Evaluated) -> dict:
        """Score the predictions, run the judge (``--judge``, think mode), and write
        results.json, predictions.parquet, per_class_accuracy.png and confusion_<mode>.png."""
        ds, modes, options = evaluated.ds, evaluated.modes, evaluated.options
        classes = ds.features["label"].names
        predictions = evaluated.predictions()
        results = {m: score([r for r in predictions if r["mode"] == m], classes) for m in modes}
        report = {**evaluated.header(self.name), "modes": results}
        if options.judge is not None and "think" in modes:
            from ..judge import judge_consistency, load_judge

            row_options = dict(zip(ds["id"], ds["options"], strict=True))
            think_rows = [r for r in predictions if r["mode"] == "think"]
            for row in predictions:
                row["judge_answer"] = None
            consistency = judge_consistency(
                think_rows,
                row_options,
                load_judge(options.judge, options.judge_model),
                evaluated.output_dir,
            )
            report["judge"] = {k: consistency.pop(k) for k in ("judge", "judge_prompt")}
            if "://" not in (judge := report["judge"]["judge"]):  # a URL stays; a path: its name
                report["judge"]["judge"] = source_name(judge)
            results["think"].update(consistency)
        write_results(evaluated.output_dir, report, predictions)
        per_class_bars(report, evaluated.output_dir / PER_CLASS_PLOT)
        for mode in modes:
            rows = [r for r in predictions if r["mode"] == mode]
            confusion_plot(
                rows,
                classes,
                f"{mode}: gold vs answer",
                evaluated.output_dir / CONFUSION_PLOT.format(mode=mode),
            )
        return report

    def print_report(self, report: dict) -> None:
        for mode, metrics in report["modes"].items():
            consistency = (
                f", consistency {100 * metrics['consistency']:.2f} %"
                if "consistency" in metrics
                else ""
            )
            print(
                f"{mode}: accuracy {100 * metrics['accuracy_micro']:.2f} % (micro), "
                f"{100 * metrics['accuracy_macro']:.2f} % (macro), n = {metrics['n']}" + consistency
            )
