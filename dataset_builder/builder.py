"""``CTRateVQA``: the ``datasets`` builder of CT-RATE-VQA (configs ``zoom``, ``plain`` and
``grounding``; all three are made from the same cached case rows: same slices, same split).

    builder = CTRateVQA(config_name="zoom", rex_dir=..., ctrate_dir=...)
    builder.download_and_prepare()
    ds = builder.as_dataset()

``datasets`` >= 4 runs no loading scripts, so the builder is used from this installed module;
the ``build`` command runs it to write the Parquet shards of a Hub dataset repo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import datasets

from common.names import DATA_LICENSE, GROUNDING_CONFIG

from .case_processing import CaseCache
from .class_map import load_class_map
from .config import BuildOptions
from .pipeline import BuildReport, PipelineResult, run_pipeline
from .qa_rows import config_features, grounding_row, variant_row

_DESCRIPTION = (
    "CT-RATE-VQA: chest-CT lesion classification as visual question answering, built from "
    "ReXGroundingCT lesion masks on CT-RATE volumes (MedReason-R1, arXiv 2510.19626)."
)
_HOMEPAGE = "https://arxiv.org/abs/2510.19626"
CONFIG_DESCRIPTIONS = {
    "zoom": "Each slice with the lesion outlined and a magnified lesion patch pasted in a corner.",
    "plain": "Each slice as it is, without patch or outline.",
    GROUNDING_CONFIG: "Each plain slice with its finding's report sentence as a grounding query "
    "and the lesion's mask, tight box and two points (MedReasoner's reasoning grounding).",
}


@dataclass
class CTRateVQAConfig(datasets.BuilderConfig):
    """A CT-RATE-VQA config: ``name`` is ``zoom``, ``plain`` or ``grounding``."""

    rex_dir: str | None = None  # ReXGroundingCT folder: dataset.json + segmentations/
    ctrate_dir: str | None = None  # CT-RATE folder holding dataset/train_fixed, valid_fixed
    options: BuildOptions = field(default_factory=BuildOptions)
    num_workers: int = 1  # processes decoding and rendering cases
    strict: bool = False  # a bad case stops the build instead of being skipped
    work_dir: str | None = None  # per-case cache (resume); default: under the datasets cache
    progress: bool = True
    render_threads: int | None = None  # per worker; default: the cores the workers leave idle


def _no_rows_message(config: CTRateVQAConfig, result: PipelineResult) -> str:
    """Why no case gave rows: the real cause, not a guess."""
    report, class_map = result.report, result.class_map
    seen = report.codes_seen
    if not any(class_map.codes.get(code) for code in seen):
        listed = ", ".join(f"{code!r} x{n}" for code, n in seen.items()) or "none"
        return (
            f"no finding of {config.rex_dir} has a category code that maps to a class in "
            f"{class_map.source} (codes seen: {listed}); map them there (or pass --class-map)"
        )
    reasons = "; ".join(f"{s['case']}: {s['reason']}" for s in report.skipped[:5])
    reasons = reasons or (
        f"no lesion is larger than --min-box-pixels {config.options.min_box_pixels} "
        f"({config.options.min_box_measure})"
    )
    return f"no case of {config.rex_dir} gave any rows ({reasons}); check the inputs and options"


class CTRateVQA(datasets.GeneratorBasedBuilder):
    BUILDER_CONFIG_CLASS = CTRateVQAConfig
    BUILDER_CONFIGS = [
        CTRateVQAConfig(name=n, description=d) for n, d in CONFIG_DESCRIPTIONS.items()
    ]
    DEFAULT_CONFIG_NAME = "zoom"
    VERSION = datasets.Version("1.0.0")
    DEFAULT_WRITER_BATCH_SIZE = 64  # rows hold PNG images: keep writer batches small
    config: CTRateVQAConfig

    report: BuildReport | None = None

    def _info(self) -> datasets.DatasetInfo:
        class_map = load_class_map(self.config.options.class_map)
        return datasets.DatasetInfo(
            description=_DESCRIPTION,
            features=config_features(self.config.name, class_map.classes),
            homepage=_HOMEPAGE,
            license=DATA_LICENSE,
        )

    def _split_generators(
        self, dl_manager: datasets.DownloadManager
    ) -> list[datasets.SplitGenerator]:
        config = self.config
        if not config.rex_dir or not config.ctrate_dir:
            raise ValueError(
                "CTRateVQA needs rex_dir= (ReXGroundingCT folder) and ctrate_dir= "
                "(CT-RATE folder); for a demo, synthesise them with "
                "`python -m dataset_builder synth --out DIR`"
            )
        work_dir = config.work_dir or str(Path(self._cache_dir_root) / "ct_rate_vqa_cases")
        result = run_pipeline(
            config.rex_dir,
            config.ctrate_dir,
            config.options,
            work_dir,
            num_workers=config.num_workers,
            strict=config.strict,
            progress=config.progress,
            render_threads=config.render_threads,
        )
        self.report = result.report
        classes = list(result.class_map.classes)
        if not any(result.splits.values()):
            raise ValueError(_no_rows_message(config, result))
        return [
            datasets.SplitGenerator(
                name=split,
                gen_kwargs={
                    "cases": cases,
                    "cache_root": str(result.cache.root),
                    "class_names": tuple(classes),  # a tuple: only `cases` is sharded
                },
            )
            for split, cases in result.splits.items()
            if cases  # an empty split (tiny inputs) is left out rather than written empty
        ]

    def _generate_examples(self, cases: list, cache_root: str, class_names: tuple[str, ...]):
        cache = CaseCache(cache_root)
        name = self.config.name
        grounding = ("mask_png", "grounding_bbox", "points")
        other = {
            "zoom": ("plain_png", *grounding),
            "plain": ("zoom_png", *grounding),
            GROUNDING_CONFIG: ("zoom_png",),
        }[name]
        template = self.config.options.grounding_query
        for spec in cases:
            for cached in cache.iter_rows(spec, skip_columns=other):
                if name == GROUNDING_CONFIG:
                    row = grounding_row(cached, template)
                else:
                    row = variant_row(cached, name, class_names)
                yield row["id"], row
