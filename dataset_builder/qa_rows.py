"""QA rows: the question texts (ours: the paper did not publish its wording) and the schemas of
the classification configs (``zoom``, ``plain``) and of the ``grounding`` config."""

from __future__ import annotations

import datasets

from common.names import GROUNDING_CONFIG

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


def row_id(cached: dict) -> str:
    """The id of a slice's rows, the same in every config."""
    return f"{cached['case_id']}-f{cached['finding_index']}-s{cached['slice_index']}"


def _image_path(cached: dict, config: str) -> str:
    return f"{cached['case_id']}_f{cached['finding_index']}_s{cached['slice_index']}_{config}.png"


def variant_row(cached: dict, variant: str, class_names: list[str] | tuple[str, ...]) -> dict:
    """One dataset row of ``variant`` from a cached case row holding both renderings."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown config {variant!r}; choose one of {VARIANTS}")
    zoom = variant == "zoom"
    options = list(class_names)
    return {
        "id": row_id(cached),
        "image": {
            "bytes": cached["zoom_png" if zoom else "plain_png"],
            "path": _image_path(cached, variant),
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


def grounding_features(class_names: list[str] | tuple[str, ...]) -> datasets.Features:
    """The typed schema of the ``grounding`` config (boxes and points in the image frame)."""
    return datasets.Features(
        {
            "id": datasets.Value("string"),
            "image": datasets.Image(),
            "query": datasets.Value("string"),
            "finding": datasets.Value("string"),
            "answer": datasets.Value("string"),
            "label": datasets.ClassLabel(names=list(class_names)),
            "bbox": datasets.List(datasets.Value("int32")),
            "points": datasets.List(datasets.List(datasets.Value("int32"))),
            "mask": datasets.Image(),
            "case_id": datasets.Value("string"),
            "patient_id": datasets.Value("string"),
            "slice_index": datasets.Value("int32"),
            "category_code": datasets.Value("string"),
            "finding_index": datasets.Value("int32"),
            "lesion_pixels": datasets.Value("int32"),
            "spacing_mm": datasets.List(datasets.Value("float32")),
        }
    )


def config_features(config: str, class_names: list[str] | tuple[str, ...]) -> datasets.Features:
    """The typed schema of ``config``."""
    if config == GROUNDING_CONFIG:
        return grounding_features(class_names)
    return features_for(class_names)


def grounding_query(template: str, finding: str) -> str:
    """The grounding question: ``template`` (BuildOptions.grounding_query) with the finding."""
    return template.format(finding=finding)


def grounding_row(cached: dict, query_template: str) -> dict:
    """One ``grounding`` row from a cached case row: the plain slice, the finding's query, and
    the target component's mask, tight box and two points (image frame)."""
    return {
        "id": row_id(cached),
        "image": {"bytes": cached["plain_png"], "path": _image_path(cached, GROUNDING_CONFIG)},
        "query": grounding_query(query_template, cached["finding"]),
        "finding": cached["finding"],
        "answer": cached["answer"],
        "label": cached["answer"],
        "bbox": list(cached["grounding_bbox"]),
        "points": [list(point) for point in cached["points"]],
        "mask": {"bytes": cached["mask_png"], "path": _image_path(cached, "mask")},
        "case_id": cached["case_id"],
        "patient_id": cached["patient_id"],
        "slice_index": cached["slice_index"],
        "category_code": cached["category_code"],
        "finding_index": cached["finding_index"],
        "lesion_pixels": cached["lesion_pixels"],
        "spacing_mm": list(cached["spacing_mm"]),
    }
