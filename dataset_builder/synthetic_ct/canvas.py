"""The scan being painted (HU, labels, one mask channel per finding) and a placed lesion."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .anatomy import _Anatomy
from .grid import Box, _Grid
from .tissues import _IS_LUNG


@dataclass
class _Canvas:
    """A scan being painted: HU before noise, labels, one mask channel per finding."""

    anat: _Anatomy
    grid: _Grid
    hu: np.ndarray
    labels: np.ndarray
    mask: np.ndarray
    min_area: float  # builder threshold in mm^2
    voxels: dict[tuple[int, int], int] = field(default_factory=dict)  # (channel, value): count

    def free(self, box: Box) -> np.ndarray:
        """Lung in the box not yet taken by a lesion."""
        return _IS_LUNG[self.labels[box]] & ~self.mask[(slice(None), *box)].any(axis=0)

    def lung_at(self, points: np.ndarray) -> np.ndarray:
        """Whether mm points fall in lung (free or not)."""
        index, inside = self.grid.voxel(points)
        i, j, k = index.T
        return inside & _IS_LUNG[self.labels[i, j, k]]

    def free_at(self, points: np.ndarray) -> np.ndarray:
        """Whether mm points fall in lung not yet taken by a lesion."""
        index, inside = self.grid.voxel(points)
        i, j, k = index.T
        return inside & _IS_LUNG[self.labels[i, j, k]] & ~self.mask[:, i, j, k].any(axis=0)

    def claim(self, box: Box, region: np.ndarray, channel: int, value: int) -> None:
        """Mark free ``region`` of ``box`` as instance ``value`` of ``channel`` (and count it).

        Regions are always taken from free lung, so instances never overlap and the counts
        equal what the mask holds.
        """
        self.mask[channel][box][region] = value
        key = (channel, value)
        self.voxels[key] = self.voxels.get(key, 0) + int(np.count_nonzero(region))

    def commit(self, box: Box, region: np.ndarray, channel: int, value: int, hu, label: int):
        """Claim ``region`` for instance ``value`` of ``channel`` and paint its HU and label."""
        self.claim(box, region, channel, value)
        self.hu[box][region] = hu if np.isscalar(hu) else hu[region]
        self.labels[box][region] = label


@dataclass(frozen=True)
class _Placed:
    center: np.ndarray  # mm
    size_mm: float  # largest in-plane diameter
    extent: float = 0.0  # effusion / pneumothorax thickness fraction
