"""Render the CT (tissue noise, padding), write the NIfTI files and dataset.json: synthesize()."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy.special import ndtri
from tqdm import tqdm

from .anatomy import _patient_anatomy, _scan_anatomy
from .canvas import _Canvas
from .chest import _anatomy_labels
from .config import SynthConfig
from .findings import _paint_findings
from .grid import _ct_affine, _Grid, _make_grid
from .plan import NOISE_STREAM, SCAN_STREAM, _plan, _Scan, _Volume
from .tissues import LUNG, TISSUES

# --------------------------------------------------------------------------------------------
# Layout of the written folders (as in the real data)
# --------------------------------------------------------------------------------------------
REX_DIRNAME = "rexgroundingct"
CTRATE_DIRNAME = "ct-rate"
# written first into every folder synthesize() fills: the mark that its files are ours
MARKER_NAME = "SYNTHETIC_PHANTOM_DATA.json"
PROTOCOL = "protocol1"  # the "protocol" field of every dataset.json entry

# --------------------------------------------------------------------------------------------
# Scan size and rendering
# --------------------------------------------------------------------------------------------
# The builder keeps lesion components of >= 1300 px on a 512 x 512 slice (~0.5 % of the slice);
# in millimetres that is this fraction of the squared field of view.
BUILDER_MIN_AREA_FRACTION = 1300 / 512**2
FULL_SIZE = 512  # in-plane size with full_size=True
HU_MIN, HU_MAX = -1024, 3071  # stored HU range inside the field of view
RECON_NOISE_SCALE = {1: 1.0, 2: 1.6}  # noise per reconstruction number (soft / sharp kernel)
NOISE_LEVELS = 256  # noise is drawn as one byte per voxel (Gaussian quantiles)


def _noise_table(noise_scale: float) -> np.ndarray:
    """(label, byte) -> noise HU: the tissue SD times a Gaussian quantile of the byte."""
    quantiles = ndtri((np.arange(NOISE_LEVELS) + 0.5) / NOISE_LEVELS)
    sd = np.array([s for _, s in TISSUES]) * noise_scale
    return (sd[:, None] * quantiles[None, :]).astype(np.float32).ravel()


def _render_ct(
    hu: np.ndarray,
    labels: np.ndarray,
    grid: _Grid,
    noise_scale: float,
    pad: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """int16 HU: painted values + tissue noise, clipped, padded outside the circular FOV.

    Noise is one random byte per voxel looked up with its label in a (label, byte) table,
    several times faster than drawing Gaussian floats at 512 x 512 x 300.
    """
    index = labels.astype(np.uint16)
    index <<= 8  # NOISE_LEVELS == 256: the byte fills the low 8 bits
    index |= rng.integers(0, NOISE_LEVELS, size=hu.shape, dtype=np.uint8)
    out = _noise_table(noise_scale)[index]
    out += hu
    np.clip(out, HU_MIN, HU_MAX, out=out)
    np.rint(out, out=out)
    ct = out.astype(np.int16)
    size = grid.shape[0]
    r = np.arange(size) - (size - 1) / 2
    outside = r[:, None] ** 2 + r[None, :] ** 2 > (size / 2) ** 2
    ct[outside] = pad
    return ct


def _save_ct(path: Path, ct: np.ndarray, affine: np.ndarray) -> None:
    """int16 HU with slope 1 / intercept 0 and scanner-coded qform and sform, like *_fixed."""
    image = nib.Nifti1Image(ct, affine)
    image.header.set_slope_inter(1, 0)  # *_fixed volumes are HU already
    image.header.set_xyzt_units("mm")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, path)


def _save_mask(path: Path, mask: np.ndarray) -> None:
    """(F, H, W, D) uint8 with the identity affine; F == 1 is written as (H, W, D)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(mask[0] if mask.shape[0] == 1 else mask, np.eye(4)), path)


def ct_relative_path(name: str) -> Path:
    """CT-RATE path of a volume name, relative to the ct-rate folder (the one holding dataset/)."""
    parts = name.removesuffix(".nii.gz").split("_")
    folder = "valid_fixed" if parts[0] == "valid" else "train_fixed"
    return Path("dataset", folder, "_".join(parts[:2]), "_".join(parts[:3]), name)


def _channel_stats(canvas: _Canvas, channels: list[int]) -> tuple[list[int], list[int]]:
    """Non-zero voxels and number of distinct instance values of each kept channel."""
    pixels, entities = [], []
    for channel in channels:
        counts = [n for (ch, _), n in canvas.voxels.items() if ch == channel and n > 0]
        pixels.append(sum(counts))
        entities.append(len(counts))
    return pixels, entities


