"""The evaluator's image ablations (``--image-ablation``): does the model look at the image?

Each evaluated row is prompted with the image its ablation gives in place of its own; the rest
of the row (question, options, gold answer; for grounding the true box, points and mask) stays
the row's, and so does what is scored against it (the SAM segments the row's real image). The
ablations, by name (``ABLATIONS``; ``common.results_schema.IMAGE_ABLATIONS`` names them and
labels an ablated model):

- ``none``: the real images.
- ``blank``: a uniform image of the row image's size and mode, every pixel ``BLANK_GREY``.
- ``shuffle``: the image of another evaluated row (resized to this row's size and converted to
  its mode where they differ, so a grounding reply's frame is this row's). The rows are put in
  an order seeded with ``--ablation-seed`` (``random.Random(seed).shuffle``) and each row gets
  the image of the next one in that order (the last the first's): one cycle through every row,
  so no row keeps its own image. The order is computed once over the whole evaluated split
  (after ``--limit``), so any number of processes gives every row the same image.

A new ablation is one function here (``(rows, seed, image_of) -> Ablate``), one entry in
``ABLATIONS`` and its label in ``common.results_schema.IMAGE_ABLATIONS``.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import datasets
from PIL import Image

from common.results_schema import BLANK_ABLATION, NO_ABLATION, SHUFFLE_ABLATION

from .options import BLANK_GREY, EvaluateArguments, EvaluationError

ImageOf = Callable[[int], Image.Image]  # the real image of evaluated row i
Ablate = Callable[[int, Image.Image], Image.Image]  # (row index, its image) -> the prompted image


def real_images(rows: int, seed: int, image_of: ImageOf) -> Ablate:
    """``none``: each row's own image."""
    return lambda index, image: image


def blank_image(image: Image.Image) -> Image.Image:
    """A uniform ``BLANK_GREY`` image of ``image``'s size and mode (every band)."""
    bands = len(image.getbands())
    return Image.new(image.mode, image.size, BLANK_GREY if bands == 1 else (BLANK_GREY,) * bands)


def blank_images(rows: int, seed: int, image_of: ImageOf) -> Ablate:
    """``blank``: each image replaced by ``blank_image``."""
    return lambda index, image: blank_image(image)


def derangement(rows: int, seed: int) -> list[int]:
    """``order[i]``: the row whose image row i gets; a seeded single cycle through all
    ``rows`` (no fixed point for two rows or more)."""
    cycle = list(range(rows))
    random.Random(seed).shuffle(cycle)
    order = [0] * rows
    for k, row in enumerate(cycle):
        order[row] = cycle[(k + 1) % rows]
    return order


def fitted(donor: Image.Image, image: Image.Image) -> Image.Image:
    """``donor`` in ``image``'s mode and size (as it is where they already match)."""
    donor = donor if donor.mode == image.mode else donor.convert(image.mode)
    return donor if donor.size == image.size else donor.resize(image.size, Image.BILINEAR)


def shuffled_images(rows: int, seed: int, image_of: ImageOf) -> Ablate:
    """``shuffle``: each row gets the image of row ``derangement(rows, seed)[i]``."""
    if rows < 2:
        raise EvaluationError(
            f"--image-ablation {SHUFFLE_ABLATION} gives each row another row's image, and the "
            f"evaluated split has {rows} row: evaluate 2 rows or more (--limit), or use "
            f"--image-ablation {BLANK_ABLATION}"
        )
    order = derangement(rows, seed)
    return lambda index, image: fitted(image_of(order[index]), image)


ABLATIONS: dict[str, Callable[[int, int, ImageOf], Ablate]] = {
    NO_ABLATION: real_images,
    BLANK_ABLATION: blank_images,
    SHUFFLE_ABLATION: shuffled_images,
}


def image_ablation(options: EvaluateArguments, ds: datasets.Dataset) -> Ablate:
    """The ablation ``options`` name, over the evaluated rows ``ds`` (their indices); refused
    in one line where it cannot run (shuffle of one row)."""
    images = ds.select_columns(["image"])
    return ABLATIONS[options.image_ablation](
        len(ds), options.ablation_seed, lambda index: images[index]["image"]
    )


def ablated_rows(rows: list[dict], indices: list[int], ablate: Ablate) -> list[dict]:
    """``rows`` (evaluated rows ``indices``) with the image ``ablate`` gives each."""
    return [
        {**row, "image": ablate(index, row["image"])}
        for row, index in zip(rows, indices, strict=True)
    ]


def ablation_record(mode: str, seed: int) -> dict:
    """How results.json and eval_settings.json record ablation ``mode``: its name, and its
    ``seed`` (null but for shuffle, the one ablation it seeds)."""
    return {"mode": mode, "seed": seed if mode == SHUFFLE_ABLATION else None}
