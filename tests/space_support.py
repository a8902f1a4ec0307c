"""Shared by the Space tests: the Space's modules (space/ is an app folder, not a package) and a
synthetic case with the rows the dataset builder makes of it."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

SPACE_DIR = Path(__file__).resolve().parent.parent / "space"
if str(SPACE_DIR) not in sys.path:
    sys.path.insert(0, str(SPACE_DIR))
space_app = importlib.import_module("app")  # space/app.py
scan_input = importlib.import_module("scan_input")  # space/scan_input.py
grounding_view = importlib.import_module("grounding_view")  # space/grounding_view.py


def case_with_rows(synthetic_source: dict, min_findings: int = 1) -> tuple:
    """(CaseSpec, builder rows) of the first synthetic case with rows of ``min_findings``."""
    from dataset_builder.case_processing import process_case
    from dataset_builder.class_map import load_class_map
    from dataset_builder.config import BuildOptions
    from dataset_builder.sources import load_cases

    specs, _ = load_cases(
        synthetic_source["rex_dir"], synthetic_source["ctrate_dir"], ["train", "val"]
    )
    for spec in specs:
        rows, _ = process_case(spec, BuildOptions(), load_class_map())
        if len({r["finding_index"] for r in rows}) >= min_findings:
            return spec, rows
    raise AssertionError("no synthetic case has rows")
