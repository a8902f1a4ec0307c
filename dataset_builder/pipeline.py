"""The whole CT-RATE-VQA flow up to cached rows: sources -> split -> processed cases.

Shared by the ``datasets`` builder (``CTRateVQA``) and the ``build`` command.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .case_processing import CACHE_FORMAT, CACHE_SCHEMA, CaseCache, prepare_cases
from .class_map import ClassMap, load_class_map
from .config import SPLITS, BuildOptions
from .sources import CaseSpec, load_cases
from .splits import assign_splits


@dataclass
class BuildReport:
    """What the pipeline did: the facts the manifest and the card are made from."""

    cases_listed: int = 0
    cases_used: int = 0
    cases_reused_from_cache: int = 0
    cases_without_rows: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # {case, reason}
    unused_codes: dict[str, int] = field(default_factory=dict)
    patients: dict[str, int] = field(default_factory=dict)  # per split
    cases: dict[str, int] = field(default_factory=dict)  # per split
    class_counts: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> class -> n
    inputs: dict[str, dict[str, str]] = field(default_factory=dict)  # case -> sha256s
    codes_seen: dict[str, int] = field(default_factory=dict)  # category code -> findings
    cache_dir: str = ""


@dataclass
class PipelineResult:
    splits: dict[str, list[CaseSpec]]  # cases with rows, in order, per split
    cache: CaseCache
    class_map: ClassMap
    report: BuildReport


def cache_folder(work_dir: str | Path, options: BuildOptions, class_map: ClassMap) -> Path:
    """Per-case cache folder keyed by every option (and the class map) that changes rows, and
    by the cache's format and schema (an older cache is never reused)."""
    mapping = json.dumps({"classes": class_map.classes, "codes": class_map.codes}, sort_keys=True)
    layout = f"format {CACHE_FORMAT}: {CACHE_SCHEMA}"
    return Path(work_dir) / f"cases-{options.fingerprint(mapping, layout)}"


def run_pipeline(
    rex_dir: str | Path,
    ctrate_dir: str | Path,
    options: BuildOptions,
    work_dir: str | Path,
    num_workers: int = 1,
    strict: bool = False,
    progress: bool = True,
    render_threads: int | None = None,
) -> PipelineResult:
    """Read the sources, split patients, process (or reuse) every case; never raises for a bad
    case unless ``strict``."""
    class_map = load_class_map(options.class_map)
    specs, refused = load_cases(rex_dir, ctrate_dir, options.source_splits)
    if strict and refused:
        raise refused[0]
    cache = CaseCache(cache_folder(work_dir, options, class_map))
    prepared = prepare_cases(
        specs,
        options,
        class_map,
        cache,
        num_workers=num_workers,
        strict=strict,
        progress=progress,
        render_threads=render_threads,
    )
    # per-patient class rows are known only now: a stratified split needs them
    patient_rows: dict[str, Counter[str]] = {s.patient_id: Counter() for s in specs}
    for spec in specs:
        case_report = prepared.reports.get(spec.name)
        if case_report is not None:
            patient_rows[spec.patient_id].update(case_report.class_counts)
    assignment = assign_splits(
        patient_rows, options.split_strategy, options.seed, options.test_fraction
    )

    report = BuildReport(
        cases_listed=len(specs) + len(refused),
        cases_reused_from_cache=prepared.reused,
        cache_dir=str(cache.root),
    )
    report.skipped = sorted(
        [{"case": e.case, "reason": e.reason} for e in refused] + prepared.skipped,
        key=lambda s: (s["case"], s["reason"]),
    )
    splits: dict[str, list[CaseSpec]] = {name: [] for name in SPLITS}
    unused: Counter[str] = Counter()
    class_counts: dict[str, Counter[str]] = {name: Counter() for name in SPLITS}
    for spec in sorted(specs, key=lambda s: s.case_id):
        case_report = prepared.reports.get(spec.name)
        if case_report is None:
            continue
        report.skipped.extend(case_report.skipped_findings)
        unused.update(case_report.unused_codes)
        report.inputs[spec.name] = {
            "ct_sha256": case_report.ct_sha256,
            "mask_sha256": case_report.mask_sha256,
        }
        if case_report.rows == 0:
            report.cases_without_rows.append(spec.name)
            continue
        split = assignment[spec.patient_id]
        splits[split].append(spec)
        class_counts[split].update(case_report.class_counts)
    report.codes_seen = dict(
        sorted(Counter(f.category_code for s in specs for f in s.findings).items())
    )
    report.cases_used = sum(len(v) for v in splits.values())
    report.unused_codes = dict(sorted(unused.items()))
    for split, cases in splits.items():
        report.cases[split] = len(cases)
        report.patients[split] = len({c.patient_id for c in cases})
        report.class_counts[split] = {c: class_counts[split][c] for c in class_map.classes}
    return PipelineResult(splits=splits, cache=cache, class_map=class_map, report=report)
