"""One case -> its rows (both renderings and the grounding target), cached on disk so that a
killed build resumes.

A case is processed once for all configs: its rows go to ``<work_dir>/<fingerprint>/
<case_id>.parquet``, then ``<case_id>.json`` (its report) is written as the commit marker.
A cached case is reused while the options, the cache format and schema, and its input files
(size, mtime) are unchanged.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import traceback
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from .class_map import ClassMap
from .config import BuildOptions
from .grounding_targets import GroundingTarget, grounding_target
from .lesions import LesionCandidate, cap_candidates, finding_candidates
from .render import RenderedSlice, render_slice
from .sources import CaseError, CaseSpec
from .volumes import load_case_volumes


@dataclass
class CaseReport:
    """What became of one case (stored as ``<case_id>.json`` next to its rows)."""

    case: str
    patient_id: str
    rows: int = 0
    candidates: int = 0
    class_counts: dict[str, int] = field(default_factory=dict)
    unused_codes: dict[str, int] = field(default_factory=dict)
    skipped_findings: list[dict] = field(default_factory=list)
    ct_sha256: str = ""
    mask_sha256: str = ""
    inputs: list[list[int]] = field(default_factory=list)  # [size, mtime_ns] of CT and mask


def _input_signature(spec: CaseSpec) -> list[list[int]]:
    out = []
    for path in (spec.ct_path, spec.mask_path):
        stat = path.stat()
        out.append([stat.st_size, stat.st_mtime_ns])
    return out


def _mapped_findings(
    spec: CaseSpec, n_channels: int, class_map: ClassMap, strict: bool, report: CaseReport
) -> list[tuple[int, str, str, str]]:
    """(channel, class, code, sentence) of the findings that map to a class."""
    unused: Counter[str] = Counter()
    out = []
    for finding in spec.findings:
        reason = None
        if not class_map.is_known(finding.category_code):
            reason = (
                f"finding {finding.index}: unknown category code "
                f"{finding.category_code!r} (not in {class_map.source}; add it there)"
            )
        elif finding.index >= n_channels:
            reason = (
                f"finding {finding.index}: no mask channel for it (the mask has "
                f"{n_channels} channel(s))"
            )
        if reason is not None:
            if strict:
                raise CaseError(spec.name, reason)
            report.skipped_findings.append({"case": spec.name, "reason": reason})
            continue
        class_name = class_map.lookup(finding.category_code)
        if class_name is None:
            unused[finding.category_code] += 1
            continue
        out.append((finding.index, class_name, finding.category_code, finding.sentence))
    report.unused_codes = dict(sorted(unused.items()))
    return out


def process_case(
    spec: CaseSpec,
    options: BuildOptions,
    class_map: ClassMap,
    strict: bool = False,
    render_threads: int = 1,
) -> tuple[list[dict], CaseReport]:
    """Decode, select and render one case; raise CaseError for a case that cannot be used."""
    report = CaseReport(
        case=spec.name,
        patient_id=spec.patient_id,
        inputs=_input_signature(spec)
        if spec.ct_path.is_file() and spec.mask_path.is_file()
        else [],
    )
    volumes = load_case_volumes(spec)
    report.ct_sha256, report.mask_sha256 = volumes.ct_sha256, volumes.mask_sha256
    # (F, Z): slices holding lesion voxels; per channel, as masks are Fortran-ordered (10x faster)
    occupied = np.stack([channel.any(axis=(0, 1)) for channel in volumes.masks])
    if not occupied.any():
        raise CaseError(
            spec.name,
            f"mask {spec.mask_path} is empty (no lesion voxels); "
            "check the file or leave the case out",
        )
    findings = _mapped_findings(spec, volumes.masks.shape[0], class_map, strict, report)
    meta = {index: (cls, code, sentence) for index, cls, code, sentence in findings}
    candidates = [
        c
        for index in meta
        for c in finding_candidates(volumes.masks[index], index, options, occupied[index])
    ]
    report.candidates = len(candidates)
    chosen = cap_candidates(candidates, options.slices_per_case, options.slice_cap_unit)

    native_size = (volumes.ct.shape[0], volumes.ct.shape[1])  # (width, height) of the view

    def render(candidate: LesionCandidate) -> tuple[RenderedSlice, GroundingTarget]:
        rendered = render_slice(volumes.ct[:, :, candidate.slice_index], candidate.box, options)
        return rendered, grounding_target(candidate, native_size, options)

    # PNG encoding releases the GIL: threads use the cores a single worker leaves idle
    with ThreadPoolExecutor(max(1, render_threads)) as pool:
        renderings = list(pool.map(render, chosen))
    rows = []
    for candidate, (rendered, target) in zip(chosen, renderings, strict=True):
        class_name, code, sentence = meta[candidate.finding_index]
        rows.append(
            {
                "case_id": spec.case_id,
                "patient_id": spec.patient_id,
                "finding_index": candidate.finding_index,
                "slice_index": candidate.slice_index,
                "answer": class_name,
                "category_code": code,
                "finding": sentence,
                "lesion_pixels": candidate.pixels,
                "bbox": list(rendered.bbox),
                "zoom_box": list(rendered.zoom_box),
                "zoom_corner": rendered.zoom_corner,
                "spacing_mm": [round(s, 4) for s in volumes.spacing_mm],
                "plain_png": rendered.plain_png,
                "zoom_png": rendered.zoom_png,
                "mask_png": target.mask_png,
                "grounding_bbox": list(target.bbox),
                "points": [list(point) for point in target.points],
            }
        )
    report.rows = len(rows)
    report.class_counts = dict(sorted(Counter(r["answer"] for r in rows).items()))
    return rows, report


CACHE_SCHEMA = pa.schema(
    [
        ("case_id", pa.string()),
        ("patient_id", pa.string()),
        ("finding_index", pa.int32()),
        ("slice_index", pa.int32()),
        ("answer", pa.string()),
        ("category_code", pa.string()),
        ("finding", pa.string()),
        ("lesion_pixels", pa.int32()),
        ("bbox", pa.list_(pa.int32())),
        ("zoom_box", pa.list_(pa.int32())),
        ("zoom_corner", pa.string()),
        ("spacing_mm", pa.list_(pa.float32())),
        ("plain_png", pa.binary()),
        ("zoom_png", pa.binary()),
        # the grounding rows' target (image frame of the written image; grounding_targets.py)
        ("mask_png", pa.binary()),
        ("grounding_bbox", pa.list_(pa.int32())),
        ("points", pa.list_(pa.list_(pa.int32()))),
    ]
)
# ours: bump when what a cached case row holds changes without a schema change (it keys the
# cache folder, with the schema, so that an older cache is never reused)
CACHE_FORMAT = 2


class CaseCache:
    """Per-case rows and reports under ``root`` (one folder per options fingerprint)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def rows_path(self, spec: CaseSpec) -> Path:
        return self.root / f"{spec.case_id}.parquet"

    def report_path(self, spec: CaseSpec) -> Path:
        return self.root / f"{spec.case_id}.json"

    def load_report(self, spec: CaseSpec) -> CaseReport | None:
        """The cached report if the case is complete and its inputs are unchanged."""
        path, rows = self.report_path(spec), self.rows_path(spec)
        if not (path.is_file() and rows.is_file()):
            return None
        try:
            report = CaseReport(**json.loads(path.read_text()))
            current = _input_signature(spec)
        except (OSError, ValueError, TypeError):
            return None
        return report if report.inputs == current else None

    def store(self, spec: CaseSpec, rows: list[dict], report: CaseReport) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        rows_path, report_path = self.rows_path(spec), self.report_path(spec)
        tmp = rows_path.with_suffix(f".parquet.tmp{os.getpid()}")
        pq.write_table(pa.Table.from_pylist(rows, schema=CACHE_SCHEMA), tmp)
        os.replace(tmp, rows_path)
        tmp = report_path.with_suffix(f".json.tmp{os.getpid()}")
        tmp.write_text(json.dumps(report.__dict__, indent=1))
        os.replace(tmp, report_path)  # written last: marks the case complete

    def iter_rows(self, spec: CaseSpec, skip_columns: tuple[str, ...] = ()) -> Iterator[dict]:
        """Cached rows of a case, leaving out ``skip_columns`` (e.g. the other rendering)."""
        parquet = pq.ParquetFile(self.rows_path(spec))
        columns = [name for name in CACHE_SCHEMA.names if name not in skip_columns]
        for batch in parquet.iter_batches(batch_size=32, columns=columns):
            yield from batch.to_pylist()


