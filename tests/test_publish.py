"""Publishing datasets and models with the real huggingface_hub / datasets / transformers
clients against the local test Hub on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest
import yaml
from datasets import Image as ImageFeature
from datasets import load_dataset
from huggingface_hub import DatasetCard, ModelCard, hf_hub_download
from huggingface_hub._eval_results import parse_eval_result_entries

from dataset_builder.cli import main as builder_main
from hub_cards.model_card import (
    EVAL_RESULTS_DIR,
    EVAL_RESULTS_FILE,
    eval_result_entries,
    model_index_results,
    write_model_card,
)
from hub_cards.publish import PublishError, push_dataset, push_folder, push_model

from .test_cards import TRAINING, _results

REPO = "medreason/ct-rate-vqa"
SECRET = "hf_" + "s3cretT0kenValue" * 2


def _rows(path_or_repo: str, config: str) -> dict[str, list[dict]]:
    ds = load_dataset(path_or_repo, config)
    return {s: d.cast_column("image", ImageFeature(decode=False)).to_list() for s, d in ds.items()}


def _local_files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and ".build_cache" not in p.parts
    }


@pytest.fixture
def dataset_copy(built_dataset: Path, tmp_path: Path) -> Path:
    """A private copy of the built dataset (tests may modify it)."""
    copy = tmp_path / "ct-rate-vqa"
    shutil.copytree(built_dataset, copy, ignore=shutil.ignore_patterns(".build_cache"))
    return copy


def test_push_then_load_dataset_through_the_endpoint(local_hub, dataset_copy):
    report = push_dataset(dataset_copy, REPO, gated=True)
    assert report.commit and report.revision == "main"
    pushed = local_hub.files(REPO, repo_type="dataset")
    assert {k: v for k, v in pushed.items() if k != ".gitattributes"} == _local_files(dataset_copy)
    for config in ("zoom", "plain"):
        assert _rows(REPO, config) == _rows(str(dataset_copy), config)
    card = DatasetCard.load(REPO, repo_type="dataset")
    assert card.data.to_dict() == DatasetCard.load(dataset_copy / "README.md").data.to_dict()


def test_second_push_makes_no_commit_and_sends_no_bytes(local_hub, dataset_copy):
    push_dataset(dataset_copy, REPO)
    head = local_hub.head(REPO, repo_type="dataset")
    local_hub.reset_stats()
    report = push_dataset(dataset_copy, REPO)
    stats = local_hub.stats()
    assert report.commit is None and report.changed == []
    assert local_hub.head(REPO, repo_type="dataset") == head
    assert stats["requests"].get("commit", 0) == 0 and stats["requests"].get("lfs_upload", 0) == 0
    assert stats["lfs_bytes_received"] == 0 and stats["regular_bytes_received"] == 0


def test_interrupted_push_resumes_without_resending(local_hub, dataset_copy):
    shards = sorted(dataset_copy.glob("*/*.parquet"))
    assert len(shards) >= 3
    head = (
        local_hub.head(REPO, repo_type="dataset")
        if local_hub.repo_exists(REPO, repo_type="dataset")
        else None
    )
    local_hub.fail_next("lfs_upload", status=403, after=2)  # the third upload fails for good
    with pytest.raises(PublishError, match="re-run"):
        push_dataset(dataset_copy, REPO, batch_bytes=1)  # one file per batch
    assert local_hub.commit_count(REPO, repo_type="dataset") == 0  # nothing visible on main
    assert head is None or local_hub.head(REPO, repo_type="dataset") == head
    arrived = local_hub.lfs_objects(REPO, repo_type="dataset")
    assert len(arrived) == 2
    local_hub.clear_failures()
    local_hub.reset_stats()
    push_dataset(dataset_copy, REPO, batch_bytes=1)
    stored = local_hub.lfs_objects(REPO, repo_type="dataset")
    sizes = {_sha256(p): p.stat().st_size for p in dataset_copy.rglob("*") if p.is_file()}
    resent = sum(size for sha, size in sizes.items() if sha in stored and sha not in arrived)
    assert local_hub.stats()["lfs_bytes_received"] == resent  # only what was missing
    assert local_hub.commit_count(REPO, repo_type="dataset") == 1
    pushed = local_hub.files(REPO, repo_type="dataset")
    assert {k: v for k, v in pushed.items() if k != ".gitattributes"} == _local_files(dataset_copy)


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_rebuilt_dataset_with_fewer_shards_drops_stale_ones(local_hub, dataset_copy):
    extra = dataset_copy / "zoom" / "train-00009-of-00009.parquet"
    extra.write_bytes((dataset_copy / "zoom").glob("train-*.parquet").__next__().read_bytes())
    push_dataset(dataset_copy, REPO)
    extra.unlink()
    report = push_dataset(dataset_copy, REPO)
    assert report.deleted == ["zoom/train-00009-of-00009.parquet"]
    assert "zoom/train-00009-of-00009.parquet" not in local_hub.files(REPO, repo_type="dataset")


def test_incomplete_build_is_refused(local_hub, dataset_copy):
    manifest = json.loads((dataset_copy / "build_manifest.json").read_text())
    (dataset_copy / "build_manifest.json").write_text(
        json.dumps({**manifest, "status": "in_progress"})
    )
    with pytest.raises(PublishError, match="not 'complete'"):
        push_dataset(dataset_copy, REPO)
    assert not local_hub.repo_exists(REPO, repo_type="dataset")


def test_push_cli(local_hub, dataset_copy, capsys):
    argv = ["push", str(dataset_copy), "--repo-id", REPO, "--revision", "dev"]
    assert builder_main(argv) == 0
    assert "pushed" in capsys.readouterr().out
    assert builder_main(argv) == 0
    assert "nothing to push" in capsys.readouterr().out
    assert builder_main(["push", str(dataset_copy), "--repo-id", "../escape"]) == 2
    assert "ORG/NAME" in capsys.readouterr().err


@pytest.mark.parametrize("repo_id", ["../etc", "/abs/name", "org/../name", "a/b/c", "org\\x"])
def test_escaping_repo_ids_are_refused(local_hub, dataset_copy, repo_id):
    with pytest.raises(PublishError, match="ORG/NAME|not valid"):
        push_dataset(dataset_copy, repo_id)
    assert local_hub.stats()["requests"].get("create_repo", 0) == 0


def test_link_leaving_the_folder_is_refused(local_hub, dataset_copy, tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("not for the Hub")
    os.symlink(outside, dataset_copy / "leak.txt")
    with pytest.raises(PublishError, match="outside"):
        push_dataset(dataset_copy, REPO)


def _tiny_model_folder(folder: Path) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<unk>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(["a solid pulmonary nodule in the right upper lobe"] * 8, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<eos>", unk_token="<unk>")
    config = GPT2Config(
        vocab_size=len(fast),
        n_embd=32,
        n_layer=1,
        n_head=2,
        n_positions=64,
        eos_token_id=fast.eos_token_id,
        bos_token_id=fast.eos_token_id,
    )
    model = GPT2LMHeadModel(config)
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    write_model_card(folder, TRAINING, _results(), dataset_id=REPO)
    return folder


def test_push_model_then_from_pretrained_and_card_round_trip(local_hub, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = _tiny_model_folder(tmp_path / "model")
    report = push_model(folder, "medreason/tiny-model")
    assert report.commit
    model = AutoModelForCausalLM.from_pretrained("medreason/tiny-model")
    tokenizer = AutoTokenizer.from_pretrained("medreason/tiny-model")
    inputs = tokenizer("a solid nodule", return_tensors="pt")
    out = model.generate(
        **inputs, max_new_tokens=3, do_sample=False, pad_token_id=tokenizer.eos_token_id
    )
    assert out.shape[1] == inputs["input_ids"].shape[1] + 3
    card = ModelCard.load("medreason/tiny-model")
    assert card.data.eval_results == model_index_results(_results(), REPO)
    path = hf_hub_download("medreason/tiny-model", f"{EVAL_RESULTS_DIR}/{EVAL_RESULTS_FILE}")
    entries = parse_eval_result_entries(yaml.safe_load(Path(path).read_text()))
    assert entries == eval_result_entries(_results(), REPO)


def test_model_folder_with_pickle_weights_is_refused(local_hub, tmp_path):
    folder = _tiny_model_folder(tmp_path / "model")
    (folder / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(PublishError, match="safetensors"):
        push_model(folder, "medreason/tiny-model")


def test_token_never_appears_in_logs_errors_or_files(local_hub, dataset_copy, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    push_folder(dataset_copy, REPO, token=SECRET)
    local_hub.fail_next("commit", status=500)
    with (dataset_copy / "README.md").open("a") as card:  # a change the card declares
        card.write("\nA change, so that a commit is attempted.\n")
    with pytest.raises(PublishError) as info:
        push_folder(dataset_copy, REPO, token=SECRET)
    captured = capfd.readouterr()
    assert SECRET not in str(info.value)
    assert SECRET not in caplog.text and SECRET not in captured.out + captured.err
    for content in local_hub.files(REPO, repo_type="dataset").values():
        assert SECRET.encode() not in content


def test_push_tiny_vlm_then_model_and_processor_from_the_hub(local_hub, tmp_path):
    """A Qwen2.5-VL checkpoint (weights, config, processor, generation config, card,
    .eval_results) goes up; model and processor come back by repo id and generate."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from model_training.processor import load_processor
    from model_training.tiny_model import build_tiny_model

    from .test_tiny_model import ct_like_image, image_conversation

    folder = build_tiny_model(tmp_path / "tiny-vl")
    write_model_card(folder, TRAINING, _results(), dataset_id=REPO)
    push_model(folder, "medreason/tiny-vl")
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained("medreason/tiny-vl")
    processor = load_processor("medreason/tiny-vl")
    text = processor.apply_chat_template(image_conversation(), add_generation_prompt=True)
    inputs = processor(images=[ct_like_image()], text=[text], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]
    local = Qwen2_5_VLForConditionalGeneration.from_pretrained(folder)
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), local.state_dict().values(), strict=True)
    )
    assert ModelCard.load("medreason/tiny-vl").data.eval_results == model_index_results(
        _results(), REPO
    )
