"""Grounding targets of a selected lesion: its mask, tight box and two points in the written image.

Everything refers to the ONE connected component a :class:`LesionCandidate` was selected for
(the largest qualifying component of the finding on the slice).

Frame: the image frame of ``model_training.grounding`` (pixels of the stored image; x = column,
y = row; boxes ``[x0, y0, x1, y1]`` end-exclusive; a point is the integer ``[x, y]`` of a pixel).

Rescaling (``image_size`` differs from the native slice): the component's mask is resized with
nearest neighbour, each written pixel taking the native pixel under its centre
(``floor((i + 0.5) * native / written)``, the rule of ``Frame.point_to_image``). Should that
sampling miss a thin component entirely, each native pixel's centre is mapped forward instead.
Resizing can split a component: the largest piece (the builder's ``connectivity``; ties: the
first in row-major order) is kept, so the stored mask is one connected component and the box
is exactly its tight box.

Points (ours: how U-MRG chose its two points is not published): the component is split in two
by the line through its centroid perpendicular to its principal (major) axis; in each half the
pixel farthest from the half's border (largest Euclidean distance transform; ties: the one
nearest the half's centroid, then the first in row-major order) is a point. The two points are
listed in row-major order (y, then x). A component too small to split (one pixel, or one whose
pixels all fall on one side) gives its most interior pixel twice.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.ndimage import distance_transform_edt
from skimage.measure import label

from .config import BuildOptions
from .lesions import LesionCandidate

POINT_METHOD = (
    "the component is split by the line through its centroid perpendicular to its principal "
    "(major) axis; in each half the pixel farthest from the half's border (Euclidean distance "
    "transform; ties: the one nearest the half's centroid, then the first in row-major order) "
    "is a point; the two points are listed in "
    "row-major order; a component too small to split gives its most interior pixel twice"
)  # ours: U-MRG's point choice is unpublished
_SIDE_EPS = 1e-9  # ours: a pixel on the split line (|projection| below this) goes to the 2nd half


@dataclass(frozen=True)
class GroundingTarget:
    """The grounding columns of one row, in the written image's frame."""

    mask_png: bytes  # mode "L", 0 / 255, the written image's size
    bbox: tuple[int, int, int, int]  # tight box of the mask, end-exclusive
    points: tuple[tuple[int, int], tuple[int, int]]  # [x, y] pixels inside the mask


def native_mask(candidate: LesionCandidate, native_size: tuple[int, int]) -> np.ndarray:
    """The candidate's component as a (height, width) boolean mask of the native slice."""
    if candidate.component is None:
        raise ValueError(
            f"slice {candidate.slice_index} of finding {candidate.finding_index}: the lesion "
            "candidate carries no component mask (make it with lesions.finding_candidates)"
        )
    width, height = native_size
    x0, y0, x1, y1 = candidate.box
    mask = np.zeros((height, width), dtype=bool)
    mask[y0:y1, x0:x1] = candidate.component
    return mask


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``mask`` (height, width) resized to ``size`` (width, height) by nearest neighbour: each
    written pixel takes the native pixel under its centre; if that misses every mask pixel,
    each mask pixel's centre is mapped forward instead (the mask never vanishes)."""
    height, width = mask.shape
    out_w, out_h = size
    if (out_w, out_h) == (width, height):
        return mask.copy()
    rows = np.minimum(((np.arange(out_h) + 0.5) * height / out_h).astype(int), height - 1)
    cols = np.minimum(((np.arange(out_w) + 0.5) * width / out_w).astype(int), width - 1)
    resized = mask[np.ix_(rows, cols)]
    if resized.any() or not mask.any():
        return resized
    ys, xs = np.nonzero(mask)
    resized[
        np.minimum(((ys + 0.5) * out_h / height).astype(int), out_h - 1),
        np.minimum(((xs + 0.5) * out_w / width).astype(int), out_w - 1),
    ] = True
    return resized


def largest_component(mask: np.ndarray, connectivity: int) -> np.ndarray:
    """The largest connected component of ``mask`` (ties: the first in row-major order)."""
    labels = label(mask, connectivity=connectivity)
    if labels.max() <= 1:
        return labels == 1
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), end-exclusive, of the non-zero pixels of a non-empty mask."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _most_interior(region: np.ndarray) -> tuple[int, int]:
    """(x, y) of the pixel of ``region`` farthest from its border (ties: the one nearest the
    region's centroid, then the first in row-major order)."""
    distance = distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
    ys, xs = np.nonzero(distance == distance.max())  # row-major order
    region_ys, region_xs = np.nonzero(region)
    off_centre = (ys - region_ys.mean()) ** 2 + (xs - region_xs.mean()) ** 2
    best = int(np.argmin(off_centre))  # the first of equal ones
    return int(xs[best]), int(ys[best])


def two_points(mask: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    """Two pixels ([x, y]) inside a non-empty, connected ``mask``, by :data:`POINT_METHOD`."""
    x0, y0, x1, y1 = tight_box(mask)
    crop = mask[y0:y1, x0:x1]
    ys, xs = np.nonzero(crop)
    coords = np.stack([xs, ys], axis=1).astype(np.float64)
    centred = coords - coords.mean(axis=0)
    halves = None
    if len(coords) > 1:
        _, vectors = np.linalg.eigh(centred.T @ centred)
        axis = vectors[:, -1]  # the eigenvector of the largest eigenvalue: the major axis
        axis = axis if (axis[0], axis[1]) > (0, 0) else -axis  # a fixed sign
        side = centred @ axis >= -_SIDE_EPS
        if side.any() and not side.all():
            halves = [np.zeros_like(crop), np.zeros_like(crop)]
            halves[0][ys[~side], xs[~side]] = True
            halves[1][ys[side], xs[side]] = True
    if halves is None:
        points = [_most_interior(crop)] * 2
    else:
        points = sorted((_most_interior(h) for h in halves), key=lambda p: (p[1], p[0]))
    (ax, ay), (bx, by) = points
    return (ax + x0, ay + y0), (bx + x0, by + y0)


def mask_png(mask: np.ndarray, options: BuildOptions) -> bytes:
    """A boolean mask as a mode "L" PNG, 0 / 255."""
    buffer = io.BytesIO()
    image = Image.fromarray(np.where(mask, 255, 0).astype(np.uint8))  # 2-D uint8: mode "L"
    image.save(buffer, format="PNG", compress_level=options.png_compress_level)
    return buffer.getvalue()


def grounding_target(
    candidate: LesionCandidate, native_size: tuple[int, int], options: BuildOptions
) -> GroundingTarget:
    """Mask, tight box and points of ``candidate``'s component in the written image, whose size
    is ``image_size`` (square) or, when that is None, ``native_size`` (width, height)."""
    mask = native_mask(candidate, native_size)
    if options.image_size is not None:
        mask = resize_mask(mask, (options.image_size, options.image_size))
        mask = largest_component(mask, options.connectivity)
    return GroundingTarget(mask_png(mask, options), tight_box(mask), two_points(mask))
