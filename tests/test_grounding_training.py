"""Training on grounding rows (issue 12): SFT targets and GRPO rows in the model-input frame, a
processor round trip on a built row, a short real SFT + GRPO + evaluation run on the tiny model,
and the task options refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
import yaml

from common.names import GROUNDING_CONFIG, GROUNDING_TASK
from model_training import grpo, sft
from model_training import run as run_module
from model_training.configs import ConfigError, CTRateVQAArguments
from model_training.data import (
    DatasetError,
    grpo_dataset,
    image_size,
    load_vqa,
    sft_dataset,
    to_grpo,
    to_sft,
)
from model_training.grounding import format_answer, frame_for, parse_grounding
from model_training.grounding_rewards import GROUNDING_SOFT_REWARDS
from model_training.processor import load_processor
from model_training.prompts import grounding_system_prompt
from model_training.rewards import get_rewards
from model_training.run_recipe import RecipeError, parse_run
from model_training.tiny_model import build_tiny_model

from .test_run import TINY_RUN, write_recipe

CPU = ["--use_cpu", "true", "--bf16", "false"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def processor(tiny):
    return load_processor(tiny)


@pytest.fixture(scope="module")
def rows(built_dataset) -> datasets.Dataset:
    return load_vqa(str(built_dataset), GROUNDING_CONFIG, "train", 12, task=GROUNDING_TASK)


def _decoded(row: dict):
    from io import BytesIO

    from PIL import Image

    return Image.open(BytesIO(row["image"]["bytes"]))


def test_sft_target_is_the_answer_in_the_model_input_frame(rows, processor):
    frame = frame_for(processor, _decoded(rows[0]).size)
    assert frame.input_size != frame.image_size  # 128 px -> 140 px: conversion is needed
    for target in ("finding", "answer"):
        out = to_sft(rows, "think", target, processor)
        assert len(out) == len(rows) and set(out.column_names) == {"images", "messages"}
        for row, conversation in zip(rows, out, strict=True):
            box = frame.box_to_model(list(row["bbox"]))
            points = [frame.point_to_model(p) for p in row["points"]]
            answer = f"<answer>{format_answer(box, points)}</answer>"
            think = f"<think>{row['finding'].strip()}</think>" if target == "finding" else ""
            system, user, assistant = conversation["messages"]
            assert assistant["content"][0]["text"] == think + answer
            assert system["content"][0]["text"] == grounding_system_prompt("think")
            assert user["content"][1]["text"] == row["query"]
            parsed = parse_grounding(think + answer)  # the evaluator reads it back
            assert parsed.status == "ok" and parsed.box == [float(v) for v in box]


def test_grpo_rows_carry_the_task_and_model_frame_targets(rows, processor):
    out = to_grpo(rows, "no-think", processor)
    frame = frame_for(processor, _decoded(rows[0]).size)
    assert {"prompt", "images", "task", "target_bbox", "target_points"} <= set(out.column_names)
    for row, prompt in zip(rows, out, strict=True):
        assert prompt["task"] == GROUNDING_TASK and prompt["answer"] == row["answer"]
        assert prompt["target_bbox"] == [float(v) for v in frame.box_to_model(row["bbox"])]
        assert prompt["target_points"] == [frame.point_to_model(p) for p in row["points"]]
        assert prompt["prompt"][0]["content"][0]["text"] == grounding_system_prompt("no-think")
    # the true answer, written as SFT teaches it, gets the full format and IoU rewards
    replies = to_sft(rows, "think", "finding", processor)
    completions = [[{"role": "assistant", "content": m["messages"][-1]["content"][0]["text"]}]
                   for m in replies]  # fmt: skip
    kwargs = {k: out[k] for k in ("task", "target_bbox", "target_points", "answer", "options")}
    think, seg, iou, dice = (f(completions, **kwargs) for f in get_rewards(GROUNDING_SOFT_REWARDS))
    assert think == seg == iou == [1.0] * len(rows)
    assert all(0.9 <= d <= 1.0 for d in dice)  # 1.0, or 0.925 for points <= 10 px apart
    classification = get_rewards(["format", "correctness"])
    assert all(v is None for f in classification for v in f(completions, **kwargs))


def test_processor_round_trip_on_a_built_row(rows, processor):
    """The frame from the processor's own grid: a built row's box and points go to the model
    input and back; the image's tokens match the grid."""
    row = rows[0]
    image = _decoded(row).convert("RGB")
    assert image_size(row["image"]) == image.size
    batch = processor.image_processor(images=[image], return_tensors="np")
    t, h, w = (int(v) for v in batch["image_grid_thw"][0])
    patch = processor.image_processor.patch_size
    frame = frame_for(processor, image.size)
    assert frame.input_size == (w * patch, h * patch)
    box, points = list(row["bbox"]), [list(p) for p in row["points"]]
    back = frame.box_to_image(frame.box_to_model(box))
    assert all(abs(a - b) <= 1 / min(frame.scale) for a, b in zip(back, box, strict=True))
    assert [frame.point_to_image(frame.point_to_model(p)) for p in points] == points
    mask = _decoded({"image": row["mask"]})
    for x, y in points:  # the points lie in the lesion
        assert mask.getpixel((x, y)) == 255
    conversation = to_sft(rows.select([0]), "think", "finding", processor)[0]
    text = processor.apply_chat_template(conversation["messages"], tokenize=False)
    encoded = processor(text=[text], images=[image], return_tensors="pt")
    image_token = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    merge = processor.image_processor.merge_size
    assert int((encoded["input_ids"] == image_token).sum()) == t * h * w // merge**2


