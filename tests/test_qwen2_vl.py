"""Qwen2-VL (the MedVLM-R1 and Med-R1 baselines' family) without torchvision: the tiny Qwen2-VL
checkpoint, the image-text processor the evaluator loads for it, and an evaluator run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from datasets import load_dataset
from PIL import Image
from transformers import (
    Qwen2_5_VLConfig,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessor,
)

from model_training import prompts
from model_training.evaluation.evaluate import main
from model_training.evaluation.generation import load_chat_processor, load_model
from model_training.processor import (
    Qwen2_5_VLImageTextProcessor,
    Qwen2VLImageTextProcessor,
    has_video_support,
    load_processor,
)
from model_training.tiny_model import (
    BUILD_INFO_FILE,
    MAX_PIXELS,
    MIN_PIXELS,
    PATCH_SIZE,
    QWEN2_5_VL_CHAT_TEMPLATE,
    SPATIAL_MERGE_SIZE,
    build_tiny_model,
)
from model_training.tiny_model import main as tiny_main

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."  # Qwen2-VL's template's default
# (height, width) -> the patch grid (rows, columns) of Qwen's resizing: each side rounded to a
# multiple of 28 (14 px patches, 2x2 merge), then scaled into [MIN_PIXELS, MAX_PIXELS] = [56*56,
# 28*28*256] flooring to multiples of 28 when above it.
IMAGE_GRIDS = {
    (128, 128): (10, 10),  # the synthetic set's slices: 140x140 -> 25 image tokens
    (224, 224): (16, 16),  # 224 is 8x28: 64 image tokens (stack-notes)
    (150, 310): (10, 22),  # 140x308
    # 588x504 = 296,352 px > 200,704: scale by sqrt(600*500/200704) = 1.2226 and floor to
    # multiples of 28: 476x392
    (600, 500): (34, 28),
}
LIMIT = 4  # evaluator rows


@pytest.fixture(scope="module")
def tiny_qwen2_vl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(
        tmp_path_factory.mktemp("tiny2") / "qwen2-vl-tiny", architecture="qwen2_vl"
    )


@pytest.fixture(scope="module")
def loaded(tiny_qwen2_vl: Path) -> tuple:
    return load_model(str(tiny_qwen2_vl))


def noise_image(height: int, width: int, seed: int = 0) -> Image.Image:
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (height, width, 3), generator=generator, dtype=torch.uint8)
    return Image.fromarray(pixels.numpy(), mode="RGB")


def test_the_tiny_qwen2_vl_is_a_qwen2_vl_checkpoint(tiny_qwen2_vl: Path, loaded: tuple) -> None:
    model, processor = loaded
    config = json.loads((tiny_qwen2_vl / "config.json").read_text())
    assert config["model_type"] == "qwen2_vl"
    assert config["architectures"] == ["Qwen2VLForConditionalGeneration"]
    assert isinstance(model, Qwen2VLForConditionalGeneration)
    assert isinstance(model.config, Qwen2VLConfig) and not isinstance(
        model.config, Qwen2_5_VLConfig
    )
    vision = config["vision_config"]
    # Qwen2-VL's ViT: no window attention, its width is embed_dim, hidden_size feeds the LLM
    assert "window_size" not in vision and "fullatt_block_indexes" not in vision
    assert vision["hidden_size"] == config["text_config"]["hidden_size"]
    assert vision["embed_dim"] != vision["hidden_size"]
    assert json.loads((tiny_qwen2_vl / BUILD_INFO_FILE).read_text())["architecture"] == "qwen2_vl"
    if not has_video_support():
        assert type(processor) is Qwen2VLImageTextProcessor
    assert processor.chat_template == QWEN2_5_VL_CHAT_TEMPLATE


def test_the_same_seed_gives_the_same_weights(tiny_qwen2_vl: Path, tmp_path: Path) -> None:
    again = build_tiny_model(tmp_path / "again", architecture="qwen2_vl")
    assert (again / "model.safetensors").read_bytes() == (
        tiny_qwen2_vl / "model.safetensors"
    ).read_bytes()


@pytest.mark.parametrize(("size", "grid_hw"), IMAGE_GRIDS.items())
def test_image_tokens_match_the_stock_image_processor(
    loaded: tuple, size: tuple[int, int], grid_hw: tuple[int, int]
) -> None:
    """The grid and pixels are transformers' Qwen2VLImageProcessor's, the prompt holds one
    image token per merged 2x2 patch (as the stock Qwen2VLProcessor expands it), and the model
    accepts them (it refuses a token count that differs from its image features)."""
    model, processor = loaded
    image = noise_image(*size)
    stock = Qwen2VLImageProcessor(
        min_pixels=MIN_PIXELS,
        max_pixels=MAX_PIXELS,
        patch_size=PATCH_SIZE,
        merge_size=SPATIAL_MERGE_SIZE,
    )(images=[image], return_tensors="pt")
    text = processor.apply_chat_template(
        prompts.prompt_messages({"question": "Which class?"}, "think"), add_generation_prompt=True
    )
    inputs = processor(images=[image], text=[text], return_tensors="pt")

    grid = [1, *grid_hw]
    assert inputs["image_grid_thw"].tolist() == stock["image_grid_thw"].tolist() == [grid]
    assert torch.equal(inputs["pixel_values"], stock["pixel_values"])
    expected_tokens = grid[1] * grid[2] // SPATIAL_MERGE_SIZE**2
    assert (inputs["input_ids"] == processor.image_token_id).sum().item() == expected_tokens
    assert text.count(processor.image_token) == 1  # one placeholder before expansion
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape[:2] == inputs["input_ids"].shape


def test_a_hub_laid_out_qwen2_vl_repo_loads_without_torchvision(
    tiny_qwen2_vl: Path, tmp_path: Path
) -> None:
    """The MedVLM-R1 layout: chat_template.json, a preprocessor_config.json and a
    tokenizer_config.json that name the stock Qwen2VLProcessor."""
    repo = tmp_path / "medvlm-r1-like"
    shutil.copytree(tiny_qwen2_vl, repo)
    template = (repo / "chat_template.jinja").read_text()
    (repo / "chat_template.jinja").unlink()
    (repo / "chat_template.json").write_text(json.dumps({"chat_template": template}))
    for name in ("preprocessor_config.json", "tokenizer_config.json"):
        data = json.loads((repo / name).read_text())
        data["processor_class"] = "Qwen2VLProcessor"
        (repo / name).write_text(json.dumps(data))

    processor = load_chat_processor(str(repo))
    if not has_video_support():
        assert type(processor) is Qwen2VLImageTextProcessor
    assert processor.chat_template == QWEN2_5_VL_CHAT_TEMPLATE
    # the evaluator's system prompt replaces the template's default one
    for mode in prompts.MODES:
        text = processor.apply_chat_template(
            prompts.prompt_messages({"question": "Which class?"}, mode),
            add_generation_prompt=True,
        )
        assert text.startswith(f"<|im_start|>system\n{prompts.system_prompt(mode)}<|im_end|>")
        assert DEFAULT_SYSTEM_PROMPT not in text
        assert text.endswith("Which class?<|im_end|>\n<|im_start|>assistant\n")
    # a conversation without a system turn gets Qwen2-VL's default
    bare = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], add_generation_prompt=True
    )
    assert bare.startswith(f"<|im_start|>system\n{DEFAULT_SYSTEM_PROMPT}<|im_end|>")


def test_load_processor_picks_the_class_of_the_family(tiny_qwen2_vl: Path, tmp_path: Path) -> None:
    if not has_video_support():
        assert type(load_processor(tiny_qwen2_vl, model_type="qwen2_vl")) is (
            Qwen2VLImageTextProcessor
        )
        tiny25 = build_tiny_model(tmp_path / "tiny25")
        assert type(load_chat_processor(str(tiny25))) is Qwen2_5_VLImageTextProcessor
    with pytest.raises(ValueError, match="qwen2_5_vl and qwen2_vl"):
        load_processor(tiny_qwen2_vl, model_type="llava")
    with pytest.raises(ValueError, match="images and text only.*Qwen2VLProcessor"):
        load_processor(tiny_qwen2_vl, model_type="qwen2_vl")(
            text=["<|vision_start|><|video_pad|><|vision_end|>"], videos=[[noise_image(56, 56)]]
        )


def test_the_evaluator_runs_a_qwen2_vl(
    tiny_qwen2_vl: Path, built_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "eval"
    argv = ["--model", str(tiny_qwen2_vl), "--dataset", str(built_dataset), "--output-dir"]
    argv += [str(out), "--limit", str(LIMIT), "--batch-size", "2", "--max-new-tokens", "6"]
    assert main([*argv, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "think: accuracy" in printed and "no-think: accuracy" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["model"] == tiny_qwen2_vl.name  # a local folder by its name only
    assert set(results["modes"]) == set(prompts.MODES)
    for metrics in results["modes"].values():
        assert metrics["n"] == LIMIT and 0.0 <= metrics["accuracy_micro"] <= 1.0
    predictions = load_dataset(
        "parquet", data_files=str(out / "predictions.parquet"), split="train"
    )
    assert len(predictions) == LIMIT * len(prompts.MODES)
    assert sorted(set(predictions["mode"])) == sorted(prompts.MODES)


def test_the_tiny_model_command_builds_a_qwen2_vl(tmp_path: Path, capsys) -> None:
    assert tiny_main(["--out", str(tmp_path / "cli"), "--architecture", "qwen2_vl"]) == 0
    assert json.loads((tmp_path / "cli" / "config.json").read_text())["model_type"] == "qwen2_vl"
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        tiny_main(["--out", str(tmp_path / "bad"), "--architecture", "llava"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--architecture" in err and "qwen2_vl" in err
    assert not (tmp_path / "bad").exists()
