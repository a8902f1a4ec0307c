"""Report sentences for painted findings: lobe naming and wording per class."""

from __future__ import annotations

import numpy as np

from .anatomy import _Anatomy
from .canvas import _Canvas, _Placed
from .grid import _Grid
from .plan import _Finding

COUNT_WORDS = {2: "Two", 3: "Three"}
MASS_MM = 30.0  # nodules this large are called masses
EFFUSION_MODERATE = 0.33  # thickness from which it is called moderate
RIGHT_UPPER_S, RIGHT_MIDDLE_S, LEFT_UPPER_S = 0.55, 0.25, 0.40  # lobe limits (dome=0, apex=1)


def _lobe(anat: _Anatomy, grid: _Grid, point: np.ndarray) -> tuple[str, str]:
    """(side, lobe name) of a mm point."""
    side = "right" if point[0] < anat.cx else "left"
    dome = anat.dome_t[0 if side == "right" else 1]
    s = (float(grid.t(point[2])) - dome) / (anat.apex_t - dome)
    if side == "right":
        if s > RIGHT_UPPER_S:
            zone = "upper"
        elif s > RIGHT_MIDDLE_S and point[1] < anat.cav_cy:
            zone = "middle"
        else:
            zone = "lower"
    else:
        zone = "upper" if s > LEFT_UPPER_S else "lower"
    return side, f"{side} {zone} lobe"


def _join(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c' (duplicates dropped)."""
    unique = list(dict.fromkeys(items))
    return unique[0] if len(unique) == 1 else ", ".join(unique[:-1]) + " and " + unique[-1]


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    """One of the options, drawn from rng."""
    return options[int(rng.integers(len(options)))]


def _sentence(rng: np.random.Generator, finding: _Finding, placed: list[_Placed], c: _Canvas):
    """A plausible report sentence for a painted finding."""
    where = [_lobe(c.anat, c.grid, p.center) for p in placed]
    sides = [s for s, _ in where]
    lobes = _join([lobe for _, lobe in where])
    both = len(set(sides)) == 2
    code, n = finding.code, len(placed)
    size = round(max(p.size_mm for p in placed))
    if finding.kind == "nodule":
        noun = "mass" if size >= MASS_MM else "nodule"
        biggest = where[int(np.argmax([p.size_mm for p in placed]))][1]
        if n == 1:
            adjective = _pick(rng, ["", "lobulated ", "well-circumscribed "])
            return f"A {size} mm {adjective}solid {noun} in the {biggest}."
        plural = "masses" if noun == "mass" else "nodules"
        return (
            f"{COUNT_WORDS[n]} solid pulmonary {plural}, the largest measuring {size} mm "
            f"in the {biggest}."
        )
    if finding.kind == "ggo":
        if n > 1:
            return f"Multifocal ground-glass opacities in the {lobes}."
        return _pick(
            rng,
            [
                f"Ground-glass opacity in the {lobes}.",
                f"Patchy ground-glass opacity in the {lobes}.",
                f"A {size} mm area of ground-glass density in the {lobes}.",
            ],
        )
    if finding.kind == "consolidation":
        return _pick(
            rng,
            [
                f"Consolidation with air bronchograms in the {lobes}.",
                f"Dense consolidation in the {lobes}.",
                f"Atelectasis and consolidation in the {lobes}.",
            ],
        )
    if finding.kind == "emphysema":
        where_text = "both upper lobes" if both else f"the {lobes}"
        return _pick(
            rng,
            [
                f"Centrilobular emphysema in {where_text}.",
                f"Paraseptal and centrilobular emphysema in {where_text}.",
            ],
        )
    if finding.kind == "fibrosis":
        base = "both lung bases" if both else f"the {sides[0]} lung base"
        return {
            "1d": f"Interlobular septal thickening and reticulation at {base}.",
            "2a": f"Linear fibrotic bands and subsegmental atelectasis at {base}.",
            "2f": f"Subpleural honeycombing at {base}.",
        }[code]
    if finding.kind == "effusion":
        if both:
            larger = sides[int(np.argmax([p.extent for p in placed]))]
            return f"Bilateral dependent pleural effusions, greater on the {larger}."
        grade = "Moderate" if placed[0].extent >= EFFUSION_MODERATE else "Small"
        return f"{grade} dependent {sides[0]} pleural effusion."
    if finding.kind == "airway":
        if code == "1a":
            return f"Bronchial wall thickening in the {lobes}."
        return _pick(
            rng,
            [
                f"Cylindrical bronchiectasis in the {lobes}.",
                f"Varicose bronchiectasis in the {lobes}.",
            ],
        )
    if finding.kind == "micronodules":
        return f"Centrilobular micronodules with a tree-in-bud pattern in the {lobes}."
    return f"Small {sides[0]} pneumothorax."
