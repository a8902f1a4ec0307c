"""The tiny Qwen2.5-VL checkpoint (model_training.tiny_model) and the processor loader
(model_training.processor): built offline, loaded like a Hub checkpoint, run end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import AutoProcessor, AutoTokenizer, Qwen2_5_VLForConditionalGeneration
from transformers.processing_utils import ProcessorMixin

from model_training import processor as processor_module
from model_training.processor import Qwen2_5_VLImageTextProcessor, load_processor
from model_training.tiny_model import (
    BUILD_INFO_FILE,
    CLASS_NAMES,
    LM_HEAD_SCALE,
    QWEN2_5_VL_CHAT_TEMPLATE,
    build_tiny_model,
    main,
)

IMAGE_SIZE = 224  # a 224x224 image: 16x16 patches of 14 px, merged 2x2 -> 64 image tokens
IMAGE_TOKENS = 64
QUESTION = "Which type of abnormality does it show? Choose one of: emphysema; ground-glass opacity."
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
MAX_FOLDER_BYTES = 3 * 1024 * 1024  # "a few MB at most"
HUB_FILES = {
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    BUILD_INFO_FILE,
}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "qwen2.5-vl-tiny", seed=0)


@pytest.fixture(scope="module")
def model(tiny_dir: Path) -> Qwen2_5_VLForConditionalGeneration:
    return Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_dir).eval()


@pytest.fixture(scope="module")
def processor(tiny_dir: Path) -> ProcessorMixin:
    return load_processor(tiny_dir)


def image_conversation(answer: str | None = None) -> list[dict]:
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}
    ]
    if answer is not None:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return messages


def ct_like_image(size: int = IMAGE_SIZE) -> Image.Image:
    gradient = torch.linspace(0, 255, size).to(torch.uint8)
    pixels = torch.stack([gradient.expand(size, size)] * 3, dim=-1).numpy()
    return Image.fromarray(pixels, mode="RGB")


def test_folder_is_laid_out_like_a_hub_checkpoint(tiny_dir: Path) -> None:
    files = {p.name for p in tiny_dir.iterdir()}
    assert files == HUB_FILES
    assert sum(p.stat().st_size for p in tiny_dir.iterdir()) < MAX_FOLDER_BYTES
    # no file names a processor class: AutoProcessor chooses by model type (stock class with
    # torchvision, the registered image+text class without)
    for name in ("preprocessor_config.json", "tokenizer_config.json"):
        assert "processor_class" not in json.loads((tiny_dir / name).read_text())
    info = json.loads((tiny_dir / BUILD_INFO_FILE).read_text())
    assert info["seed"] == 0 and info["lm_head_scale"] == LM_HEAD_SCALE
    assert 100_000 < info["parameters"] < 1_000_000


def test_folder_also_serves_the_stock_processor(tiny_dir: Path) -> None:
    """Where torchvision is installed, AutoProcessor picks the stock Qwen2_5_VLProcessor by
    model type, and its video processor reads preprocessor_config.json (as in the Hub repo)."""
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES
    from transformers.video_processing_utils import BaseVideoProcessor

    assert PROCESSOR_MAPPING_NAMES["qwen2_5_vl"] == "Qwen2_5_VLProcessor"
    video_config, _ = BaseVideoProcessor.get_video_processor_dict(tiny_dir)
    assert (
        video_config["image_processor_type"] == "Qwen2VLImageProcessor"
    )  # -> Qwen2VLVideoProcessor
    assert video_config["patch_size"] == 14 and video_config["merge_size"] == 2


def test_config_is_tiny_and_token_ids_match_the_tokenizer(
    tiny_dir: Path, model: Qwen2_5_VLForConditionalGeneration
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    config, text, vision = model.config, model.config.text_config, model.config.vision_config
    assert (text.hidden_size, text.num_hidden_layers) == (64, 2)
    assert (text.num_attention_heads, text.num_key_value_heads) == (4, 2)
    head_dim = text.hidden_size // text.num_attention_heads
    assert sum(text.rope_parameters["mrope_section"]) == head_dim // 2
    assert (vision.depth, vision.patch_size, vision.spatial_merge_size) == (2, 14, 2)
    assert vision.out_hidden_size == text.hidden_size
    assert text.vocab_size == len(tokenizer)
    ids = tokenizer.convert_tokens_to_ids
    assert config.image_token_id == ids("<|image_pad|>")
    assert config.video_token_id == ids("<|video_pad|>")
    assert config.vision_start_token_id == ids("<|vision_start|>")
    assert config.vision_end_token_id == ids("<|vision_end|>")
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert model.generation_config.eos_token_id == [ids("<|im_end|>"), ids("<|endoftext|>")]
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id
    assert not config.tie_word_embeddings
    # lm_head scaled at build time (std 0.02 x LM_HEAD_SCALE), the embeddings not
    lm_std = model.lm_head.weight.std().item()
    assert lm_std == pytest.approx(0.02 * LM_HEAD_SCALE, rel=0.1)
    assert model.get_input_embeddings().weight.std().item() == pytest.approx(0.02, rel=0.1)


def test_tokenizer_carries_qwen_special_tokens_and_task_words(tiny_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    for token in QWEN_SPECIAL_TOKENS:
        assert len(tokenizer(token)["input_ids"]) == 1, token
    text = "<think>hazy area</think><answer>" + "; ".join(CLASS_NAMES) + "</answer>"
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert tokenizer.unk_token_id is None or tokenizer.unk_token_id not in ids
    # trained on the task's words: far fewer tokens than bytes
    assert len(ids) < len(text.encode()) / 2


def test_chat_template_is_qwen2_5_vl_and_trl_recognises_it(processor: ProcessorMixin) -> None:
    from trl.chat_template_utils import (
        get_training_chat_template,
        is_chat_template_stop_token_trained,
        qwen2_5_vl_chat_template,
    )

    assert processor.chat_template == QWEN2_5_VL_CHAT_TEMPLATE == qwen2_5_vl_chat_template
    assert processor.tokenizer.chat_template == qwen2_5_vl_chat_template
    training_template = get_training_chat_template(processor)  # None = not recognised
    assert training_template is not None and "{% generation %}" in training_template
    assert is_chat_template_stop_token_trained(processor, chat_template=training_template)


def test_processor_and_generate(
    tiny_dir: Path, model: Qwen2_5_VLForConditionalGeneration, processor: ProcessorMixin
) -> None:
    auto = AutoProcessor.from_pretrained(tiny_dir)
    assert isinstance(auto, ProcessorMixin) and auto.image_processor is not None
    assert type(auto) is type(processor)

    text = processor.apply_chat_template(image_conversation(), add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
    assert "<|vision_start|><|image_pad|><|vision_end|>" + QUESTION in text
    assert text.endswith("<|im_start|>assistant\n")

    inputs = processor(images=[ct_like_image()], text=[text], return_tensors="pt")
    assert inputs["image_grid_thw"].tolist() == [[1, 16, 16]]
    assert (inputs["input_ids"] == model.config.image_token_id).sum().item() == IMAGE_TOKENS
    assert inputs["pixel_values"].shape == (16 * 16, 3 * 2 * 14 * 14)

    with torch.no_grad():
        first = model.generate(**inputs, max_new_tokens=4, do_sample=False)
        second = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    prompt_length = inputs["input_ids"].shape[1]
    assert first.shape[1] > prompt_length
    assert torch.equal(first, second)
    assert isinstance(processor.batch_decode(first[:, prompt_length:])[0], str)


def test_same_seed_same_bytes(tiny_dir: Path, tmp_path: Path) -> None:
    again = build_tiny_model(tmp_path / "again", seed=0)
    for name in sorted(HUB_FILES - {BUILD_INFO_FILE}):
        assert (again / name).read_bytes() == (tiny_dir / name).read_bytes(), name
    other = build_tiny_model(tmp_path / "other", seed=1)
    assert (other / "model.safetensors").read_bytes() != (
        tiny_dir / "model.safetensors"
    ).read_bytes()
    assert (other / "tokenizer.json").read_bytes() == (tiny_dir / "tokenizer.json").read_bytes()


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--out", str(tmp_path / "cli"), "--seed", "3"])
    assert capsys.readouterr().out.strip() == str(tmp_path / "cli")
    assert json.loads((tmp_path / "cli" / BUILD_INFO_FILE).read_text())["seed"] == 3


def test_load_processor_reads_the_hub_layouts(tiny_dir: Path, tmp_path: Path) -> None:
    """The layout of Qwen/Qwen2.5-VL-7B-Instruct (preprocessor_config.json naming the stock
    processor, legacy chat_template.json) and the transformers 5 layout (processor_config.json
    with nested sub-processor configs)."""
    image_config = json.loads((tiny_dir / "preprocessor_config.json").read_text())
    template = (tiny_dir / "chat_template.jinja").read_text()

    hub = tmp_path / "hub-layout"
    hub.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_dir / name, hub / name)
    legacy = {k: v for k, v in image_config.items() if k != "size"}
    legacy |= {"min_pixels": 3136, "max_pixels": 200704, "processor_class": "Qwen2_5_VLProcessor"}
    (hub / "preprocessor_config.json").write_text(json.dumps(legacy))
    (hub / "chat_template.json").write_text(json.dumps({"chat_template": template}))

    nested = tmp_path / "v5-layout"
    nested.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(tiny_dir / name, nested / name)
    video_config = image_config | {"video_processor_type": "Qwen2VLVideoProcessor"}
    (nested / "processor_config.json").write_text(
        json.dumps(
            {
                "image_processor": image_config,
                "video_processor": video_config,
                "processor_class": "Qwen2_5_VLProcessor",
            }
        )
    )

    for folder in (hub, nested):
        loaded = load_processor(folder)
        assert loaded.chat_template == template
        text = loaded.apply_chat_template(image_conversation(), add_generation_prompt=True)
        inputs = loaded(images=[ct_like_image()], text=[text], return_tensors="pt")
        image_tokens = inputs["input_ids"] == loaded.tokenizer.convert_tokens_to_ids(
            "<|image_pad|>"
        )
        assert image_tokens.sum().item() == IMAGE_TOKENS, folder.name


def test_processor_save_round_trip(processor: ProcessorMixin, tmp_path: Path) -> None:
    processor.save_pretrained(tmp_path / "saved")
    saved = {p.name for p in (tmp_path / "saved").iterdir()}
    assert {"preprocessor_config.json", "tokenizer.json", "chat_template.jinja"} <= saved
    assert "processor_class" not in (tmp_path / "saved" / "tokenizer_config.json").read_text()
    reloaded = load_processor(tmp_path / "saved")
    assert reloaded.chat_template == processor.chat_template
    assert reloaded.image_processor.to_dict() == processor.image_processor.to_dict()


def test_load_processor_refuses_a_bare_tokenizer(tiny_dir: Path, tmp_path: Path) -> None:
    only_tokenizer = tmp_path / "only-tokenizer"
    AutoTokenizer.from_pretrained(tiny_dir).save_pretrained(only_tokenizer)
    with pytest.raises(ValueError, match="lacks an image processor config") as error:
        load_processor(only_tokenizer)
    assert str(only_tokenizer) in str(error.value)


def test_load_processor_refuses_what_autoprocessor_returns_as_a_tokenizer(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With torchvision, AutoProcessor silently returns a bare tokenizer when the saved
    processor class is unknown: load_processor must refuse it."""
    folder = tmp_path / "unknown-processor-class"
    AutoTokenizer.from_pretrained(tiny_dir).save_pretrained(folder)
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    tokenizer_config["processor_class"] = "SomeUnknownProcessor"
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    monkeypatch.setattr(processor_module, "has_video_support", lambda: True)
    with pytest.raises(ValueError, match="not a processor") as error:
        load_processor(folder)
    assert str(folder) in str(error.value)


