"""Patient-level train/test split, deterministic from the seed."""

from __future__ import annotations

import numpy as np


def split_patients(
    patient_ids: list[str] | set[str], seed: int, test_fraction: float
) -> dict[str, str]:
    """Map each patient to 'train' or 'test'; a patient's scans never straddle the splits.

    Patients are sorted, shuffled with ``seed`` and the first round(n * test_fraction) go to
    'test' (at least one when there are two or more patients).
    """
    patients = sorted(set(patient_ids))
    order = np.random.default_rng(seed).permutation(len(patients))
    n_test = int(round(len(patients) * test_fraction))
    n_test = min(max(n_test, 1), len(patients) - 1) if len(patients) >= 2 else 0
    test = {patients[i] for i in order[:n_test]}
    return {p: ("test" if p in test else "train") for p in patients}
