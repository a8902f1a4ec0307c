"""Select slices and lesion boxes: 2-D connected components of each finding's mask, per slice."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from skimage.measure import label, regionprops

from .config import BuildOptions


@dataclass(frozen=True)
class LesionCandidate:
    """The largest qualifying lesion of one finding on one axial slice.

    ``box`` is (x0, y0, x1, y1), end-exclusive, in the radiological view of the native slice
    (x = LPS axis 0, columns; y = LPS axis 1, rows). ``component`` is that connected component's
    own mask inside ``box`` (rows y0:y1, columns x0:x1): the one component the box, the
    grounding mask and the grounding points all come from.
    """

    finding_index: int
    slice_index: int
    box: tuple[int, int, int, int]
    pixels: int
    component: np.ndarray | None = field(default=None, compare=False, repr=False)


def min_pixels_for(slice_shape: tuple[int, int], options: BuildOptions) -> float:
    """The paper's 1300 px on 512 x 512, scaled by area to this slice size."""
    area = slice_shape[0] * slice_shape[1]
    return options.min_box_pixels * area / options.min_box_reference_pixels


def finding_candidates(
    mask: np.ndarray, finding_index: int, options: BuildOptions, occupied: np.ndarray | None = None
) -> list[LesionCandidate]:
    """Candidates of one finding; ``mask`` is (X, Y, Z) on the CT grid in LPS order.

    ``occupied`` (Z booleans: slices holding any lesion voxel) saves a pass over the mask.
    """
    threshold = min_pixels_for(mask.shape[:2], options)
    if occupied is None:
        occupied = mask.any(axis=(0, 1))
    out: list[LesionCandidate] = []
    for k in np.flatnonzero(occupied):
        view = mask[:, :, k].T != 0  # rows = posterior axis, columns = left axis
        best: LesionCandidate | None = None
        for region in regionprops(label(view, connectivity=options.connectivity)):
            y0, x0, y1, x1 = region.bbox
            size = (
                region.area
                if options.min_box_measure == "component_area"
                else ((y1 - y0) * (x1 - x0))
            )
            if size <= threshold:
                continue
            if best is None or region.area > best.pixels:
                best = LesionCandidate(
                    finding_index, int(k), (x0, y0, x1, y1), int(region.area), region.image
                )
        if best is not None:
            out.append(best)
    return out


def _slice_order(candidate: LesionCandidate) -> tuple[int, int]:
    return candidate.slice_index, candidate.finding_index


def sample_uniformly(candidates: list[LesionCandidate], cap: int) -> list[LesionCandidate]:
    """At most ``cap`` candidates, evenly spaced in (slice, finding) order (deterministic)."""
    ordered = sorted(candidates, key=_slice_order)
    if len(ordered) <= cap:
        return ordered
    picks = np.linspace(0, len(ordered) - 1, cap).round().astype(int)
    return [ordered[i] for i in picks]


def cap_candidates(candidates: list[LesionCandidate], cap: int, unit: str) -> list[LesionCandidate]:
    """The rows a case keeps, in (slice, finding) order: at most ``cap`` evenly spaced
    candidates per finding (``unit`` 'finding') or for the whole volume ('volume')."""
    if unit == "volume":
        return sample_uniformly(candidates, cap)
    per_finding: dict[int, list[LesionCandidate]] = {}
    for candidate in candidates:
        per_finding.setdefault(candidate.finding_index, []).append(candidate)
    kept = [c for group in per_finding.values() for c in sample_uniformly(group, cap)]
    return sorted(kept, key=_slice_order)
