"""Patient-level train/test split, deterministic from the seed.

``random`` shuffles patients; ``stratified`` assigns them so that about ``test_fraction`` of
every class's rows lands in test. Either way a patient's scans never straddle the splits.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .config import SPLIT_STRATEGIES

MAX_MOVE_PASSES = 50  # ours: bound on local-search passes (each pass visits every patient)


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


def _split_cost(test_rows: np.ndarray, totals: np.ndarray, f: float) -> np.ndarray:
    """Per candidate (last axis: classes): summed squared distance of each class's test share
    from ``f``; every class weighs the same, and a class missing from a split costs f**2 or
    (1 - f)**2."""
    return ((test_rows / totals - f) ** 2).sum(axis=-1)


def stratified_split(
    class_counts: Mapping[str, Mapping[str, int]], seed: int, test_fraction: float
) -> dict[str, str]:
    """Map each patient to 'train' or 'test' so that about ``test_fraction`` of each class's
    rows is in test (multi-label: a patient holds rows of several classes).

    ``class_counts`` is patient -> class -> rows. Greedy start (iterative stratification,
    Sechidis et al. 2011, on row counts): the class with the fewest unassigned rows first; each
    of its patients, in seeded order, goes to the split whose demand for that class is largest
    relative to its target. Then, in seeded order, a patient moves to the other split (alone or
    exchanged with one patient there) while that lowers the summed squared deviation from
    ``test_fraction`` of the classes' test shares and of the patients' test share. Patients
    without rows then fill the splits towards round(n * test_fraction) test patients; they do
    not change where the others go. Deterministic for a seed.
    """
    patients = sorted(class_counts)
    classes = sorted({c for counts in class_counts.values() for c, n in counts.items() if n > 0})
    rows = np.array(
        [[class_counts[p].get(c, 0) for c in classes] for p in patients], dtype=float
    ).reshape(len(patients), len(classes))
    with_rows = np.flatnonzero(rows.sum(axis=1) > 0)
    without_rows = np.flatnonzero(rows.sum(axis=1) == 0)
    rng = np.random.default_rng(seed)
    in_test = np.zeros(len(patients), dtype=bool)
    if len(with_rows) >= 2:
        rank = np.empty(len(with_rows), dtype=int)  # seeded visiting order
        rank[rng.permutation(len(with_rows))] = np.arange(len(with_rows))
        in_test[with_rows] = _assign_rows(rows[with_rows], rank, test_fraction)
    n_test = int(round(len(patients) * test_fraction))
    for i in without_rows[rng.permutation(len(without_rows))]:
        in_test[i] = int(in_test.sum()) < n_test
    return {p: ("test" if t else "train") for p, t in zip(patients, in_test, strict=True)}


def _assign_rows(rows: np.ndarray, rank: np.ndarray, f: float) -> np.ndarray:
    """Test membership of patients that all have rows: greedy start, then local moves."""
    totals = rows.sum(axis=0)
    target = np.stack([(1.0 - f) * totals, f * totals])  # [train, test] rows per class
    have = np.zeros_like(target)
    split = np.full(len(rows), -1)
    while (split < 0).any():
        left = rows[split < 0].sum(axis=0)
        cls = int(np.argmin(np.where(left > 0, left, np.inf)))
        group = [i for i in np.argsort(rank) if split[i] < 0 and rows[i, cls] > 0]
        for i in group:
            need = target[:, cls] - have[:, cls]
            relative = need / target[:, cls]
            # ties (e.g. at the start) go to the split that still needs more rows: train
            s = int(np.lexsort((-need, -relative))[0])
            split[i] = s
            have[s] += rows[i]
    in_test = split == 1
    # the moves also weigh the patients' test share, as one more class: 8:2 "at patient level"
    rows = np.hstack([rows, np.ones((len(rows), 1))])
    totals = rows.sum(axis=0)
    test_rows = rows[in_test].sum(axis=0)
    cost = float(_split_cost(test_rows, totals, f))
    for _ in range(MAX_MOVE_PASSES):
        improved = False
        for i in np.argsort(rank):
            # move patient i to the other split, alone or exchanged with one patient there
            sign = -1.0 if in_test[i] else 1.0
            others = np.flatnonzero(in_test != in_test[i])
            moved = test_rows + sign * rows[i]
            options = np.vstack([moved, moved - sign * rows[others]])
            costs = _split_cost(options, totals, f)
            best = int(np.argmin(costs))
            if costs[best] < cost - 1e-12:
                in_test[i] = not in_test[i]
                if best > 0:
                    j = others[best - 1]
                    in_test[j] = not in_test[j]
                test_rows, cost, improved = options[best], float(costs[best]), True
        if not improved:
            break
    if not in_test.any() or in_test.all():  # two or more patients: both splits get one
        sign = np.where(in_test, -1.0, 1.0)[:, None]
        costs = _split_cost(test_rows + sign * rows, totals, f)
        i = min(range(len(rows)), key=lambda k: (costs[k], rank[k]))
        in_test[i] = not in_test[i]
    return in_test


def assign_splits(
    class_counts: Mapping[str, Mapping[str, int]],
    strategy: str,
    seed: int,
    test_fraction: float,
) -> dict[str, str]:
    """Patient -> split with ``strategy`` ('stratified' or 'random'); ``class_counts`` is
    patient -> class -> rows (every patient of the build, rows or not)."""
    if strategy == "random":
        return split_patients(list(class_counts), seed, test_fraction)
    if strategy == "stratified":
        return stratified_split(class_counts, seed, test_fraction)
    raise ValueError(f"split_strategy (--split-strategy) must be one of {SPLIT_STRATEGIES}, "
                     f"got {strategy!r}")  # fmt: skip
