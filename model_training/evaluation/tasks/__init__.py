"""The evaluator's tasks, by name (``common.names.TASKS``): what each refuses, keeps per reply,
scores, writes and prints (the interface: ``base.EvalTask``).

A new task is one module here (a subclass of ``EvalTask``) and one line in ``TASKS``; its
options are fields of ``EvaluateArguments`` with ``metadata={"task": <its name>}``, which every
other task then refuses.
"""

from __future__ import annotations

from collections.abc import Iterable

from common.names import CLASSIFICATION_TASK, GROUNDING_CONFIG, GROUNDING_TASK

from ... import prompts
from ..options import EvaluationError
from .base import REPORT_FILES, EvalTask, Evaluated
from .classification import Classification
from .grounding import Grounding

TASKS: dict[str, EvalTask] = {
    CLASSIFICATION_TASK: Classification(),
    GROUNDING_TASK: Grounding(),
}

__all__ = ["TASKS", "EvalTask", "Evaluated", "dataset_task", "task_files"]


def task_files() -> tuple[str, ...]:
    """Every name (glob pattern) a task writes into the evaluator's output folder."""
    return (*REPORT_FILES, *(name for task in TASKS.values() for name in task.output_files))


def dataset_task(columns: Iterable[str], config: str) -> str:
    """The task of a dataset config's rows: grounding when they hold the grounding columns; a
    config named ``grounding`` without them is refused."""
    columns = list(columns)
    task = prompts.task_of(columns)
    if task == CLASSIFICATION_TASK and config == GROUNDING_CONFIG:
        missing = [c for c in prompts.GROUNDING_COLUMNS if c not in columns]
        raise EvaluationError(
            f"config {config!r} lacks the grounding columns {', '.join(missing)}: rebuild the "
            "dataset with python -m dataset_builder build (it writes the grounding config)"
        )
    return task
