"""``CTRateVQA``: the ``datasets`` builder of CT-RATE-VQA (configs ``zoom`` and ``plain``).

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

from .case_processing import CaseCache
from .class_map import load_class_map
from .config import BuildOptions
from .pipeline import BuildReport, run_pipeline
from .qa_rows import features_for, variant_row

_DESCRIPTION = (
    "CT-RATE-VQA: chest-CT lesion classification as visual question answering, built from "
    "ReXGroundingCT lesion masks on CT-RATE volumes (MedReason-R1, arXiv 2510.19626)."
)
_HOMEPAGE = "https://arxiv.org/abs/2510.19626"
_LICENSE = "cc-by-nc-sa-4.0"  # inherited from ReXGroundingCT and CT-RATE
CONFIG_DESCRIPTIONS = {
    "zoom": "Each slice with the lesion outlined and a magnified lesion patch pasted in a corner.",
    "plain": "Each slice as it is, without patch or outline.",
}


@dataclass
class CTRateVQAConfig(datasets.BuilderConfig):
    """A CT-RATE-VQA config: ``name`` is the variant (``zoom`` or ``plain``)."""

    rex_dir: str | None = None  # ReXGroundingCT folder: dataset.json + segmentations/
    ctrate_dir: str | None = None  # CT-RATE folder holding dataset/train_fixed, valid_fixed
    options: BuildOptions = field(default_factory=BuildOptions)
    num_workers: int = 1  # processes decoding and rendering cases
    strict: bool = False  # a bad case stops the build instead of being skipped
    work_dir: str | None = None  # per-case cache (resume); default: under the datasets cache
    progress: bool = True
    render_threads: int | None = None  # per worker; default: the cores the workers leave idle


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
            features=features_for(class_map.classes),
            homepage=_HOMEPAGE,
            license=_LICENSE,
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
            reasons = "; ".join(f"{s['case']}: {s['reason']}" for s in self.report.skipped[:5])
            reasons = reasons or "no lesion passed the size threshold"
            raise ValueError(
                f"no case of {config.rex_dir} gave any rows ({reasons}); "
                "check the inputs and options"
            )
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
        other = ("plain_png",) if self.config.name == "zoom" else ("zoom_png",)
        for spec in cases:
            for cached in cache.iter_rows(spec, skip_columns=other):
                row = variant_row(cached, self.config.name, class_names)
                yield row["id"], row
