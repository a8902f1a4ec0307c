"""The lmms-eval task folder lmms_eval_tasks/ct_rate_vqa/: its YAMLs resolve, and its hooks score
replies on rows of the built synthetic dataset as worked out by hand; the grounding hooks
(standard library only) parse, convert and score replies as model_training.grounding and
grounding_eval.score_reply do."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys

import pytest
from datasets import load_dataset
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
    Qwen2VLImageProcessorPil,
    smart_resize,
)

from common.names import GROUNDING_CONFIG
from model_training import answers, grounding, prompts
from model_training.answers import parse_reply
from model_training.evaluation.tasks import grounding as grounding_eval
from model_training.processor import PINNED_MAX_PIXELS, PINNED_MIN_PIXELS

from .lmms_task_files import TASK_DIR, TASK_FILES, Function, load_task

CLASSIFICATION_FILES = ["ct_rate_vqa.yaml", "ct_rate_vqa_no_think.yaml", "ct_rate_vqa_plain.yaml"]
GROUNDING_FILE = "ct_rate_vqa_grounding.yaml"

FUNCTION_KEYS = (
    "doc_to_messages",
    "doc_to_visual",
    "doc_to_text",
    "doc_to_target",
    "process_results",
)


@pytest.fixture(scope="module")
def utils():
    spec = importlib.util.spec_from_file_location("ct_rate_vqa_task_utils", TASK_DIR / "utils.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_the_task_files():
    assert sorted(TASK_FILES) == sorted([*CLASSIFICATION_FILES, GROUNDING_FILE])


@pytest.mark.parametrize("name", CLASSIFICATION_FILES)
def test_every_function_resolves_to_a_callable(name, utils):
    config = load_task(name)
    assert config["task"] == name.removesuffix(".yaml")
    assert config["output_type"] == "generate_until" and config["test_split"] == "test"
    assert config["dataset_name"] in ("zoom", "plain")
    references = [config[key] for key in FUNCTION_KEYS] + [
        metric["aggregation"]
        for metric in config["metric_list"]
        if isinstance(metric["aggregation"], Function)
    ]
    assert len(references) == len(FUNCTION_KEYS) + 2  # micro and macro accuracy
    for reference in references:
        assert isinstance(reference, Function) and reference.module == "utils"
        assert callable(getattr(utils, reference.name)), reference.name
    better = {m["metric"]: m["higher_is_better"] for m in config["metric_list"]}
    assert better == {
        "accuracy": True,
        "macro_accuracy": True,
        "validity_rate": True,
        "fallback_rate": False,
    }
    generation = config["generation_kwargs"]
    assert generation["temperature"] == 0 and generation["do_sample"] is False
    assert generation["max_new_tokens"] > 0 and generation["until"] == ["</answer>"]
    assert "version" in config["metadata"]


def test_yaml_modes_and_prompts_are_the_training_ones(utils):
    modes = {
        name: load_task(name)["lmms_eval_specific_kwargs"]["default"]["prompt_mode"]
        for name in TASK_FILES
    }
    assert modes == {
        "ct_rate_vqa.yaml": "think",
        "ct_rate_vqa_no_think.yaml": "no-think",
        "ct_rate_vqa_plain.yaml": "think",
        GROUNDING_FILE: "think",
    }
    # the folder's copy of the system prompts is model_training/prompts.py's, byte for byte
    assert utils.SYSTEM_PROMPTS == prompts.SYSTEM_PROMPTS
    assert utils.prompt_mode(None) == utils.DEFAULT_MODE == "think"
    with pytest.raises(ValueError, match="prompt_mode 'cot' is not one of think, no-think"):
        utils.prompt_mode({"prompt_mode": "cot"})


@pytest.mark.parametrize("name", TASK_FILES)
def test_replies_are_scored_whole(name):
    # lmms-eval strips <think>...</think> before process_results unless the task says "none"
    assert load_task(name)["reasoning_tags"] == "none"


def test_the_folder_imports_nothing_from_the_project():
    source = (TASK_DIR / "utils.py").read_text()
    for package in ("model_training", "dataset_builder", "hub_cards"):
        assert f"import {package}" not in source and f"from {package}" not in source


@pytest.fixture(scope="module")
def test_rows(built_dataset) -> list[dict]:
    ds = load_dataset(str(built_dataset), "zoom", split="test")
    assert len(ds) >= 4
    return [ds[i] for i in range(len(ds))]


@pytest.mark.parametrize("mode", list(prompts.SYSTEM_PROMPTS))
def test_doc_hooks_on_real_rows(utils, test_rows, mode):
    doc = test_rows[0]
    (image,) = utils.doc_to_visual(doc)
    assert image.mode == "RGB" and image.size == doc["image"].size
    assert utils.doc_to_target(doc) == doc["answer"] in doc["options"]
    kwargs = {"prompt_mode": mode}
    messages = utils.doc_to_messages(doc, kwargs)
    # the conversation our evaluator sends (prompts.prompt_messages), with the image in place
    ours = prompts.prompt_messages(doc, mode)
    assert [m["role"] for m in messages] == [m["role"] for m in ours] == ["system", "user"]
    assert messages[0] == ours[0]
    (image_block, text_block) = messages[1]["content"]
    assert image_block["type"] == "image" and image_block["url"].tobytes() == image.tobytes()
    assert [{"type": "image"}, text_block] == ours[1]["content"]
    assert text_block == {"type": "text", "text": doc["question"]}
    assert all(option in doc["question"] for option in doc["options"])  # it names the options
    # models without chat support: the question, then the instruction
    assert utils.doc_to_text(doc, kwargs) == f"{doc['question']}\n{prompts.SYSTEM_PROMPTS[mode]}"


def test_parsing_agrees_with_the_training_parser(utils, test_rows):
    options = test_rows[0]["options"]
    replies = [
        f"<think>x</think><answer>{options[2]}</answer>",
        f"<answer> {options[1].upper()}. </answer>",
        f"<answer>{options[0]}</answer> then <answer>{options[3]}</answer>",
        "<answer>not a class</answer>",
        f"<answer>It is {options[0]}.</answer>",  # tags that name no class: no fallback
        f"I would say {options[4]}.",
        f"{options[0]} or {options[1]}",
        "",
    ]
    fallback = getattr(answers, "fallback_class", None)  # (the evaluator's, when present)
    for reply in replies:
        expected = parse_reply(reply, options)
        if expected.answer_text is None and fallback is not None:
            expected_answer = fallback(reply, options)
        else:
            expected_answer = expected.answer
        assert utils.parse_answer(reply, options)[0] == expected_answer, reply


def test_scoring_and_aggregation_by_hand(utils, test_rows):
    options = test_rows[0]["options"]
    # four questions: two of gold class A (the first row's), two of another gold class B
    first = test_rows[0]
    other = next(r for r in test_rows if r["answer"] != first["answer"])
    gold_a, gold_b = first["answer"], other["answer"]
    wrong_for_a = next(c for c in options if c not in (gold_a, gold_b))
    docs_and_replies = [
        (first, f"<think>dense opacity</think><answer>{gold_a}</answer>"),  # A right (tag)
        (first, f"<think>...</think><answer>{wrong_for_a}</answer>"),  # A wrong
        (other, f"I think this is {gold_b}."),  # B right (no tags: the one class mentioned)
        (other, "<answer>no idea</answer>"),  # B: an answer that names no class
    ]
    results = [utils.process_results(doc, [reply]) for doc, reply in docs_and_replies]
    records = [r["accuracy"] for r in results]
    assert [r["prediction"] for r in records] == [gold_a, wrong_for_a, gold_b, None]
    assert [r["parsed_by"] for r in records] == ["tags", "tags", "fallback", None]
    assert all(r["macro_accuracy"] == r["accuracy"] for r in results)
    assert [r["validity_rate"] for r in results] == [1.0, 1.0, 0.0, 0.0]
    assert [r["fallback_rate"] for r in results] == [0.0, 0.0, 1.0, 0.0]
    assert records[0]["id"] == first["id"] and records[0]["gold"] == gold_a

    # micro: 2 of 4 right; macro: A 1/2, B 1/2 -> 0.5
    assert utils.aggregate_accuracy(records) == pytest.approx(0.5)
    assert utils.aggregate_macro_accuracy(records) == pytest.approx(0.5)
    # unbalanced: drop the wrong A reply -> micro 2/3, macro (1/1 + 1/2) / 2 = 0.75
    kept = [records[0], records[2], records[3]]
    assert utils.aggregate_accuracy(kept) == pytest.approx(2 / 3)
    assert utils.aggregate_macro_accuracy(kept) == pytest.approx(0.75)
    assert utils.aggregate_accuracy([]) == 0.0 and utils.aggregate_macro_accuracy([]) == 0.0


def test_fallback_and_cut_replies(utils, test_rows):
    doc = test_rows[0]
    gold, options = doc["answer"], doc["options"]
    another = next(c for c in options if c != gold)

    def predicted(reply):
        return utils.process_results(doc, [reply])["accuracy"]["prediction"]

    # cut at the "</answer>" stop string, which lmms-eval removes from the reply
    assert predicted(f"<think>t</think><answer>{gold}") == gold
    assert predicted(f"<think>t</think><answer>{another}</answer><answer>{gold}") == gold
    # no tags: the one class named in the reply; two named: no answer
    assert predicted(f"FINAL:   {gold.upper()}!") == gold
    assert predicted(f"either {gold} or {another}") is None
    # tags that name no class are not rescued by the rest of the reply
    assert predicted(f"<think>{gold}</think><answer>unsure</answer>") is None
    # a class inside a longer word does not count
    assert utils.fallback_class("xemphysema", ["emphysema"]) is None
    assert utils.fallback_class("emphysema.", ["emphysema"]) == "emphysema"
    assert predicted(None) is None and predicted("") is None


# -- grounding ------------------------------------------------------------------------------------

GROUNDING_FUNCTIONS = {
    "doc_to_messages": "grounding_doc_to_messages",
    "doc_to_visual": "doc_to_visual",
    "doc_to_text": "grounding_doc_to_text",
    "doc_to_target": "grounding_doc_to_target",
    "process_results": "grounding_process_results",
}


def _image_processor(min_pixels: int, max_pixels: int) -> Qwen2VLImageProcessorPil:
    """A real Qwen2-VL image processor with these resize bounds (what frame_for reads)."""
    return Qwen2VLImageProcessorPil(size={"shortest_edge": min_pixels, "longest_edge": max_pixels})


def test_the_grounding_yaml_resolves(utils):
    config = load_task(GROUNDING_FILE)
    assert config["task"] == "ct_rate_vqa_grounding"
    assert config["dataset_name"] == GROUNDING_CONFIG and config["test_split"] == "test"
    assert config["output_type"] == "generate_until" and config["reasoning_tags"] == "none"
    assert config["process_results_use_image"] is True  # process_results reads the image size
    for key, name in GROUNDING_FUNCTIONS.items():
        reference = config[key]
        assert isinstance(reference, Function) and reference.module == "utils", key
        assert reference.name == name and callable(getattr(utils, name)), key
    metrics = {m["metric"]: m for m in config["metric_list"]}
    assert {name: m["higher_is_better"] for name, m in metrics.items()} == {
        "iou": True,
        "iou_50": True,
        "point_dice": True,
        "medreasoner_pdice": True,
    }
    assert metrics["iou"]["aggregation"].name == "aggregate_iou"
    assert metrics["iou_50"]["aggregation"] == metrics["point_dice"]["aggregation"] == "mean"
    assert metrics["medreasoner_pdice"]["aggregation"] == "mean"
    generation = config["generation_kwargs"]
    assert generation["temperature"] == 0 and generation["do_sample"] is False
    # no stop string: the reply is whole, as our evaluator generates it
    assert generation["until"] == [] and generation["max_new_tokens"] > 0
    # the YAML says why there is no mask Dice
    assert "No mask Dice here" in (TASK_DIR / GROUNDING_FILE).read_text()


def test_grounding_copies_equal_the_sources(utils):
    assert utils.GROUNDING_SYSTEM_PROMPTS == prompts.GROUNDING_SYSTEM_PROMPTS
    assert set(utils.GROUNDING_SYSTEM_PROMPTS) == set(utils.SYSTEM_PROMPTS)  # one prompt_mode
    assert utils.ANSWER_KEYS == grounding.ANSWER_KEYS
    assert utils.IOU_HIT == grounding_eval.IOU_HIT
    # the default bounds are the 7B recipes' (the processor's pinned 504x504..512x512)
    assert (
        (utils.GROUNDING_MIN_PIXELS, utils.GROUNDING_MAX_PIXELS)
        == (
            PINNED_MIN_PIXELS,
            PINNED_MAX_PIXELS,
        )
        == (254016, 262144)
    )
    processor = _image_processor(PINNED_MIN_PIXELS, PINNED_MAX_PIXELS)
    assert processor.patch_size * processor.merge_size == utils.FACTOR


SIZES = [1, 2, 27, 28, 29, 55, 56, 100, 128, 140, 300, 504, 511, 512, 513, 700, 1000, 2048, 4000]
BOUNDS = [(56 * 56, 28 * 28 * 256), (PINNED_MIN_PIXELS, PINNED_MAX_PIXELS), (3136, 12845056)]


def test_smart_resize_equals_transformers_on_a_grid(utils):
    checked = 0
    for height in SIZES:
        for width in SIZES:
            for low, high in BOUNDS:
                if max(height, width) / min(height, width) > 200:
                    with pytest.raises(ValueError, match="aspect ratio must be smaller than 200"):
                        utils.smart_resize(height, width, 28, low, high)
                    with pytest.raises(ValueError):
                        smart_resize(height, width, 28, low, high)
                    continue
                ours = utils.smart_resize(height, width, 28, low, high)
                assert ours == smart_resize(height, width, 28, low, high), (height, width, low)
                checked += 1
    assert checked > 900


@settings(max_examples=300, deadline=None)
@given(
    height=st.integers(1, 6000),
    width=st.integers(1, 6000),
    low=st.integers(28 * 28, 600 * 600),
    extra=st.integers(0, 2000 * 2000),
)
def test_smart_resize_equals_transformers_at_random(utils, height, width, low, extra):
    high = low + extra
    if max(height, width) / min(height, width) > 200:
        return
    assert utils.smart_resize(height, width, 28, low, high) == smart_resize(
        height, width, 28, low, high
    )


@pytest.mark.parametrize("bounds", BOUNDS)
def test_input_size_is_the_processors(utils, bounds):
    """The task's model-input size is the one frame_for reads from a real processor's grid."""
    processor = _image_processor(*bounds)
    for size in [(128, 128), (512, 512), (300, 700), (701, 299), (57, 1000)]:
        assert utils.input_size(size, *bounds) == grounding.frame_for(processor, size).input_size
    assert utils.input_size((512, 512)) == (504, 504)  # the default: the 7B bounds


HAND_REPLIES = [
    '<think>x</think><answer>{"bbox": [10, 20, 60, 90], "points_1": [30, 40], '
    '"points_2": [35, 50]}</answer>',
    "<answer>{'bbox': [10.5, 20, 60, 90.25], 'points_1': [30, 40], 'points_2': [35, 50]}</answer>",
    '<answer>{"bbox": [1, 2, 3, 4], "points_1": [1, 1], "points_2": [2, 2]}</answer> then '
    '<ANSWER>{"bbox": [5, 6, 70, 80], "points_1": [9, 9], "points_2": [20, 30]}</ANSWER>',
    '<answer>{"bbox": [60, 20, 10, 90], "points_1": [30, 40], "points_2": [35, 50]}</answer>',
    '<answer>{"bbox": [10, 20, 60, 90], "points_1": [30, true], "points_2": [35, 50]}</answer>',
    '<answer>{"bbox": [10, 20, 60, 90], "points_1": [30, 40]}</answer>',
    '<answer>{"bbox": [10, 20, 60, NaN], "points_1": [1, 2], "points_2": [3, 4]}</answer>',
    '<answer>{"bbox": [10, 20, 60, 1e999], "points_1": [1, 2], "points_2": [3, 4]}</answer>',
    '<answer>{"bbox": [10, 20, 60, ' + "9" * 400 + '], "points_1": [1, 2], "points_2": [3, 4]}'
    "</answer>",
    "<answer>[1, 2, 3, 4]</answer>",
    "<answer>not json</answer>",
    "<answer>" + "[" * 5000 + "</answer>",
    '<answer>{"bbox": [10, 20, 60, 90], "points_1": [30, 40], "points_2": [35, 50]}',  # open
    "no tags at all",
    "",
    None,
]


def _expected(reply: object) -> tuple:
    g = grounding.parse_grounding(reply)
    return g.status, g.box, g.points


def test_parsing_hand_written_replies(utils):
    statuses = [utils.parse_grounding(reply)[0] for reply in HAND_REPLIES]
    assert (
        statuses
        == ["ok"] * 5 + ["missing_keys"] + ["ok"] * 3 + ["bad_json"] * 3 + ["no_answer"] * 4
    )
    for reply in HAND_REPLIES:
        assert utils.parse_grounding(reply) == _expected(reply), reply
    # the last block counts; invalid parts are None, not errors
    assert utils.parse_grounding(HAND_REPLIES[2])[1] == [5.0, 6.0, 70.0, 80.0]
    assert utils.parse_grounding(HAND_REPLIES[3])[1] is None  # x0 > x1
    assert utils.parse_grounding(HAND_REPLIES[4])[2] is None  # a boolean coordinate
    assert utils.parse_grounding(HAND_REPLIES[6])[1] is None  # NaN
    assert utils.parse_grounding(HAND_REPLIES[8])[1] is None  # beyond the float range


NUMBERS = st.one_of(
    st.integers(-50, 600),
    st.floats(-50, 600, allow_nan=False),
    st.sampled_from([True, None, "3", float("nan"), float("inf"), 10**400]),
)
VALUES = st.one_of(st.lists(NUMBERS, min_size=0, max_size=5), NUMBERS, st.text(max_size=5))


@st.composite
def replies(draw) -> str:
    """Replies around the answer format: keys present or not, values well formed or not, quotes
    single or double, several blocks, the tags' case, text around them, or raw text."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=60))
    blocks = []
    for _ in range(draw(st.integers(1, 3))):
        keys = draw(st.lists(st.sampled_from(["bbox", "points_1", "points_2", "box"]), unique=True))
        answer = {key: draw(VALUES) for key in keys}
        text = json.dumps(answer)
        if draw(st.booleans()):
            text = text.replace('"', "'")
        if draw(st.integers(0, 5)) == 0:
            text = text[: draw(st.integers(0, len(text)))]  # cut: bad JSON
        tag = draw(st.sampled_from(["answer", "ANSWER", "Answer"]))
        blocks.append(f"<{tag}> {text}\n</{tag}>")
    return draw(st.text(max_size=10)) + "<think>t</think>" + " ".join(blocks)


