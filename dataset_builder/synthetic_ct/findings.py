"""Paint a scan's planned findings, one mask channel each, and describe each in a sentence."""

from __future__ import annotations

import numpy as np

from .canvas import _Canvas, _Placed
from .lesions import (
    _paint_airway,
    _paint_consolidation,
    _paint_emphysema,
    _paint_ggo,
    _paint_micronodules,
    _paint_nodule,
)
from .plan import _Finding
from .pleural import _paint_effusion, _paint_fibrosis, _paint_pneumothorax
from .reports import _sentence
from .shapes import LEFT, RIGHT

PAINTERS = {
    "nodule": _paint_nodule,
    "ggo": _paint_ggo,
    "consolidation": _paint_consolidation,
    "emphysema": _paint_emphysema,
    "fibrosis": _paint_fibrosis,
    "effusion": _paint_effusion,
    "airway": _paint_airway,
    "micronodules": _paint_micronodules,
    "pneumothorax": _paint_pneumothorax,
}


def _paint_findings(
    rng: np.random.Generator, c: _Canvas, findings: tuple[_Finding, ...]
) -> list[tuple[str, str]]:
    """Paint every finding into its channel; (sentence, code) per channel (None if empty)."""
    described = []
    for channel, finding in enumerate(findings):
        first_side = RIGHT if rng.random() < 0.5 else LEFT
        placed: list[_Placed] = []
        for i in range(finding.instances):
            side = first_side if i % 2 == 0 else -first_side
            result = PAINTERS[finding.kind](rng, c, channel, len(placed) + 1, side, finding.code)
            if result is not None:
                placed.append(result)
        described.append((_sentence(rng, finding, placed, c), finding.code) if placed else None)
    return described
