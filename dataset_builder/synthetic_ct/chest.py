"""Paint the anatomy: the label volume (H, W, D) of the whole chest."""

from __future__ import annotations

import math

import numpy as np

from .anatomy import _Anatomy, _uniform
from .grid import Box, _Grid
from .shapes import (
    DOME_DEPTH_T,
    LEFT,
    RECESS_T,
    RIGHT,
    _dome_both,
    _dome_z,
    _ellipse,
    _lung_ellipse,
    _segment_distance,
    _side_index,
    _side_x_range,
)
from .tissues import (
    _IS_LUNG,
    ABDOMEN,
    AIR,
    AIRWAY,
    BONE_CORTEX,
    BONE_MARROW,
    CSF,
    FAT,
    HEART,
    LIVER,
    LUNG,
    LUNG_AIRWAY,
    MUSCLE,
    PERI_FAT,
    RIB,
    SOFT,
    VESSEL,
    _label_set,
)

BODY_BACK_FLAT = 0.95  # the back is flattened by the table at this fraction of the semi-axis
PLEURA_GAP_MM = 1.5  # lungs stay this far inside the cavity wall
LIVER_X_MM = 10.0  # below the right dome up to this far left of the midline: liver
MEDIASTINUM_CY_FRAC = -0.10  # mediastinum centre, fraction of cavity ry (negative = anterior)
MEDIASTINUM_RY_FRAC = 0.80  # ... and its antero-posterior semi-axis, fraction of cavity ry
HEART_CY_FRAC = -0.25  # heart centre, fraction of cavity ry (anterior)
HEART_RY_FRAC = 0.55  # heart antero-posterior semi-axis, fraction of cavity ry
HEART_LIFT = 0.45  # heart centre above the left dome top, fraction of its rz
PERICARDIAL_FAT_FRAC = 0.06  # outer shell of the heart ellipsoid that is fat
CORTEX_MM = 2.0  # cortical bone thickness
CANAL_R_MM = 7.0  # spinal canal radius
CANAL_GAP_MM = 1.0  # vertebral body back edge to canal
ARCH_FRONT_FRAC = 0.5  # the neural arch starts this fraction of the canal radius behind its centre
ARCH_MM = 4.0  # neural arch thickness
SPINOUS_RX_MM, SPINOUS_RY_MM = 4.0, 8.0  # spinous process semi-axes
SPINOUS_OVERLAP_MM = 1.0  # spinous process overlaps the arch
VERTEBRA_PERIOD_MM = 26.0  # vertebra + disc height
DISC_DUTY = 0.2  # share of that height that is disc
SPINE_KEEPOUT_MM = 4.0  # lungs stay this far from the vertebral body
AORTA_KEEPOUT_MM = 2.0  # lungs stay this far from the aorta
ARCH_ABOVE_CARINA_T = 0.08  # aortic arch height above the carina
ARCH_HALF_T = 0.025  # half-height of the arch
ASC_AORTA_X_MM = -12.0  # ascending aorta, toward the patient's right
ASC_AORTA_CY_FRAC = -0.35  # ... and anterior, fraction of cavity ry
AIRWAY_WALL_MM = 2.0  # trachea and main bronchi wall
HILUM_X_FRAC = 0.30  # hilum, fraction of cavity rx from the midline
HILUM_DY_MM = -4.0  # hilum relative to the trachea (negative = anterior)
HILUM_DROP_T = 0.07  # hilum below the carina
MAIN_BRONCHUS_R_MM = (6.5, 5.0)  # main bronchus lumen radius, carina -> hilum
LOBAR_BRONCHI = 3  # bronchi per lung drawn from the hilum
LOBAR_BRONCHUS_R_MM = (4.0, 1.6)  # their lumen radius, hilum -> periphery
LOBAR_WALL_MM = 1.2
PRIMARY_VESSELS = (7, 10)  # pulmonary vessels per lung from the hilum (range)
PRIMARY_VESSEL_R_MM = (4.5, 1.8)  # radius, hilum -> periphery
SECONDARY_VESSELS = 2  # branches per primary vessel
SECONDARY_VESSEL_R_MM = (2.2, 1.0)
SECONDARY_LENGTH_MM = (30.0, 60.0)
SECONDARY_START = (0.35, 0.7)  # where along the primary a branch leaves
VESSEL_HILUM_DY_MM = -8.0  # vessels leave the hilum anterior to the bronchi
TUBE_CHUNK_MM = 20.0  # tubes are drawn in pieces this long (tight bounding boxes)
RIB_THICKNESS_MM = 7.0  # rib band outside the cavity
RIB_PERIOD_MM = 27.0  # rib + intercostal space height
RIB_DUTY = 0.4  # share of that height that is rib
RIB_DROP_MM = 110.0  # a rib runs this much lower anteriorly than posteriorly
RIB_CARTILAGE_X_MM = 30.0  # no rib within this of the midline anteriorly
STERNUM_OFFSET_MM = 6.0  # sternum centre in front of the cavity
STERNUM_RX_MM, STERNUM_RY_MM = 14.0, 6.0
STERNUM_T = (0.35, 0.85)
CANDIDATE_OVERSAMPLE = 8  # candidate points per wanted lung point


