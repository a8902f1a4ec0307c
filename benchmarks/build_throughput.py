"""Builder throughput on full-size synthetic volumes (one run; these machines are noisy).

Prints, per volume: seconds for the whole builder (both configs, 1 worker), seconds for only
decoding the CT and the mask (the floor), their ratio, the speed-up from 1 to 2 workers (whole
build, and the case stage alone: decode, select, render, cache), and the peak RSS of a worker.

    python benchmarks/build_throughput.py                 # 8 cases, 512 x 512 x ~300
    python benchmarks/build_throughput.py --slices 600    # 512 x 512 x 600
Targets (issue 2): ratio <= 1.5 (aim 1.2), speed-up >= 1.7, peak RSS per worker <= 2 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from dataset_builder import BuildOptions, build_repo
from dataset_builder.pipeline import run_pipeline
from dataset_builder.sources import load_cases
from dataset_builder.synthetic_ct import SynthConfig, synthesize


def decode_floor(rex_dir: Path, ctrate_dir: Path) -> float:
    """Seconds to only decode every case's CT and mask (nibabel, stored dtype)."""
    specs, _ = load_cases(rex_dir, ctrate_dir, ["train", "val"])
    start = time.perf_counter()
    for spec in specs:
        np.asanyarray(nib.load(spec.ct_path).dataobj)
        np.asanyarray(nib.load(spec.mask_path).dataobj)
    return time.perf_counter() - start


def timed_build(
    rex_dir: Path, ctrate_dir: Path, out: Path, workers: int, threads: int | None = None
) -> float:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    build_repo(
        rex_dir,
        ctrate_dir,
        out,
        BuildOptions(),
        num_workers=workers,
        progress=False,
        render_threads=threads,
    )
    return time.perf_counter() - start


def timed_cases(rex_dir: Path, ctrate_dir: Path, work: Path, workers: int) -> float:
    """Seconds for the case stage alone (decode, select, render, cache), no Parquet or card."""
    shutil.rmtree(work, ignore_errors=True)
    start = time.perf_counter()
    run_pipeline(
        rex_dir,
        ctrate_dir,
        BuildOptions(),
        work,
        num_workers=workers,
        progress=False,
        render_threads=1,
    )
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument(
        "--slices",
        type=int,
        default=None,
        help="Slices per volume (default: full-size, ~300 drawn per case).",
    )
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ctvqa-bench-"))
    config = (
        SynthConfig(cases=args.cases, seed=0, full_size=True)
        if args.slices is None
        else SynthConfig(cases=args.cases, seed=0, size=512, slices=args.slices)
    )
    t0 = time.perf_counter()
    source = synthesize(workdir / "source", config)
    print(f"synthesised {args.cases} cases in {time.perf_counter() - t0:.1f} s at {workdir}")
    rex, ctrate = Path(source["rex_dir"]), Path(source["ctrate_dir"])
    shapes = [nib.load(p).shape for p in sorted((ctrate / "dataset").rglob("*.nii.gz"))]
    n = len(shapes)

    decode_floor(rex, ctrate)  # warm the page cache so both timings read from memory
    floor = decode_floor(rex, ctrate) / n
    one = timed_build(rex, ctrate, workdir / "out", workers=1) / n  # default: 2 render threads
    # process scaling alone: one encoding thread per worker in both runs
    one_single = timed_build(rex, ctrate, workdir / "out", workers=1, threads=1) / n
    two = timed_build(rex, ctrate, workdir / "out", workers=2, threads=1) / n
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    cases_one = timed_cases(rex, ctrate, workdir / "cases", workers=1)
    cases_two = timed_cases(rex, ctrate, workdir / "cases", workers=2)
    shutil.rmtree(workdir / "cases", ignore_errors=True)

    result = {
        "volumes": n,
        "shape_example": list(shapes[0]),
        "decode_floor_s_per_volume": round(floor, 3),
        "builder_s_per_volume_1_worker": round(one, 3),
        "ratio_builder_to_floor": round(one / floor, 2),
        "builder_s_per_volume_1_worker_1_thread": round(one_single, 3),
        "builder_s_per_volume_2_workers_1_thread": round(two, 3),
        "speedup_1_to_2_workers": round(one_single / two, 2),
        "case_stage_speedup_1_to_2_workers": round(cases_one / cases_two, 2),
        "peak_rss_per_worker_mb": round(rss_mb, 1),
    }
    print(json.dumps(result, indent=1))
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        shutil.rmtree(workdir / "out", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
