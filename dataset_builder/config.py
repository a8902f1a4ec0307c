"""Every choice the CT-RATE-VQA builder makes, as one dataclass with help text.

Numbers the MedReason-R1 paper gives are defaults with a ``# paper:`` comment; numbers the
paper left open are this project's choices, marked ``# ours:`` and stated in the dataset card.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import string
from dataclasses import dataclass, field

from datasets.utils.py_utils import convert_file_size_to_int

from common.names import GROUNDING_CONFIG

VARIANTS = ("zoom", "plain")  # the classification configs; `zoom` is the default one
CONFIGS = (*VARIANTS, GROUNDING_CONFIG)  # every config one build pass writes
# ours: MedReasoner poses implicit clinical questions and U-MRG's wording is not published
GROUNDING_QUERY_TEMPLATE = (
    'The radiology report of this chest CT says: "{finding}" '
    "Locate the finding this sentence describes on this axial slice."
)
CORNERS = ("upper-left", "upper-right", "lower-left", "lower-right")
SPLITS = ("train", "test")
SLICE_CAP_UNITS = ("finding", "volume")  # what `slices_per_case` caps
SPLIT_STRATEGIES = ("stratified", "random")  # how patients are assigned to the splits
MAX_LINE_PX = 64  # ours: border and box lines wider than this would cover the patch or lesion
_NOT_ROW_OPTIONS = {
    "seed",
    "test_fraction",
    "split_strategy",
    "source_splits",
    "max_shard_size",
    "class_map",
    "grounding_query",  # applied when the rows are written, not stored in the per-case cache
}


def _help(text: str, source: str = "ours", choices: tuple[str, ...] | None = None) -> dict:
    """Field metadata: help text (argparse, card), where the default comes from, and the
    allowed values of a text option."""
    return {"help": text, "source": source, **({"choices": choices} if choices else {})}


@dataclass
class BuildOptions:
    """Options of the CT-RATE-VQA pipeline: slice selection, rendering, QA rows and splitting."""

    # --- splitting ---
    seed: int = field(
        default=0, metadata=_help("Seed of the patient-level train/test split.", "ours")
    )
    test_fraction: float = field(
        default=0.2,  # paper: 8:2 split at patient level
        metadata=_help(
            "Share put in the test split: of each class's rows (split_strategy 'stratified') "
            "or of the patients ('random'); a patient is never in both splits.",
            "paper: 8:2 split at patient level",
        ),
    )
    split_strategy: str = field(
        default="stratified",  # ours: the paper says only "8:2 at patient level"
        metadata=_help(
            "'stratified': patients are assigned (seeded greedy start, then moves and "
            "exchanges of patients) so that about test_fraction of EACH class's rows, and of "
            "the patients, is in test; 'random': a seeded shuffle of patients, "
            "round(n * test_fraction) of them in test, classes ignored.",
            'ours: the paper says only "8:2 at patient level", which both honour; stratified '
            "keeps rare classes in both splits",
            SPLIT_STRATEGIES,
        ),
    )
    source_splits: list[str] = field(
        default_factory=lambda: ["train", "val"],  # ours: 2,992 train + 50 val = 3,042 volumes
        metadata=_help(
            "ReXGroundingCT dataset.json lists to read (train + val = the paper's 3,042 volumes; "
            "test has no masks).",
            "ours: 2,992 train + 50 val = 3,042 volumes",
        ),
    )
    class_map: str | None = field(
        default=None,
        metadata=_help(
            "JSON file mapping ReXGroundingCT category codes to the seven classes "
            "(default: the packaged dataset_builder/data/category_classes.json).",
            "ours: the mapping in data-facts.md; the paper did not publish one",
        ),
    )
    # --- intensities ---
    hu_clip_min: int = field(
        default=-1024,  # ours: air; CT-RATE padding (<= -2048, some -8192) is clipped first
        metadata=_help(
            "HU values are clipped to [hu_clip_min, hu_clip_max] before windowing.",
            "ours: air; CT-RATE padding (<= -2048, some -8192) is clipped first",
        ),
    )
    hu_clip_max: int = field(
        default=3071,  # ours: 12-bit CT range
        metadata=_help("Upper HU clip.", "ours: 12-bit CT range"),
    )
    window_level: float = field(
        default=-600.0,  # ours: standard lung window
        metadata=_help(
            "Display window level in HU (lung window: -600).", "ours: standard lung window"
        ),
    )
    window_width: float = field(
        default=1500.0,  # ours: standard lung window
        metadata=_help(
            "Display window width in HU (lung window: 1500).", "ours: standard lung window"
        ),
    )
    # --- lesion selection ---
    connectivity: int = field(
        default=2,  # ours: 8-connectivity in 2-D
        metadata=_help(
            "2-D connected-component connectivity: 1 = 4-connected, 2 = 8-connected.",
            "ours: 8-connectivity in 2-D",
        ),
    )
    min_box_pixels: int = field(
        default=1300,  # paper: boxes larger than 1300 pixels (~0.5 % of a 512 x 512 slice)
        metadata=_help(
            "Keep lesions larger than this many pixels on a 512 x 512 slice.",
            "paper: boxes larger than 1300 pixels (~0.5 % of a 512 x 512 slice)",
        ),
    )
    min_box_reference_pixels: int = field(
        default=512 * 512,  # paper: "approximately 0.5% of the image" of a 512 x 512 slice
        metadata=_help(
            "Slice area min_box_pixels refers to; the threshold is scaled by area for other sizes.",
            'paper: "approximately 0.5% of the image" of a 512 x 512 slice',
        ),
    )
    min_box_measure: str = field(
        default="component_area",  # ours: the paper says "boxes larger than 1300 pixels"
        metadata=_help(
            "What min_box_pixels is compared with: 'component_area' (lesion pixels on the native "
            "grid) or 'box_area' (area of its bounding box).",
            'ours: the paper says "boxes larger than 1300 pixels"',
        ),
    )
    slices_per_case: int = field(
        default=20,  # paper: at most 20 uniformly sampled slices per case
        metadata=_help(
            "Cap on rows per case (see slice_cap_unit); candidates are sampled uniformly "
            "(evenly spaced).",
            "paper: at most 20 uniformly sampled slices per case",
        ),
    )
    slice_cap_unit: str = field(
        default="finding",  # ours: paper's 84,088 rows / 3,042 volumes = 27.6 per volume > 20
        metadata=_help(
            "What slices_per_case caps: 'finding' (one mask channel = one report sentence of "
            "ReXGroundingCT; each finding keeps up to slices_per_case slices) or 'volume' (all "
            "findings of a CT volume together).",
            "ours: reading of the paper's 84,088 rows / 3,042 volumes = 27.6 rows per volume, "
            "more than a per-volume cap of 20 allows",
            SLICE_CAP_UNITS,
        ),
    )
    # --- rendering ---
    image_size: int | None = field(
        default=None,  # ours: keep the native slice size (512 for CT-RATE)
        metadata=_help(
            "Side of the written square image in pixels; None keeps the native size.",
            "ours: keep the native slice size (512 for CT-RATE)",
        ),
    )
    png_compress_level: int = field(
        default=1,  # ours: fast encoding; PNG is lossless at every level
        metadata=_help(
            "PNG zlib compression level 0-9 (lossless at every level; 1 is fastest).",
            "ours: fast encoding; PNG is lossless at every level",
        ),
    )
    zoom_corner: str = field(
        default="upper-left",  # paper: patch pasted into the upper-left corner
        metadata=_help(
            "Preferred corner of the zoom patch; if the lesion lies under it the first free "
            "corner in the order upper-left, upper-right, lower-left, lower-right is used.",
            "paper: patch pasted into the upper-left corner",
        ),
    )
    zoom_patch_fraction: float = field(
        default=1 / 3,  # ours: patch side = 1/3 of the image side
        metadata=_help(
            "Side of the pasted zoom patch as a fraction of the image side.",
            "ours: patch side = 1/3 of the image side",
        ),
    )
    zoom_margin_fraction: float = field(
        default=0.25,  # ours
        metadata=_help(
            "Margin added around the lesion box before cropping, per side, as a "
            "fraction of the box's longer side.",
            "ours: context around the lesion in the patch",
        ),
    )
    zoom_min_crop_fraction: float = field(
        default=0.08,  # ours: small lesions are not magnified beyond ~4x at the default patch
        metadata=_help(
            "Smallest crop side as a fraction of the slice side.",
            "ours: small lesions are not magnified beyond ~4x at the default patch",
        ),
    )
    zoom_border_px: int = field(
        default=3,  # ours: the paper shows a coloured border of a few pixels
        metadata=_help(
            "Width in pixels of the coloured border around the zoom patch.",
            "ours: the paper shows a coloured border of a few pixels",
        ),
    )
    zoom_border_color: str = field(
        default="#00ff00",  # paper Fig. 1(a): green box for lesion detail
        metadata=_help(
            "Colour of the zoom patch border (hex RGB).",
            "paper: Fig. 1(a) shows a green box for lesion detail",
        ),
    )
    localisation_box: bool = field(
        default=True,  # paper Fig. 1(a): red box for localisation
        metadata=_help(
            "Draw a box around the lesion in the `zoom` images.",
            "paper: Fig. 1(a) shows a red box for localisation",
        ),
    )
    localisation_box_color: str = field(
        default="#ff0000",  # paper Fig. 1(a): red
        metadata=_help(
            "Colour of the localisation box (hex RGB).",
            "paper: Fig. 1(a) shows a red box for localisation",
        ),
    )
    localisation_box_px: int = field(
        default=2,  # ours
        metadata=_help("Line width of the localisation box in pixels.", "ours"),
    )
    plain_localisation_box: bool = field(
        default=False,  # ours: `plain` is the untouched slice, as in the paper's no-zoom ablation
        metadata=_help(
            "Also draw the localisation box in the `plain` images.",
            "ours: `plain` is the untouched slice, as in the paper's no-zoom ablation",
        ),
    )
    # --- grounding rows ---
    grounding_query: str = field(
        default=GROUNDING_QUERY_TEMPLATE,  # ours: MedReasoner's implicit questions are not public
        metadata=_help(
            "Template of the `grounding` config's `query`: `{finding}` is replaced by the "
            "finding's report sentence (the only field allowed; write `{{` / `}}` for braces).",
            "ours: MedReasoner poses implicit clinical questions; U-MRG's wording is not public",
        ),
    )
    # --- output ---
    max_shard_size: str = field(
        default="500MB",  # ours: as datasets' push_to_hub
        metadata=_help("Upper bound on a Parquet shard's size.", "ours: as datasets' push_to_hub"),
    )

    def __post_init__(self) -> None:
        if isinstance(self.source_splits, str):
            self.source_splits = [s for s in self.source_splits.split(",") if s]
        floats = ("test_fraction", "window_level", "window_width", "zoom_patch_fraction",
                  "zoom_margin_fraction", "zoom_min_crop_fraction")  # fmt: skip
        checks = [(math.isfinite(getattr(self, n)), n, "must be a finite number") for n in floats]
        checks += [
            (self.seed >= 0, "seed", "must be >= 0"),
            (0.0 < self.test_fraction < 1.0, "test_fraction", "must lie in (0, 1)"),
            (self.connectivity in (1, 2), "connectivity", "must be 1 or 2"),
            (self.min_box_pixels >= 0, "min_box_pixels", "must be >= 0"),
            (self.min_box_reference_pixels >= 1, "min_box_reference_pixels", "must be >= 1"),
            (
                self.min_box_measure in ("component_area", "box_area"),
                "min_box_measure",
                "must be 'component_area' or 'box_area'",
            ),
            (self.slices_per_case >= 1, "slices_per_case", "must be >= 1"),
            (
                self.slice_cap_unit in SLICE_CAP_UNITS,
                "slice_cap_unit",
                f"must be one of {SLICE_CAP_UNITS}",
            ),
            (
                self.split_strategy in SPLIT_STRATEGIES,
                "split_strategy",
                f"must be one of {SPLIT_STRATEGIES}",
            ),
            (self.image_size is None or self.image_size >= 32, "image_size", "must be >= 32"),
            (0 <= self.png_compress_level <= 9, "png_compress_level", "must be 0-9"),
            (self.zoom_corner in CORNERS, "zoom_corner", f"must be one of {CORNERS}"),
            (
                0.05 <= self.zoom_patch_fraction <= 0.5,
                "zoom_patch_fraction",
                "must be in [0.05, 0.5]",
            ),
            (0.0 <= self.zoom_margin_fraction <= 5.0, "zoom_margin_fraction", "must be in [0, 5]"),
            (
                0.0 < self.zoom_min_crop_fraction <= 1.0,
                "zoom_min_crop_fraction",
                "must be in (0, 1]",
            ),
            (0 <= self.zoom_border_px <= MAX_LINE_PX, "zoom_border_px", f"must be 0-{MAX_LINE_PX}"),
            (
                1 <= self.localisation_box_px <= MAX_LINE_PX,
                "localisation_box_px",
                f"must be 1-{MAX_LINE_PX}",
            ),
            (self.window_width > 0, "window_width", "must be > 0"),
            (self.hu_clip_min < self.hu_clip_max, "hu_clip_min", "must be < hu_clip_max"),
            (bool(self.source_splits), "source_splits", "must name at least one split"),
            (
                _template_ok(self.grounding_query),
                "grounding_query",
                "must contain the field {finding} and no other {...} field",
            ),
        ]
        for ok, name, rule in checks:
            if not ok:
                raise ValueError(
                    f"BuildOptions.{name} (--{name.replace('_', '-')}) {rule}, "
                    f"got {getattr(self, name)!r}"
                )
        try:
            convert_file_size_to_int(self.max_shard_size)
        except (ValueError, TypeError):
            raise ValueError(
                "BuildOptions.max_shard_size (--max-shard-size) must be a size like '500MB', "
                f"got {self.max_shard_size!r}"
            ) from None
        for name in ("zoom_border_color", "localisation_box_color"):
            try:
                parse_color(getattr(self, name))
            except ValueError as err:
                raise ValueError(
                    f"BuildOptions.{name} (--{name.replace('_', '-')}): {err}"
                ) from None

    @classmethod
    def docs(cls) -> dict[str, dict[str, str]]:
        """Each option's help text and the origin of its default (paper or ours)."""
        return {
            f.name: {"help": f.metadata["help"], "source": f.metadata["source"]}
            for f in dataclasses.fields(cls)
        }

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def fingerprint(self, *extra: str) -> str:
        """Hash of the options that change a case's rows (keys the per-case cache).

        Splitting and sharding options are left out: they do not change a case's rows.
        """
        rows_only = {k: v for k, v in self.to_dict().items() if k not in _NOT_ROW_OPTIONS}
        payload = json.dumps([rows_only, *extra], sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:16]


def _template_ok(template: str) -> bool:
    """Whether a ``str.format`` template has ``{finding}`` and no other replacement field."""
    try:
        fields = {n for _, n, _, _ in string.Formatter().parse(template) if n is not None}
        template.format(finding="a finding")  # also refuses a field nested in a format spec
    except (ValueError, KeyError, IndexError, AttributeError, TypeError):
        return False
    return fields == {"finding"}


def parse_color(text: str) -> tuple[int, int, int]:
    """'#rrggbb' -> (r, g, b)."""
    value = text.strip().lstrip("#")
    if len(value) != 6:
        raise ValueError(f"colour {text!r} is not a hex RGB value like '#00ff00'")
    try:
        return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)
    except ValueError as err:
        raise ValueError(f"colour {text!r} is not a hex RGB value like '#00ff00'") from err