def test_load_processor_refuses_remote_code_and_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="remote code"):
        load_processor(tmp_path, trust_remote_code=True)
    with pytest.raises(FileNotFoundError, match="no such checkpoint folder"):
        load_processor(tmp_path / "missing")


@pytest.mark.skipif(processor_module.has_video_support(), reason="torchvision installed")
def test_image_text_processor_refuses_videos(processor: ProcessorMixin) -> None:
    assert isinstance(processor, Qwen2_5_VLImageTextProcessor)
    with pytest.raises(ValueError, match="images and text only"):
        processor(text=["<|vision_start|><|video_pad|><|vision_end|>"], videos=[[ct_like_image()]])


def test_out_holding_files_of_another_is_refused(
    tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """issue 20: --out DIR replaced a user's config.json. Only a folder that is new, empty or
    holds exactly a tiny model built there (its build record lists each file's SHA-256) is
    written; anything else is refused, one line, nothing written."""
    user = tmp_path / "user"
    user.mkdir()
    (user / "config.json").write_text('{"mine": 1}')
    assert main(["--out", str(user)]) == 2
    assert "holds no tiny model built by this command" in capsys.readouterr().err
    assert [p.name for p in user.iterdir()] == ["config.json"]
    assert (user / "config.json").read_text() == '{"mine": 1}'
    (tmp_path / "file").write_text("x")
    assert main(["--out", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err

    ours = tmp_path / "ours"
    shutil.copytree(tiny_dir, ours)
    for extra, content in (("notes.txt", "mine"), ("config.json", "{}")):  # added, changed
        before = (ours / extra).read_text() if (ours / extra).exists() else None
        (ours / extra).write_text(content)
        assert main(["--out", str(ours)]) == 2
        assert f"{ours / extra} is not a file of the tiny model" in capsys.readouterr().err
        assert (ours / extra).read_text() == content
        if before is None:
            (ours / extra).unlink()
        else:
            (ours / extra).write_text(before)
    assert main(["--out", str(ours), "--seed", "1"]) == 0  # its own: rebuilt in place
    assert json.loads((ours / BUILD_INFO_FILE).read_text())["seed"] == 1
    assert {p.name for p in ours.iterdir()} == HUB_FILES