def test_the_grounding_config_is_required(tmp_path, built_dataset, processor):
    args = CTRateVQAArguments(
        dataset_name=str(built_dataset), task=GROUNDING_TASK, grounding_config="zoom"
    )
    with pytest.raises(DatasetError, match=r"config 'zoom'.*no column\(s\) \['query'") as error:
        sft_dataset(args, processor, 0)
    assert "\n" not in str(error.value) and "dataset_builder build" in str(error.value)
    grounding = CTRateVQAArguments(dataset_name=str(built_dataset), task=GROUNDING_TASK)
    rows = grpo_dataset(grounding, processor, 0)
    assert set(rows["task"]) == {GROUNDING_TASK}


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"task": "segmentation"}, "task='segmentation' is not one of"),
        ({"grounding_fraction": 0.5}, "grounding_fraction mixes the tasks"),
        ({"task": "multitask", "grounding_fraction": 1.0}, "strictly between 0 and 1"),
        ({"task": "multitask", "grounding_fraction": 0.0}, "strictly between 0 and 1"),
        ({"grounding_config": "g2"}, "grounding_config='g2' is read by task"),
        ({"task": "grounding", "dataset_config": "plain"}, "does not read"),
        ({"task": "multitask", "dataset_config": "grounding"}, "both are 'grounding'"),
        ({"grounding_config": ""}, "grounding_config is required"),
    ],
)
def test_task_options_out_of_place_are_refused(fields, match):
    with pytest.raises(ConfigError, match=match) as error:
        CTRateVQAArguments(**fields)
    assert "\n" not in str(error.value)


def test_stage_scripts_refuse_rewards_of_the_wrong_task(tmp_path, built_dataset, capsys):
    base = ["--model_name_or_path", str(tmp_path / "no-model"), "--output_dir",
            str(tmp_path / "out"), "--dataset_name", str(built_dataset), *CPU]  # fmt: skip
    runs = [
        (
            ["--task", "grounding"],
            "no reward in reward_funcs ['format', 'validity', 'correctness']",
        ),
        (["--reward_funcs", "format", "bbox_iou"], "reward_funcs ['bbox_iou'] score grounding"),
        (["--task", "multitask", "--reward_funcs", "bbox_iou"], "trains on classification rows"),
    ]
    for flags, expected in runs:
        assert grpo.main([*base, *flags]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and expected in err and err.count("\n") == 1, err
    assert sft.main([*base, "--task", "grounding", "--grounding_fraction", "0.3"]) == 2
    assert "grounding_fraction mixes" in capsys.readouterr().err


GROUNDING_RUN = {
    **TINY_RUN,
    "task": "grounding",
    # no judge (classification's); no SAM: offline (the evaluator's default is MedSAM)
    "eval": {
        **{k: v for k, v in TINY_RUN["eval"].items() if k != "judge"},
        "mode": "think",
        "max_new_tokens": 24,
        "sam_model": "none",
    },  # fmt: skip
    "grpo": {
        **TINY_RUN["grpo"],
        "max_completion_length": 24,
        "reward_funcs": list(GROUNDING_SOFT_REWARDS),
        "beta": 0.01,
    },
}


@pytest.fixture
def grounding_recipe(tmp_path, built_dataset) -> Path:
    return write_recipe(
        tmp_path / "grounding.yaml",
        {
            "output_dir": str(tmp_path / "run"),
            "model_name_or_path": str(tmp_path / "tiny"),
            "dataset_name": str(built_dataset),
            **GROUNDING_RUN,
        },
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--eval.judge", "keyword"], r"\(grounding evaluation\): --judge applies to classif"),
        (["--sft.task", "classification"], "the stages train different tasks"),
        (["--eval.config", "zoom"], r"sets \['config'\], which the run fills in"),
        (["--eval_sam_model", "none"], "eval_sam_model is now the eval section's sam_model"),
    ],
)
def test_run_options_that_grounding_does_not_use_are_refused(grounding_recipe, argv, message):
    with pytest.raises(RecipeError, match=message):
        parse_run(["--config", str(grounding_recipe), *argv])


def test_eval_section_reads_none_as_the_evaluator_does(grounding_recipe):
    """An empty or 'none' SAM is no SAM, as the evaluator's own --sam-model reads it; the
    grounding evaluation gets the rows the run trains on for its mean-box baseline."""
    for value in ("", "none", "None"):
        plan = parse_run(["--config", str(grounding_recipe), "--eval.sam_model", value])
        assert plan.evaluations["grounding"].sam_model is None
    options = plan.evaluations["grounding"]
    assert (options.baseline_split, options.baseline_limit) == ("train", 16)
    assert (options.config, options.mode, options.limit) == (GROUNDING_CONFIG, "think", 4)


