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
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields, replace
from numbers import Integral
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage
from scipy.special import ndtri
from tqdm import tqdm

# --------------------------------------------------------------------------------------------
# Layout of the written folders (as in the real data)
# --------------------------------------------------------------------------------------------
REX_DIRNAME = "rexgroundingct"
CTRATE_DIRNAME = "ct-rate"
PROTOCOL = "protocol1"  # the "protocol" field of every dataset.json entry
VAL_FRACTION = 0.15  # share of the cases listed under "val" (whole patients)
MIN_CASES_FOR_VAL = 4  # below this, "val" stays empty
VALID_PATIENT_FRACTION = 0.20  # share of patients named valid_* (CT-RATE valid_fixed)
MIN_PATIENTS_FOR_VALID = 2  # below this, every patient is a train_* patient
TRAIN_PATIENT_ID_MAX = 20000  # patient numbers are drawn from 1..this (train_*)
VALID_PATIENT_ID_MAX = 1500  # ... and from 1..this (valid_*)
SCAN_LETTERS = "abcdefgh"  # scan index -> the letter in the name (train_1741_b_2)
# Volumes of one patient, as (scan index, reconstruction number) pairs.
VOLUME_TEMPLATES = (
    ((0, 1),),  # one scan, one reconstruction
    ((0, 1), (0, 2)),  # one scan, two reconstructions
    ((0, 1), (1, 1)),  # two scans
    ((0, 1), (0, 2), (1, 1)),  # two scans, the first with two reconstructions
)
VOLUME_TEMPLATE_PROBS = (0.55, 0.20, 0.15, 0.10)
FORCED_TEMPLATES = (2, 1)  # the first patients: two scans, then two reconstructions

# --------------------------------------------------------------------------------------------
# Findings: category codes, counts, sizes
# --------------------------------------------------------------------------------------------
# The seven classes (by the lesion kind drawn here) and the ReXGroundingCT codes for each.
KIND_CODES = {
    "airway": (("1a", "1b"), (0.5, 0.5)),
    "emphysema": (("1c",), (1.0,)),
    "fibrosis": (("1d", "2a", "2f"), (0.4, 0.4, 0.2)),
    "nodule": (("2d",), (1.0,)),
    "consolidation": (("2b",), (1.0,)),
    "ggo": (("2c",), (1.0,)),
    "effusion": (("2e",), (1.0,)),
}
KINDS = tuple(KIND_CODES)
UNUSED_CODE_KINDS = {"1e": "micronodules", "2g": "pneumothorax"}  # codes the builder skips
UNUSED_CODE_PROB = 0.05  # share of findings given an unused code
FINDINGS_PER_SCAN_PROBS = (0.45, 0.35, 0.20)  # P(1, 2, 3 findings)
MAX_INSTANCES = 3  # at most 3 annotated instances per finding (as in ReXGroundingCT train)
INSTANCE_PROBS = {  # P(1, 2, 3 instances) per kind
    "nodule": (0.70, 0.20, 0.10),
    "ggo": (0.50, 0.30, 0.20),
    "consolidation": (0.70, 0.30, 0.0),
    "emphysema": (0.50, 0.50, 0.0),
    "fibrosis": (0.40, 0.60, 0.0),
    "effusion": (0.60, 0.40, 0.0),
    "airway": (0.75, 0.25, 0.0),
    "micronodules": (0.70, 0.30, 0.0),
    "pneumothorax": (1.0, 0.0, 0.0),
}
# The builder keeps lesion components of >= 1300 px on a 512 x 512 slice (~0.5 % of the slice);
# in millimetres that is this fraction of the squared field of view.
BUILDER_MIN_AREA_FRACTION = 1300 / 512**2
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
CANDIDATE_OVERSAMPLE = 8  # candidate points per wanted lung point

# --------------------------------------------------------------------------------------------
# Geometry of a volume
# --------------------------------------------------------------------------------------------
FULL_SIZE = 512  # in-plane size with full_size=True
FULL_SLICES_RANGE = (260, 340)  # slices per scan with full_size=True (inclusive)
FOV_MM_RANGE = (330.0, 370.0)  # reconstruction field of view (512 px -> 0.64-0.72 mm)
FOV_BODY_MARGIN_MM = 12.0  # air kept between the body and the edge of the field of view
CHEST_LENGTH_MM_RANGE = (320.0, 370.0)  # craniocaudal coverage (300 slices -> 1.07-1.23 mm)
Z_ORIGIN_MM_RANGE = (-420.0, -160.0)  # table position of the first slice
PAD_VALUE = -2048  # outside the circular field of view (CT-RATE)
PAD_VALUE_ALT = -8192  # the other padding value seen in CT-RATE
PAD_ALT_PROB = 0.25  # share of volumes padded with PAD_VALUE_ALT
HU_MIN, HU_MAX = -1024, 3071  # stored HU range inside the field of view
RECON_NOISE_SCALE = {1: 1.0, 2: 1.6}  # noise per reconstruction number (soft / sharp kernel)
NOISE_LEVELS = 256  # noise is drawn as one byte per voxel (Gaussian quantiles)

