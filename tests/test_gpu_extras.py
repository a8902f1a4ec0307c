"""issue 18, item 1: the GPU stack a node set up from the README gets. ``pip install -e
".[deepspeed,vllm]"`` keeps our torch, transformers and TRL (pip's own resolver, on top of this
environment, as on a user's node: no machine-local pip configuration), and the driver refuses up
front a DeepSpeed config without DeepSpeed and ``use_vllm`` without a vLLM that TRL supports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from model_training import run as run_module
from model_training.backends import (
    deepspeed_problem,
    installed_version,
    launch_setup,
    trl_vllm_versions,
    vllm_problem,
)
from model_training.run_recipe import parse_run

REPO = Path(__file__).parents[1]
ACCELERATE = REPO / "recipes" / "accelerate"
PINNED = ("torch", "transformers", "trl")


def _pip_env() -> dict[str, str]:
    """pip as on a user's GPU node: no pip configuration of this machine (its torch cap, its
    local wheel folders), the certificate store kept."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    if os.environ.get("PIP_CERT"):
        env["PIP_CERT"] = os.environ["PIP_CERT"]
    return env


def _registry_reachable() -> str | None:
    probe = subprocess.run(
        [sys.executable, "-m", "pip", "index", "versions", "vllm"],
        capture_output=True, text=True, env=_pip_env(), timeout=120,
    )  # fmt: skip
    if probe.returncode == 0 and "0.30.0" in probe.stdout:
        return None
    return (probe.stderr or probe.stdout).strip().splitlines()[-1:] or ["no answer"]


def test_gpu_extras_keep_our_pins(tmp_path):
    unreachable = _registry_reachable()
    if unreachable:
        pytest.skip(f"the package registry cannot be reached: {unreachable}")
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report",
         str(report), f"{REPO}[deepspeed,vllm]"],
        capture_output=True, text=True, env=_pip_env(), timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    chosen = {
        item["metadata"]["name"].lower(): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    final = {name: chosen.get(name, version(name)) for name in PINNED}  # else: kept as installed
    ours = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {Requirement(line).name: Requirement(line).specifier for line in ours}
    for name in PINNED:
        assert Version(final[name]) in pins[name], (name, final[name], pins[name])
        assert name not in chosen, f"the GPU extras would move {name} to {chosen[name]}"
    assert Version(chosen["vllm"]) in trl_vllm_versions(), chosen["vllm"]
    assert "deepspeed" in chosen


def test_trl_vllm_range_is_read_from_trl():
    supported = trl_vllm_versions()
    assert Version("0.30.0") in supported  # our pin
    assert Version("0.33.0") not in supported  # what `pip install vllm` picked
    assert Version("0.21.0") not in supported


def test_launch_setups_of_the_accelerate_configs():
    zero2 = launch_setup(str(ACCELERATE / "zero2.yaml"), None)
    assert (zero2.processes, zero2.zero_stage, zero2.offload_optimizer) == (8, 2, False)
    zero3 = launch_setup(str(ACCELERATE / "zero3.yaml"), 4)
    assert (zero3.processes, zero3.zero_stage) == (4, 3)
    ddp = launch_setup(str(ACCELERATE / "ddp.yaml"), None)
    assert (ddp.processes, ddp.zero_stage, ddp.deepspeed_source) == (8, None, None)
    assert launch_setup(None, None).processes == 1
    # a stage's own DeepSpeed JSON (TrainingArguments.deepspeed) counts too
    offload = {"zero_optimization": {"stage": 3, "offload_optimizer": {"device": "cpu"}}}
    staged = launch_setup(None, 2, offload)
    assert (staged.zero_stage, staged.offload_optimizer, staged.processes) == (3, True, 2)


def _tiny_recipe(tmp_path: Path) -> Path:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"output_dir: {tmp_path / 'run'}\nmodel_name_or_path: {tmp_path / 'tiny'}\n"
        "use_cpu: true\nbf16: false\n"
    )
    return recipe


def test_driver_refuses_deepspeed_configs_without_deepspeed(tmp_path, capsys):
    argv = ["--config", str(_tiny_recipe(tmp_path)), "--accelerate_config",
            str(ACCELERATE / "zero2.yaml")]  # fmt: skip
    if installed_version("deepspeed") is not None:
        assert deepspeed_problem("zero2.yaml", check_import=True) is None
        pytest.skip("DeepSpeed is installed here: nothing to refuse")
    assert run_module.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "DeepSpeed, which is not installed" in err
    assert ".[deepspeed,vllm]" in err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_driver_refuses_use_vllm_without_a_supported_vllm(tmp_path, capsys):
    argv = ["--config", str(_tiny_recipe(tmp_path)), "--grpo.use_vllm", "true"]
    problem = vllm_problem(check_import=True)
    if problem is None:
        run_module.check_backends(parse_run(argv))  # a supported vLLM: accepted
        return
    assert run_module.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "use_vllm" in err and problem in err
    assert not (tmp_path / "run").exists()
    # SFT alone needs no vLLM
    run_module.check_backends(parse_run([*argv, "--stage", "sft"]))


def test_installed_versions_are_read_without_importing():
    assert installed_version("trl") == version("trl")
    assert installed_version("surely_not_a_package_here") is None
