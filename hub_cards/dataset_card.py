"""The CT-RATE-VQA dataset card, generated from a build manifest (never written by hand).

YAML: configs (``zoom`` default, ``plain``, ``grounding``, the Inspect companions of the first
two), dataset_info with typed features, splits,
num_bytes and num_examples (datasets' own serialisers), license and gating fields, task
categories, tags. Body: source, every build parameter with its origin, class counts per split
(table and plot), skipped cases, differences from the paper, intended use, citations.
"""

from __future__ import annotations

from pathlib import Path

from datasets.info import DatasetInfo, DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from common.names import DATA_LICENSE as LICENSE
from common.names import GROUNDING_CONFIG, MANIFEST_NAME

from .benchmark import EVAL_FILE, inspect_card_text
from .publish import CARD_NAME

PLOT_NAME = "class_distribution.png"
# the files a build writes at the top of its folder (dataset_builder.repo_layout), beside its
# configs' folders: all a dataset repo publishes besides the files its configs declare
REPO_FILES = (MANIFEST_NAME, CARD_NAME, EVAL_FILE, PLOT_NAME)

GATED_PROMPT = (
    "CT-RATE-VQA is derived from ReXGroundingCT and CT-RATE, which are gated and licensed "
    "CC BY-NC-SA 4.0. Use it for non-commercial research only, never for clinical decisions. "
    "You must have accepted the terms of ReXGroundingCT (rajpurkarlab/ReXGroundingCT) and "
    "CT-RATE (ibrahimhamamci/CT-RATE) on the Hugging Face Hub."
)
GATED_FIELDS = {
    "Name": "text",
    "Affiliation": "text",
    "I have accepted the ReXGroundingCT and CT-RATE terms of use": "checkbox",
    "I will use this dataset for non-commercial research only, not for clinical care": "checkbox",
}
CITATIONS = """```bibtex
@article{li2025medreasonr1,
  title   = {MedReason-R1: Learning to Reason for CT Diagnosis with Reinforcement Learning
             and Local Zoom},
  author  = {Li, Yifan and Tang, Fenghe and Li, Yingtai and Zhou, S. Kevin},
  journal = {arXiv preprint arXiv:2510.19626},
  year    = {2025}
}
@article{baharoon2025rexgroundingct,
  title   = {ReXGroundingCT: A 3D Chest CT Dataset for Segmentation of Findings from
             Free-Text Reports},
  author  = {Baharoon, Mohammed and others},
  journal = {arXiv preprint arXiv:2507.22030},
  year    = {2025}
}
@article{hamamci2024ctrate,
  title   = {Developing Generalist Foundation Models from a Multimodal Dataset for 3D
             Computed Tomography},
  author  = {Hamamci, Ibrahim Ethem and others},
  journal = {arXiv preprint arXiv:2403.17834},
  year    = {2024}
}
```"""
DIFFERENCES = [
    "The paper did not publish its code-to-class mapping, HU window, question wording, answer "
    "strings, zoom patch size, margin or border; the values above are this project's choices "
    "(marked `ours`).",
    "The paper's dataset has 68,581 train / 15,507 test slices from 3,042 volumes; counts here "
    "depend on the inputs and options of this build.",
    "The paper caps each case at 20 slices yet reports 84,088 slices from 3,042 volumes (27.6 "
    "per volume, more than 20), so this project reads its case as one finding (a mask channel, "
    "one ReXGroundingCT report sentence): `slice_cap_unit` `finding` (`volume` caps the volume).",
    "The split is 8:2 by patient with the seed above; the paper's patient assignment is unknown. "
    "`split_strategy` `stratified` (this project's choice) assigns patients so that about "
    "`test_fraction` of each class's rows is in test; `random` shuffles patients instead.",
    "Both variants (`zoom`, `plain`) are published; the paper trained on the zoom variant and "
    "used the plain one as an ablation.",
]
GROUNDING_DIFFERENCES = [
    "`grounding` follows MedReasoner's task (arXiv 2508.08177: a box and two points per answer) "
    "on this data, not its U-MRG-14K dataset: the query is built from the finding's report "
    "sentence by this project's template (MedReasoner poses implicit clinical questions; "
    "U-MRG's wording is not public), images keep the slice size (U-MRG's are 840 x 840), and "
    "the two points are chosen by this project's rule (U-MRG's is not published).",
]
GROUNDING_FRAME = """\
Coordinate frame: `bbox`, `points` and `mask` are in the pixels of the stored `image` (x =
column, y = row, origin at the upper-left pixel). `bbox` is `[x0, y0, x1, y1]` with
end-exclusive pixel corners and is exactly the tight box of `mask`; a point is the integer
`[x, y]` of a pixel inside `mask` (`mask` is one connected component, mode "L", 0 / 255, the
size of `image`). Qwen2.5-VL reads and writes absolute coordinates of its own input, the image
as its processor resized it (sides rounded to multiples of 28, e.g. 512 x 512 -> 504 x 504):
answers (`<answer>{"bbox": [...], "points_1": [x, y], "points_2": [x, y]}</answer>`) are in
that model-input frame, and `model_training.grounding.Frame` (`frame_for(processor, size)`)
converts between the two frames."""


