"""Write a built CT-RATE-VQA as a Hub dataset repo folder.

    OUT/README.md                      dataset card (YAML configs, typed features, license, ...)
    OUT/<config>/<split>-0000N-of-0000M.parquet   image bytes embedded (zoom, plain, grounding)
    OUT/class_distribution.png
    OUT/build_manifest.json            parameters, versions, checksums, counts, skipped cases
    OUT/<config>_inspect/test-0000N-of-0000M.parquet   the test rows with the image as a
                                       data-URI string, for Inspect (eval.yaml's tasks);
                                       classification configs only
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
import re
import shutil
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
from datasets.utils.py_utils import convert_file_size_to_int
from huggingface_hub import utils as hf_utils

from common.names import CLASSIFICATION_TASK, GROUNDING_CONFIG, GROUNDING_TASK, MANIFEST_NAME
from hub_cards.benchmark import (
    EVAL_FILE,
    IMAGE_URI_COLUMN,
    TEST_SPLIT,
    data_uri,
    inspect_config,
    write_eval_yaml,
)
from hub_cards.dataset_card import REPO_FILES, write_dataset_card

from .builder import CTRateVQA
from .class_map import load_class_map
from .config import CONFIGS, SPLITS, VARIANTS, BuildOptions
from .grounding_targets import POINT_METHOD
from .qa_rows import QUESTION_TEMPLATES
from .sources import load_cases

CACHE_DIR_NAME = ".build_cache"  # left out of pushes (see hub_cards)
MANIFEST_FORMAT = 1
# files the build writes at the top of OUT (the card and plot come from hub_cards)
OUTPUT_FILES = REPO_FILES  # the card module knows what a build writes at the top of OUT
SHARD_NAME = re.compile(rf"(?:{'|'.join(SPLITS)})-\d{{5}}-of-\d{{5}}\.parquet")
PARALLEL_WRITE_MIN_CASES = 200  # ours: parallel Parquet writing only for builds this large
INSPECT_BATCH_ROWS = 64  # ours: rows converted to data URIs at a time (as the builder's batches)


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


def _is_shard(path: Path) -> bool:
    """Whether ``path`` has the name of a shard this builder writes."""
    return path.is_file() and SHARD_NAME.fullmatch(path.name) is not None


def _place_shards(prepared: Path, out: Path, variant: str) -> dict[str, list[str]]:
    """Move the builder's Parquet shards to ``<variant>/<split>-0000N-of-0000M.parquet``.

    Only shard names of ours are replaced or deleted; other files in the folder are left alone.
    """
    final = out / variant
    final.mkdir(exist_ok=True)
    placed: dict[str, list[str]] = {}
    for split in SPLITS:
        shards = sorted(prepared.glob(f"*-{split}.parquet")) + sorted(
            prepared.glob(f"*-{split}-*-of-*.parquet")
        )
        names = [f"{split}-{i:05d}-of-{len(shards):05d}.parquet" for i in range(len(shards))]
        for shard, name in zip(shards, names, strict=True):
            os.replace(shard, final / name)
        if names:
            placed[split] = [f"{variant}/{n}" for n in names]
    kept = {Path(n).name for names in placed.values() for n in names}
    for old in final.iterdir():
        if _is_shard(old) and old.name not in kept:
            old.unlink()  # a shard of an earlier build of ours
    return placed


def _inspect_features(features: datasets.Features) -> datasets.Features:
    """``features`` with the ``image`` column replaced, in place, by its data-URI string."""
    return datasets.Features(
        {
            (IMAGE_URI_COLUMN if name == "image" else name): (
                datasets.Value("string") if name == "image" else feature
            )
            for name, feature in features.items()
        }
    )


def _config_folders() -> list[str]:
    """Every config folder a build of ours may write: the configs and their Inspect companions."""
    return [*CONFIGS, *(inspect_config(v) for v in VARIANTS)]


def _drop_shards(folder: Path) -> None:
    """Delete the shards of ours in ``folder`` (a config this build has no rows for, or does not
    build); the folder goes too if that leaves it empty. Other files are never touched."""
    if not folder.is_dir():
        return
    dropped = False
    for old in folder.iterdir():
        if _is_shard(old):
            old.unlink()
            dropped = True
    if dropped and not any(folder.iterdir()):
        folder.rmdir()


def _drop_stale_configs(out: Path, built: set[str]) -> None:
    """Delete the shards of the configs an earlier build of ours wrote into ``out`` and this one
    does not build (``--configs zoom`` over a three-config build): the card declares only
    ``built``, and ``push`` must not find the others."""
    for name in _config_folders():
        if name not in built:
            _drop_shards(out / name)


def _write_inspect_config(
    out: Path,
    variant: str,
    test_files: list[str],
    features: datasets.Features,
    max_shard_size: str,
    work_dir: Path,
) -> tuple[list[str], dict, dict]:
    """Write ``<variant>_inspect``: the variant's test rows with the image as a data URI.

    Inspect's Hub tasks take an image only as a ``data:image/png;base64,...`` string column.
    The rows are read back from the variant's test shards in batches (a full-scale split does
    not have to fit in memory) and written in shards bounded by ``max_shard_size``.
    Returns the shard paths, the config's ``dataset_info`` (features, splits) and its sizes.
    """
    name = inspect_config(variant)
    features = _inspect_features(features)
    schema = features.arrow_schema
    limit = convert_file_size_to_int(max_shard_size)
    staging = work_dir / "prepared" / name
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    writers: list[pq.ParquetWriter] = []
    rows = png_bytes = uri_bytes = num_bytes = shard_bytes = 0
    try:
        for file in test_files:
            for batch in pq.ParquetFile(out / file).iter_batches(batch_size=INSPECT_BATCH_ROWS):
                images = batch.column("image").field("bytes").to_pylist()
                uris = [data_uri(image) for image in images]
                columns = [
                    pa.array(uris, pa.string()) if n == IMAGE_URI_COLUMN else batch.column(n)
                    for n in features
                ]
                table = pa.Table.from_arrays(columns, schema=schema)
                row_bytes = table.nbytes / table.num_rows
                start = 0
                while start < table.num_rows:  # as many rows as the open shard has room for
                    first = table.slice(start, 1).nbytes
                    if not writers or shard_bytes and shard_bytes + first > limit:
                        if writers:
                            writers[-1].close()
                        path = staging / f"{name}-{TEST_SPLIT}-{len(writers):05d}-of-NNNNN.parquet"
                        writers.append(pq.ParquetWriter(path, schema))
                        shard_bytes = 0
                    take = max(1, int((limit - shard_bytes) // row_bytes))
                    chunk = table.slice(start, take)
                    while chunk.num_rows > 1 and shard_bytes + chunk.nbytes > limit:
                        chunk = table.slice(start, chunk.num_rows - 1)  # rows differ in size
                    writers[-1].write_table(chunk)
                    shard_bytes += chunk.nbytes
                    start += chunk.num_rows
                num_bytes += table.nbytes
                rows += len(images)
                png_bytes += sum(len(image) for image in images)
                uri_bytes += sum(len(uri) for uri in uris)
    finally:
        for writer in writers:
            writer.close()
    for path in sorted(staging.glob("*-of-NNNNN.parquet")):
        path.rename(path.with_name(path.name.replace("NNNNN", f"{len(writers):05d}")))
    placed = _place_shards(staging, out, name).get(TEST_SPLIT, [])
    shutil.rmtree(staging, ignore_errors=True)
    splits = datasets.SplitDict()
    splits.add(datasets.SplitInfo(name=TEST_SPLIT, num_bytes=num_bytes, num_examples=rows))
    info = datasets.DatasetInfo(features=features, splits=splits)._to_yaml_dict()
    sizes = {
        "config": name,
        "rows": rows,
        "png_bytes_mean": png_bytes / rows,
        "data_uri_bytes_mean": uri_bytes / rows,
        "parquet_bytes": sum((out / p).stat().st_size for p in placed),
    }
    return placed, {k: info[k] for k in ("features", "splits")}, sizes


def _is_our_manifest(path: Path) -> bool:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("dataset") == "CT-RATE-VQA"


def check_out(out: Path, inputs: tuple[Path, ...] = (), force: bool = False) -> None:
    """Refuse an ``out`` that would destroy files this builder did not write.

    ``out`` must be a folder that is missing, empty (but for our cache) or holds a build of
    ours; ``force`` allows any other folder, and one inside an input folder, but a file this
    builder would overwrite and did not write (README.md, ...) is refused even then.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder; give a folder path")
    real = out.resolve()
    for folder in inputs:
        if real.is_relative_to(folder.resolve()) and not force:
            raise ValueError(
                f"--out {out} lies inside the input folder {folder}; choose another "
                "folder (or pass --force to write there anyway)"
            )
    if not out.is_dir() or _is_our_manifest(out / MANIFEST_NAME):
        return
    foreign = sorted(p.name for p in out.iterdir() if p.name != CACHE_DIR_NAME)
    if foreign and not force:
        raise ValueError(
            f"--out {out} is not empty and holds no {MANIFEST_NAME} of a CT-RATE-VQA build "
            f"(it holds {', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); "
            "choose a new or empty folder (or pass --force to add the build to it)"
        )
    clash = [n for n in OUTPUT_FILES if (out / n).exists()]
    clash += [f"{d}/{p.name}" for d in _config_folders() if (out / d).is_dir()
              for p in (out / d).iterdir() if _is_shard(p)]  # fmt: skip
    if clash:
        raise ValueError(
            f"--out {out} holds {', '.join(clash[:3])}, which the build would overwrite and "
            "did not write; move it away or choose another folder"
        )


