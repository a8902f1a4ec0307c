"""The lmms-eval task folder lmms_eval_tasks/ct_rate_vqa/: its YAMLs resolve, and its hooks score
replies on rows of the built synthetic dataset as worked out by hand."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from datasets import load_dataset

from model_training import answers, prompts
from model_training.answers import parse_reply

from .lmms_task_files import TASK_DIR, TASK_FILES, Function, load_task

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
    assert TASK_FILES == ["ct_rate_vqa.yaml", "ct_rate_vqa_no_think.yaml", "ct_rate_vqa_plain.yaml"]


@pytest.mark.parametrize("name", TASK_FILES)
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