@settings(max_examples=400, deadline=None)
@given(reply=replies())
def test_parsing_random_replies(utils, reply):
    assert utils.parse_grounding(reply) == _expected(reply)


COORDS = st.floats(-20, 700, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(
    image=st.tuples(st.integers(16, 1200), st.integers(16, 1200)),
    bounds=st.sampled_from(BOUNDS),
    predicted=st.lists(COORDS, min_size=4, max_size=4),
    true=st.lists(st.integers(0, 600), min_size=4, max_size=4),
    points=st.lists(st.tuples(COORDS, COORDS), min_size=2, max_size=2),
    true_points=st.lists(
        st.tuples(st.integers(0, 600), st.integers(0, 600)), min_size=2, max_size=2
    ),
)
def test_conversion_iou_and_point_dice_equal_groundings(
    utils, image, bounds, predicted, true, points, true_points
):
    if max(image) / min(image) > 200:
        return
    model = utils.input_size(image, *bounds)
    frame = grounding.Frame(image, model)
    assert utils.box_to_image(predicted, image, model) == frame.box_to_image(predicted)
    points = [list(p) for p in points]
    true_points = [list(p) for p in true_points]
    assert [utils.point_to_image(p, image, model) for p in points] == [
        frame.point_to_image(p) for p in points
    ]
    assert utils.box_iou(predicted, true) == grounding.box_iou(predicted, true)
    assert utils.box_area(predicted) == grounding.box_area(predicted)
    assert utils.circle_dice(points, true_points) == grounding.circle_dice(points, true_points)
    assert utils.medreasoner_pdice(points, true_points) == grounding.medreasoner_pdice(
        points, true_points
    )
    assert utils.PDICE_UNION_EPS == grounding.PDICE_UNION_EPS


def test_geometry_by_hand(utils):
    assert utils.box_iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert utils.box_iou([0, 0, 10, 10], [10, 0, 20, 10]) == 0.0  # touching, end-exclusive
    assert utils.circle_dice([[0, 0], [10, 0]], [[0, 0], [10, 0]]) == pytest.approx(1.0)
    assert utils.circle_dice([[0, 0], [10, 0]], [[100, 0], [110, 0]]) == 0.0
    # a circle of radius 5 inside one of radius 10: 2 * 25 pi / (25 pi + 100 pi) = 0.4
    assert utils.circle_dice([[0, 0], [10, 0]], [[-5, 0], [15, 0]]) == pytest.approx(0.4)
    assert utils.circle_dice([[3, 3], [3, 3]], [[0, 0], [10, 0]]) == 0.0  # degenerate
    # MedReasoner's pDice, 2 inter / (union + 1e-5): identical r = 5 circles 2 * 25 pi /
    # (25 pi + 1e-5) = 2.0 (less 3e-7); r 5 inside r 10: 2 * 25 pi / (100 pi + 1e-5) = 0.5;
    # disjoint and degenerate: 0
    assert utils.medreasoner_pdice([[0, 0], [10, 0]], [[0, 0], [10, 0]]) == pytest.approx(2.0)
    assert utils.medreasoner_pdice([[0, 0], [10, 0]], [[-5, 0], [15, 0]]) == pytest.approx(0.5)
    assert utils.medreasoner_pdice([[0, 0], [10, 0]], [[100, 0], [110, 0]]) == 0.0
    assert utils.medreasoner_pdice([[3, 3], [3, 3]], [[0, 0], [10, 0]]) == 0.0
    # 128 px slice under the 7B bounds: read at 504 px, so model pixels are 128/504 image pixels
    assert utils.input_size((128, 128)) == (504, 504)
    assert utils.box_to_image([0, 0, 504, 252], (128, 128), (504, 504)) == [0, 0, 128, 64]
    assert utils.point_to_image([503, 0], (128, 128), (504, 504)) == [127, 0]


@pytest.fixture(scope="module")
def grounding_rows(built_dataset) -> list[dict]:
    ds = load_dataset(str(built_dataset), GROUNDING_CONFIG, split="test")
    assert len(ds) >= 4
    return [ds[i] for i in range(len(ds))]


@pytest.mark.parametrize("mode", list(prompts.GROUNDING_SYSTEM_PROMPTS))
def test_grounding_doc_hooks_on_real_rows(utils, grounding_rows, mode):
    doc = grounding_rows[0]
    (image,) = utils.doc_to_visual(doc)
    assert image.mode == "RGB" and image.size == doc["image"].size
    kwargs = {"prompt_mode": mode}
    messages = utils.grounding_doc_to_messages(doc, kwargs)
    ours = prompts.prompt_messages(doc, mode)  # what our evaluator sends for a grounding row
    assert [m["role"] for m in messages] == [m["role"] for m in ours] == ["system", "user"]
    assert messages[0] == ours[0]
    assert messages[0]["content"][0]["text"] == prompts.GROUNDING_SYSTEM_PROMPTS[mode]
    (image_block, text_block) = messages[1]["content"]
    assert image_block["type"] == "image" and image_block["url"].tobytes() == image.tobytes()
    assert [{"type": "image"}, text_block] == ours[1]["content"]
    assert text_block == {"type": "text", "text": doc["query"]}
    assert utils.grounding_doc_to_text(doc, kwargs) == (
        f"{doc['query']}\n{prompts.GROUNDING_SYSTEM_PROMPTS[mode]}"
    )
    target = json.loads(utils.grounding_doc_to_target(doc))
    assert target == {"bbox": list(doc["bbox"]), "points": [list(p) for p in doc["points"]]}
    with pytest.raises(ValueError, match="prompt_mode 'cot' is not one of"):
        utils.grounding_doc_to_messages(doc, {"prompt_mode": "cot"})


def _true_reply(row: dict, frame: grounding.Frame, shift: int = 0) -> str:
    """The row's true answer in the model-input frame (as SFT teaches it), moved by ``shift``."""
    box = [v + shift for v in frame.box_to_model(list(row["bbox"]))]
    points = [[v + shift for v in frame.point_to_model(p)] for p in row["points"]]
    return f"<think>{row['finding']}</think><answer>{grounding.format_answer(box, points)}</answer>"


@pytest.mark.parametrize("bounds", [(PINNED_MIN_PIXELS, PINNED_MAX_PIXELS), BOUNDS[0]])
def test_process_results_equals_score_reply_on_real_rows(utils, grounding_rows, bounds):
    """The hook scores every reply as grounding_eval.score_reply does with the frame of a real
    processor that has the task's bounds (the 7B ones, and the tiny model's via the module
    constants that a user edits for another processor)."""
    frame = grounding.frame_for(_image_processor(*bounds), grounding_rows[0]["image"].size)
    old = (utils.GROUNDING_MIN_PIXELS, utils.GROUNDING_MAX_PIXELS)
    utils.GROUNDING_MIN_PIXELS, utils.GROUNDING_MAX_PIXELS = bounds
    try:
        results = []
        for row in grounding_rows:
            for reply in [_true_reply(row, frame), _true_reply(row, frame, 9), *HAND_REPLIES]:
                out = utils.grounding_process_results(row, [reply])
                ours = grounding_eval.score_reply(reply, row, frame)
                record = out["iou"]
                assert record["id"] == row["id"]
                assert (record["status"], record["box"], record["points"]) == (
                    ours["status"],
                    ours["box"],
                    ours["points"],
                ), reply
                assert record["iou"] == ours["iou"] and out["point_dice"] == ours["point_dice"]
                assert out["medreasoner_pdice"] == ours["medreasoner_pdice"]
                assert out["iou_50"] == float(ours["iou_hit"])
                results.append(out)
    finally:
        utils.GROUNDING_MIN_PIXELS, utils.GROUNDING_MAX_PIXELS = old
    # not vacuous: the true answers score high, the shifted ones lower, the rest 0
    per_row = 2 + len(HAND_REPLIES)
    true = [r["iou"]["iou"] for r in results[::per_row]]
    shifted = [r["iou"]["iou"] for r in results[1::per_row]]
    assert min(true) > 0.5 and all(s < t for s, t in zip(shifted, true, strict=True))
    assert min(r["point_dice"] for r in results[::per_row]) > 0.5


def test_the_frame_matters(utils, grounding_rows):
    """Scoring a tiny-model reply with the 7B bounds (a 504 px frame instead of 140 px) would
    move the box: the bounds decide the score."""
    row = grounding_rows[0]
    tiny = grounding.frame_for(_image_processor(*BOUNDS[0]), row["image"].size)
    assert tiny.input_size == (140, 140) and utils.input_size(row["image"].size) == (504, 504)
    out = utils.grounding_process_results(row, [_true_reply(row, tiny)])  # default: 7B bounds
    assert out["iou"]["iou"] < grounding_eval.score_reply(_true_reply(row, tiny), row, tiny)["iou"]


def test_grounding_aggregation(utils, grounding_rows):
    row = grounding_rows[0]
    frame = grounding.frame_for(_image_processor(PINNED_MIN_PIXELS, PINNED_MAX_PIXELS), (128, 128))
    outs = [
        utils.grounding_process_results(row, [reply])
        for reply in (_true_reply(row, frame), "<answer>no</answer>", _true_reply(row, frame, 30))
    ]
    records = [o["iou"] for o in outs]
    assert records[1]["iou"] == 0.0 and records[1]["status"] == "bad_json"
    mean = sum(r["iou"] for r in records) / 3
    assert utils.aggregate_iou(records) == pytest.approx(mean) and mean > 0
    assert utils.aggregate_iou([]) == 0.0
    # the model args' bounds: the task's pass, others are refused in one line
    same = argparse.Namespace(model_args="pretrained=m,min_pixels=254016,max_pixels=262144")
    assert utils.aggregate_iou(records, args=same) == pytest.approx(mean)
    assert utils.aggregate_iou(records, args=argparse.Namespace(model_args="pretrained=m")) > 0
    assert utils.aggregate_iou(records, args=argparse.Namespace(model_args={})) > 0
    other = argparse.Namespace(model_args="pretrained=m,device=cpu,min_pixels=3136")
    with pytest.raises(ValueError, match=r"min_pixels=3136 .* GROUNDING_MIN_PIXELS") as error:
        utils.aggregate_iou(records, args=other)
    assert "\n" not in str(error.value)
    assert utils.model_arg_bounds(argparse.Namespace(model_args={"max_pixels": "9"})) == {
        "max_pixels": 9
    }
    assert math.isclose(sum(o["iou_50"] for o in outs), 1.0)  # only the true answer hits