def _cavity_box(anat: _Anatomy, grid: _Grid, z_lo: float, z_hi: float) -> Box | None:
    """Voxel box of the thoracic cavity between two heights (mm)."""
    lo = (anat.cx - anat.cav_rx, anat.cav_cy - anat.cav_ry, z_lo)
    hi = (anat.cx + anat.cav_rx, anat.cav_cy + anat.cav_ry, z_hi)
    return grid.box(lo, hi)


def _axial_template(anat: _Anatomy, xg: np.ndarray, yg: np.ndarray) -> np.ndarray:
    """z-invariant labels of one slice: air, fat, muscle, cavity (soft tissue)."""
    labels = np.full(np.broadcast_shapes(xg.shape, yg.shape), AIR, dtype=np.uint8)
    body = _ellipse(xg, yg, anat.cx, anat.cy, anat.body_rx, anat.body_ry) <= 1
    body &= (yg - anat.cy) <= BODY_BACK_FLAT * anat.body_ry
    inner = _ellipse(xg, yg, anat.cx, anat.cy, anat.body_rx - anat.fat, anat.body_ry - anat.fat)
    labels[body] = FAT
    labels[body & (inner <= 1)] = MUSCLE
    labels[_ellipse(xg, yg, anat.cx, anat.cav_cy, anat.cav_rx, anat.cav_ry) <= 1] = SOFT
    return labels


def _lung_allowed_2d(anat: _Anatomy, xg: np.ndarray, yg: np.ndarray) -> np.ndarray:
    """Where lungs may be in-plane: inside the pleura, outside mediastinum, spine and aorta."""
    inside = (
        _ellipse(
            xg, yg, anat.cx, anat.cav_cy, anat.cav_rx - PLEURA_GAP_MM, anat.cav_ry - PLEURA_GAP_MM
        )
        <= 1
    )
    mediastinum = (
        _ellipse(
            xg,
            yg,
            anat.cx,
            anat.cav_cy + MEDIASTINUM_CY_FRAC * anat.cav_ry,
            anat.mediastinum_rx,
            MEDIASTINUM_RY_FRAC * anat.cav_ry,
        )
        <= 1
    )
    spine_r = anat.vertebra_r + SPINE_KEEPOUT_MM
    spine = (xg - anat.cx) ** 2 + (yg - anat.vertebra_y) ** 2 <= spine_r**2
    ax, ay = anat.aorta_xy
    aorta = (xg - ax) ** 2 + (yg - ay) ** 2 <= (anat.aorta_r + AORTA_KEEPOUT_MM) ** 2
    return inside & ~mediastinum & ~spine & ~aorta


def _paint_abdomen(labels: np.ndarray, anat: _Anatomy, grid: _Grid, cavity: np.ndarray) -> None:
    """Liver (right) and other abdomen below the diaphragm."""
    box = _cavity_box(anat, grid, float(grid.z[0]) - 1, grid.z_at(max(anat.dome_t)))
    if box is None:
        return
    xs, ys, zs = grid.coords(box)
    below = (zs < _dome_both(anat, grid, xs, ys)) & cavity[box[0], box[1]][:, :, None]
    liver = xs < anat.cx + LIVER_X_MM
    sub = labels[box]
    sub[below & liver] = LIVER
    sub[below & ~liver] = ABDOMEN


