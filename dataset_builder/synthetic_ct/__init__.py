"""Deterministic synthetic chest CT, written in exactly the ReXGroundingCT + CT-RATE layout.

``synthesize(out_dir, SynthConfig(...))`` writes::

    out_dir/rexgroundingct/dataset.json                  {"train": [...], "val": [...], "test": []}
    out_dir/rexgroundingct/segmentations/<name>.nii.gz   uint8 mask, identity affine
    out_dir/ct-rate/dataset/train_fixed/<patient>/<patient>_<scan>/<name>.nii.gz   int16 HU CT
    out_dir/ct-rate/dataset/valid_fixed/...                                         (valid_* names)

CT volumes are int16 HU (slope 1, intercept 0) of shape (H, W, D) stored LPS: voxel axis 0
runs toward the patient's left, axis 1 toward posterior, axis 2 toward superior, so the
nibabel (RAS) affine is diag(-sx, -sy, sz) plus an origin and ``vol[:, :, k].T`` is the
radiological view. Outside a circular field of view the value is padding (-2048, or -8192
for some volumes). Masks have one channel per finding (shape (F, H, W, D), or (H, W, D) when
F == 1), instance values 1..3 inside a channel, and the identity affine of the real files:
index them on the CT's voxel grid.

Anatomy and lesions are modelled in patient millimetres (x toward the patient's left,
y toward posterior, z toward superior, origin at the centre of the field of view) and then
sampled on the voxel grid, so a case looks the same at any resolution. Every random draw
comes from ``np.random.default_rng`` seeded with ``[seed, stream, ...]``: the same seed gives
identical arrays and an identical dataset.json.

The steps, one module each; a module imports only modules listed above it:

    config    SynthConfig and its validation
    plan      patients, names, scans, findings, padding and the val split (no arrays)
    anatomy   one scan's body in mm, drawn per patient and per scan
    grid      the voxel grid and the CT affine
    tissues   voxel labels and their HU / noise
    shapes    sides, lung cross-sections, hemidiaphragm domes (shared by the painters)
    chest     the anatomy label volume
    canvas    the scan being painted: HU, labels, mask channels
    lesions   lesions around a sampled lung point (nodule, ground glass, consolidation, ...)
    pleural   lesions along the lung wall (fibrosis, effusion, pneumothorax)
    reports   report sentences and lobe names
    findings  paint and describe a scan's findings
    writer    noise, NIfTI files, dataset.json: synthesize()
"""

from .config import SynthConfig, config_help
from .writer import ct_relative_path, synthesize

__all__ = ["SynthConfig", "config_help", "ct_relative_path", "synthesize"]
