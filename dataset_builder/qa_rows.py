"""QA rows: the question texts (ours: the paper did not publish its wording) and the schema."""

from __future__ import annotations

import datasets

from .config import VARIANTS

# ours: the paper shows neither the question nor the answer strings.
QUESTION_TEMPLATES = {
    "zoom": (
        "This is an axial chest CT slice. The lesion is outlined in red and shown magnified in "
        "the inset with a green border in the {corner} corner. Which type of abnormality is it? "
        "Choose one of: {options}."
    ),
    "plain": (
        "This is an axial chest CT slice. Which type of abnormality does it show? "
        "Choose one of: {options}."
    ),
}


def question_for(variant: str, options: list[str], corner: str = "") -> str:
    return QUESTION_TEMPLATES[variant].format(corner=corner, options="; ".join(options))


def features_for(class_names: list[str] | tuple[str, ...]) -> datasets.Features:
    """The typed schema of both configs (`zoom_box` / `zoom_corner` are empty in `plain`)."""
    return datasets.Features(
        {
            "id": datasets.Value("string"),
            "image": datasets.Image(),
            "question": datasets.Value("string"),
            "options": datasets.List(datasets.Value("string")),
            "answer": datasets.Value("string"),
            "label": datasets.ClassLabel(names=list(class_names)),
            "case_id": datasets.Value("string"),
            "patient_id": datasets.Value("string"),
            "slice_index": datasets.Value("int32"),
            "bbox": datasets.List(datasets.Value("int32")),
            "zoom_box": datasets.List(datasets.Value("int32")),
            "zoom_corner": datasets.Value("string"),
            "category_code": datasets.Value("string"),
            "finding": datasets.Value("string"),
            "finding_index": datasets.Value("int32"),
            "lesion_pixels": datasets.Value("int32"),
            "spacing_mm": datasets.List(datasets.Value("float32")),
        }
    )


def variant_row(cached: dict, variant: str, class_names: list[str] | tuple[str, ...]) -> dict:
    """One dataset row of ``variant`` from a cached case row holding both renderings."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown config {variant!r}; choose one of {VARIANTS}")
    zoom = variant == "zoom"
    options = list(class_names)
    return {
        "id": f"{cached['case_id']}-f{cached['finding_index']}-s{cached['slice_index']}",
        "image": {
            "bytes": cached["zoom_png" if zoom else "plain_png"],
            "path": f"{cached['case_id']}_f{cached['finding_index']}_"
            f"s{cached['slice_index']}_{variant}.png",
        },
        "question": question_for(variant, options, cached["zoom_corner"]),
        "options": options,
        "answer": cached["answer"],
        "label": cached["answer"],
        "case_id": cached["case_id"],
        "patient_id": cached["patient_id"],
        "slice_index": cached["slice_index"],
        "bbox": list(cached["bbox"]),
        "zoom_box": list(cached["zoom_box"]) if zoom else [],
        "zoom_corner": cached["zoom_corner"] if zoom else "",
        "category_code": cached["category_code"],
        "finding": cached["finding"],
        "finding_index": cached["finding_index"],
        "lesion_pixels": cached["lesion_pixels"],
        "spacing_mm": list(cached["spacing_mm"]),
    }