def _paint_lungs(labels: np.ndarray, anat: _Anatomy, grid: _Grid, allowed: np.ndarray) -> None:
    """Both lungs: tapered ellipses above their hemidiaphragm."""
    for side in (RIGHT, LEFT):
        x0, x1 = _side_x_range(anat, side)
        z0 = grid.z_at(anat.dome_t[_side_index(side)] - DOME_DEPTH_T - RECESS_T)
        box = grid.box(
            (x0, anat.cav_cy - anat.cav_ry, z0),
            (x1, anat.cav_cy + anat.cav_ry, grid.z_at(anat.apex_t)),
        )
        if box is None:
            continue
        xs, ys, zs = grid.coords(box)
        cx, cy, rx, ry = _lung_ellipse(anat, side, grid.t(zs))
        lung = _ellipse(xs, ys, cx, cy, rx, ry) <= 1
        lung &= allowed[box[0], box[1]][:, :, None]
        lung &= zs > _dome_z(anat, grid, side, xs, ys)
        labels[box][lung] = LUNG


def _paint_heart(labels: np.ndarray, anat: _Anatomy, grid: _Grid) -> None:
    """Heart ellipsoid on the diaphragm, with a pericardial fat rim."""
    center = np.array(
        [
            anat.cx + anat.heart_x,
            anat.cav_cy + HEART_CY_FRAC * anat.cav_ry,
            grid.z_at(anat.dome_t[1]) + HEART_LIFT * anat.heart_rz,
        ]
    )
    radii = np.array([anat.heart_rx, HEART_RY_FRAC * anat.cav_ry, anat.heart_rz])
    box = grid.box(center - radii, center + radii)
    if box is None:
        return
    xs, ys, zs = grid.coords(box)
    rho2 = (
        ((xs - center[0]) / radii[0]) ** 2
        + ((ys - center[1]) / radii[1]) ** 2
        + ((zs - center[2]) / radii[2]) ** 2
    )
    sub = labels[box]
    ok = (rho2 <= 1) & (zs > _dome_both(anat, grid, xs, ys)) & _label_set(LUNG, SOFT)[sub]
    core = rho2 <= (1 - PERICARDIAL_FAT_FRAC) ** 2
    sub[ok & ~core] = PERI_FAT
    sub[ok & core] = HEART


def _paint_tube(
    labels: np.ndarray,
    grid: _Grid,
    ends: tuple[np.ndarray, np.ndarray],
    radii: tuple[float, float],
    lumen: tuple[int, np.ndarray],
    wall: tuple[int, np.ndarray, float] | None = None,
) -> None:
    """A tapering tube: lumen label (where allowed) inside, optional wall label around it.

    ``lumen`` is (label, allowed-label table); ``wall`` is (label, table, thickness mm).
    Drawn in TUBE_CHUNK_MM pieces so each piece has a tight bounding box.
    """
    p0, p1 = (np.asarray(p, dtype=float) for p in ends)
    pieces = max(1, math.ceil(float(np.linalg.norm(p1 - p0)) / TUBE_CHUNK_MM))
    thickness = wall[2] if wall else 0.0
    for i in range(pieces):
        f0, f1 = i / pieces, (i + 1) / pieces
        q0, q1 = p0 + f0 * (p1 - p0), p0 + f1 * (p1 - p0)
        r0 = radii[0] + f0 * (radii[1] - radii[0])
        r1 = radii[0] + f1 * (radii[1] - radii[0])
        reach = max(r0, r1) + thickness
        box = grid.box(np.minimum(q0, q1) - reach, np.maximum(q0, q1) + reach)
        if box is None:
            continue
        d, lam = _segment_distance(*grid.coords(box), q0, q1)
        r = r0 + lam * (r1 - r0)
        sub = labels[box]
        if wall:
            sub[(d <= r + thickness) & wall[1][sub]] = wall[0]
        sub[(d <= r) & lumen[1][sub]] = lumen[0]


def _lung_points(
    rng: np.random.Generator,
    labels: np.ndarray,
    grid: _Grid,
    anat: _Anatomy,
    side: int,
    count: int,
    t_range: tuple[float, float] = (0.0, 1.0),
) -> np.ndarray:
    """Up to ``count`` random mm points inside one lung (label LUNG)."""
    x0, x1 = _side_x_range(anat, side)
    lo = (x0, anat.cav_cy - anat.cav_ry, grid.z_at(t_range[0]))
    hi = (x1, anat.cav_cy + anat.cav_ry, grid.z_at(t_range[1]))
    points = rng.uniform(lo, hi, size=(count * CANDIDATE_OVERSAMPLE, 3))
    index, inside = grid.voxel(points)
    ok = inside & (labels[index[:, 0], index[:, 1], index[:, 2]] == LUNG)
    return points[ok][:count]


