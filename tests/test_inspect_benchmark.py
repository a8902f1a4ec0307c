"""The dataset's Hub Benchmark declaration (``eval.yaml``) read and run by inspect-ai itself.

Inspect resolves ``hf/ORG/NAME[/TASK]`` on the Hub: it downloads ``eval.yaml`` with
``hf_hub_download`` and loads each task's config and split with ``datasets.load_dataset``
(``inspect_ai/_eval/task/hf.py``). So the built folder is pushed to the local test Hub and
Inspect reaches it through ``HF_ENDPOINT`` (set in conftest), as a user's run reaches the Hub.
The model is Inspect's ``mockllm/model`` with outputs given in Python; Inspect's default mock
output counts tokens with tiktoken's o200k_base file, which it downloads (not offline).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from datasets import ClassLabel, Image, Value, load_dataset
from huggingface_hub import DatasetCard
from inspect_ai import eval as inspect_eval
from inspect_ai._eval.task.hf import HFTask
from inspect_ai.log import read_eval_log
from inspect_ai.model import ContentImage, ModelOutput, ModelUsage, get_model
from pydantic import ValidationError

from common.names import GROUNDING_CONFIG
from hub_cards.benchmark import (
    EVAL_FILE,
    IMAGE_URI_COLUMN,
    PAPER_TEST_ROWS,
    data_uri,
    inspect_config,
)
from hub_cards.publish import push_dataset

REPO = "medreason/ct-rate-vqa-bench"
CONFIGS = ("zoom", "plain")
LETTERS = "ABCDEFG"


def _spec(folder: Path) -> dict:
    return yaml.safe_load((folder / EVAL_FILE).read_text())


def test_eval_yaml_is_valid_for_inspects_hftask(built_dataset):
    spec = _spec(built_dataset)
    assert spec["evaluation_framework"] == "inspect-ai"
    tasks = {t["id"]: HFTask.model_validate(t) for t in spec["tasks"]}  # extra keys forbidden
    assert set(tasks) == set(CONFIGS)  # the task ids .eval_results entries name
    for config, task in tasks.items():
        assert task.config == inspect_config(config) and task.split == "test"
        assert task.field_spec.input_image == IMAGE_URI_COLUMN
        assert task.field_spec.target == "label" and task.field_spec.choices == "options"
        assert [s.name for s in task.solvers] == ["multiple_choice"]
        assert [s.name for s in task.scorers] == ["choice"]
    # the declaration the project wrote before: keys Inspect refuses
    old = {**spec["tasks"][0], "metric": "accuracy", "description": "x"}
    with pytest.raises(ValidationError, match="metric"):
        HFTask.model_validate(old)


def test_inspect_configs_hold_the_test_rows_with_data_uri_images(built_dataset):
    manifest = json.loads((built_dataset / "build_manifest.json").read_text())
    card = DatasetCard.load(built_dataset / "README.md")
    listed = {c["config_name"] for c in card.data.to_dict()["configs"]}
    # grounding has no Inspect config: Inspect's Benchmark is the multiple-choice task
    assert listed == {*CONFIGS, GROUNDING_CONFIG, *(inspect_config(c) for c in CONFIGS)}
    for config in CONFIGS:
        name = inspect_config(config)
        source = load_dataset(str(built_dataset), config, split="test")
        ours = load_dataset(str(built_dataset), name)
        assert list(ours) == ["test"]  # test split only
        ours = ours["test"]
        assert ours.features[IMAGE_URI_COLUMN] == Value("string")
        assert isinstance(ours.features["label"], ClassLabel)
        assert ours.features["label"].names == source.features["label"].names
        assert ours.features["options"] == source.features["options"]
        shards = sorted((built_dataset / config).glob("test-*.parquet"))
        pngs = [
            image["bytes"]
            for shard in shards
            for image in pq.read_table(shard, columns=["image"]).column("image").to_pylist()
        ]
        assert len(ours) == len(source) == len(pngs) > 0
        assert ours[IMAGE_URI_COLUMN] == [data_uri(png) for png in pngs]
        assert all(uri.startswith("data:image/png;base64,") for uri in ours[IMAGE_URI_COLUMN])
        for column in ("id", "question", "options", "answer", "label", "bbox", "case_id"):
            assert ours[column] == source[column], column
        # the card's size figure: measured mean PNG size x 4/3 x the paper's test rows
        mean_png = sum(len(p) for p in pngs) / len(pngs)
        companion = manifest["inspect"][config]
        assert companion["png_bytes_mean"] == pytest.approx(mean_png)
        full_gb = mean_png * 4 / 3 * PAPER_TEST_ROWS / 1e9
        line = next(x for x in card.text.splitlines() if f"`{name}`: mean PNG" in x)
        assert f"**{full_gb:,.2f} GB** at {PAPER_TEST_ROWS:,} rows" in line
        assert f"mean PNG {mean_png / 1e3:,.1f} kB over {len(pngs)} test rows" in line
    # the image configs are unchanged: still train + test with an Image column
    zoom = load_dataset(str(built_dataset), "zoom")
    assert set(zoom) == {"train", "test"} and IMAGE_URI_COLUMN not in zoom["test"].features
    assert "inspect eval hf/ORG/NAME --model" in card.text  # what a user types


def _image_of(messages) -> str:
    images = [
        c.image
        for m in messages
        if m.role == "user" and not isinstance(m.content, str)
        for c in m.content
        if isinstance(c, ContentImage)
    ]
    assert len(images) == 1, "the prompt must carry the slice as one image"
    return images[0]


def _model(answer):
    """Inspect's mock model answering ``answer(image_data_uri)`` in the multiple_choice format
    (usage given, so that Inspect does not fetch tiktoken's files to estimate it)."""

    def generate(messages, tools, tool_choice, config) -> ModelOutput:
        reply = f"ANSWER: {answer(_image_of(messages))}"
        output = ModelOutput.from_content(model="mockllm", content=reply)
        output.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
        return output

    return get_model("mockllm/model", custom_outputs=generate)


def _test_rows(folder: Path, config: str) -> list[tuple[str, int]]:
    """(image data URI, label) of each test row of an image config."""
    ds = load_dataset(str(folder), config, split="test")
    ds = ds.cast_column("image", Image(decode=False))
    return [(data_uri(i["bytes"]), y) for i, y in zip(ds["image"], ds["label"], strict=True)]


def test_inspect_eval_runs_the_benchmark_from_the_hub(
    built_dataset, local_hub, tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # Inspect's dataset cache
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    push_dataset(built_dataset, REPO)
    rows = {c: _test_rows(built_dataset, c) for c in CONFIGS}
    labels: dict[str, set[int]] = {}  # image -> labels (a plain slice may show two findings)
    for image, label in (r for config_rows in rows.values() for r in config_rows):
        labels.setdefault(image, set()).add(label)
    common = Counter(y for _, y in rows["zoom"]).most_common(1)[0][0]
    runs = {
        # answers from the image alone: right wherever the image has one label
        "oracle": (
            _model(lambda image: LETTERS[min(labels[image])]),
            lambda r: sum(min(labels[i]) == y for i, y in r) / len(r),
        ),
        # the same letter for every question: right on that class's rows only
        "constant": (
            _model(lambda image: LETTERS[common]),
            lambda r: sum(y == common for _, y in r) / len(r),
        ),
    }
    accuracy: dict[tuple[str, str], float] = {}
    for run, (model, expected) in runs.items():
        logs = inspect_eval(f"hf/{REPO}", model=model, log_dir=str(tmp_path / run), display="none")
        assert sorted(log.eval.task for log in logs) == sorted(f"hf/{REPO}/{c}" for c in CONFIGS)
        for log in logs:
            config = log.eval.task.rsplit("/", 1)[1]
            test = rows[config]
            on_disk = read_eval_log(log.location)
            assert on_disk.status == "success", on_disk.error
            assert on_disk.eval.dataset.samples == len(test)
            assert on_disk.results.total_samples == on_disk.results.completed_samples == len(test)
            assert sorted(s.target for s in on_disk.samples) == sorted(LETTERS[y] for _, y in test)
            (score,) = on_disk.results.scores
            assert score.name == "choice"
            accuracy[run, config] = score.metrics["accuracy"].value
            assert accuracy[run, config] == pytest.approx(expected(test))
    assert accuracy["oracle", "zoom"] == 1.0  # each zoom image shows one lesion
    assert 0 < accuracy["constant", "zoom"] < 1


def test_inspect_config_shards_are_bounded_and_rebuilt_in_place(
    synthetic_source, built_dataset, tmp_path
):
    from dataset_builder import BuildOptions, build_repo

    out = tmp_path / "sharded"
    for max_shard_size in ("40KB", "500MB"):  # a rebuild with fewer shards drops the old ones
        build_repo(
            synthetic_source["rex_dir"],
            synthetic_source["ctrate_dir"],
            out,
            BuildOptions(seed=3, max_shard_size=max_shard_size),
            variants=("zoom",),
            progress=False,
        )
        shards = sorted((out / inspect_config("zoom")).iterdir())
        if max_shard_size == "40KB":
            assert len(shards) > 1
            for shard in shards:  # in-memory Arrow bytes, as datasets bounds its own shards
                table = pq.read_table(shard)
                assert table.num_rows == 1 or table.nbytes <= 40_000
        else:
            assert [s.name for s in shards] == ["test-00000-of-00001.parquet"]
        assert shards[0].name == f"test-00000-of-{len(shards):05d}.parquet"
        ours = load_dataset(str(out), inspect_config("zoom"), split="test")
        theirs = load_dataset(str(built_dataset), inspect_config("zoom"), split="test")
        assert ours.to_list() == theirs.to_list()
        assert [t["id"] for t in _spec(out)["tasks"]] == ["zoom"]
