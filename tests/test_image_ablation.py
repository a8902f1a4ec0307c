"""The evaluator's image ablations (issue 21 item 5, ``--image-ablation``): a blank image is
uniform and of the row's size, a shuffle is a seeded derangement that any number of processes
computes alike, the images that reach the model are the ablated ones, results.json records the
ablation, and predictions of one ablation are never resumed with another."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

import model_training.evaluation.generation as generation
from common.results_schema import (
    IMAGE_ABLATIONS,
    SHUFFLE_ABLATION,
    model_label,
    read_results,
)
from model_training.evaluation.evaluate import (
    EvaluateArguments,
    EvaluationError,
    batch_rows,
    evaluate,
    main,
)
from model_training.evaluation.image_ablation import (
    ABLATIONS,
    BLANK_GREY,
    ablated_rows,
    blank_image,
    derangement,
    image_ablation,
)
from model_training.evaluation.progress import plan_batches, shard
from model_training.tiny_model import build_tiny_model

ROWS = 7  # a handful of rows, each image its own grey level (its index x 10) and size


def _options(**extra) -> EvaluateArguments:
    return EvaluateArguments("model", "dataset", "out", **extra)


def _rows() -> datasets.Dataset:
    images = [Image.new("L", (20 + i, 16), 10 * i) for i in range(ROWS)]
    return datasets.Dataset.from_dict(
        {"id": [f"r{i}" for i in range(ROWS)], "image": images},
        features=datasets.Features({"id": datasets.Value("string"), "image": datasets.Image()}),
    )


def test_every_ablation_has_its_label():
    assert set(ABLATIONS) == set(IMAGE_ABLATIONS)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_blank_is_a_uniform_image_of_the_same_size_and_mode(mode):
    image = Image.effect_noise((31, 17), 60).convert(mode)
    blank = blank_image(image)
    assert (blank.size, blank.mode) == ((31, 17), mode)
    assert np.all(np.asarray(blank) == BLANK_GREY)


def test_shuffle_is_a_seeded_derangement():
    for rows in range(2, 12):
        for seed in range(5):
            order = derangement(rows, seed)
            assert sorted(order) == list(range(rows))
            assert all(order[i] != i for i in range(rows))  # no row keeps its own image
            assert derangement(rows, seed) == order  # same seed, same permutation
    assert derangement(10, 0) != derangement(10, 1)  # another seed, another


def _prompted(ds: datasets.Dataset, ablate, world: int) -> dict[str, tuple]:
    """The (grey level, size) of the image each row is prompted with, the batches shared among
    ``world`` processes as the evaluator shares them."""
    seen = {}
    for rank in range(world):
        for _, indices in shard(plan_batches(ds["id"], ("think",), {}, 2), rank, world):
            for row in ablated_rows(batch_rows(ds.select(indices)[:]), indices, ablate):
                seen[row["id"]] = (int(np.asarray(row["image"]).max()), row["image"].size)
    return seen


def test_shuffle_gives_each_row_another_rows_image_whatever_the_process_count():
    ds = _rows()
    options = _options(image_ablation=SHUFFLE_ABLATION, ablation_seed=3)
    one = _prompted(ds, image_ablation(options, ds), 1)
    order = derangement(ROWS, 3)
    for i in range(ROWS):  # another row's image, fitted to this row's size
        assert one[f"r{i}"] == (10 * order[i], (20 + i, 16))
    for world in (2, 3):  # every process computes the same permutation
        assert _prompted(ds, image_ablation(options, ds), world) == one
    other = _prompted(
        ds, image_ablation(_options(image_ablation="shuffle", ablation_seed=4), ds), 1
    )
    assert other != one


def record_prompted_images(monkeypatch: pytest.MonkeyPatch) -> list[Image.Image]:
    """The images the evaluator prompts the model with, in order: our ``greedy_replies`` (the
    last step before the processor) wrapped to record them."""
    seen: list[Image.Image] = []
    original = generation.greedy_replies

    def recording(model, processor, conversations, images, *args):
        seen.extend(images)
        return original(model, processor, conversations, images, *args)

    monkeypatch.setattr(generation, "greedy_replies", recording)  # our function, not a library's
    return seen


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    return str(build_tiny_model(tmp_path_factory.mktemp("ablation") / "tiny"))


def test_blank_images_reach_the_model_and_results_record_them(
    tiny_model, built_dataset, tmp_path, monkeypatch
):
    seen = record_prompted_images(monkeypatch)
    out = tmp_path / "eval"
    options = EvaluateArguments(
        tiny_model, str(built_dataset), str(out), mode="no-think", limit=3, batch_size=3,
        max_new_tokens=2, progress=False, image_ablation="blank",
    )  # fmt: skip
    report = evaluate(options)
    real = datasets.load_dataset(str(built_dataset), "zoom", split="test")["image"][:3]
    assert [image.size for image in seen] == [image.size for image in real]
    assert all(np.all(np.asarray(image) == BLANK_GREY) for image in seen)
    assert not any(np.all(np.asarray(image) == BLANK_GREY) for image in real)
    assert report["image_ablation"] == {"mode": "blank", "seed": None}
    saved = read_results(out / "results.json")
    assert saved["image_ablation"] == {"mode": "blank", "seed": None}
    assert model_label(saved).endswith(" [blank images]")
    # resuming the folder with other images is refused before anything is generated
    seen.clear()
    for other in ({"image_ablation": "none"}, {"image_ablation": "shuffle", "ablation_seed": 1}):
        with pytest.raises(EvaluationError, match="differs in image_ablation.*--overwrite"):
            evaluate(replace(options, **other))
    assert not seen
    settings = json.loads((out / "eval_settings.json").read_text())
    assert settings["image_ablation"] == {"mode": "blank", "seed": None}


def _main(tmp_path: Path, *extra: str, model: str = "m", dataset: str = "d") -> int:
    return main(["--model", model, "--dataset", dataset,
                 "--output-dir", str(tmp_path / "eval"), "--no-progress", *extra])  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        (["--image-ablation", "grey"], ["--image-ablation 'grey'", "none, blank, shuffle"]),
        (["--image-ablation", "blank", "--ablation-seed", "3"], ["--ablation-seed", "shuffle"]),
        (["--ablation-seed", "2"], ["--ablation-seed", "--image-ablation shuffle"]),
    ],
)
def test_bad_ablation_options_are_one_line(tmp_path, capsys, extra, names):
    assert _main(tmp_path, *extra) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert all(name in err for name in names)
    assert not (tmp_path / "eval").exists()


def test_shuffle_of_one_row_is_one_line(tiny_model, built_dataset, tmp_path, capsys):
    argv = ("--image-ablation", "shuffle", "--limit", "1")
    assert _main(tmp_path, *argv, model=tiny_model, dataset=str(built_dataset)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "shuffle" in err and "1 row" in err and "--limit" in err
    assert not (tmp_path / "eval").exists()