def _paint_airways(
    labels: np.ndarray, anat: _Anatomy, grid: _Grid, rng: np.random.Generator
) -> dict[int, np.ndarray]:
    """Trachea, main and lobar bronchi; returns the hilum point of each side."""
    soft_or_lung = _label_set(SOFT, LUNG)
    carina = np.array([anat.cx, anat.trachea_y, grid.z_at(anat.carina_t)])
    top = np.array([anat.cx, anat.trachea_y, float(grid.z[-1]) + anat.trachea_r])
    _paint_tube(
        labels,
        grid,
        (top, carina),
        (anat.trachea_r, anat.trachea_r),
        (AIRWAY, _label_set(SOFT, LUNG)),
        (SOFT, soft_or_lung, AIRWAY_WALL_MM),
    )
    hila = {}
    for side in (RIGHT, LEFT):
        hilum = np.array(
            [
                anat.cx + side * HILUM_X_FRAC * anat.cav_rx,
                anat.trachea_y + HILUM_DY_MM,
                grid.z_at(anat.carina_t - HILUM_DROP_T),
            ]
        )
        hila[side] = hilum
        _paint_tube(
            labels,
            grid,
            (carina, hilum),
            MAIN_BRONCHUS_R_MM,
            (AIRWAY, _label_set(SOFT, LUNG)),
            (SOFT, soft_or_lung, AIRWAY_WALL_MM),
        )
        for target in _lung_points(rng, labels, grid, anat, side, LOBAR_BRONCHI):
            _paint_tube(
                labels,
                grid,
                (hilum, target),
                LOBAR_BRONCHUS_R_MM,
                (LUNG_AIRWAY, _label_set(LUNG, VESSEL)),
                (VESSEL, _IS_LUNG, LOBAR_WALL_MM),
            )
    return hila


def _paint_vessels(
    labels: np.ndarray,
    anat: _Anatomy,
    grid: _Grid,
    rng: np.random.Generator,
    hila: dict[int, np.ndarray],
) -> None:
    """Pulmonary vessels: primaries from the hilum, each with a few branches."""
    in_lung = (VESSEL, _label_set(LUNG))
    for side in (RIGHT, LEFT):
        start = hila[side] + np.array([0.0, VESSEL_HILUM_DY_MM, 0.0])
        count = int(rng.integers(PRIMARY_VESSELS[0], PRIMARY_VESSELS[1] + 1))
        for target in _lung_points(rng, labels, grid, anat, side, count):
            _paint_tube(labels, grid, (start, target), PRIMARY_VESSEL_R_MM, in_lung)
            for _ in range(SECONDARY_VESSELS):
                branch = start + _uniform(rng, SECONDARY_START) * (target - start)
                direction = rng.normal(size=3)
                direction /= np.linalg.norm(direction)
                end = branch + direction * _uniform(rng, SECONDARY_LENGTH_MM)
                _paint_tube(labels, grid, (branch, end), SECONDARY_VESSEL_R_MM, in_lung)


def _paint_arch(labels: np.ndarray, anat: _Anatomy, grid: _Grid, xg, yg) -> None:
    """Aortic arch: a band from the ascending to the descending aorta over a few slices."""
    arch_t = anat.carina_t + ARCH_ABOVE_CARINA_T
    k0 = int(np.searchsorted(grid.z, grid.z_at(arch_t - ARCH_HALF_T)))
    k1 = int(np.searchsorted(grid.z, grid.z_at(arch_t + ARCH_HALF_T)))
    if k1 <= k0:
        return
    p0 = np.array([anat.cx + ASC_AORTA_X_MM, anat.cav_cy + ASC_AORTA_CY_FRAC * anat.cav_ry, 0.0])
    p1 = np.array([*anat.aorta_xy, 0.0])
    d, _ = _segment_distance(xg[:, :, None], yg[:, :, None], np.zeros((1, 1, 1)), p0, p1)
    band = d[:, :, 0] <= anat.aorta_r
    sub = labels[:, :, k0:k1]
    values = sub[band]
    values[_label_set(LUNG, SOFT)[values]] = SOFT
    sub[band] = values


