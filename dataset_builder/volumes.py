"""Decode a case's CT volume and lesion mask onto one voxel grid.

The CT header decides orientation and spacing. ReXGroundingCT masks carry an identity affine
(1 mm, no orientation): they are indexed on the CT's voxel grid and given the CT's
reorientation, never their own (reorienting them by their header mirrors them in x and y).
Both arrays are returned in LPS order, so ``ct[:, :, k].T`` is the radiological view.
"""

from __future__ import annotations

import hashlib
import io
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform

from .sources import CaseError, CaseSpec

LPS = ("L", "P", "S")  # CT-RATE's storage order; vol[:, :, k].T is the radiological view
_GZIP_MAGIC = b"\x1f\x8b"

try:  # ISA-L inflate is ~2x faster than zlib; same bytes out
    from isal.igzip import decompress as gzip_decompress
except ImportError:  # pragma: no cover - isal is a dependency; keep working without it
    from gzip import decompress as gzip_decompress


@dataclass
class CaseVolumes:
    ct: np.ndarray  # (X, Y, Z) int16 HU in LPS order
    masks: np.ndarray  # (F, X, Y, Z) integer instance labels on the CT grid, LPS order
    spacing_mm: tuple[float, float, float]  # along the LPS axes
    ct_sha256: str
    mask_sha256: str


def _nifti_class(data: bytes) -> type[nib.Nifti1Image]:
    """NIfTI-1 or NIfTI-2, from ``sizeof_hdr`` (348 or 540, either byte order)."""
    size = int.from_bytes(data[:4], "little")
    if size not in (348, 540):
        size = int.from_bytes(data[:4], "big")
    if size not in (348, 540):
        raise ValueError("not a NIfTI file (sizeof_hdr is neither 348 nor 540)")
    return nib.Nifti2Image if size == 540 else nib.Nifti1Image


def read_nifti(case: str, path: Path, kind: str) -> tuple[nib.Nifti1Header, np.ndarray, str]:
    """(header, array in its stored dtype, sha256 of the file) from one read of ``path``.

    The file is read once (hashed and inflated from memory; ISA-L inflates ~2x faster than
    zlib) and the array is a read-only view on the inflated bytes when no scaling applies.
    """
    if not path.is_file():
        raise CaseError(case, f"{kind} not found: {path} (download it, or leave the case out)")
    try:
        raw = path.read_bytes()
        digest = hashlib.sha256(raw).hexdigest()
        data = gzip_decompress(raw) if raw[:2] == _GZIP_MAGIC else raw
        del raw
        image_class = _nifti_class(data)
        header = image_class.header_class.from_fileobj(io.BytesIO(data))
        slope, inter = header.get_slope_inter()
        if slope in (None, 1.0) and inter in (None, 0.0):
            array = np.ndarray(
                header.get_data_shape(),
                dtype=header.get_data_dtype(),
                buffer=data,
                offset=int(header.get_data_offset()),
                order="F",
            )
        else:  # scaled data: let nibabel apply slope and intercept
            array = np.asanyarray(image_class.from_bytes(data).dataobj)
    except (
        OSError,
        EOFError,
        ValueError,
        TypeError,
        zlib.error,
        nib.spatialimages.HeaderDataError,
    ) as err:
        raise CaseError(
            case,
            f"cannot read {kind} {path}: {type(err).__name__}: {err} "
            "(the file is truncated or corrupt; download it again)",
        ) from err
    check_finite(case, path, kind, array)
    return header, array, digest


def check_finite(case: str, path: Path, kind: str, array: np.ndarray) -> None:
    """Refuse a float array holding NaN or infinity (integer arrays are always finite): a NaN
    CT renders as one flat grey, and NaN in a float mask would round to a lesion label."""
    if array.dtype.kind not in "fc":
        return
    finite = np.isfinite(array)
    if finite.all():
        return
    bad = array.size - int(np.count_nonzero(finite))
    amount = f"all {bad}" if bad == array.size else f"{bad} of {array.size}"
    raise CaseError(
        case,
        f"{kind} {path} has {amount} voxels not finite (NaN or infinity); a {kind} must hold "
        "finite values: fix or re-export the file, or leave the case out",
    )


def mask_labels(case: str, path: Path, masks: np.ndarray) -> np.ndarray:
    """Integer instance labels of a mask (a float mask is rounded); a finite value outside
    int32 is refused rather than wrapped around."""
    if np.issubdtype(masks.dtype, np.integer):
        return masks
    limit = np.iinfo(np.int32).max
    if masks.size and float(np.abs(masks).max()) > limit:
        raise CaseError(
            case,
            f"mask {path} holds values beyond +-{limit}, which are no lesion labels; "
            "fix or re-export the file, or leave the case out",
        )
    return np.rint(masks).astype(np.int32)


def _to_lps(ct_header: nib.Nifti1Header) -> np.ndarray:
    return ornt_transform(io_orientation(ct_header.get_best_affine()), axcodes2ornt(LPS))


def load_case_volumes(spec: CaseSpec) -> CaseVolumes:
    """Read, check and orient a case; raise CaseError with the reason on bad input."""
    ct_header, ct, ct_sha256 = read_nifti(spec.name, spec.ct_path, "CT volume")
    if ct.ndim != 3:
        raise CaseError(spec.name, f"CT {spec.ct_path} has {ct.ndim} dimensions, expected 3")
    if not np.issubdtype(ct.dtype, np.integer) and not np.issubdtype(ct.dtype, np.floating):
        raise CaseError(spec.name, f"CT {spec.ct_path} has unsupported dtype {ct.dtype}")
    _, masks, mask_sha256 = read_nifti(spec.name, spec.mask_path, "mask")
    if masks.ndim == 3:  # a single-finding mask may be stored 3-D
        masks = masks[None]
    if masks.ndim != 4 or masks.shape[1:] != ct.shape:
        raise CaseError(
            spec.name,
            f"mask shape {masks.shape} does not match CT shape {ct.shape} "
            f"(expected (F, {', '.join(map(str, ct.shape))})); check that "
            f"{spec.mask_path.name} belongs to {spec.ct_path.name}",
        )
    masks = mask_labels(spec.name, spec.mask_path, masks)
    ornt = _to_lps(ct_header)
    ct = apply_orientation(ct, ornt)
    masks = (
        np.stack([apply_orientation(m, ornt) for m in masks])
        if ((ornt[:, 0] != np.arange(3)).any() or (ornt[:, 1] != 1).any())
        else masks
    )
    zooms = np.asarray(ct_header.get_zooms()[:3], dtype=float)
    spacing = tuple(float(zooms[int(axis)]) for axis in np.argsort(ornt[:, 0]))
    return CaseVolumes(
        ct=ct,
        masks=masks,
        spacing_mm=spacing,
        ct_sha256=ct_sha256,
        mask_sha256=mask_sha256,
    )
