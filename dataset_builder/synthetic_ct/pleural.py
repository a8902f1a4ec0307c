"""Paint the lesions along one hemithorax's lung wall: fibrosis, pleural effusion, pneumothorax."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .anatomy import _Anatomy, _uniform
from .canvas import _Canvas, _Placed
from .grid import Box
from .shapes import DOME_DEPTH_T, RECESS_T, _ellipse, _lung_ellipse, _side_index, _side_x_range
from .tissues import AIR, FLUID, LESION_LUNG, LOW_ATTENUATION, SOLID, TISSUES

BASE_MARGIN_T = 0.02  # pleural lesions are searched from this far below the lung base
FIBROSIS_BAND_MM = (10.0, 18.0)  # subpleural band thickness
FIBROSIS_TOP_T = (0.12, 0.25)  # band top above the dome
FIBROSIS_LATERAL = -0.1  # sector: lateral coordinate above this ...
FIBROSIS_POSTERIOR = 0.35  # ... or posterior coordinate above this
FIBROSIS_MIN_CELL_VOXELS = 6.0  # cells at least this many in-plane voxels across
FIBROSIS_STYLES = {  # code: (cell size mm, y stretch, cell HU, wall HU range)
    "2f": ((5.0, 9.0), 1.0, -950.0, (-40.0, 30.0)),  # honeycomb cysts
    "1d": ((3.5, 5.5), 1.0, -780.0, (-150.0, -60.0)),  # reticulation
    "2a": ((4.0, 7.0), 0.35, -800.0, (-100.0, 0.0)),  # linear bands (elongated cells)
}
EFFUSION_HU = (8.0, 20.0)
EFFUSION_THICKNESS = (0.22, 0.45)  # crescent thickness, fraction of the lung's ry
EFFUSION_TOP_T = (0.10, 0.25)  # crescent top above the dome
EFFUSION_TAPER_T = 0.08  # the crescent thins over this height below its top ...
EFFUSION_PROFILE = 0.5  # ... as (height below the top / taper) ** this
EFFUSION_MENISCUS = 1.5  # how far the fluid climbs laterally
PNEUMOTHORAX_THICKNESS = (0.12, 0.25)
PNEUMOTHORAX_T = (0.45, 0.92)


def _voronoi_walls(
    rng: np.random.Generator, shape: tuple[int, ...], spacing, cell_mm: float, stretch: float
) -> np.ndarray:
    """In-plane boundaries of random 3-D Voronoi cells (one voxel thick)."""
    total = int(np.prod(shape))
    seeds = max(2, int(total * float(np.prod(spacing)) / cell_mm**3))
    free = np.ones(shape, dtype=bool)
    free.flat[rng.integers(total, size=seeds)] = False
    nearest = ndimage.distance_transform_edt(
        free,
        sampling=(spacing[0], spacing[1] * stretch, spacing[2]),
        return_distances=False,
        return_indices=True,
    )
    cell = np.ravel_multi_index(tuple(nearest), shape)
    walls = np.zeros(shape, dtype=bool)
    walls[1:] |= cell[1:] != cell[:-1]
    walls[:, 1:] |= cell[:, 1:] != cell[:, :-1]
    return walls


def _tight(box: Box, region: np.ndarray) -> tuple[Box, np.ndarray]:
    """Shrink a box (and its region) to the region's bounding box."""
    spans = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hit = np.nonzero(region.any(axis=other))[0]
        spans.append((int(hit[0]), int(hit[-1]) + 1))
    inner = tuple(slice(lo, hi) for lo, hi in spans)
    outer = tuple(
        slice(b.start + s.start, b.start + s.stop) for b, s in zip(box, inner, strict=True)
    )
    return outer, region[inner]


def _pleural_band_box(c: _Canvas, side: int, t_range: tuple[float, float]) -> Box | None:
    """Voxel box of one hemithorax between two normalised heights."""
    x0, x1 = _side_x_range(c.anat, side)
    return c.grid.box(
        (x0, c.anat.cav_cy - c.anat.cav_ry, c.grid.z_at(t_range[0])),
        (x1, c.anat.cav_cy + c.anat.cav_ry, c.grid.z_at(t_range[1])),
    )


def _base_t(anat: _Anatomy, side: int) -> float:
    """Lowest height of one lung (costophrenic recess), minus a margin."""
    return anat.dome_t[_side_index(side)] - DOME_DEPTH_T - RECESS_T - BASE_MARGIN_T