# --------------------------------------------------------------------------------------------
# Anatomy (mm; t = normalised height, 0 at the lowest slice, 1 at the highest)
# --------------------------------------------------------------------------------------------
CAVITY_RX_MM = (108.0, 130.0)  # thoracic cavity semi-axes, left-right
CAVITY_RY_MM = (70.0, 88.0)  # ... and antero-posterior
FAT_MM = (6.0, 22.0)  # subcutaneous fat thickness
MUSCLE_MM = (9.0, 15.0)  # chest wall muscle thickness (ribs lie in it)
BACK_EXTRA_MM = 30.0  # extra posterior wall thickness (paraspinal muscles)
BODY_BACK_FLAT = 0.95  # the back is flattened by the table at this fraction of the semi-axis
BODY_SHIFT_X_MM = 8.0  # body centre jitter, left-right (+-)
BODY_SHIFT_Y_MM = (-4.0, 10.0)  # body centre jitter, antero-posterior
SCAN_JITTER_MM = 3.0  # extra body-position jitter between scans of one patient
LUNG_HU_RANGE = (-870.0, -840.0)  # lung parenchyma
LUNG_CX_FRAC = 0.48  # lung ellipse centre, fraction of the cavity semi-axis from the midline
LUNG_RX_FRAC = 0.50  # lung ellipse semi-axes, fractions of the cavity's
LUNG_RY_FRAC = 0.90
LUNG_CY_FRAC = 0.06  # lung ellipse centre, posterior offset as a fraction of cavity ry
PLEURA_GAP_MM = 1.5  # lungs stay this far inside the cavity wall
APEX_T_RANGE = (0.92, 0.97)  # lung apex height
APEX_TAPER_T = 0.30  # the lungs narrow over this height below the apex
APEX_POSTERIOR_SHIFT = 0.25  # ... and move posteriorly (fraction of cavity ry)
DOME_T_RANGE = (0.27, 0.33)  # right hemidiaphragm dome height
LEFT_DOME_DROP_T = (0.02, 0.05)  # the left dome is lower
DOME_DEPTH_T = 0.17  # dome height minus the lung-edge height
RECESS_T = 0.06  # extra depth of the posterior costophrenic recess
BASE_MARGIN_T = 0.02  # pleural lesions are searched from this far below the lung base
SCAN_DOME_JITTER_T = 0.015  # breath-hold difference between scans
LIVER_X_MM = 10.0  # below the right dome up to this far left of the midline: liver
MEDIASTINUM_RX_MM = (22.0, 30.0)  # upper mediastinum semi-axis, left-right
MEDIASTINUM_CY_FRAC = -0.10  # its centre, fraction of cavity ry (negative = anterior)
MEDIASTINUM_RY_FRAC = 0.80  # its antero-posterior semi-axis, fraction of cavity ry
HEART_X_MM = (12.0, 24.0)  # heart centre, toward the patient's left
HEART_CY_FRAC = -0.25  # heart centre, fraction of cavity ry (anterior)
HEART_RX_MM = (48.0, 60.0)  # heart semi-axes
HEART_RY_FRAC = 0.55
HEART_RZ_MM = (45.0, 58.0)
HEART_LIFT = 0.45  # heart centre above the left dome top, fraction of its rz
PERICARDIAL_FAT_FRAC = 0.06  # outer shell of the heart ellipsoid that is fat
VERTEBRA_R_MM = (14.0, 18.0)  # vertebral body radius
VERTEBRA_INSET_MM = 2.0  # vertebral body back edge inside the cavity edge
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
AORTA_R_MM = (10.0, 13.0)  # descending aorta radius
AORTA_GAP_MM = 2.0  # aorta to vertebral body
AORTA_FORWARD_FRAC = 0.5  # aorta centre anterior to the vertebral centre, fraction of its radius
AORTA_KEEPOUT_MM = 2.0  # lungs stay this far from the aorta
ARCH_ABOVE_CARINA_T = 0.08  # aortic arch height above the carina
ARCH_HALF_T = 0.025  # half-height of the arch
ASC_AORTA_X_MM = -12.0  # ascending aorta, toward the patient's right
ASC_AORTA_CY_FRAC = -0.35  # ... and anterior, fraction of cavity ry
TRACHEA_R_MM = (8.0, 10.0)  # tracheal lumen radius
TRACHEA_GAP_MM = 12.0  # trachea to vertebral body (the oesophagus lies between)
AIRWAY_WALL_MM = 2.0  # trachea and main bronchi wall
CARINA_T_RANGE = (0.58, 0.64)
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

# --------------------------------------------------------------------------------------------
# Voxel labels: (mean HU, noise SD HU). Lesion labels only set the noise; their HU is painted.
# --------------------------------------------------------------------------------------------
(
    AIR,
    FAT,
    MUSCLE,
    SOFT,
    HEART,
    PERI_FAT,
    LIVER,
    ABDOMEN,
    BONE_CORTEX,
    BONE_MARROW,
    RIB,
    CSF,
    LUNG,
    VESSEL,
    AIRWAY,
    LUNG_AIRWAY,
    SOLID,
    FLUID,
    CONSOLIDATION,
    LESION_LUNG,
    LOW_ATTENUATION,
) = range(21)
TISSUES = (
    (-1000.0, 6.0),  # AIR outside the body
    (-100.0, 14.0),  # FAT
    (45.0, 12.0),  # MUSCLE
    (38.0, 10.0),  # SOFT: mediastinum, vessels, airway walls (non-contrast)
    (40.0, 10.0),  # HEART
    (-85.0, 12.0),  # PERI_FAT: pericardial fat
    (58.0, 9.0),  # LIVER
    (32.0, 12.0),  # ABDOMEN
    (900.0, 60.0),  # BONE_CORTEX
    (260.0, 45.0),  # BONE_MARROW
    (550.0, 60.0),  # RIB
    (12.0, 8.0),  # CSF
    (-855.0, 22.0),  # LUNG (the patient's own value replaces the mean)
    (35.0, 18.0),  # VESSEL: pulmonary vessels and intrapulmonary bronchial walls
    (-995.0, 5.0),  # AIRWAY: tracheal / main bronchial lumen
    (-985.0, 8.0),  # LUNG_AIRWAY: intrapulmonary bronchial lumen
    (45.0, 12.0),  # SOLID lesion tissue
    (14.0, 9.0),  # FLUID
    (30.0, 12.0),  # CONSOLIDATION
    (-550.0, 20.0),  # LESION_LUNG: lung changed by a lesion (ground glass, reticulation)
    (-950.0, 10.0),  # LOW_ATTENUATION: emphysema, cysts, pneumothorax
)
LUNG_LABELS = (LUNG, VESSEL, LUNG_AIRWAY)  # lung a lesion may take over

