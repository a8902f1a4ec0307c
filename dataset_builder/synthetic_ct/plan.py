"""The plan, drawn before any array: patients, names, scans, findings, padding, val split."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .config import SynthConfig

# Random streams: every generator is default_rng([seed, stream, ...]). All streams of the
# package are numbered here, together, so that they stay distinct.
PLAN_STREAM, PATIENT_STREAM, SCAN_STREAM, NOISE_STREAM = 0, 1, 2, 3

# --------------------------------------------------------------------------------------------
# Patients, scans and volumes (named and split as in the real data)
# --------------------------------------------------------------------------------------------
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
FULL_SLICES_RANGE = (260, 340)  # slices per scan with full_size=True (inclusive)
PAD_VALUE = -2048  # outside the circular field of view (CT-RATE)
PAD_VALUE_ALT = -8192  # the other padding value seen in CT-RATE
PAD_ALT_PROB = 0.25  # share of volumes padded with PAD_VALUE_ALT

# --------------------------------------------------------------------------------------------
# Findings: category codes and counts
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
