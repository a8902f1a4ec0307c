"""Reading the lmms-eval task folder lmms_eval_tasks/ct_rate_vqa/ as lmms-eval reads it (shared by
tests/test_lmms_eval_task.py and tests/test_lmms_eval_harness.py)."""

from __future__ import annotations

from pathlib import Path

import yaml

TASK_DIR = Path(__file__).resolve().parents[1] / "lmms_eval_tasks" / "ct_rate_vqa"


class Function:
    """What lmms-eval makes of ``!function module.name``: a reference into the task folder."""

    def __init__(self, reference: str):
        self.module, _, self.name = reference.rpartition(".")


class TaskLoader(yaml.SafeLoader):
    """A safe YAML loader that keeps lmms-eval's ``!function`` tags as :class:`Function`."""


TaskLoader.add_constructor(
    "!function", lambda loader, node: Function(loader.construct_scalar(node))
)


def load_task(name: str, task_dir: Path = TASK_DIR) -> dict:
    """A task YAML with its ``include:`` merged in (a shallow update, as lmms-eval does)."""
    config = yaml.load((task_dir / name).read_text(), Loader=TaskLoader)
    included = config.pop("include", None)
    if included is None:
        return config
    return {**load_task(included, task_dir), **config}


TASK_FILES = sorted(path.name for path in TASK_DIR.glob("*.yaml"))