# --------------------------------------------------------------------------------------------
# Lesion appearance
# --------------------------------------------------------------------------------------------
NODULE_HU = (30.0, 60.0)
NODULE_LOBULATION = 0.08  # outline irregularity (fraction of the radius)
NODULE_T = (0.30, 0.88)  # heights where nodules are placed
NODULE_DEPTH_FRAC = 0.8  # centre at least this fraction of the radius inside the lung
MASS_MM = 30.0  # nodules this large are called masses
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
FIBROSIS_BAND_MM = (10.0, 18.0)  # subpleural band thickness
FIBROSIS_TOP_T = (0.12, 0.25)  # band top above the dome
FIBROSIS_LATERAL = -0.1  # sector: lateral coordinate above this ...
FIBROSIS_POSTERIOR = 0.35  # ... or posterior coordinate above this
FIBROSIS_MIN_CELL_VOXELS = 6.0  # cells at least this many in-plane voxels across
FIBROSIS_STYLES = {  # code: (cell size mm, y stretch, cell HU, wall HU range)
    "2f": ((5.0, 9.0), 1.0, -950.0, (-40.0, 30.0)),  # honeycomb cysts
    "1d": ((3.5, 5.5), 1.0, -780.0, (-150.0, -60.0)),  # reticulation
    "2a": ((4.0, 7.0), 0.35, -800.0, (-100.0, 0.0)),  # linear bands (elongated cells)
}
EFFUSION_HU = (8.0, 20.0)
EFFUSION_THICKNESS = (0.22, 0.45)  # crescent thickness, fraction of the lung's ry
EFFUSION_TOP_T = (0.10, 0.25)  # crescent top above the dome
EFFUSION_TAPER_T = 0.08  # the crescent thins over this height below its top ...
EFFUSION_PROFILE = 0.5  # ... as (height below the top / taper) ** this
EFFUSION_MENISCUS = 1.5  # how far the fluid climbs laterally
EFFUSION_MODERATE = 0.33  # thickness from which it is called moderate
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
PNEUMOTHORAX_THICKNESS = (0.12, 0.25)
PNEUMOTHORAX_T = (0.45, 0.92)
RIGHT_UPPER_S, RIGHT_MIDDLE_S, LEFT_UPPER_S = 0.55, 0.25, 0.40  # lobe limits (dome=0, apex=1)

# Random streams: every generator is default_rng([seed, stream, ...]).
PLAN_STREAM, PATIENT_STREAM, SCAN_STREAM, NOISE_STREAM = 0, 1, 2, 3
RIGHT, LEFT = -1, 1  # side of the body (sign of x)
MIN_CASES, MIN_SIZE, MIN_SLICES = 1, 64, 8


