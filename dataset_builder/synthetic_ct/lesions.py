"""Paint the focal lesions: nodule, ground glass, consolidation, emphysema, airway, micronodules."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .anatomy import _uniform
from .canvas import _Canvas, _Placed
from .grid import Box
from .shapes import _lung_ellipse, _segment_distance, _side_x_range
from .tissues import (
    CONSOLIDATION,
    LESION_LUNG,
    LOW_ATTENUATION,
    LUNG,
    LUNG_AIRWAY,
    SOLID,
    TISSUES,
    VESSEL,
)

# --------------------------------------------------------------------------------------------
# Lesion sizes and placement
# --------------------------------------------------------------------------------------------
LESION_AREA_FACTOR = (1.5, 6.0)  # largest cross-section / builder threshold, per instance
AIRWAY_AREA_FACTOR = (1.5, 4.0)  # the same for bronchial clusters
LESION_ASPECT = (0.75, 1.3)  # in-plane semi-axis ratio ry / rx
LESION_DEPTH_RATIO = (0.8, 1.2)  # craniocaudal semi-axis / mean in-plane semi-axis
LESION_MIN_RZ_SLICES = 2.0  # ... but at least this many slice spacings
LESION_BOX_PAD = 1.35  # bounding box half-size / semi-axis (room for lobulation)
WOBBLE_WAVES = 3  # plane waves that make lesion outlines irregular
WOBBLE_FREQUENCY = (1.5, 3.0)  # their frequency, radians per normalised radius
CENTER_CANDIDATES = 256  # candidate lesion centres tried at once
CENTER_ATTEMPTS = 4  # rounds of candidates; the required depth halves after each

# --------------------------------------------------------------------------------------------
# Lesion appearance
# --------------------------------------------------------------------------------------------
NODULE_HU = (30.0, 60.0)
NODULE_LOBULATION = 0.08  # outline irregularity (fraction of the radius)
NODULE_T = (0.30, 0.88)  # heights where nodules are placed
NODULE_DEPTH_FRAC = 0.8  # centre at least this fraction of the radius inside the lung
GGO_HU = (-600.0, -470.0)
GGO_EDGE = 0.35  # soft edge width, fraction of the radius
GGO_MASK_WEIGHT = 0.5  # the mask is where the ground-glass weight reaches this
GGO_TEXTURE_HU = 25.0  # low-frequency heterogeneity
GGO_TEXTURE_MM = 4.0
GGO_IRREGULARITY = 0.2
GGO_T = (0.25, 0.90)
GGO_DEPTH_FRAC = 0.5
CONSOLIDATION_HU = (15.0, 45.0)
CONSOLIDATION_IRREGULARITY = 0.22
CONSOLIDATION_T = (0.20, 0.70)
CONSOLIDATION_DEPTH_FRAC = 0.25  # shallow: consolidation abuts the pleura ...
CONSOLIDATION_PLEURA_FRAC = 0.8  # ... which is within this fraction of its radius
CONSOLIDATION_CLIP_GAIN = 1.2  # radii gain that makes up for the part cut by the pleura
BRONCHOGRAMS = (2, 5)  # air bronchograms per consolidation (range)
BRONCHOGRAM_R_MM = (1.2, 2.0)
BRONCHOGRAM_HU = -920.0
BRONCHOGRAM_START = 0.7  # bronchograms start this fraction of the radius medial of the centre
BRONCHOGRAM_LENGTH = 1.4  # ... and run this many radii outward
BRONCHOGRAM_SPREAD = (0.6, 0.6, 0.3)  # random deviation of their direction (x, y, z)
EMPHYSEMA_HU = (-945.0, -925.0)  # background of the emphysematous region
EMPHYSEMA_LAA_HU = -990.0  # low-attenuation areas
EMPHYSEMA_LAA_QUANTILE = 0.65  # share of the region that is not a low-attenuation area
EMPHYSEMA_CLUSTER_MM = 2.5  # size of the low-attenuation clusters
EMPHYSEMA_IRREGULARITY = 0.25
EMPHYSEMA_T = (0.62, 0.90)  # upper zones
EMPHYSEMA_DEPTH_FRAC = 0.4
AIRWAY_T = (0.20, 0.65)
AIRWAY_DEPTH_FRAC = 0.5
AIRWAY_STYLES = {  # code: (lumen radius mm, wall mm)
    "1b": ((3.5, 6.5), (1.2, 2.0)),  # dilated bronchi
    "1a": ((1.8, 3.0), (2.5, 3.5)),  # thick-walled bronchi
}
AIRWAY_WALL_HU = (20.0, 50.0)
AIRWAY_TUBES = 12  # bronchi tried per cluster
AIRWAY_TUBE_GAP_MM = 1.5  # space between neighbouring bronchi
AIRWAY_SPREAD = 0.85  # bronchi lie within this fraction of the cluster's radii
AIRWAY_DRIFT = 0.25  # in-plane drift of a bronchus per mm of height
ARTERY_RATIO = 0.6  # companion artery radius / lumen radius (signet ring)
ARTERY_GAP_MM = 0.5  # between bronchial wall and artery
ARTERY_TURN = 1.5  # angle (radians) between the bronchus offset and its artery
MICRONODULE_HU = (-200.0, -50.0)
MICRONODULE_SIGMA_MM = 1.2
MICRONODULE_QUANTILE = 0.93


def _inplane_radii(rng: np.random.Generator, area: float) -> tuple[float, float]:
    """Semi-axes (rx, ry) of an ellipse of the given area."""
    aspect = _uniform(rng, LESION_ASPECT)
    rx = math.sqrt(area / (math.pi * aspect))
    return rx, rx * aspect


def _lesion_radii(rng: np.random.Generator, area: float, slice_mm: float) -> np.ndarray:
    """Ellipsoid semi-axes (rx, ry, rz) whose largest axial section has the given area.

    rz is at least LESION_MIN_RZ_SLICES slice spacings, so a lesion spans several slices
    even on coarse grids.
    """
    rx, ry = _inplane_radii(rng, area)
    rz = math.sqrt(rx * ry) * _uniform(rng, LESION_DEPTH_RATIO)
    return np.array([rx, ry, max(rz, LESION_MIN_RZ_SLICES * slice_mm)])


def _sample_center(
    rng: np.random.Generator,
    c: _Canvas,
    side: int,
    t_range: tuple[float, float],
    reach: np.ndarray,
    pleura_within: float = 0.0,
) -> np.ndarray | None:
    """A free lung point whose neighbours +-reach along each axis are free lung too.

    With ``pleura_within`` > 0 the point must also lie that close (mm, in-plane, outward
    from the lung's centre) to the lung's edge, so the lesion abuts the pleura; the last
    attempt drops that wish.
    """
    anat, grid = c.anat, c.grid
    x0, x1 = _side_x_range(anat, side)
    lo = (x0, anat.cav_cy - anat.cav_ry, grid.z_at(t_range[0]))
    hi = (x1, anat.cav_cy + anat.cav_ry, grid.z_at(t_range[1]))
    offsets = np.vstack([np.zeros(3), np.diag(np.ones(3)), -np.diag(np.ones(3))])
    for attempt in range(CENTER_ATTEMPTS):
        points = rng.uniform(lo, hi, size=(CENTER_CANDIDATES, 3))
        probes = points[:, None, :] + offsets[None] * reach
        ok = c.free_at(probes.reshape(-1, 3)).reshape(CENTER_CANDIDATES, -1).all(axis=1)
        if pleura_within > 0 and attempt < CENTER_ATTEMPTS - 1:
            cx, cy, _, _ = _lung_ellipse(anat, side, grid.t(points[:, 2]))
            outward = np.stack([points[:, 0] - cx, points[:, 1] - cy, np.zeros(len(points))], 1)
            outward /= np.maximum(np.linalg.norm(outward, axis=1, keepdims=True), 1e-6)
            ok &= ~c.lung_at(points + pleura_within * outward)
        if ok.any():
            return points[int(np.argmax(ok))]
        reach = reach / 2
    return None


def _lesion_box(c: _Canvas, center: np.ndarray, radii: np.ndarray):
    """Bounding box of an (irregular) ellipsoid and its broadcastable mm coordinates."""
    box = c.grid.box(center - LESION_BOX_PAD * radii, center + LESION_BOX_PAD * radii)
    return box, (c.grid.coords(box) if box else None)


def _blob_rho(
    rng: np.random.Generator, coords, center: np.ndarray, radii: np.ndarray, irregularity: float
) -> np.ndarray:
    """Normalised radius of an irregular ellipsoid (<= 1 inside)."""
    xs, ys, zs = coords
    u = (xs - center[0]) / radii[0]
    v = (ys - center[1]) / radii[1]
    w = (zs - center[2]) / radii[2]
    rho = np.sqrt(u**2 + v**2 + w**2)
    if irregularity > 0:
        wobble = 0.0
        for _ in range(WOBBLE_WAVES):
            k = rng.normal(size=3)
            k *= _uniform(rng, WOBBLE_FREQUENCY) / np.linalg.norm(k)
            wobble = wobble + np.sin(k[0] * u + k[1] * v + k[2] * w + rng.uniform(0, 2 * np.pi))
        rho = rho / (1 + irregularity * wobble / WOBBLE_WAVES)
    return rho


def _smooth_noise(rng: np.random.Generator, shape, spacing, sigma_mm: float) -> np.ndarray:
    """Gaussian-smoothed noise with unit standard deviation."""
    noise = ndimage.gaussian_filter(
        rng.standard_normal(shape, dtype=np.float32), [sigma_mm / s for s in spacing]
    )
    return noise / max(float(noise.std()), 1e-6)


def _place_free_blob(
    rng: np.random.Generator,
    c: _Canvas,
    side: int,
    area_factor: tuple[float, float],
    t_range: tuple[float, float],
    depth_frac: float,
    irregularity: float,
) -> tuple[np.ndarray, np.ndarray, Box, tuple[np.ndarray, ...], np.ndarray] | None:
    """Draw a blob's size and centre and return (center, radii, box, coords, region), the region
    limited to voxels no other finding holds; None if it does not fit."""
    radii = _lesion_radii(rng, c.min_area * _uniform(rng, area_factor), c.grid.spacing[2])
    center = _sample_center(rng, c, side, t_range, depth_frac * radii)
    if center is None:
        return None
    box, coords = _lesion_box(c, center, radii)
    region = (_blob_rho(rng, coords, center, radii, irregularity) <= 1) & c.free(box)
    if not region.any():
        return None
    return center, radii, box, coords, region


def _paint_nodule(
    rng: np.random.Generator, c: _Canvas, channel: int, value: int, side: int, code: str
) -> _Placed | None:
    """Solid round nodule / mass with a sharp, slightly lobulated edge."""
    placed = _place_free_blob(
        rng, c, side, LESION_AREA_FACTOR, NODULE_T, NODULE_DEPTH_FRAC, NODULE_LOBULATION
    )
    if placed is None:
        return None
    center, radii, box, coords, region = placed
    c.commit(box, region, channel, value, _uniform(rng, NODULE_HU), SOLID)
    return _Placed(center, 2 * float(max(radii[:2])))


def _paint_ggo(
    rng: np.random.Generator, c: _Canvas, channel: int, value: int, side: int, code: str
) -> _Placed | None:
    """Hazy ground glass with a soft edge; vessels inside stay visible."""
    radii = _lesion_radii(rng, c.min_area * _uniform(rng, LESION_AREA_FACTOR), c.grid.spacing[2])
    mask_rho = 1 - GGO_EDGE * GGO_MASK_WEIGHT  # normalised radius of the mask edge
    radii = radii / mask_rho  # so that the mask has the drawn area
    center = _sample_center(rng, c, side, GGO_T, GGO_DEPTH_FRAC * radii)
    if center is None:
        return None
    box, coords = _lesion_box(c, center, radii)
    rho = _blob_rho(rng, coords, center, radii, GGO_IRREGULARITY)
    weight = np.clip((1 - rho) / GGO_EDGE, 0.0, 1.0)
    weight = weight * weight * (3 - 2 * weight)  # smoothstep
    free = c.free(box)
    parenchyma = free & (c.labels[box] == LUNG)
    shape = parenchyma.shape
    target = _uniform(rng, GGO_HU) + GGO_TEXTURE_HU * _smooth_noise(
        rng, shape, c.grid.spacing, GGO_TEXTURE_MM
    )
    hu = c.hu[box]
    hu[parenchyma] += ((target - hu) * weight)[parenchyma]
    region = (weight >= GGO_MASK_WEIGHT) & free
    if not region.any():
        return None
    c.claim(box, region, channel, value)
    c.labels[box][region & parenchyma] = LESION_LUNG
    return _Placed(center, 2 * float(max(radii[:2])) * mask_rho)


def _paint_consolidation(
    rng: np.random.Generator, c: _Canvas, channel: int, value: int, side: int, code: str
) -> _Placed | None:
    """Dense irregular consolidation with a few air bronchograms."""
    radii = CONSOLIDATION_CLIP_GAIN * _lesion_radii(
        rng, c.min_area * _uniform(rng, LESION_AREA_FACTOR), c.grid.spacing[2]
    )
    reach = CONSOLIDATION_DEPTH_FRAC * radii
    pleura = CONSOLIDATION_PLEURA_FRAC * float(radii[:2].mean())
    center = _sample_center(rng, c, side, CONSOLIDATION_T, reach, pleura)
    if center is None:
        return None
    box, coords = _lesion_box(c, center, radii)
    region = _blob_rho(rng, coords, center, radii, CONSOLIDATION_IRREGULARITY) <= 1
    region &= c.free(box)
    if not region.any():
        return None
    c.commit(box, region, channel, value, _uniform(rng, CONSOLIDATION_HU), CONSOLIDATION)
    outward = np.array([center[0] - c.anat.cx, 0.0, 0.0])
    outward /= max(float(np.linalg.norm(outward)), 1e-6)
    mean_r = float(radii.mean())
    start = center - BRONCHOGRAM_START * mean_r * outward
    air = np.zeros_like(region)
    for _ in range(int(rng.integers(BRONCHOGRAMS[0], BRONCHOGRAMS[1]))):
        direction = outward + rng.normal(size=3) * np.array(BRONCHOGRAM_SPREAD)
        end = start + BRONCHOGRAM_LENGTH * mean_r * direction / np.linalg.norm(direction)
        d, _ = _segment_distance(*coords, start, end)
        air |= d <= _uniform(rng, BRONCHOGRAM_R_MM)
    air &= region
    c.hu[box][air] = BRONCHOGRAM_HU
    c.labels[box][air] = LUNG_AIRWAY
    return _Placed(center, 2 * float(max(radii[:2])))


def _paint_emphysema(
    rng: np.random.Generator, c: _Canvas, channel: int, value: int, side: int, code: str
) -> _Placed | None:
    """Upper-zone region of low attenuation with clusters of near-air areas, vessels pruned."""
    radii = _lesion_radii(rng, c.min_area * _uniform(rng, LESION_AREA_FACTOR), c.grid.spacing[2])
    center = _sample_center(rng, c, side, EMPHYSEMA_T, EMPHYSEMA_DEPTH_FRAC * radii)
    if center is None:
        return None
    box, coords = _lesion_box(c, center, radii)
    region = _blob_rho(rng, coords, center, radii, EMPHYSEMA_IRREGULARITY) <= 1
    region &= c.free(box)
    if not region.any():
        return None
    clusters = _smooth_noise(rng, region.shape, c.grid.spacing, EMPHYSEMA_CLUSTER_MM)
    holes = clusters > np.quantile(clusters, EMPHYSEMA_LAA_QUANTILE)
    hu = np.where(holes, EMPHYSEMA_LAA_HU, _uniform(rng, EMPHYSEMA_HU)).astype(np.float32)
    c.commit(box, region, channel, value, hu, LOW_ATTENUATION)
    return _Placed(center, 2 * float(max(radii[:2])))


def _paint_airway(
    rng: np.random.Generator, c: _Canvas, channel: int, value: int, side: int, code: str
) -> _Placed | None:
    """Cluster of dilated (1b) or thick-walled (1a) bronchi seen end-on, with companion arteries."""
    blob = _place_free_blob(rng, c, side, AIRWAY_AREA_FACTOR, AIRWAY_T, AIRWAY_DEPTH_FRAC, 0.0)
    if blob is None:
        return None
    center, radii, box, coords, region = blob
    lumen_range, wall_range = AIRWAY_STYLES[code]
    hu = c.hu[box].copy()
    labels = np.where(c.labels[box] == LUNG, LESION_LUNG, c.labels[box]).astype(np.uint8)
    placed: list[tuple[np.ndarray, float]] = []
    for _ in range(AIRWAY_TUBES):
        lumen, wall = _uniform(rng, lumen_range), _uniform(rng, wall_range)
        angle, frac = rng.uniform(0, 2 * np.pi), math.sqrt(rng.random()) * AIRWAY_SPREAD
        offset = np.array([math.cos(angle) * radii[0], math.sin(angle) * radii[1]]) * frac
        if any(
            np.linalg.norm(offset - o) < lumen + wall + r + AIRWAY_TUBE_GAP_MM for o, r in placed
        ):
            continue
        placed.append((offset, lumen + wall))
        drift = rng.uniform(-AIRWAY_DRIFT, AIRWAY_DRIFT, size=2) * radii[2]
        base = center + np.array([*offset, 0.0])
        half = np.array([*drift, radii[2]]) * LESION_BOX_PAD
        ends = (base - half, base + half)
        d, _ = _segment_distance(*coords, *ends)
        ring = d <= lumen + wall
        hu[ring] = _uniform(rng, AIRWAY_WALL_HU)
        labels[ring] = SOLID
        hu[d <= lumen] = TISSUES[LUNG_AIRWAY][0]
        labels[d <= lumen] = LUNG_AIRWAY
        turn = angle + ARTERY_TURN
        artery_at = np.array([math.cos(turn), math.sin(turn), 0.0])
        artery_at *= lumen + wall + ARTERY_RATIO * lumen + ARTERY_GAP_MM
        d, _ = _segment_distance(*coords, ends[0] + artery_at, ends[1] + artery_at)
        artery = (d <= ARTERY_RATIO * lumen) & ~ring
        hu[artery] = TISSUES[VESSEL][0]
        labels[artery] = VESSEL
    c.commit(box, region, channel, value, hu, LESION_LUNG)
    c.labels[box][region] = labels[region]
    return _Placed(center, 2 * float(max(radii[:2])))


def _paint_micronodules(
    rng: np.random.Generator, c: _Canvas, channel: int, value: int, side: int, code: str
) -> _Placed | None:
    """Region of tiny centrilobular / tree-in-bud nodules (unused code 1e)."""
    placed = _place_free_blob(
        rng, c, side, LESION_AREA_FACTOR, GGO_T, GGO_DEPTH_FRAC, GGO_IRREGULARITY
    )
    if placed is None:
        return None
    center, radii, box, coords, region = placed
    dots = _smooth_noise(rng, region.shape, c.grid.spacing, MICRONODULE_SIGMA_MM)
    dots = dots > np.quantile(dots, MICRONODULE_QUANTILE)
    c.commit(box, region & ~dots, channel, value, c.hu[box], LESION_LUNG)
    c.commit(box, region & dots, channel, value, _uniform(rng, MICRONODULE_HU), SOLID)
    return _Placed(center, 2 * float(max(radii[:2])))
