"""Every ModelConfig field a recipe accepts either works or is refused (check_model_config):
LoRA from the lora_* fields through TRL's get_peft_config, revision / dtype / attention reach
the loaders, quantisation without bitsandbytes and remote code are refused."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi
from safetensors.torch import load_file
from trl import ModelConfig, SFTConfig, TrlParser

from model_training import grpo, sft
from model_training.configs import (
    ConfigError,
    CTRateVQAArguments,
    GRPORecipe,
    check_model_config,
)
from model_training.grpo import grpo_trainer
from model_training.policy import load_policy
from model_training.scope import LORA_TARGET_MODULES
from model_training.tiny_model import build_tiny_model

CPU = {"use_cpu": True, "report_to": "none", "save_strategy": "no", "seed": 0}
LORA = CTRateVQAArguments(trainable_scope="lora")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("options") / "tiny")


def _load(tiny_model: Path, tmp_path: Path, args: CTRateVQAArguments = LORA, **fields):
    model_args = ModelConfig(model_name_or_path=str(tiny_model), **fields)
    return load_policy(model_args, args, SFTConfig(output_dir=str(tmp_path / "o"), **CPU))


def _refused(match: str, model_args: ModelConfig, args=None, training=None) -> None:
    with pytest.raises(ConfigError, match=match):
        check_model_config(model_args, args or CTRateVQAArguments(), training)


def test_lora_fields_reach_the_adapter(tiny_model, tmp_path):
    model, _, summary = _load(
        tiny_model,
        tmp_path,
        lora_r=8,
        lora_alpha=4,
        lora_dropout=0.0,
        use_rslora=True,
        use_dora=True,
        lora_modules_to_save=["lm_head"],
    )
    config = model.peft_config["default"]
    assert (config.r, config.lora_alpha, config.lora_dropout) == (8, 4, 0.0)
    assert config.use_rslora and config.use_dora and "lm_head" in config.modules_to_save
    assert config.target_modules == LORA_TARGET_MODULES  # default: the LLM's MLP projections
    names = summary["trainable_names"]
    assert any("lora_magnitude_vector" in n for n in names)  # DoRA
    assert any("lm_head.modules_to_save" in n for n in names)
    lora_a = [n for n in names if "lora_A" in n]
    assert lora_a and all("language_model" in n and ".mlp." in n for n in lora_a)
    assert model.get_parameter(lora_a[0]).shape[0] == 8


def test_lora_target_modules_choose_the_modules(tiny_model, tmp_path):
    for targets in (["q_proj", "v_proj"], ["q_proj"]):  # ModelConfig makes ["q_proj"] a str
        _, _, summary = _load(tiny_model, tmp_path, lora_target_modules=targets)
        found = {n.split(".")[-4] for n in summary["trainable_names"]}
        assert found == set(targets), summary["trainable_names"]


def test_use_peft_and_lora_fields_need_the_lora_scope(tiny_model, tmp_path):
    """The issue's `--use_peft true --lora_r 8` trained every MLP weight, silently."""
    _refused("use_peft=true.*trainable_scope: lora", ModelConfig(use_peft=True, lora_r=8))
    _refused(r"\['lora_r'\] set.*trainable_scope: lora", ModelConfig(lora_r=8))
    _refused(r"use_dora", ModelConfig(use_dora=True), CTRateVQAArguments(trainable_scope="full"))
    check_model_config(ModelConfig(use_peft=True, lora_r=8), LORA)
    model, _, summary = _load(tiny_model, tmp_path, use_peft=True, lora_r=8)
    assert model.peft_config["default"].r == 8
    assert all("lora_" in n for n in summary["trainable_names"])
    for fields, match in (
        ({"lora_r": 0}, "lora_r >= 1"),
        ({"lora_dropout": 1.0}, "lora_dropout < 1"),
        ({"lora_task_type": "SEQ_CLS"}, "CAUSAL_LM"),
    ):
        _refused(match, ModelConfig(**fields), LORA)


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is not None, reason="bnb here")
def test_quantisation_without_bitsandbytes_is_refused():
    for flag in ("load_in_4bit", "load_in_8bit"):
        _refused("pip install bitsandbytes", ModelConfig(**{flag: True}), LORA)
    _refused("only with load_in_4bit", ModelConfig(bnb_4bit_quant_type="fp4"), LORA)
    _refused("only with load_in_4bit", ModelConfig(load_in_8bit=True, use_bnb_nested_quant=True))


def test_attn_implementation_and_dtype_reach_the_model(tiny_model, tmp_path):
    for attn in ("eager", "sdpa"):
        model, _, _ = _load(tiny_model, tmp_path, CTRateVQAArguments(), attn_implementation=attn)
        assert model.config._attn_implementation == attn
        assert model.dtype == torch.float32  # fp32 master weights without DeepSpeed
    _refused("attn_implementation='flash'", ModelConfig(attn_implementation="flash"))
    _refused("dtype='fp16'", ModelConfig(dtype="fp16"))