@dataclass(frozen=True)
class SynthConfig:
    """What to synthesise; the help texts document each option for the command line."""

    cases: int = field(
        default=12, metadata={"help": "Number of CT volumes (ReXGroundingCT entries) to write."}
    )
    seed: int = field(
        default=0, metadata={"help": "Random seed; the same seed gives identical files."}
    )
    size: int = field(
        default=256, metadata={"help": "In-plane size H = W in voxels (field of view ~350 mm)."}
    )
    slices: int = field(
        default=48, metadata={"help": "Slices D per volume (the chest spans all of them)."}
    )
    full_size: bool = field(
        default=False,
        metadata={
            "help": "Real-size volumes: 512 x 512 in-plane and 260-340 slices per scan "
            "(overrides size and slices)."
        },
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the bad option."""
        for name, least in (
            ("cases", MIN_CASES),
            ("size", MIN_SIZE),
            ("slices", MIN_SLICES),
            ("seed", 0),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Integral):
                raise ValueError(f"SynthConfig.{name} must be an integer, got {value!r}")
            if value < least:
                raise ValueError(f"SynthConfig.{name} must be >= {least}, got {value}")


def config_help() -> dict[str, str]:
    """Help text of every SynthConfig field, by name."""
    return {f.name: f.metadata["help"] for f in fields(SynthConfig)}


# --------------------------------------------------------------------------------------------
# Plan: patients, scans, volumes, findings (no arrays yet)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Finding:
    kind: str
    code: str
    instances: int


@dataclass(frozen=True)
class _Volume:
    name: str
    case_index: int
    recon: int
    pad: int


@dataclass(frozen=True)
class _Scan:
    patient_index: int
    patient: str
    scan_index: int
    slices: int
    findings: tuple[_Finding, ...]
    volumes: tuple[_Volume, ...]


@dataclass(frozen=True)
class _Plan:
    scans: tuple[_Scan, ...]
    patients: tuple[str, ...]
    val_names: frozenset[str]


def _kind_deck(rng: np.random.Generator):
    """Endless sequence of the seven kinds, each block of seven a fresh permutation."""
    while True:
        for index in rng.permutation(len(KINDS)):
            yield KINDS[index]


def _plan_findings(rng: np.random.Generator, deck) -> tuple[_Finding, ...]:
    """1-3 findings of distinct kinds; ~UNUSED_CODE_PROB of them get an unused code."""
    count = int(rng.choice(len(FINDINGS_PER_SCAN_PROBS), p=FINDINGS_PER_SCAN_PROBS)) + 1
    findings: list[_Finding] = []
    for _ in range(count):
        if rng.random() < UNUSED_CODE_PROB:
            code = str(rng.choice(sorted(UNUSED_CODE_KINDS)))
            kind = UNUSED_CODE_KINDS[code]
        else:
            kind = next(deck)
            for _retry in range(len(KINDS)):
                if kind not in {f.kind for f in findings}:
                    break
                kind = next(deck)
            codes, probs = KIND_CODES[kind]
            code = str(rng.choice(codes, p=probs))
        if kind in {f.kind for f in findings}:
            continue
        instances = int(rng.choice(MAX_INSTANCES, p=INSTANCE_PROBS[kind])) + 1
        findings.append(_Finding(kind, code, instances))
    return tuple(findings)


def _patient_templates(cases: int, rng: np.random.Generator) -> list[tuple[tuple[int, int], ...]]:
    """Volumes per patient until ``cases`` volumes are planned."""
    templates = []
    remaining = cases
    while remaining > 0:
        index = len(templates)
        if index < len(FORCED_TEMPLATES):
            choice = FORCED_TEMPLATES[index]
        else:
            choice = int(rng.choice(len(VOLUME_TEMPLATES), p=VOLUME_TEMPLATE_PROBS))
        volumes = VOLUME_TEMPLATES[choice][:remaining]
        templates.append(volumes)
        remaining -= len(volumes)
    return templates


def _patient_names(count: int, rng: np.random.Generator) -> list[str]:
    """train_N / valid_N patient ids, ~VALID_PATIENT_FRACTION of them valid_*."""
    n_valid = 0
    if count >= MIN_PATIENTS_FOR_VALID:
        n_valid = max(1, round(VALID_PATIENT_FRACTION * count))
    is_valid = np.zeros(count, dtype=bool)
    is_valid[rng.choice(count, size=n_valid, replace=False)] = True
    train_ids = iter(rng.choice(TRAIN_PATIENT_ID_MAX, size=count - n_valid, replace=False) + 1)
    valid_ids = iter(rng.choice(VALID_PATIENT_ID_MAX, size=n_valid, replace=False) + 1)
    return [
        f"valid_{next(valid_ids)}" if valid else f"train_{next(train_ids)}" for valid in is_valid
    ]


def _val_names(scans: list[_Scan], cases: int, rng: np.random.Generator) -> frozenset[str]:
    """Whole patients for the "val" list, ~VAL_FRACTION of the cases."""
    if cases < MIN_CASES_FOR_VAL:
        return frozenset()
    target = max(1, round(VAL_FRACTION * cases))
    by_patient: dict[int, list[str]] = {}
    for scan in scans:
        by_patient.setdefault(scan.patient_index, []).extend(v.name for v in scan.volumes)
    order = [int(p) for p in rng.permutation(sorted(by_patient))]
    chosen: list[str] = []
    for patient in order:
        if len(chosen) + len(by_patient[patient]) <= target:
            chosen.extend(by_patient[patient])
    if not chosen:
        smallest = min(order, key=lambda p: len(by_patient[p]))
        chosen.extend(by_patient[smallest])
    return frozenset(chosen)


def _plan(config: SynthConfig) -> _Plan:
    """Everything drawn before any array: names, splits, slice counts, findings, padding."""
    rng = np.random.default_rng([config.seed, PLAN_STREAM])
    templates = _patient_templates(config.cases, rng)
    patients = _patient_names(len(templates), rng)
    deck = _kind_deck(rng)
    scans: list[_Scan] = []
    case_index = 0
    for patient_index, (patient, volumes) in enumerate(zip(patients, templates, strict=True)):
        for scan_index in sorted({s for s, _ in volumes}):
            if config.full_size:
                slices = int(rng.integers(FULL_SLICES_RANGE[0], FULL_SLICES_RANGE[1] + 1))
            else:
                slices = config.slices
            findings = _plan_findings(rng, deck)
            planned = []
            for s, recon in volumes:
                if s != scan_index:
                    continue
                pad = PAD_VALUE_ALT if rng.random() < PAD_ALT_PROB else PAD_VALUE
                name = f"{patient}_{SCAN_LETTERS[scan_index]}_{recon}.nii.gz"
                planned.append(_Volume(name, case_index, recon, pad))
                case_index += 1
            scans.append(
                _Scan(patient_index, patient, scan_index, slices, findings, tuple(planned))
            )
    scans = _ensure_alt_padding(scans)
    return _Plan(tuple(scans), tuple(patients), _val_names(scans, config.cases, rng))


def _ensure_alt_padding(scans: list[_Scan]) -> list[_Scan]:
    """With MIN_CASES_FOR_VAL or more volumes, at least one is padded with PAD_VALUE_ALT."""
    volumes = [v for s in scans for v in s.volumes]
    if len(volumes) < MIN_CASES_FOR_VAL or any(v.pad == PAD_VALUE_ALT for v in volumes):
        return scans
    last = scans[-1]
    changed = (*last.volumes[:-1], replace(last.volumes[-1], pad=PAD_VALUE_ALT))
    return [*scans[:-1], replace(last, volumes=changed)]


# --------------------------------------------------------------------------------------------
# Patient anatomy and the voxel grid
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Anatomy:
    """One scan's body, in mm (x toward the patient's left, y posterior, z superior)."""

    cx: float  # body centre
    cy: float
    cav_rx: float  # thoracic cavity semi-axes
    cav_ry: float
    fat: float
    muscle: float
    lung_hu: float
    dome_t: tuple[float, float]  # right, left hemidiaphragm dome height
    apex_t: float
    carina_t: float
    mediastinum_rx: float
    heart_x: float
    heart_rx: float
    heart_rz: float
    vertebra_r: float
    aorta_r: float
    trachea_r: float
    rib_phase: float
    fov: float = 0.0  # set per scan
    length: float = 0.0
    z_origin: float = 0.0

    @property
    def cav_cy(self) -> float:
        """Cavity centre: anterior of the body centre by half the extra back thickness."""
        return self.cy - BACK_EXTRA_MM / 2

    @property
    def body_rx(self) -> float:
        """Body semi-axes: cavity plus chest wall."""
        return self.cav_rx + self.fat + self.muscle

    @property
    def body_ry(self) -> float:
        """Body antero-posterior semi-axis (the back wall is thicker)."""
        return self.cav_ry + self.fat + self.muscle + BACK_EXTRA_MM / 2

    @property
    def vertebra_y(self) -> float:
        """Vertebral body centre, just inside the back of the cavity."""
        return self.cav_cy + self.cav_ry - self.vertebra_r - VERTEBRA_INSET_MM

    @property
    def aorta_xy(self) -> tuple[float, float]:
        """Descending aorta centre: left of and slightly anterior to the vertebral body."""
        x = self.cx + self.vertebra_r + self.aorta_r + AORTA_GAP_MM
        return x, self.vertebra_y - AORTA_FORWARD_FRAC * self.vertebra_r

    @property
    def trachea_y(self) -> float:
        """Trachea centre, anterior to the vertebral body (oesophagus in between)."""
        return self.vertebra_y - self.vertebra_r - TRACHEA_GAP_MM - self.trachea_r


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    """One uniform draw from [low, high)."""
    return float(rng.uniform(bounds[0], bounds[1]))


def _patient_anatomy(seed: int, patient_index: int) -> _Anatomy:
    """The patient's body; scans of one patient share it (see _scan_anatomy)."""
    rng = np.random.default_rng([seed, PATIENT_STREAM, patient_index])
    dome_right = _uniform(rng, DOME_T_RANGE)
    return _Anatomy(
        cx=_uniform(rng, (-BODY_SHIFT_X_MM, BODY_SHIFT_X_MM)),
        cy=_uniform(rng, BODY_SHIFT_Y_MM),
        cav_rx=_uniform(rng, CAVITY_RX_MM),
        cav_ry=_uniform(rng, CAVITY_RY_MM),
        fat=_uniform(rng, FAT_MM),
        muscle=_uniform(rng, MUSCLE_MM),
        lung_hu=_uniform(rng, LUNG_HU_RANGE),
        dome_t=(dome_right, dome_right - _uniform(rng, LEFT_DOME_DROP_T)),
        apex_t=_uniform(rng, APEX_T_RANGE),
        carina_t=_uniform(rng, CARINA_T_RANGE),
        mediastinum_rx=_uniform(rng, MEDIASTINUM_RX_MM),
        heart_x=_uniform(rng, HEART_X_MM),
        heart_rx=_uniform(rng, HEART_RX_MM),
        heart_rz=_uniform(rng, HEART_RZ_MM),
        vertebra_r=_uniform(rng, VERTEBRA_R_MM),
        aorta_r=_uniform(rng, AORTA_R_MM),
        trachea_r=_uniform(rng, TRACHEA_R_MM),
        rib_phase=float(rng.random()),
    )