def check_inputs(
    rex_dir: Path, ctrate_dir: Path, options: BuildOptions, strict: bool = False
) -> int:
    """Check the inputs before ``out`` is touched (dataset.json's schema too: under ``strict``
    its first bad entry stops the build here); return the number of listed cases."""
    if not (ctrate_dir / "dataset").is_dir():
        raise FileNotFoundError(
            f"{ctrate_dir / 'dataset'} not found: --ctrate-dir must be the CT-RATE folder "
            "holding dataset/train_fixed (or valid_fixed)"
        )
    load_class_map(options.class_map)
    specs, refused = load_cases(rex_dir, ctrate_dir, options.source_splits)
    if strict and refused:
        raise refused[0]
    return len(specs) + len(refused)


def public_text(text: str, folders: tuple[Path, ...]) -> str:
    """``text`` with each input folder's local path replaced by its bare folder name."""
    spellings = {
        (str(p), p.name) for f in folders for p in (f, Path(os.path.abspath(f)), f.resolve())
    }
    for local, name in sorted(spellings, key=lambda s: -len(s[0])):
        text = text.replace(local, name)
    return text


@contextlib.contextmanager
def _progress_bars(show: bool) -> Iterator[None]:
    """Hide datasets' and huggingface_hub's own progress bars too when ``show`` is false."""
    datasets_on = datasets.is_progress_bar_enabled()
    hub_on = not hf_utils.are_progress_bars_disabled()
    if not show:
        datasets.disable_progress_bars()
        hf_utils.disable_progress_bars()
    try:
        yield
    finally:
        if datasets_on and not show:
            datasets.enable_progress_bars()
        if hub_on and not show:
            hf_utils.enable_progress_bars()