def _paint_fibrosis(
    rng: np.random.Generator, c: _Canvas, channel: int, value: int, side: int, code: str
) -> _Placed | None:
    """Subpleural basal band of reticulation / honeycomb cysts / linear bands."""
    anat = c.anat
    t_top = anat.dome_t[_side_index(side)] + _uniform(rng, FIBROSIS_TOP_T)
    box = _pleural_band_box(c, side, (_base_t(anat, side), t_top))
    if box is None:
        return None
    xs, ys, zs = c.grid.coords(box)
    cx, cy, rx, ry = _lung_ellipse(anat, side, c.grid.t(zs))
    u, v = (xs - cx) / rx, (ys - cy) / ry
    depth_lung = (1 - np.sqrt(u**2 + v**2)) * np.sqrt(rx * ry)
    cavity = np.sqrt(_ellipse(xs, ys, anat.cx, anat.cav_cy, anat.cav_rx, anat.cav_ry))
    depth_cavity = (1 - cavity) * math.sqrt(anat.cav_rx * anat.cav_ry)
    band = np.minimum(depth_lung, depth_cavity) < _uniform(rng, FIBROSIS_BAND_MM)
    band &= (u * side > FIBROSIS_LATERAL) | (v > FIBROSIS_POSTERIOR)
    region = band & c.free(box)
    if not region.any():
        return None
    box, region = _tight(box, region)
    cell_range, stretch, cell_hu, wall_hu = FIBROSIS_STYLES[code]
    cell_mm = max(_uniform(rng, cell_range), FIBROSIS_MIN_CELL_VOXELS * c.grid.spacing[0])
    walls = _voronoi_walls(rng, region.shape, c.grid.spacing, cell_mm, stretch)
    c.commit(
        box,
        region & ~walls,
        channel,
        value,
        cell_hu,
        LOW_ATTENUATION if cell_hu < anat.lung_hu else LESION_LUNG,
    )
    c.commit(box, region & walls, channel, value, _uniform(rng, wall_hu), SOLID)
    return _Placed(c.grid.center_of(box, region), 0.0)


def _crescent(c: _Canvas, box: Box, side: int, thickness, anterior: bool) -> np.ndarray:
    """Pleural crescent along the posterior (or anterior) wall of one lung.

    ``thickness`` (fraction of the lung's ry, per slice) is the depth at the back; the
    crescent climbs laterally like a meniscus and vanishes where the thickness is 0.
    """
    xs, ys, zs = c.grid.coords(box)
    cx, cy, rx, ry = _lung_ellipse(c.anat, side, c.grid.t(zs))
    u, v = (xs - cx) / rx, (ys - cy) / ry
    if anterior:
        v = -v
    # An ellipse's edge near v = 1 is v ~ 1 - u^2 / 2; the extra term makes the meniscus.
    return v > 1 - thickness - (0.5 + EFFUSION_MENISCUS * thickness) * u**2


def _paint_effusion(
    rng: np.random.Generator, c: _Canvas, channel: int, value: int, side: int, code: str
) -> _Placed | None:
    """Dependent (posterior) fluid crescent at the lung base, thickest at the bottom."""
    anat = c.anat
    t_bottom = _base_t(anat, side)
    t_top = anat.dome_t[_side_index(side)] + _uniform(rng, EFFUSION_TOP_T)
    box = _pleural_band_box(c, side, (t_bottom, t_top))
    if box is None:
        return None
    depth = _uniform(rng, EFFUSION_THICKNESS)
    t = c.grid.t(c.grid.coords(box)[2])
    profile = np.clip((t_top - t) / EFFUSION_TAPER_T, 0.0, 1.0) ** EFFUSION_PROFILE
    region = _crescent(c, box, side, depth * profile, anterior=False) & c.free(box)
    if not region.any():
        return None
    c.commit(box, region, channel, value, _uniform(rng, EFFUSION_HU), FLUID)
    return _Placed(c.grid.center_of(box, region), 0.0, depth)


def _paint_pneumothorax(
    rng: np.random.Generator, c: _Canvas, channel: int, value: int, side: int, code: str
) -> _Placed | None:
    """Non-dependent (anterior) air crescent (unused code 2g)."""
    box = _pleural_band_box(c, side, PNEUMOTHORAX_T)
    if box is None:
        return None
    depth = _uniform(rng, PNEUMOTHORAX_THICKNESS)
    t = c.grid.t(c.grid.coords(box)[2])
    mid, half = sum(PNEUMOTHORAX_T) / 2, (PNEUMOTHORAX_T[1] - PNEUMOTHORAX_T[0]) / 2
    profile = np.sqrt(np.clip(1 - ((t - mid) / half) ** 2, 0.0, 1.0))
    region = _crescent(c, box, side, depth * profile, anterior=True) & c.free(box)
    if not region.any():
        return None
    c.commit(box, region, channel, value, TISSUES[AIR][0], LOW_ATTENUATION)
    return _Placed(c.grid.center_of(box, region), 0.0, depth)