def _scan_anatomy(patient: _Anatomy, rng: np.random.Generator) -> _Anatomy:
    """Per-scan position, breath hold, field of view and coverage."""
    shift = rng.uniform(-SCAN_JITTER_MM, SCAN_JITTER_MM, size=2)
    dome = float(rng.uniform(-SCAN_DOME_JITTER_T, SCAN_DOME_JITTER_T))
    anat = replace(
        patient,
        cx=patient.cx + float(shift[0]),
        cy=patient.cy + float(shift[1]),
        dome_t=(patient.dome_t[0] + dome, patient.dome_t[1] + dome),
    )
    reach = max(anat.body_rx + abs(anat.cx), anat.body_ry + abs(anat.cy))
    fov = max(_uniform(rng, FOV_MM_RANGE), 2 * (reach + FOV_BODY_MARGIN_MM))
    return replace(
        anat,
        fov=fov,
        length=_uniform(rng, CHEST_LENGTH_MM_RANGE),
        z_origin=_uniform(rng, Z_ORIGIN_MM_RANGE),
    )


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


# --------------------------------------------------------------------------------------------
# Anatomy painting (label volume)
# --------------------------------------------------------------------------------------------
def _label_set(*labels: int) -> np.ndarray:
    """Boolean lookup table: table[label] is True for the given labels."""
    table = np.zeros(len(TISSUES), dtype=bool)
    table[list(labels)] = True
    return table