def build_repo(
    rex_dir: str | Path,
    ctrate_dir: str | Path,
    out: str | Path,
    options: BuildOptions | None = None,
    num_workers: int = 1,
    strict: bool = False,
    variants: tuple[str, ...] = CONFIGS,
    progress: bool = True,
    source_note: str = "",
    render_threads: int | None = None,
    force: bool = False,
) -> dict:
    """Build every config in ``variants`` (default: all, ``zoom``, ``plain`` and ``grounding``)
    into ``out`` from one pass over the cases, and write its manifest and card; return the
    manifest. Only the classification configs get an Inspect companion config.

    The inputs and ``out`` are checked first (see ``check_out``; ``force`` as there), and an
    earlier build in ``out`` keeps its manifest until new shards replace its own.
    """
    options = options or BuildOptions()
    out, rex_dir, ctrate_dir = Path(out), Path(rex_dir), Path(ctrate_dir)
    unknown = [v for v in variants if v not in CONFIGS]
    if unknown:
        raise ValueError(f"unknown config(s) {unknown}; choose from {CONFIGS}")
    if num_workers < 1:
        raise ValueError(f"--num-workers must be >= 1, got {num_workers}")
    if render_threads is not None and render_threads < 1:
        raise ValueError(f"--render-threads must be >= 1, got {render_threads}")
    n_cases = check_inputs(rex_dir, ctrate_dir, options, strict)
    check_out(out, (rex_dir, ctrate_dir), force=force)
    with _progress_bars(progress):
        return _build(
            rex_dir,
            ctrate_dir,
            out,
            options,
            num_workers=num_workers,
            strict=strict,
            variants=variants,
            progress=progress,
            source_note=source_note,
            render_threads=render_threads,
            n_cases=n_cases,
        )


