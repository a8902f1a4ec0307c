"""Voxel labels and their (mean HU, noise SD HU), and label lookup tables."""

from __future__ import annotations

import numpy as np

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


def _label_set(*labels: int) -> np.ndarray:
    """Boolean lookup table: table[label] is True for the given labels."""
    table = np.zeros(len(TISSUES), dtype=bool)
    table[list(labels)] = True
    return table


_IS_LUNG = _label_set(*LUNG_LABELS)