_IS_LUNG = _label_set(*LUNG_LABELS)


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


def _segment_distance(xs, ys, zs, p0: np.ndarray, p1: np.ndarray):
    """Distance (mm) to the segment p0-p1, and the position along it (0..1)."""
    v = p1 - p0
    vv = max(float(v @ v), 1e-9)
    wx, wy, wz = xs - p0[0], ys - p0[1], zs - p0[2]
    lam = np.clip((wx * v[0] + wy * v[1] + wz * v[2]) / vv, 0.0, 1.0)
    d2 = (wx - lam * v[0]) ** 2 + (wy - lam * v[1]) ** 2 + (wz - lam * v[2]) ** 2
    return np.sqrt(d2), lam


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


# --------------------------------------------------------------------------------------------
# Lesions
# --------------------------------------------------------------------------------------------
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


def _paint_nodule(
    rng: np.random.Generator, c: _Canvas, channel: int, value: int, side: int, code: str
) -> _Placed | None:
    """Solid round nodule / mass with a sharp, slightly lobulated edge."""
    radii = _lesion_radii(rng, c.min_area * _uniform(rng, LESION_AREA_FACTOR), c.grid.spacing[2])
    center = _sample_center(rng, c, side, NODULE_T, NODULE_DEPTH_FRAC * radii)
    if center is None:
        return None
    box, coords = _lesion_box(c, center, radii)
    region = (_blob_rho(rng, coords, center, radii, NODULE_LOBULATION) <= 1) & c.free(box)
    if not region.any():
        return None
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


def _voronoi_walls(
    rng: np.random.Generator, shape: tuple[int, ...], spacing, cell_mm: float, stretch: float
) -> np.ndarray:
    """In-plane boundaries of random 3-D Voronoi cells (one voxel thick)."""
    total = int(np.prod(shape))
    seeds = max(2, int(total * float(np.prod(spacing)) / cell_mm**3))
    free = np.ones(shape, dtype=bool)
    free.flat[rng.integers(total, size=seeds)] = False
    nearest = ndimage.distance_transform_edt(
        free,
        sampling=(spacing[0], spacing[1] * stretch, spacing[2]),
        return_distances=False,
        return_indices=True,
    )
    cell = np.ravel_multi_index(tuple(nearest), shape)
    walls = np.zeros(shape, dtype=bool)
    walls[1:] |= cell[1:] != cell[:-1]
    walls[:, 1:] |= cell[:, 1:] != cell[:, :-1]
    return walls


def _tight(box: Box, region: np.ndarray) -> tuple[Box, np.ndarray]:
    """Shrink a box (and its region) to the region's bounding box."""
    spans = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hit = np.nonzero(region.any(axis=other))[0]
        spans.append((int(hit[0]), int(hit[-1]) + 1))
    inner = tuple(slice(lo, hi) for lo, hi in spans)
    outer = tuple(
        slice(b.start + s.start, b.start + s.stop) for b, s in zip(box, inner, strict=True)
    )
    return outer, region[inner]


def _pleural_band_box(c: _Canvas, side: int, t_range: tuple[float, float]) -> Box | None:
    """Voxel box of one hemithorax between two normalised heights."""
    x0, x1 = _side_x_range(c.anat, side)
    return c.grid.box(
        (x0, c.anat.cav_cy - c.anat.cav_ry, c.grid.z_at(t_range[0])),
        (x1, c.anat.cav_cy + c.anat.cav_ry, c.grid.z_at(t_range[1])),
    )


def _base_t(anat: _Anatomy, side: int) -> float:
    """Lowest height of one lung (costophrenic recess), minus a margin."""
    return anat.dome_t[_side_index(side)] - DOME_DEPTH_T - RECESS_T - BASE_MARGIN_T


def _paint_fibrosis(
    rng: np.random.Generator, c: _Canvas, channel: int, value: int, side: int, code: str
) -> _Placed | None:
    """Subpleural basal band of reticulation / honeycomb cysts / linear bands."""
    anat = c.anat
    t_top = anat.dome_t[_side_index(side)] + _uniform(rng, FIBROSIS_TOP_T)
    box = _pleural_band_box(c, side, (_base_t(anat, side), t_top))
    if box is None:
        return None
    xs, ys, zs = c.grid.coords(box)
    cx, cy, rx, ry = _lung_ellipse(anat, side, c.grid.t(zs))
    u, v = (xs - cx) / rx, (ys - cy) / ry
    depth_lung = (1 - np.sqrt(u**2 + v**2)) * np.sqrt(rx * ry)
    cavity = np.sqrt(_ellipse(xs, ys, anat.cx, anat.cav_cy, anat.cav_rx, anat.cav_ry))
    depth_cavity = (1 - cavity) * math.sqrt(anat.cav_rx * anat.cav_ry)
    band = np.minimum(depth_lung, depth_cavity) < _uniform(rng, FIBROSIS_BAND_MM)
    band &= (u * side > FIBROSIS_LATERAL) | (v > FIBROSIS_POSTERIOR)
    region = band & c.free(box)
    if not region.any():
        return None
    box, region = _tight(box, region)
    cell_range, stretch, cell_hu, wall_hu = FIBROSIS_STYLES[code]
    cell_mm = max(_uniform(rng, cell_range), FIBROSIS_MIN_CELL_VOXELS * c.grid.spacing[0])
    walls = _voronoi_walls(rng, region.shape, c.grid.spacing, cell_mm, stretch)
    c.commit(
        box,
        region & ~walls,
        channel,
        value,
        cell_hu,
        LOW_ATTENUATION if cell_hu < anat.lung_hu else LESION_LUNG,
    )
    c.commit(box, region & walls, channel, value, _uniform(rng, wall_hu), SOLID)
    return _Placed(c.grid.center_of(box, region), 0.0)


