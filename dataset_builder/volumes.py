"""Decode a case's CT volume and lesion mask onto one voxel grid.

The CT header decides orientation and spacing. ReXGroundingCT masks carry an identity affine
(1 mm, no orientation): they are indexed on the CT's voxel grid and given the CT's
reorientation, never their own (reorienting them by their header mirrors them in x and y).
Both arrays are returned in LPS order, so ``ct[:, :, k].T`` is the radiological view.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform

from .sources import CaseError, CaseSpec

LPS = ("L", "P", "S")  # CT-RATE's storage order; vol[:, :, k].T is the radiological view
_HASH_CHUNK = 8 << 20


@dataclass
class CaseVolumes:
    ct: np.ndarray  # (X, Y, Z) int16 HU in LPS order
    masks: np.ndarray  # (F, X, Y, Z) integer instance labels on the CT grid, LPS order
    spacing_mm: tuple[float, float, float]  # along the LPS axes
    ct_sha256: str
    mask_sha256: str


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _load(case: str, path: Path, kind: str) -> tuple[nib.Nifti1Image, np.ndarray]:
    if not path.is_file():
        raise CaseError(case, f"{kind} not found: {path} (download it, or leave the case out)")
    try:
        image = nib.load(path)
        data = np.asanyarray(image.dataobj)  # keeps the stored integer dtype
    except (OSError, EOFError, ValueError, zlib.error, nib.filebasedimages.ImageFileError) as err:
        raise CaseError(
            case,
            f"cannot read {kind} {path}: {type(err).__name__}: {err} "
            "(the file is truncated or corrupt; download it again)",
        ) from err
    return image, data


def _to_lps(ct_image: nib.Nifti1Image) -> np.ndarray:
    return ornt_transform(io_orientation(ct_image.affine), axcodes2ornt(LPS))


def load_case_volumes(spec: CaseSpec) -> CaseVolumes:
    """Read, check and orient a case; raise CaseError with the reason on bad input."""
    ct_image, ct = _load(spec.name, spec.ct_path, "CT volume")
    if ct.ndim != 3:
        raise CaseError(spec.name, f"CT {spec.ct_path} has {ct.ndim} dimensions, expected 3")
    if not np.issubdtype(ct.dtype, np.integer) and not np.issubdtype(ct.dtype, np.floating):
        raise CaseError(spec.name, f"CT {spec.ct_path} has unsupported dtype {ct.dtype}")
    _, masks = _load(spec.name, spec.mask_path, "mask")
    if masks.ndim == 3:  # a single-finding mask may be stored 3-D
        masks = masks[None]
    if masks.ndim != 4 or masks.shape[1:] != ct.shape:
        raise CaseError(
            spec.name,
            f"mask shape {masks.shape} does not match CT shape {ct.shape} "
            f"(expected (F, {', '.join(map(str, ct.shape))})); check that "
            f"{spec.mask_path.name} belongs to {spec.ct_path.name}",
        )
    if not np.issubdtype(masks.dtype, np.integer):
        masks = np.rint(masks).astype(np.int32)
    ornt = _to_lps(ct_image)
    ct = apply_orientation(ct, ornt)
    masks = (
        np.stack([apply_orientation(m, ornt) for m in masks])
        if ((ornt[:, 0] != np.arange(3)).any() or (ornt[:, 1] != 1).any())
        else masks
    )
    zooms = np.asarray(ct_image.header.get_zooms()[:3], dtype=float)
    spacing = tuple(float(zooms[int(axis)]) for axis in np.argsort(ornt[:, 0]))
    return CaseVolumes(
        ct=ct,
        masks=masks,
        spacing_mm=spacing,
        ct_sha256=sha256_file(spec.ct_path),
        mask_sha256=sha256_file(spec.mask_path),
    )