def _size_category(n: int) -> str:
    for bound, label in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
    ):
        if n < bound:
            return label
    return "1M<n<10M"


def card_data_from_manifest(manifest: dict) -> DatasetCardData:
    """The card's YAML, from the manifest's configs and dataset_info (datasets' serialisers)."""
    total = sum(
        split["num_examples"]
        for info in manifest["dataset_info"].values()
        for split in info.get("splits", [])
    )
    synthetic = bool(manifest.get("source", {}).get("note"))
    grounding = GROUNDING_CONFIG in manifest["configs"]
    card_data = DatasetCardData(
        pretty_name="CT-RATE-VQA" + (" (synthetic demo build)" if synthetic else ""),
        license=LICENSE,
        language=["en"],
        task_categories=["visual-question-answering", "image-classification"]
        + (["object-detection", "image-segmentation"] if grounding else []),
        task_ids=["visual-question-answering", "multi-class-image-classification"],
        size_categories=[_size_category(total)],
        source_datasets=["rajpurkarlab/ReXGroundingCT", "ibrahimhamamci/CT-RATE"],
        tags=["medical", "radiology", "chest-ct", "ct-rate", "rexgroundingct", "medreason-r1"]
        + (["grounding", "medreasoner"] if grounding else [])
        + (["synthetic"] if synthetic else []),
        extra_gated_prompt=GATED_PROMPT,
        extra_gated_fields=GATED_FIELDS,
    )
    MetadataConfigs(
        {
            name: {
                "data_files": [
                    {"split": split, "path": f"{name}/{split}-*"}
                    for split, files in cfg["data_files"].items()
                    if files
                ],
                **({"default": True} if cfg.get("default") else {}),
            }
            for name, cfg in manifest["configs"].items()
        }
    ).to_dataset_card_data(card_data)
    DatasetInfosDict(
        {name: DatasetInfo._from_yaml_dict(info) for name, info in manifest["dataset_info"].items()}
    ).to_dataset_card_data(card_data)
    return card_data


def _parameter_table(manifest: dict) -> str:
    rows = ["| option | value | origin | meaning |", "|---|---|---|---|"]
    docs = manifest.get("parameter_docs", {})
    for name, value in manifest["parameters"].items():
        doc = docs.get(name, {})
        text = doc.get("help", "").replace("|", "/")
        rows.append(f"| `{name}` | `{value}` | {doc.get('source', 'ours')} | {text} |")
    return "\n".join(rows)


def _class_table(manifest: dict) -> str:
    classes = manifest["class_map"]["classes"]
    counts = manifest["counts"]["class_counts"]
    splits = [s for s in ("train", "test") if s in counts]
    rows = ["| class | " + " | ".join(splits) + " | total |", "|---" * (len(splits) + 2) + "|"]
    for name in classes:
        values = [counts[s].get(name, 0) for s in splits]
        rows.append(f"| {name} | " + " | ".join(map(str, values)) + f" | {sum(values)} |")
    totals = [sum(counts[s].values()) for s in splits]
    rows.append("| **all** | " + " | ".join(map(str, totals)) + f" | {sum(totals)} |")
    return "\n".join(rows)