@pytest.fixture
def two_commits(local_hub, tmp_path) -> tuple[str, str, Path]:
    """(repo, sha of commit 1, its folder): commit 1 is a tiny model; commit 2 replaces the
    weights and deletes the processor."""
    repo = "org/tiny-vl"
    first = build_tiny_model(tmp_path / "first", seed=0)
    second = build_tiny_model(tmp_path / "second", seed=1)
    api = HfApi(endpoint=local_hub.url)
    api.create_repo(repo)
    sha = api.upload_folder(repo_id=repo, folder_path=first).oid
    weights = second / "model.safetensors"
    api.upload_file(repo_id=repo, path_or_fileobj=weights, path_in_repo=weights.name)
    api.delete_file("preprocessor_config.json", repo_id=repo)
    return repo, sha, first


def test_model_revision_reaches_the_model_and_the_processor(two_commits, tmp_path):
    repo, sha, first = two_commits
    model, processor, _ = _load(repo, tmp_path, CTRateVQAArguments(), model_revision=sha)
    start = load_file(first / "model.safetensors")["lm_head.weight"]
    assert torch.equal(model.lm_head.weight.detach(), start)
    assert processor.image_processor is not None
    with pytest.raises(ValueError, match="image processor"):
        _load(repo, tmp_path, CTRateVQAArguments())  # main: no processor any more
    # a local folder has no revisions: refused rather than ignored
    _refused("model_revision='v2'.*local folder", ModelConfig(str(first), model_revision="v2"))


def test_model_revision_reaches_the_grpo_reference_model(two_commits, built_dataset, tmp_path):
    repo, sha, first = two_commits
    training = GRPORecipe(
        output_dir=str(tmp_path / "grpo"),
        per_device_train_batch_size=2,
        num_generations=2,
        beta=0.04,
        bf16=False,
        **CPU,
    )
    trainer, _, _ = grpo_trainer(
        CTRateVQAArguments(dataset_name=str(built_dataset), dataset_limit=2),
        training,
        ModelConfig(model_name_or_path=repo, model_revision=sha),
    )
    start = load_file(first / "model.safetensors")["lm_head.weight"]
    assert torch.equal(trainer.ref_model.lm_head.weight.detach().cpu(), start)


def test_trainer_model_loading_fields_are_refused(tmp_path, capsys):
    training = SFTConfig(output_dir=str(tmp_path), trust_remote_code=True, **CPU)
    _refused("trust_remote_code", ModelConfig(), training=training)
    training = SFTConfig(output_dir=str(tmp_path), model_init_kwargs={"dtype": "bfloat16"}, **CPU)
    _refused("model_init_kwargs", ModelConfig(), training=training)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--use_peft", "true", "--lora_r", "8"], "error: use_peft=true"),
        (["--trust_remote_code", "true"], "error: trust_remote_code"),
        (["--load_in_4bit", "true", "--trainable_scope", "lora"], "error: load_in_4bit"),
    ],
)
def test_stage_script_refuses_at_parse_time(tmp_path, capsys, flags, message):
    """Refused before any model or data is read: the model path does not even exist."""
    if "--load_in_4bit" in flags and importlib.util.find_spec("bitsandbytes"):
        pytest.skip("bitsandbytes installed")
    base = ["--model_name_or_path", str(tmp_path / "none"), "--output_dir", str(tmp_path)]
    assert sft.main([*base, "--use_cpu", "true", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and "Traceback" not in err
    # the run driver's parse gets the same refusal from the same function
    parser = TrlParser((CTRateVQAArguments, SFTConfig, ModelConfig))
    parsed = parser.parse_args_and_config([*base, "--use_cpu", "true", *flags])
    with pytest.raises(ConfigError):
        check_model_config(parsed[2], parsed[0], parsed[1])


def test_use_peft_trains_the_lora_adapter_sft_and_grpo(built_dataset, tiny_model, tmp_path):
    """The issue's flags, with the scope they need, from the command line to the saved
    adapter; GRPO with the same LoRA keeps no reference copy (the adapter is disabled)."""
    common = [
        "--dataset_name", str(built_dataset), "--dataset_limit", "2",
        "--model_name_or_path", str(tiny_model),
        "--use_peft", "true", "--trainable_scope", "lora", "--lora_r", "8",
        "--max_steps", "1", "--per_device_train_batch_size", "2", "--bf16", "false",
        "--use_cpu", "true", "--report_to", "none", "--save_strategy", "no",
        "--activation_checkpointing", "false",
    ]  # fmt: skip
    assert sft.main([*common, "--output_dir", str(tmp_path / "sft")]) == 0
    config = json.loads((tmp_path / "sft" / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["lora_alpha"] == 32
    summary = json.loads((tmp_path / "sft" / "training_summary.json").read_text())
    assert summary["trainable_parameters"] < summary["total_parameters"] / 2
    grpo_flags = ["--num_generations", "2", "--max_completion_length", "4", "--beta", "0.04"]
    assert grpo.main([*common, *grpo_flags, "--output_dir", str(tmp_path / "grpo")]) == 0
    assert json.loads((tmp_path / "grpo" / "adapter_config.json").read_text())["r"] == 8
