"""The voxel grid of a scan: voxel centres in mm, boxes, and the CT's nibabel affine."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .anatomy import _Anatomy

Box = tuple[slice, slice, slice]


@dataclass(frozen=True)
class _Grid:
    """Voxel centres in mm along each axis (ascending), and the spacing."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    spacing: tuple[float, float, float]
    length: float

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, D)."""
        return (self.x.size, self.y.size, self.z.size)

    def t(self, z):
        """Normalised height (0 bottom slice edge, 1 top slice edge) of z in mm."""
        return z / self.length + 0.5

    def z_at(self, t):
        """z in mm of normalised height t."""
        return (t - 0.5) * self.length

    def box(self, lo, hi) -> Box | None:
        """Voxel slices covering the mm box [lo, hi]; None when it misses the grid."""
        slices = []
        for coords, a, b in zip((self.x, self.y, self.z), lo, hi, strict=True):
            i0 = int(np.searchsorted(coords, a, "left"))
            i1 = int(np.searchsorted(coords, b, "right"))
            if i1 <= i0:
                return None
            slices.append(slice(i0, i1))
        return tuple(slices)

    def coords(self, box: Box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable mm coordinates (n,1,1), (1,m,1), (1,1,k) of a box."""
        return (
            self.x[box[0]][:, None, None],
            self.y[box[1]][None, :, None],
            self.z[box[2]][None, None, :],
        )

    def voxel(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest voxel indices (n, 3) of mm points (n, 3), and whether each is inside."""
        origin = np.array([self.x[0], self.y[0], self.z[0]])
        index = np.rint((points - origin) / np.array(self.spacing)).astype(np.int64)
        inside = np.all((index >= 0) & (index < np.array(self.shape)), axis=1)
        return np.clip(index, 0, np.array(self.shape) - 1), inside

    def center_of(self, box: Box, region: np.ndarray) -> np.ndarray:
        """Mean mm position of the True voxels of a box-shaped region."""
        idx = np.nonzero(region)
        return np.array(
            [
                float(self.x[box[0]][idx[0]].mean()),
                float(self.y[box[1]][idx[1]].mean()),
                float(self.z[box[2]][idx[2]].mean()),
            ]
        )


def _make_grid(anat: _Anatomy, size: int, slices: int) -> _Grid:
    """Grid centred on the field of view; in-plane spacing fov/size, slice spacing length/D."""
    sxy = anat.fov / size
    sz = anat.length / slices
    return _Grid(
        _centred(size, sxy), _centred(size, sxy), _centred(slices, sz), (sxy, sxy, sz), anat.length
    )


def _centred(count: int, spacing: float) -> np.ndarray:
    """Voxel-centre coordinates (mm) of an axis centred on 0."""
    return ((np.arange(count) - (count - 1) / 2) * spacing).astype(np.float32)


def _ct_affine(anat: _Anatomy, grid: _Grid) -> np.ndarray:
    """nibabel (RAS) affine of the LPS-stored volume: diag(-sx, -sy, sz) plus the origin."""
    sx, sy, sz = grid.spacing
    affine = np.diag([-sx, -sy, sz, 1.0])
    # LPS position of voxel 0 is (x[0], y[0], z_origin); RAS negates the first two.
    affine[:3, 3] = (-float(grid.x[0]), -float(grid.y[0]), anat.z_origin)
    return affine
