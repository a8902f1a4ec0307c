"""benchmarks/grpo_step.py: the 7B config builds (no layer_types IndexError), the --dry-run's
parameter, token and FLOP counts, the MFU peak look-up, the no-GPU skip and the removal of the
random checkpoint's temporary folder."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "grpo_step.py"
QWEN2_5_VL_7B_PARAMETERS = 8.29e9  # Qwen/Qwen2.5-VL-7B-Instruct, all parameters
QWEN2_5_VL_7B_LLM_MLP = 5.70e9  # 28 layers x 3 x 3584 x 18944


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grpo_step_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return _load()


@pytest.fixture(scope="module")
def dry(bench: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One ``--dry-run --json`` of the 7B shape: its JSON, its printed lines and its time."""
    out = tmp_path_factory.mktemp("grpo-step-dry")
    stdout = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(stdout):
        code = bench.main(["--dry-run", "--workdir", str(out), "--json", str(out / "dry.json")])
    seconds = time.perf_counter() - started
    return {
        "code": code,
        "seconds": seconds,
        "lines": stdout.getvalue().splitlines(),
        "result": json.loads((out / "dry.json").read_text()),
    }


def test_7b_config_has_one_full_attention_layer_type_per_layer(bench, tmp_path):
    config = bench.model_config(bench.build_tiny(tmp_path), "7b")
    text = config.text_config
    assert text.num_hidden_layers == 28
    assert text.layer_types == ["full_attention"] * 28
    assert text.sliding_window is None  # use_sliding_window false, as the real config
    assert text.vocab_size == 152064 and not config.tie_word_embeddings
    assert text.rope_parameters["mrope_section"] == [16, 24, 24]
    vision = config.vision_config
    assert (vision.depth, vision.hidden_size, vision.out_hidden_size) == (32, 1280, 3584)
    assert list(vision.fullatt_block_indexes) == [7, 15, 23, 31]


def test_dry_run_is_quick_and_prints_its_figures(dry):
    assert dry["code"] == 0
    assert dry["seconds"] < 30
    assert [line.split(":")[0] for line in dry["lines"]] == [
        "dry run",
        "parameters",
        "tokens per step",
        "FLOPs per step (scope llm_mlp, beta 0.04), TFLOPs",
    ]
    assert "total 8.292 B" in dry["lines"][1] and "llm_mlp 5.703 B" in dry["lines"][1]


def test_dry_run_parameter_counts_match_qwen2_5_vl_7b(dry):
    result = dry["result"]
    scopes = result["parameters_by_scope"]
    assert result["total_parameters"] == pytest.approx(QWEN2_5_VL_7B_PARAMETERS, rel=0.01)
    assert scopes["llm_mlp"]["trainable"] == pytest.approx(QWEN2_5_VL_7B_LLM_MLP, rel=0.01)
    assert scopes["full"]["trainable"] == result["total_parameters"]
    trainable = [scopes[s]["trainable"] for s in ("merger", "llm_mlp", "all_mlp", "full")]
    assert trainable == sorted(trainable) and trainable[0] > 0
    # peft's LoRA on gate/up/down of 28 layers: r x (in + out) per projection
    rank, hidden, mlp = result["lora_rank"], 3584, 18944
    assert scopes["lora"]["trainable"] == 28 * 3 * rank * (hidden + mlp)


