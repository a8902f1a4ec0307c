"""Shapes in patient mm shared by the anatomy and lesion painters: sides, lungs, domes."""

from __future__ import annotations

import numpy as np

from .anatomy import _Anatomy
from .grid import _Grid

RIGHT, LEFT = -1, 1  # side of the body (sign of x)
LUNG_CX_FRAC = 0.48  # lung ellipse centre, fraction of the cavity semi-axis from the midline
LUNG_RX_FRAC = 0.50  # lung ellipse semi-axes, fractions of the cavity's
LUNG_RY_FRAC = 0.90
LUNG_CY_FRAC = 0.06  # lung ellipse centre, posterior offset as a fraction of cavity ry
APEX_TAPER_T = 0.30  # the lungs narrow over this height below the apex
APEX_POSTERIOR_SHIFT = 0.25  # ... and move posteriorly (fraction of cavity ry)
DOME_DEPTH_T = 0.17  # dome height minus the lung-edge height
RECESS_T = 0.06  # extra depth of the posterior costophrenic recess


def _ellipse(x, y, cx: float, cy: float, rx, ry):
    """Squared normalised elliptic radius (<= 1 inside)."""
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2


def _side_index(side: int) -> int:
    """Index of a side (RIGHT / LEFT) into per-side pairs such as dome_t."""
    return 0 if side == RIGHT else 1


def _side_x_range(anat: _Anatomy, side: int) -> tuple[float, float]:
    """x range of one hemithorax."""
    if side == RIGHT:
        return anat.cx - anat.cav_rx, anat.cx
    return anat.cx, anat.cx + anat.cav_rx


def _lung_ellipse(anat: _Anatomy, side: int, t):
    """Centre and semi-axes of one lung's cross-section at heights t (tapering to the apex)."""
    taper = np.sqrt(np.clip((anat.apex_t - t) / APEX_TAPER_T, 0.0, 1.0))
    cx = anat.cx + side * LUNG_CX_FRAC * anat.cav_rx
    cy = anat.cav_cy + anat.cav_ry * (LUNG_CY_FRAC + (1 - taper) * APEX_POSTERIOR_SHIFT)
    rx = np.maximum(LUNG_RX_FRAC * anat.cav_rx * taper, 1e-3)
    ry = np.maximum(LUNG_RY_FRAC * anat.cav_ry * taper, 1e-3)
    return cx, cy, rx, ry


def _dome_z(anat: _Anatomy, grid: _Grid, side: int, xs, ys):
    """Height (mm) of one hemidiaphragm under (xs, ys): highest under the lung's centre."""
    cx, cy, rx, ry = _lung_ellipse(anat, side, 0.0)
    v = (ys - cy) / ry
    t = (
        anat.dome_t[_side_index(side)]
        - DOME_DEPTH_T * _ellipse(xs, ys, cx, cy, rx, ry)
        - RECESS_T * np.clip(v, 0.0, 1.0)
    )
    return grid.z_at(t)


def _dome_both(anat: _Anatomy, grid: _Grid, xs, ys):
    """Height (mm) of the higher hemidiaphragm under (xs, ys)."""
    return np.maximum(_dome_z(anat, grid, RIGHT, xs, ys), _dome_z(anat, grid, LEFT, xs, ys))


def _segment_distance(xs, ys, zs, p0: np.ndarray, p1: np.ndarray):
    """Distance (mm) to the segment p0-p1, and the position along it (0..1)."""
    v = p1 - p0
    vv = max(float(v @ v), 1e-9)
    wx, wy, wz = xs - p0[0], ys - p0[1], zs - p0[2]
    lam = np.clip((wx * v[0] + wy * v[1] + wz * v[2]) / vv, 0.0, 1.0)
    d2 = (wx - lam * v[0]) ** 2 + (wy - lam * v[1]) ** 2 + (wz - lam * v[2]) ** 2
    return np.sqrt(d2), lam