def _crescent(c: _Canvas, box: Box, side: int, thickness, anterior: bool) -> np.ndarray:
    """Pleural crescent along the posterior (or anterior) wall of one lung.

    ``thickness`` (fraction of the lung's ry, per slice) is the depth at the back; the
    crescent climbs laterally like a meniscus and vanishes where the thickness is 0.
    """
    xs, ys, zs = c.grid.coords(box)
    cx, cy, rx, ry = _lung_ellipse(c.anat, side, c.grid.t(zs))
    u, v = (xs - cx) / rx, (ys - cy) / ry
    if anterior:
        v = -v
    # An ellipse's edge near v = 1 is v ~ 1 - u^2 / 2; the extra term makes the meniscus.
    return v > 1 - thickness - (0.5 + EFFUSION_MENISCUS * thickness) * u**2


def _paint_effusion(
    rng: np.random.Generator, c: _Canvas, channel: int, value: int, side: int, code: str
) -> _Placed | None:
    """Dependent (posterior) fluid crescent at the lung base, thickest at the bottom."""
    anat = c.anat
    t_bottom = _base_t(anat, side)
    t_top = anat.dome_t[_side_index(side)] + _uniform(rng, EFFUSION_TOP_T)
    box = _pleural_band_box(c, side, (t_bottom, t_top))
    if box is None:
        return None
    depth = _uniform(rng, EFFUSION_THICKNESS)
    t = c.grid.t(c.grid.coords(box)[2])
    profile = np.clip((t_top - t) / EFFUSION_TAPER_T, 0.0, 1.0) ** EFFUSION_PROFILE
    region = _crescent(c, box, side, depth * profile, anterior=False) & c.free(box)
    if not region.any():
        return None
    c.commit(box, region, channel, value, _uniform(rng, EFFUSION_HU), FLUID)
    return _Placed(c.grid.center_of(box, region), 0.0, depth)


def _paint_airway(
    rng: np.random.Generator, c: _Canvas, channel: int, value: int, side: int, code: str
) -> _Placed | None:
    """Cluster of dilated (1b) or thick-walled (1a) bronchi seen end-on, with companion arteries."""
    radii = _lesion_radii(rng, c.min_area * _uniform(rng, AIRWAY_AREA_FACTOR), c.grid.spacing[2])
    center = _sample_center(rng, c, side, AIRWAY_T, AIRWAY_DEPTH_FRAC * radii)
    if center is None:
        return None
    box, coords = _lesion_box(c, center, radii)
    region = (_blob_rho(rng, coords, center, radii, 0.0) <= 1) & c.free(box)
    if not region.any():
        return None
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
    radii = _lesion_radii(rng, c.min_area * _uniform(rng, LESION_AREA_FACTOR), c.grid.spacing[2])
    center = _sample_center(rng, c, side, GGO_T, GGO_DEPTH_FRAC * radii)
    if center is None:
        return None
    box, coords = _lesion_box(c, center, radii)
    region = (_blob_rho(rng, coords, center, radii, GGO_IRREGULARITY) <= 1) & c.free(box)
    if not region.any():
        return None
    dots = _smooth_noise(rng, region.shape, c.grid.spacing, MICRONODULE_SIGMA_MM)
    dots = dots > np.quantile(dots, MICRONODULE_QUANTILE)
    c.commit(box, region & ~dots, channel, value, c.hu[box], LESION_LUNG)
    c.commit(box, region & dots, channel, value, _uniform(rng, MICRONODULE_HU), SOLID)
    return _Placed(center, 2 * float(max(radii[:2])))


def _paint_pneumothorax(
    rng: np.random.Generator, c: _Canvas, channel: int, value: int, side: int, code: str
) -> _Placed | None:
    """Non-dependent (anterior) air crescent (unused code 2g)."""
    box = _pleural_band_box(c, side, PNEUMOTHORAX_T)
    if box is None:
        return None
    depth = _uniform(rng, PNEUMOTHORAX_THICKNESS)
    t = c.grid.t(c.grid.coords(box)[2])
    mid, half = sum(PNEUMOTHORAX_T) / 2, (PNEUMOTHORAX_T[1] - PNEUMOTHORAX_T[0]) / 2
    profile = np.sqrt(np.clip(1 - ((t - mid) / half) ** 2, 0.0, 1.0))
    region = _crescent(c, box, side, depth * profile, anterior=True) & c.free(box)
    if not region.any():
        return None
    c.commit(box, region, channel, value, TISSUES[AIR][0], LOW_ATTENUATION)
    return _Placed(c.grid.center_of(box, region), 0.0, depth)


PAINTERS = {
    "nodule": _paint_nodule,
    "ggo": _paint_ggo,
    "consolidation": _paint_consolidation,
    "emphysema": _paint_emphysema,
    "fibrosis": _paint_fibrosis,
    "effusion": _paint_effusion,
    "airway": _paint_airway,
    "micronodules": _paint_micronodules,
    "pneumothorax": _paint_pneumothorax,
}