def _paint_ribs(labels: np.ndarray, anat: _Anatomy, grid: _Grid, xg, yg) -> None:
    """Ribs: a band outside the cavity, present on slices by an oblique periodic pattern."""
    outer = _ellipse(
        xg, yg, anat.cx, anat.cav_cy, anat.cav_rx + RIB_THICKNESS_MM, anat.cav_ry + RIB_THICKNESS_MM
    )
    band = (outer <= 1) & (_ellipse(xg, yg, anat.cx, anat.cav_cy, anat.cav_rx, anat.cav_ry) > 1)
    band &= ~((np.abs(xg - anat.cx) < RIB_CARTILAGE_X_MM) & (yg < anat.cav_cy))
    ii, jj = np.nonzero(band)
    v = np.clip((grid.y[jj] - anat.cav_cy) / anat.cav_ry, -1, 1)
    drop = RIB_DROP_MM * (1 - v) / 2  # anterior parts lie lower
    phase = (grid.z[None, :] + drop[:, None]) / RIB_PERIOD_MM + anat.rib_phase
    values = labels[ii, jj, :]
    values[(phase % 1.0) < RIB_DUTY] = RIB
    labels[ii, jj, :] = values


def _paint_spine(labels: np.ndarray, anat: _Anatomy, grid: _Grid, xg, yg) -> None:
    """Vertebral bodies with discs, canal, neural arch, spinous process; and the sternum."""
    r2 = (xg - anat.cx) ** 2 + (yg - anat.vertebra_y) ** 2
    body = r2 <= anat.vertebra_r**2
    marrow = r2 <= (anat.vertebra_r - CORTEX_MM) ** 2
    disc = ((grid.z / VERTEBRA_PERIOD_MM + anat.rib_phase) % 1.0) < DISC_DUTY
    ii, jj = np.nonzero(body)
    column = np.where(marrow[ii, jj][:, None], BONE_MARROW, BONE_CORTEX)
    labels[ii, jj, :] = np.where(disc[None, :], SOFT, column).astype(np.uint8)
    canal_y = anat.vertebra_y + anat.vertebra_r + CANAL_R_MM + CANAL_GAP_MM
    c2 = (xg - anat.cx) ** 2 + (yg - canal_y) ** 2
    arch = (
        (c2 <= (CANAL_R_MM + ARCH_MM) ** 2) & (yg > canal_y - ARCH_FRONT_FRAC * CANAL_R_MM) & ~body
    )
    spinous_y = canal_y + CANAL_R_MM + ARCH_MM + SPINOUS_RY_MM - SPINOUS_OVERLAP_MM
    spinous = _ellipse(xg, yg, anat.cx, spinous_y, SPINOUS_RX_MM, SPINOUS_RY_MM) <= 1
    labels[arch | spinous] = BONE_CORTEX
    labels[c2 <= CANAL_R_MM**2] = CSF
    sternum = (
        _ellipse(
            xg,
            yg,
            anat.cx,
            anat.cav_cy - anat.cav_ry - STERNUM_OFFSET_MM,
            STERNUM_RX_MM,
            STERNUM_RY_MM,
        )
        <= 1
    )
    k0, k1 = (int(np.searchsorted(grid.z, grid.z_at(t))) for t in STERNUM_T)
    labels[:, :, k0:k1][sternum] = RIB


def _anatomy_labels(anat: _Anatomy, grid: _Grid, rng: np.random.Generator) -> np.ndarray:
    """Label volume (H, W, D) of the whole chest."""
    xg, yg = grid.x[:, None], grid.y[None, :]
    template = _axial_template(anat, xg, yg)
    labels = np.repeat(template[:, :, None], grid.shape[2], axis=2)
    _paint_abdomen(labels, anat, grid, template == SOFT)
    _paint_lungs(labels, anat, grid, _lung_allowed_2d(anat, xg, yg))
    _paint_heart(labels, anat, grid)
    _paint_arch(labels, anat, grid, xg, yg)
    hila = _paint_airways(labels, anat, grid, rng)
    _paint_vessels(labels, anat, grid, rng, hila)
    _paint_ribs(labels, anat, grid, xg, yg)
    _paint_spine(labels, anat, grid, xg, yg)
    return labels