def _build(
    rex_dir: Path,
    ctrate_dir: Path,
    out: Path,
    options: BuildOptions,
    *,
    num_workers: int,
    strict: bool,
    variants: tuple[str, ...],
    progress: bool,
    source_note: str,
    render_threads: int | None,
    n_cases: int,
) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    class_map = load_class_map(options.class_map)
    work_dir = out / CACHE_DIR_NAME
    folders = (rex_dir, ctrate_dir)
    class_map_file = None if options.class_map is None else Path(options.class_map).name
    manifest: dict = {
        "format": MANIFEST_FORMAT,
        "status": "in_progress",
        "dataset": "CT-RATE-VQA",
        "package": {
            "name": "medreason-r1",
            "version": _package_version("medreason-r1"),
            "datasets": datasets.__version__,
        },
        # folder names only: a published file must not reveal the builder's machine
        "source": {"rex_dir": rex_dir.name, "ctrate_dir": ctrate_dir.name, "note": source_note},
        "parameters": {**options.to_dict(), "class_map": class_map_file},
        "parameter_docs": BuildOptions.docs(),
        "question_templates": QUESTION_TEMPLATES,
        # the task each config serves (the grounding config is no Inspect multiple choice)
        "tasks": {
            v: GROUNDING_TASK if v == GROUNDING_CONFIG else CLASSIFICATION_TASK for v in variants
        },
        "grounding": {
            "query_template": options.grounding_query,
            "point_method": POINT_METHOD,
        },
        "class_map": {
            "source": class_map.source if class_map_file is None else class_map_file,
            "classes": list(class_map.classes),
            "codes": class_map.codes,
        },
    }

    # ours: below ~200 cases, starting writer processes costs more than it saves (8 full-size
    # cases: 0.7 s with one writer, 1.5 s with two)
    write_procs = num_workers if num_workers > 1 and n_cases >= PARALLEL_WRITE_MIN_CASES else None
    report = None
    dataset_infos: dict[str, dict] = {}
    files: dict[str, dict[str, list[str]]] = {}
    # `<variant>_inspect` configs: their shards, dataset_info and measured sizes (for the card)
    inspect_files: dict[str, dict[str, list[str]]] = {}
    inspect_infos: dict[str, dict] = {}
    companions: dict[str, dict] = {}
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
        if not files:
            write_manifest(out, manifest)  # shards of an earlier build are about to change
        files[variant] = _place_shards(prepared, out, variant)
        shutil.rmtree(prepared, ignore_errors=True)
        info = builder.info._to_yaml_dict()
        dataset_infos[variant] = {k: info[k] for k in ("features", "splits") if k in info}
        if variant not in VARIANTS:
            continue  # grounding: no multiple-choice benchmark, no Inspect config
        name = inspect_config(variant)  # the same pass writes the variant's Inspect config
        if files[variant].get(TEST_SPLIT):
            placed, inspect_infos[name], companions[variant] = _write_inspect_config(
                out,
                variant,
                files[variant][TEST_SPLIT],
                builder.info.features,
                options.max_shard_size,
                work_dir,
            )
            inspect_files[name] = {TEST_SPLIT: placed}
        else:
            _drop_shards(out / name)  # no test rows: no Inspect config (and no eval.yaml task)

    assert report is not None
    _drop_stale_configs(out, {*variants, *inspect_files})
    rex_json = Path(rex_dir) / "dataset.json"
    manifest.update(
        {
            "status": "complete",
            "configs": {
                **{v: {"default": v == "zoom", "data_files": files[v]} for v in variants},
                **{c: {"default": False, "data_files": f} for c, f in inspect_files.items()},
            },
            "dataset_info": {**dataset_infos, **inspect_infos},
            "inspect": companions,
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
            "skipped": [
                {k: public_text(str(v), folders) for k, v in s.items()} for s in report.skipped
            ],
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
    if companions:
        write_eval_yaml(out, manifest)
    else:  # no test rows: Inspect has nothing to run; an earlier build's eval.yaml would mislead
        (out / EVAL_FILE).unlink(missing_ok=True)
    write_manifest(out, manifest)
    return manifest