def _synthesize_scan(
    scan: _Scan, config: SynthConfig, size: int, rex_dir: Path, ctrate_dir: Path, bar: tqdm
) -> list[tuple[_Volume, dict]]:
    """Paint one scan and write all of its reconstructions; (volume, entry) per volume."""
    rng = np.random.default_rng([config.seed, SCAN_STREAM, scan.patient_index, scan.scan_index])
    anat = _scan_anatomy(_patient_anatomy(config.seed, scan.patient_index), rng)
    grid = _make_grid(anat, size, scan.slices)
    labels = _anatomy_labels(anat, grid, rng)
    hu_table = np.array([h for h, _ in TISSUES], dtype=np.float32)
    hu_table[LUNG] = anat.lung_hu
    canvas = _Canvas(
        anat,
        grid,
        hu_table[labels],
        labels,
        # Fortran order is NIfTI's on-disk order: the mask is then written without a transpose.
        np.zeros((len(scan.findings), *grid.shape), dtype=np.uint8, order="F"),
        BUILDER_MIN_AREA_FRACTION * anat.fov**2,
    )
    described = _paint_findings(rng, canvas, scan.findings)
    keep = [i for i, d in enumerate(described) if d is not None]
    if not keep:
        raise RuntimeError(f"no finding of scan {scan.patient} #{scan.scan_index} could be placed")
    mask = canvas.mask if len(keep) == len(described) else np.asfortranarray(canvas.mask[keep])
    pixels, entities = _channel_stats(canvas, keep)
    sentences = [described[i] for i in keep]
    affine = _ct_affine(anat, grid)
    results = []
    for volume in scan.volumes:
        noise_rng = np.random.default_rng([config.seed, NOISE_STREAM, volume.case_index])
        ct = _render_ct(
            canvas.hu, labels, grid, RECON_NOISE_SCALE[volume.recon], volume.pad, noise_rng
        )
        _save_ct(ctrate_dir / ct_relative_path(volume.name), ct, affine)
        _save_mask(rex_dir / "segmentations" / volume.name, mask)
        entry = {
            "name": volume.name,
            "findings": {str(i): text for i, (text, _) in enumerate(sentences)},
            "entity_counts": {str(i): n for i, n in enumerate(entities)},
            "shape": list(grid.shape),
            "pixels": {str(i): n for i, n in enumerate(pixels)},
            "categories": {str(i): code for i, (_, code) in enumerate(sentences)},
            "protocol": PROTOCOL,
        }
        results.append((volume, entry))
        bar.update(1)
    return results


def synthesize(
    out_dir: str | Path,
    config: SynthConfig = SynthConfig(),  # noqa: B008 - frozen (immutable) dataclass
    progress: bool = False,
) -> dict:
    """Write DIR/rexgroundingct/... and DIR/ct-rate/...; return a summary dict
    {"cases": n, "patients": m, "findings": k, "codes": {code: count}, "rex_dir": str,
    "ctrate_dir": str}.

    ``findings`` and ``codes`` count over all volumes (entries), so reconstructions of one scan
    each count their findings. Existing files of the same names are overwritten (the command
    line refuses a folder that holds files of anything else: ``MARKER_NAME`` marks ours).
    """
    config.validate()
    out = Path(out_dir)
    rex_dir, ctrate_dir = out / REX_DIRNAME, out / CTRATE_DIRNAME
    out.mkdir(parents=True, exist_ok=True)
    marker = {"phantom": True, "note": "synthetic phantom chest CTs, not patient data"}
    (out / MARKER_NAME).write_text(json.dumps({**marker, "config": repr(config)}, indent=1))
    size = FULL_SIZE if config.full_size else config.size
    plan = _plan(config)
    results: list[tuple[_Volume, dict]] = []
    with tqdm(total=config.cases, disable=not progress, desc="synthetic CT", unit="case") as bar:
        for scan in plan.scans:
            results.extend(_synthesize_scan(scan, config, size, rex_dir, ctrate_dir, bar))
    results.sort(key=lambda item: item[0].case_index)
    dataset = {
        "train": [e for v, e in results if v.name not in plan.val_names],
        "val": [e for v, e in results if v.name in plan.val_names],
        "test": [],
    }
    rex_dir.mkdir(parents=True, exist_ok=True)
    (rex_dir / "dataset.json").write_text(json.dumps(dataset, indent=2) + "\n")
    codes: dict[str, int] = {}
    for _, entry in results:
        for code in entry["categories"].values():
            codes[code] = codes.get(code, 0) + 1
    return {
        "cases": len(results),
        "patients": len(plan.patients),
        "findings": sum(codes.values()),
        "codes": dict(sorted(codes.items())),
        "rex_dir": str(rex_dir),
        "ctrate_dir": str(ctrate_dir),
    }