def test_dry_run_tokens_per_step(bench, dry):
    tokens = dry["result"]["tokens"]
    assert tokens["image_tokens_per_sequence"] == (448 // 14) ** 2 // 2**2 == 256
    assert bench.image_tokens(448, 448) == 256
    assert tokens["text_prompt_tokens_per_sequence"] > 0
    assert tokens["sequences"] == bench.NUM_GENERATIONS == 5
    per_sequence = tokens["prompt_tokens_per_sequence"] + bench.COMPLETION_TOKENS
    assert tokens["tokens_per_step"] == tokens["sequences"] * per_sequence


def test_dry_run_flops_follow_the_formula(dry):
    result = dry["result"]
    flops, tokens = result["flops_per_step"], result["tokens"]
    total = result["parameters_by_scope"]["llm_mlp"]["total"]
    trainable = result["parameters_by_scope"]["llm_mlp"]["trainable"]
    step_tokens = tokens["tokens_per_step"]
    assert flops["generation_prefill"] == 2 * total * tokens["prompt_tokens"]
    assert flops["generation_decode"] == 2 * total * tokens["completion_tokens"]
    assert flops["policy_forward"] == flops["reference_forward"] == 2 * total * step_tokens
    assert flops["policy_backward_weights"] == 2 * trainable * step_tokens
    # generation 2 N T, forward 2 N T, backward 2 N T + 2 N_trainable T, reference 2 N T
    assert flops["total"] == pytest.approx(8 * total * step_tokens + 2 * trainable * step_tokens)
    assert result["flops_per_token"] == pytest.approx(flops["total"] / step_tokens)
    assert flops["total"] > 0


def test_flops_without_kl_and_for_full_training(bench):
    flops = bench.grpo_step_flops(10.0, 10.0, 3.0, 1.0, beta=0.0)
    assert flops["reference_forward"] == 0
    # full training: forward + backward = 6 N T, generation 2 N T
    assert flops["total"] == 6 * 10 * 4 + 2 * 10 * 4


@pytest.mark.parametrize(
    ("name", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", 989.0),
        ("NVIDIA H200", 989.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA H100 PCIe", None),
        ("Tesla T4", None),
    ],
)
def test_peak_tflops_by_device_name(bench, name, peak):
    assert bench.peak_tflops(name) == peak


def test_unknown_peak_prints_mfu_as_not_available(bench):
    lines = bench.result_lines({"device": "Tesla T4", "mfu": None, "seconds_per_step": 2.0})
    assert lines[1].startswith("mfu: n/a") and "--peak-tflops" in lines[1]
    assert lines[2] == "seconds_per_step: 2.000"


def test_without_a_gpu_the_benchmark_is_skipped(bench, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bench.main([]) == 0
    out = capsys.readouterr().out
    assert "no CUDA GPU" in out and "skipped" in out


def _scratch_folders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("grpo-step-*"))


def test_random_checkpoint_folder_is_removed_unless_the_workdir_is_given(
    bench, monkeypatch, tmp_path
):
    """run() hands measure() a temporary folder (for the random checkpoint, 16.6 GB at the 7B
    shape) that is removed afterwards, also when the run fails; a --workdir is the user's and
    is kept. (The real measurement's removal: the SIGTERM test below.)"""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    seen: list[Path] = []

    def fake_measure(args, work: Path) -> dict[str, Any]:
        seen.append(work)
        (work / "random-7b").mkdir(parents=True)
        (work / "random-7b" / "model.safetensors").write_bytes(b"0" * 1024)
        if args.steps == 0:
            raise RuntimeError("a failed run")
        return {"work": str(work)}

    monkeypatch.setattr(bench, "measure", fake_measure)
    args = argparse.Namespace(workdir=None, steps=1)
    assert bench.run(args) == {"work": str(seen[0])}
    assert seen[0].parent == scratch and seen[0].name.startswith("grpo-step-")
    assert _scratch_folders(scratch) == []
    with pytest.raises(RuntimeError, match="a failed run"):
        bench.run(argparse.Namespace(workdir=None, steps=0))
    assert len(seen) == 2 and _scratch_folders(scratch) == []
    workdir = tmp_path / "mine"
    bench.run(argparse.Namespace(workdir=str(workdir), steps=1))
    assert seen[2] == workdir and (workdir / "random-7b" / "model.safetensors").is_file()


def test_a_stopped_run_removes_its_random_checkpoint(tmp_path):
    """`timeout` (as benchmarks/gpu_smoke.sh runs it) stops the benchmark with SIGTERM: the
    temporary folder goes too."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    argv = [sys.executable, str(SCRIPT), "--shape", "tiny", "--allow-cpu", "--steps", "500"]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not list(scratch.glob("grpo-step-*/random-tiny/model.safetensors")):
            assert process.poll() is None and time.monotonic() < deadline, "no checkpoint"
            time.sleep(0.2)
        time.sleep(1.0)  # into the trainer
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signal.SIGTERM, stderr.decode()[-2000:]
    assert _scratch_folders(scratch) == []