def plot_class_distribution(manifest: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = manifest["class_map"]["classes"]
    counts = manifest["counts"]["class_counts"]
    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    width = 0.4
    for i, split in enumerate(s for s in ("train", "test") if s in counts):
        xs = [c + (i - 0.5) * width for c in range(len(classes))]
        ax.bar(xs, [counts[split].get(n, 0) for n in classes], width, label=split)
    ax.set_xticks(range(len(classes)), [c.replace(" ", "\n", 1) for c in classes], fontsize=7)
    ax.set_ylabel("QA rows (slices)")
    ax.set_title("CT-RATE-VQA: rows per class and split")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def _skipped_section(manifest: dict) -> str:
    skipped = manifest.get("skipped", [])
    unused = manifest["counts"].get("unused_codes", {})
    lines = [
        f"{len(skipped)} case(s) or finding(s) were skipped (full list with reasons in "
        "`build_manifest.json`)."
    ]
    for entry in skipped[:20]:
        lines.append(f"- `{entry['case']}`: {entry['reason']}")
    if len(skipped) > 20:
        lines.append(f"- ... and {len(skipped) - 20} more")
    if unused:
        lines.append("")
        lines.append(
            "Findings with category codes outside the seven classes (not used): "
            + ", ".join(f"`{c}` x {n}" for c, n in unused.items())
            + "."
        )
    return "\n".join(lines)


def _grounding_section(manifest: dict) -> str:
    """The card's text on the `grounding` config (empty when the build has none)."""
    if GROUNDING_CONFIG not in manifest["configs"]:
        return ""
    grounding = manifest.get("grounding", {})
    size = manifest["parameters"].get("image_size")
    resize = (
        "the slice's native size"
        if size is None
        else f"{size} x {size} (`image_size`; the mask is resized by nearest neighbour, each "
        "pixel taking the native pixel under its centre, and the largest connected piece is "
        "kept; `bbox` is recomputed from it)"
    )
    template = grounding.get("query_template", "").replace("`", "'")
    connectivity = manifest["parameters"].get("connectivity")
    return f"""
## The `grounding` config (MedReasoner's reasoning grounding)

The same slices, ids and patient split as `zoom` and `plain` (one grounding row per
classification row), posed as MedReasoner's "unified medical reasoning grounding"
(arXiv 2508.08177): ground the finding's report sentence on the slice with a box and two
points. ReXGroundingCT masks one report sentence per channel, so no new annotation is needed.

Columns: `id`, `image` (the plain slice, nothing drawn), `query` (the grounding question),
`finding` (the report sentence), `answer` / `label` (the lesion's class), `bbox` (the target
lesion component's tight box), `points` (`[[x1, y1], [x2, y2]]`, two pixels inside it), `mask`
(the component's mask), and the provenance columns `case_id`, `patient_id`, `slice_index`,
`category_code`, `finding_index`, `lesion_pixels` (on the native slice), `spacing_mm`.

- Target: the largest qualifying connected component of the finding on the slice (the one the
  classification rows' `bbox` comes from; `connectivity` {connectivity}), written at {resize}.
- `query`: the template `{template}` (`grounding_query`; ours: MedReasoner poses implicit
  clinical questions and U-MRG's wording is not public), `{{finding}}` being the report sentence.
- `points` (ours; U-MRG's method is not published): {grounding.get("point_method", "")}.
- `{EVAL_FILE}` (Inspect's multiple-choice benchmark) covers the classification configs only:
  `grounding` has no Inspect task and no `{GROUNDING_CONFIG}_inspect` config.

{GROUNDING_FRAME}

```python
ds = load_dataset("PATH_OR_REPO", "{GROUNDING_CONFIG}")
```
"""


def card_body(manifest: dict) -> str:
    counts = manifest["counts"]
    source = manifest.get("source", {})
    note = f"\n\n> **{source['note']}**" if source.get("note") else ""
    splits = ", ".join(
        f"{s}: {counts['cases'].get(s, 0)} volumes of {counts['patients'].get(s, 0)} patients"
        for s in ("train", "test")
    )
    has_grounding = GROUNDING_CONFIG in manifest["configs"]
    grounding_bullet = (
        f"- `{GROUNDING_CONFIG}`: the plain slices with the finding's report sentence as a "
        "grounding query and the lesion's mask, box and two points (see below).\n"
        if has_grounding
        else ""
    )
    differences = DIFFERENCES + (GROUNDING_DIFFERENCES if has_grounding else [])
    return (
        f"""# CT-RATE-VQA

Chest-CT lesion classification posed as visual question answering: each row is one axial CT
slice, a question that lists the seven lesion classes of MedReason-R1, and the class of the
lesion as the answer. Built by the medreason-r1 `dataset_builder`
{manifest["package"]["version"]} from ReXGroundingCT lesion masks on CT-RATE volumes, following
MedReason-R1 (arXiv 2510.19626).{note}

## Intended use and license

For non-commercial **research only**; not for clinical use or any decision about a patient.
Licensed CC BY-NC-SA 4.0, as its sources ReXGroundingCT and CT-RATE are; access is gated and
requires accepting both sources' terms.

## Configs and use

- `zoom` (default): the lesion is outlined in red and a magnified patch with a green border is
  pasted into a corner (upper-left unless the lesion lies there; `zoom_corner` says which).
- `plain`: the same slices without patch or outline.
{grounding_bullet}{inspect_card_text(manifest)}

```python
from datasets import load_dataset
ds = load_dataset("PATH_OR_REPO", "zoom")  # or "plain"
```

Columns of `zoom` and `plain`: `image` (RGB PNG), `question`, `options` (the class names
offered), `answer` (class name), `label` (ClassLabel of the seven classes), `case_id`,
`patient_id`, `slice_index` (axial index in the LPS-ordered volume), `bbox` (lesion box
`[x0, y0, x1, y1]` in image pixels,
end-exclusive), `zoom_box` / `zoom_corner` (where the patch went; empty in `plain`),
`category_code` (ReXGroundingCT code), `finding` (the report sentence), `finding_index` (mask
channel), `lesion_pixels` (lesion area on the native slice), `spacing_mm` (voxel size, LPS axes).
{_grounding_section(manifest)}
## How it was built

1. Cases: the ReXGroundingCT `{", ".join(manifest["parameters"]["source_splits"])}` lists;
   each CT from CT-RATE (`dataset/<split>_fixed/...`, int16 HU, LPS). Orientation and spacing
   come from the CT header; masks are indexed on the CT voxel grid (their identity affine is
   ignored); single-finding masks may be 3-D.
2. Per finding (mask channel) and axial slice: 2-D connected components; the largest component
   above the size threshold gives the lesion box. At most `slices_per_case` candidates per
   {manifest["parameters"].get("slice_cap_unit", "volume")} (`slice_cap_unit`), evenly spaced
   in (slice, finding) order.
3. Category codes map to the seven classes through `{manifest["class_map"]["source"]}`.
4. HU are clipped, windowed and written as RGB PNG, in both variants (`grounding` takes the
   `plain` image; its mask is written as a grey-level PNG).
5. Split by patient ({splits}), `split_strategy`
   `{manifest["parameters"].get("split_strategy", "random")}`; no patient is in both splits.

### Parameters

{_parameter_table(manifest)}

### Class distribution

{_class_table(manifest)}

![rows per class and split]({PLOT_NAME})

### Skipped input

{_skipped_section(manifest)}

## Differences from the paper

"""
        + "\n".join(f"- {d}" for d in differences)
        + f"""

## Citation

{CITATIONS}
"""
    )


def dataset_card_from_manifest(manifest: dict) -> DatasetCard:
    card_data = card_data_from_manifest(manifest)
    return DatasetCard(f"---\n{card_data.to_yaml()}\n---\n\n{card_body(manifest)}")


def write_dataset_card(out: str | Path, manifest: dict) -> DatasetCard:
    """Write ``README.md`` and the class-distribution plot into the dataset folder."""
    out = Path(out)
    plot_class_distribution(manifest, out / PLOT_NAME)
    card = dataset_card_from_manifest(manifest)
    card.save(out / CARD_NAME)
    return card