def test_sam_model_on_a_classification_run_is_refused(tmp_path, built_dataset):
    recipe = write_recipe(
        tmp_path / "c.yaml",
        {"output_dir": str(tmp_path / "run"), "dataset_name": str(built_dataset), **TINY_RUN},
    )
    with pytest.raises(RecipeError, match="--sam-model applies to grounding configs"):
        parse_run(["--config", str(recipe), "--eval.sam_model", "medsam"])
    assert run_module.main(["--config", str(recipe), "--eval.sam_model", "medsam"]) == 2


def test_short_grounding_run_reports_iou_point_dice_and_the_baseline(
    grounding_recipe, tmp_path, capsys
):
    """SFT 2 steps, GRPO 2 steps with the four soft rewards, evaluations with --config
    grounding: the summary holds IoU and point-Dice per model and the mean-box baseline."""
    argv = ["--config", str(grounding_recipe), "--eval_image_ablations", "blank"]
    assert run_module.main(argv) == 0
    printed = capsys.readouterr().out
    assert "mean-box baseline" in printed and "grounding (think)" in printed
    assert "grounding (think) box IoU: real" in printed and "blank images" in printed
    run_dir = tmp_path / "run"
    state = json.loads((run_dir / "run_state.json").read_text())
    assert list(state) == ["sft", "grpo", "eval/base", "eval/sft", "eval/grpo",
                           "eval/grpo-blank", "final"]  # fmt: skip
    command = state["eval/grpo"]["command"]
    assert command[command.index("--config") + 1] == GROUNDING_CONFIG
    assert command[command.index("--sam-model") + 1] == "none" and "--judge" not in command
    summary = json.loads((run_dir / "run_summary.json").read_text())
    evaluations = summary["grounding_evaluations"]
    assert list(evaluations) == ["before SFT", "after SFT", "after GRPO"]
    for result in evaluations.values():
        metrics = result["think"]
        assert metrics["n"] == 4 and 0 <= metrics["iou_mean"] <= 1
        assert "mask_dice_mean" not in metrics  # no SAM
    baseline = summary["grounding_baseline"]
    assert baseline["n"] == 4 and baseline["train_rows"] == 16
    # issue 21: the final model with blank images, beside its real figures and the baseline
    (record,) = summary["image_reliance"]["records"]
    real, iou = evaluations["after GRPO"]["think"]["iou_mean"], record["modes"]["think"]["iou_mean"]
    assert iou["real"] == real and iou["reliance"] == pytest.approx(real - iou["ablated"])
    assert record["without_image"]["iou_mean"] == baseline["iou_mean"]
    assert 0 <= baseline["iou_mean"] < 1 and 0 <= baseline["point_dice_mean"] < 1
    x0, y0, x1, y1 = baseline["box_fraction"]  # the mean training box, a real box in the image
    assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
    assert set(summary["grpo_reward"]["components"]) == set(GROUNDING_SOFT_REWARDS)
    logs = json.loads((run_dir / "sft" / "training_summary.json").read_text())
    assert logs["task"] == GROUNDING_TASK and logs["prompts"]["task"] == GROUNDING_TASK
    # the GRPO stage trained on grounding rows: its recipe says so, its rewards were logged
    grpo_recipe = yaml.safe_load((run_dir / "recipes" / "grpo.yaml").read_text())
    assert grpo_recipe["task"] == GROUNDING_TASK
    history = json.loads((run_dir / "grpo" / "training_summary.json").read_text())["log_history"]
    assert any("rewards/bbox_iou_reward/mean" in entry for entry in history)
    readme = (run_dir / "final" / "README.md").read_text()
    assert "Grounding" in readme and (run_dir / "final" / "model.safetensors").is_file()
    assert "| grounding | think | box IoU |" in readme  # the card's image-reliance table
    results = json.loads((run_dir / "final" / "results.json").read_text())
    assert results["task"] == GROUNDING_TASK and results["model"] == "grpo"  # a name, never a path


def test_the_evaluations_follow_the_stages_allow_incomplete_build(grounding_recipe):
    """A run told to train on an incomplete build evaluates on it too (the evaluator would
    refuse it otherwise); the eval section cannot set it apart from the stages."""
    plan = parse_run(["--config", str(grounding_recipe)])
    assert plan.evaluations["grounding"].allow_incomplete_build is False
    plan = parse_run(["--config", str(grounding_recipe), "--allow_incomplete_build", "true"])
    assert all(stage.args.allow_incomplete_build for stage in plan.stages.values())
    assert plan.evaluations["grounding"].allow_incomplete_build is True
    with pytest.raises(RecipeError, match=r"sets \['allow_incomplete_build'\], which the run"):
        parse_run(["--config", str(grounding_recipe), "--eval.allow_incomplete_build", "true"])
