"""Write a built CT-RATE-VQA as a Hub dataset repo folder.

    OUT/README.md                      dataset card (YAML configs, typed features, license, ...)
    OUT/<config>/<split>-0000N-of-0000M.parquet   image bytes embedded
    OUT/class_distribution.png
    OUT/build_manifest.json            parameters, versions, checksums, counts, skipped cases
    OUT/eval.yaml                      the Hub Benchmark declaration (tasks zoom, plain)
    OUT/.build_cache/                  per-case cache that lets a killed build resume

``load_dataset(OUT, "zoom")`` reads it offline; ``push`` uploads it as it is.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import datasets

from hub_cards.benchmark import write_eval_yaml
from hub_cards.dataset_card import write_dataset_card

from .builder import CTRateVQA
from .class_map import load_class_map
from .config import SPLITS, VARIANTS, BuildOptions
from .qa_rows import QUESTION_TEMPLATES
from .sources import read_entries

MANIFEST_NAME = "build_manifest.json"
CACHE_DIR_NAME = ".build_cache"  # left out of pushes (see hub_cards)
MANIFEST_FORMAT = 1
PARALLEL_WRITE_MIN_CASES = 200  # ours: parallel Parquet writing only for builds this large


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_manifest(out: Path, manifest: dict) -> None:
    tmp = out / f"{MANIFEST_NAME}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, out / MANIFEST_NAME)


def read_manifest(out: str | Path) -> dict:
    path = Path(out) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: {out} is not a built CT-RATE-VQA folder "
            "(run `python -m dataset_builder build` first)"
        )
    return json.loads(path.read_text())


@contextlib.contextmanager
def _quiet_builder_log() -> Iterator[None]:
    logger = logging.getLogger("datasets.builder")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _place_shards(prepared: Path, out: Path, variant: str) -> dict[str, list[str]]:
    """Move the builder's Parquet shards to ``<variant>/<split>-0000N-of-0000M.parquet``."""
    staging = out / f".{variant}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    placed: dict[str, list[str]] = {}
    for split in SPLITS:
        shards = sorted(prepared.glob(f"*-{split}.parquet")) + sorted(
            prepared.glob(f"*-{split}-*-of-*.parquet")
        )
        names = [f"{split}-{i:05d}-of-{len(shards):05d}.parquet" for i in range(len(shards))]
        for shard, name in zip(shards, names, strict=True):
            os.replace(shard, staging / name)
        if names:
            placed[split] = [f"{variant}/{n}" for n in names]
    final = out / variant
    shutil.rmtree(final, ignore_errors=True)
    os.replace(staging, final)
    return placed


def build_repo(
    rex_dir: str | Path,
    ctrate_dir: str | Path,
    out: str | Path,
    options: BuildOptions | None = None,
    num_workers: int = 1,
    strict: bool = False,
    variants: tuple[str, ...] = VARIANTS,
    progress: bool = True,
    source_note: str = "",
    render_threads: int | None = None,
) -> dict:
    """Build every variant into ``out`` and write its manifest and card; return the manifest."""
    options = options or BuildOptions()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown config(s) {unknown}; choose from {VARIANTS}")
    class_map = load_class_map(options.class_map)
    work_dir = out / CACHE_DIR_NAME
    manifest: dict = {
        "format": MANIFEST_FORMAT,
        "status": "in_progress",
        "dataset": "CT-RATE-VQA",
        "package": {
            "name": "medreason-r1",
            "version": _package_version("medreason-r1"),
            "datasets": datasets.__version__,
        },
        "source": {"rex_dir": str(rex_dir), "ctrate_dir": str(ctrate_dir), "note": source_note},
        "parameters": options.to_dict(),
        "parameter_docs": BuildOptions.docs(),
        "question_templates": QUESTION_TEMPLATES,
        "class_map": {
            "source": class_map.source,
            "classes": list(class_map.classes),
            "codes": class_map.codes,
        },
    }
    write_manifest(out, manifest)

    # ours: below ~200 cases, starting writer processes costs more than it saves (8 full-size
    # cases: 0.7 s with one writer, 1.5 s with two)
    n_cases = len(read_entries(Path(rex_dir), options.source_splits))
    write_procs = num_workers if num_workers > 1 and n_cases >= PARALLEL_WRITE_MIN_CASES else None
    report = None
    dataset_infos: dict[str, dict] = {}
    files: dict[str, dict[str, list[str]]] = {}
    for variant in variants:
        builder = CTRateVQA(
            config_name=variant,
            rex_dir=str(rex_dir),
            ctrate_dir=str(ctrate_dir),
            options=options,
            num_workers=num_workers,
            strict=strict,
            work_dir=str(work_dir),
            progress=progress,
            render_threads=render_threads,
            cache_dir=str(work_dir / "datasets"),
        )
        prepared = work_dir / "prepared" / variant
        shutil.rmtree(prepared, ignore_errors=True)
        with _quiet_builder_log():  # "num_proc set back to 1 for a one-case split" is noise
            builder.download_and_prepare(
                output_dir=str(prepared),
                file_format="parquet",
                max_shard_size=options.max_shard_size,
                num_proc=write_procs,  # datasets' sharded writing, for large builds
            )
        report = report or builder.report
        files[variant] = _place_shards(prepared, out, variant)
        shutil.rmtree(prepared, ignore_errors=True)
        info = builder.info._to_yaml_dict()
        dataset_infos[variant] = {k: info[k] for k in ("features", "splits") if k in info}

    assert report is not None
    rex_json = Path(rex_dir) / "dataset.json"
    manifest.update(
        {
            "status": "complete",
            "configs": {v: {"default": v == "zoom", "data_files": files[v]} for v in variants},
            "dataset_info": dataset_infos,
            "counts": {
                "cases_listed": report.cases_listed,
                "cases_used": report.cases_used,
                "cases_reused_from_cache": report.cases_reused_from_cache,
                "cases_without_rows": report.cases_without_rows,
                "cases": report.cases,
                "patients": report.patients,
                "class_counts": report.class_counts,
                "unused_codes": report.unused_codes,
            },
            "skipped": report.skipped,
            "input_checksums": {
                "dataset.json": _sha256(rex_json),
                "class_map": hashlib.sha256(
                    json.dumps(
                        {"classes": class_map.classes, "codes": class_map.codes}, sort_keys=True
                    ).encode()
                ).hexdigest(),
                "cases": report.inputs,
            },
        }
    )
    write_dataset_card(out, manifest)
    write_eval_yaml(out, manifest)
    write_manifest(out, manifest)
    return manifest
