"""What the evaluator asks of a task (``EvalTask``) and what it hands over to score
(``Evaluated``). ``tasks/__init__.py`` registers each task by name."""

from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import datasets

from common.results_schema import RESULTS_FILE

from ..options import EvaluateArguments, EvaluationError
from ..results_header import report_header


@dataclass
class Evaluated:
    """A finished generation, ready to score: the options, the run's settings
    (``eval_settings.json``), the evaluated rows and every (mode, id) prediction row."""

    options: EvaluateArguments
    settings: dict
    ds: datasets.Dataset
    done: dict[tuple, dict]

    @property
    def output_dir(self) -> Path:
        return Path(self.options.output_dir)

    @property
    def modes(self) -> tuple[str, ...]:
        return self.options.modes

    def predictions(self) -> list[dict]:
        """The prediction rows, mode by mode, in dataset order."""
        return [self.done[(mode, id_)] for mode in self.modes for id_ in self.ds["id"]]

    def header(self, task: str) -> dict:
        """The keys ``results.json`` starts with (model, data, task, prompts, decoding)."""
        return report_header(self.settings, self.options.revision, task)


PREDICTIONS_FILE = "predictions.parquet"
REPORT_FILES = (RESULTS_FILE, PREDICTIONS_FILE)  # every task's two result files


class EvalTask(ABC):
    """One task of the evaluator: the options it refuses, the rows it keeps per reply, how it
    scores, writes and prints its report. ``name`` is its key in ``TASKS``."""

    name: ClassVar[str]
    # what the task writes into the output folder besides REPORT_FILES (glob patterns)
    output_files: ClassVar[tuple[str, ...]] = ()

    def check_options(self, options: EvaluateArguments) -> None:
        """Refuse (one line) an option of another task (a field whose ``task`` metadata names
        another task) set to anything but its default or none: nothing is accepted and ignored.
        Reads nothing: a run recipe is checked with it before any data exists."""
        for f in dataclasses.fields(options):
            owner = f.metadata.get("task")
            value = getattr(options, f.name)
            if owner in (None, self.name) or value is None or value == f.default:
                continue
            flag = f"--{f.name.replace('_', '-')}"
            raise EvaluationError(
                f"{flag} applies to {owner} configs; it does not apply to config "
                f"{options.config!r}, a {self.name} one: drop {flag}"
            )

    def check_inputs(self, options: EvaluateArguments) -> None:
        """Refuse an input this task reads besides the evaluated rows (one line); run on the
        main process before anything is written. None by default."""
        return None

    @abstractmethod
    def reply_rows(self, rows: list[dict], replies: list[str], mode: str) -> list[dict]:
        """The progress rows (JSON) of one generated batch: id, mode, gold, output and what
        can be scored per reply."""

    @abstractmethod
    def write_report(self, evaluated: Evaluated) -> dict:
        """Score the predictions, write results.json, predictions.parquet and the plots into
        ``evaluated.output_dir`` (``write_results``), and return the report."""

    @abstractmethod
    def print_report(self, report: dict) -> None:
        """Print the report's headline figures, a line per mode."""


def write_results(output_dir: Path, report: dict, predictions: list[dict]) -> None:
    """Every task's two result files: ``results.json`` (the report) and
    ``predictions.parquet`` (one row per sample and mode)."""
    (output_dir / RESULTS_FILE).write_text(json.dumps(report, indent=1))
    datasets.Dataset.from_list(predictions).to_parquet(output_dir / PREDICTIONS_FILE)
