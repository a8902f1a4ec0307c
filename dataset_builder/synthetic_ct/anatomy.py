"""One scan's body in mm: anatomy drawn per patient, then jittered and framed per scan."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .plan import PATIENT_STREAM

# --------------------------------------------------------------------------------------------
# Anatomy (mm; t = normalised height, 0 at the lowest slice, 1 at the highest)
# --------------------------------------------------------------------------------------------
CAVITY_RX_MM = (108.0, 130.0)  # thoracic cavity semi-axes, left-right
CAVITY_RY_MM = (70.0, 88.0)  # ... and antero-posterior
FAT_MM = (6.0, 22.0)  # subcutaneous fat thickness
MUSCLE_MM = (9.0, 15.0)  # chest wall muscle thickness (ribs lie in it)
BACK_EXTRA_MM = 30.0  # extra posterior wall thickness (paraspinal muscles)
BODY_SHIFT_X_MM = 8.0  # body centre jitter, left-right (+-)
BODY_SHIFT_Y_MM = (-4.0, 10.0)  # body centre jitter, antero-posterior
SCAN_JITTER_MM = 3.0  # extra body-position jitter between scans of one patient
LUNG_HU_RANGE = (-870.0, -840.0)  # lung parenchyma
APEX_T_RANGE = (0.92, 0.97)  # lung apex height
DOME_T_RANGE = (0.27, 0.33)  # right hemidiaphragm dome height
LEFT_DOME_DROP_T = (0.02, 0.05)  # the left dome is lower
SCAN_DOME_JITTER_T = 0.015  # breath-hold difference between scans
MEDIASTINUM_RX_MM = (22.0, 30.0)  # upper mediastinum semi-axis, left-right
HEART_X_MM = (12.0, 24.0)  # heart centre, toward the patient's left
HEART_RX_MM = (48.0, 60.0)  # heart semi-axes
HEART_RZ_MM = (45.0, 58.0)
VERTEBRA_R_MM = (14.0, 18.0)  # vertebral body radius
VERTEBRA_INSET_MM = 2.0  # vertebral body back edge inside the cavity edge
AORTA_R_MM = (10.0, 13.0)  # descending aorta radius
AORTA_GAP_MM = 2.0  # aorta to vertebral body
AORTA_FORWARD_FRAC = 0.5  # aorta centre anterior to the vertebral centre, fraction of its radius
TRACHEA_R_MM = (8.0, 10.0)  # tracheal lumen radius
TRACHEA_GAP_MM = 12.0  # trachea to vertebral body (the oesophagus lies between)
CARINA_T_RANGE = (0.58, 0.64)

# --------------------------------------------------------------------------------------------
# Field of view and coverage of a scan
# --------------------------------------------------------------------------------------------
FOV_MM_RANGE = (330.0, 370.0)  # reconstruction field of view (512 px -> 0.64-0.72 mm)
FOV_BODY_MARGIN_MM = 12.0  # air kept between the body and the edge of the field of view
CHEST_LENGTH_MM_RANGE = (320.0, 370.0)  # craniocaudal coverage (300 slices -> 1.07-1.23 mm)
Z_ORIGIN_MM_RANGE = (-420.0, -160.0)  # table position of the first slice


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