@dataclass
class PreparedCases:
    reports: dict[str, CaseReport]  # by case name, cases that produced a report
    skipped: list[dict]  # {case, reason} of cases that could not be used
    reused: int = 0


def _work_estimate(spec: CaseSpec) -> int:
    """Bytes to decode, a proxy of a case's processing time."""
    return sum(p.stat().st_size for p in (spec.ct_path, spec.mask_path) if p.is_file())


def _work(
    task: tuple[CaseSpec, BuildOptions, ClassMap, str, bool, int],
) -> tuple[str, CaseReport | None, str | None]:
    spec, options, class_map, cache_root, strict, render_threads = task
    try:
        rows, report = process_case(spec, options, class_map, strict, render_threads)
        CaseCache(cache_root).store(spec, rows, report)
        return spec.name, report, None
    except CaseError as err:
        if strict:
            raise
        return spec.name, None, err.reason
    except Exception as err:  # noqa: BLE001 - a batch job reports a bad case and goes on
        if strict:
            raise
        where = traceback.extract_tb(err.__traceback__)[-1]
        return (
            spec.name,
            None,
            (
                f"unexpected {type(err).__name__}: {err} (at {Path(where.filename).name}:"
                f"{where.lineno}); please report it with this case"
            ),
        )


def prepare_cases(
    specs: list[CaseSpec],
    options: BuildOptions,
    class_map: ClassMap,
    cache: CaseCache,
    num_workers: int = 1,
    strict: bool = False,
    progress: bool = True,
    render_threads: int | None = None,
) -> PreparedCases:
    """Process every case not yet cached, in ``num_workers`` processes, with a progress bar.

    ``render_threads`` per worker default to the cores left over: cpu_count // workers.
    """
    result = PreparedCases(reports={}, skipped=[])
    todo = []
    for spec in specs:
        report = cache.load_report(spec)
        if report is None:
            todo.append(spec)
        else:
            result.reports[spec.name] = report
            result.reused += 1
    todo.sort(key=_work_estimate, reverse=True)  # largest first: workers finish together
    workers = max(1, min(num_workers, len(todo)))
    threads = render_threads or max(1, (os.cpu_count() or 1) // workers)
    tasks = [(spec, options, class_map, str(cache.root), strict, threads) for spec in todo]
    bar = tqdm(
        total=len(specs),
        initial=result.reused,
        unit="case",
        desc="Processing CT cases",
        disable=not progress,
    )
    with bar:
        if workers == 1:
            outcomes: Iterator = map(_work, tasks)
            pool = None
        else:
            pool = multiprocessing.get_context("spawn" if os.name == "nt" else "fork").Pool(
                workers, maxtasksperchild=16
            )
            outcomes = pool.imap_unordered(_work, tasks)
        try:
            for name, report, reason in outcomes:
                if report is not None:
                    result.reports[name] = report
                else:
                    result.skipped.append({"case": name, "reason": reason})
                bar.update(1)
        finally:
            if pool is not None:
                pool.terminate()  # every task has returned (or one failed under --strict)
                pool.join()
    result.skipped.sort(key=lambda s: s["case"])
    return result