# --------------------------------------------------------------------------------------------
# Report sentences
# --------------------------------------------------------------------------------------------
COUNT_WORDS = {2: "Two", 3: "Three"}


def _lobe(anat: _Anatomy, grid: _Grid, point: np.ndarray) -> tuple[str, str]:
    """(side, lobe name) of a mm point."""
    side = "right" if point[0] < anat.cx else "left"
    dome = anat.dome_t[0 if side == "right" else 1]
    s = (float(grid.t(point[2])) - dome) / (anat.apex_t - dome)
    if side == "right":
        if s > RIGHT_UPPER_S:
            zone = "upper"
        elif s > RIGHT_MIDDLE_S and point[1] < anat.cav_cy:
            zone = "middle"
        else:
            zone = "lower"
    else:
        zone = "upper" if s > LEFT_UPPER_S else "lower"
    return side, f"{side} {zone} lobe"


def _join(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c' (duplicates dropped)."""
    unique = list(dict.fromkeys(items))
    return unique[0] if len(unique) == 1 else ", ".join(unique[:-1]) + " and " + unique[-1]


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    """One of the options, drawn from rng."""
    return options[int(rng.integers(len(options)))]


def _sentence(rng: np.random.Generator, finding: _Finding, placed: list[_Placed], c: _Canvas):
    """A plausible report sentence for a painted finding."""
    where = [_lobe(c.anat, c.grid, p.center) for p in placed]
    sides = [s for s, _ in where]
    lobes = _join([lobe for _, lobe in where])
    both = len(set(sides)) == 2
    code, n = finding.code, len(placed)
    size = round(max(p.size_mm for p in placed))
    if finding.kind == "nodule":
        noun = "mass" if size >= MASS_MM else "nodule"
        biggest = where[int(np.argmax([p.size_mm for p in placed]))][1]
        if n == 1:
            adjective = _pick(rng, ["", "lobulated ", "well-circumscribed "])
            return f"A {size} mm {adjective}solid {noun} in the {biggest}."
        plural = "masses" if noun == "mass" else "nodules"
        return (
            f"{COUNT_WORDS[n]} solid pulmonary {plural}, the largest measuring {size} mm "
            f"in the {biggest}."
        )
    if finding.kind == "ggo":
        if n > 1:
            return f"Multifocal ground-glass opacities in the {lobes}."
        return _pick(
            rng,
            [
                f"Ground-glass opacity in the {lobes}.",
                f"Patchy ground-glass opacity in the {lobes}.",
                f"A {size} mm area of ground-glass density in the {lobes}.",
            ],
        )
    if finding.kind == "consolidation":
        return _pick(
            rng,
            [
                f"Consolidation with air bronchograms in the {lobes}.",
                f"Dense consolidation in the {lobes}.",
                f"Atelectasis and consolidation in the {lobes}.",
            ],
        )
    if finding.kind == "emphysema":
        where_text = "both upper lobes" if both else f"the {lobes}"
        return _pick(
            rng,
            [
                f"Centrilobular emphysema in {where_text}.",
                f"Paraseptal and centrilobular emphysema in {where_text}.",
            ],
        )
    if finding.kind == "fibrosis":
        base = "both lung bases" if both else f"the {sides[0]} lung base"
        return {
            "1d": f"Interlobular septal thickening and reticulation at {base}.",
            "2a": f"Linear fibrotic bands and subsegmental atelectasis at {base}.",
            "2f": f"Subpleural honeycombing at {base}.",
        }[code]
    if finding.kind == "effusion":
        if both:
            larger = sides[int(np.argmax([p.extent for p in placed]))]
            return f"Bilateral dependent pleural effusions, greater on the {larger}."
        grade = "Moderate" if placed[0].extent >= EFFUSION_MODERATE else "Small"
        return f"{grade} dependent {sides[0]} pleural effusion."
    if finding.kind == "airway":
        if code == "1a":
            return f"Bronchial wall thickening in the {lobes}."
        return _pick(
            rng,
            [
                f"Cylindrical bronchiectasis in the {lobes}.",
                f"Varicose bronchiectasis in the {lobes}.",
            ],
        )
    if finding.kind == "micronodules":
        return f"Centrilobular micronodules with a tree-in-bud pattern in the {lobes}."
    return f"Small {sides[0]} pneumothorax."


def _paint_findings(
    rng: np.random.Generator, c: _Canvas, findings: tuple[_Finding, ...]
) -> list[tuple[str, str]]:
    """Paint every finding into its channel; (sentence, code) per channel (None if empty)."""
    described = []
    for channel, finding in enumerate(findings):
        first_side = RIGHT if rng.random() < 0.5 else LEFT
        placed: list[_Placed] = []
        for i in range(finding.instances):
            side = first_side if i % 2 == 0 else -first_side
            result = PAINTERS[finding.kind](rng, c, channel, len(placed) + 1, side, finding.code)
            if result is not None:
                placed.append(result)
        described.append((_sentence(rng, finding, placed, c), finding.code) if placed else None)
    return described


# --------------------------------------------------------------------------------------------
# Rendering and writing
# --------------------------------------------------------------------------------------------
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
    each count their findings. Existing files of the same names are overwritten.
    """
    config.validate()
    out = Path(out_dir)
    rex_dir, ctrate_dir = out / REX_DIRNAME, out / CTRATE_DIRNAME
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
