"""How a step is launched (processes, DeepSpeed ZeRO stage, precision) and the optional GPU
backends it needs: DeepSpeed for the ZeRO accelerate configs, vLLM for ``use_vllm`` and the
evaluator's ``--backend vllm``.

The project's GPU extras install both (``pip install -e ".[deepspeed,vllm]"``, pinned in
pyproject.toml). The vLLM versions TRL supports are TRL's own fact: read from its package
metadata (its ``vllm`` extra), never copied here. Nothing here imports DeepSpeed or vLLM:
their presence and versions come from the installed package metadata.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

GPU_EXTRAS = 'pip install -e ".[deepspeed,vllm]"'  # the README's GPU install line


@dataclass
class LaunchSetup:
    """What a step's processes run under: from the accelerate config file (or its absence) and
    the stage's own ``deepspeed`` setting."""

    processes: int = 1
    zero_stage: int | None = None  # None: no DeepSpeed
    offload_optimizer: bool = False  # ZeRO optimizer state in host memory (or NVMe)
    offload_params: bool = False  # ZeRO-3 parameters in host memory (or NVMe)
    deepspeed_source: str | None = None  # the file that asks for DeepSpeed

    @property
    def description(self) -> str:
        if self.zero_stage is None:
            return "no DeepSpeed" + (" (DDP)" if self.processes > 1 else "")
        offload = [n for n, on in (("optimizer", self.offload_optimizer),
                                   ("parameters", self.offload_params)) if on]  # fmt: skip
        return f"DeepSpeed ZeRO-{self.zero_stage}" + (
            f", {' and '.join(offload)} offloaded" if offload else ""
        )


def _read_mapping(path: str | Path) -> dict:
    text = Path(path).read_text()
    value = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    return value if isinstance(value, dict) else {}


def _offloaded(device: object) -> bool:
    if isinstance(device, dict):  # a DeepSpeed JSON's {"device": "cpu", ...}
        device = device.get("device")
    return str(device or "none").lower() not in ("none", "null", "")


def _zero_from_deepspeed_json(setup: LaunchSetup, config: dict, source: str) -> None:
    zero = config.get("zero_optimization") or {}
    stage = zero.get("stage", 0)
    setup.zero_stage = int(stage) if str(stage).isdigit() else 0  # "auto" -> accelerate's 0
    setup.offload_optimizer = _offloaded(zero.get("offload_optimizer"))
    setup.offload_params = _offloaded(zero.get("offload_param"))
    setup.deepspeed_source = source


def launch_setup(
    accelerate_config: str | None, num_processes: int | None, deepspeed: object = None
) -> LaunchSetup:
    """The setup of a step launched with ``accelerate_config`` (a file) and ``num_processes``
    (the driver's override of the file's), for a stage whose ``deepspeed`` field is
    ``deepspeed`` (TrainingArguments': a DeepSpeed JSON path or dict, or None)."""
    setup = LaunchSetup()
    config = _read_mapping(accelerate_config) if accelerate_config else {}
    setup.processes = int(num_processes or config.get("num_processes") or 1)
    if str(config.get("distributed_type", "")).upper() == "DEEPSPEED":
        ds = config.get("deepspeed_config") or {}
        setup.deepspeed_source = str(accelerate_config)
        if ds.get("deepspeed_config_file"):
            _zero_from_deepspeed_json(
                setup, _read_mapping(ds["deepspeed_config_file"]), str(accelerate_config)
            )
        else:
            setup.zero_stage = int(ds.get("zero_stage", 2))  # accelerate's default stage
            setup.offload_optimizer = _offloaded(ds.get("offload_optimizer_device"))
            setup.offload_params = _offloaded(ds.get("offload_param_device"))
    if deepspeed:  # the stage's own DeepSpeed config (TrainingArguments.deepspeed)
        config = deepspeed if isinstance(deepspeed, dict) else _read_mapping(str(deepspeed))
        _zero_from_deepspeed_json(setup, config, "deepspeed" if isinstance(deepspeed, dict)
                                  else str(deepspeed))  # fmt: skip
    return setup


# -- installed backends --------------------------------------------------------------------------


def installed_version(package: str) -> str | None:
    """The installed version of ``package``, or None when it cannot be imported."""
    if importlib.util.find_spec(package) is None:
        return None
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def trl_vllm_versions() -> SpecifierSet:
    """The vLLM versions the installed TRL supports: its ``vllm`` extra's specifier."""
    for line in importlib.metadata.requires("trl") or []:
        requirement = Requirement(line)
        if (
            requirement.name == "vllm"
            and requirement.marker is not None
            and (requirement.marker.evaluate({"extra": "vllm"}))
        ):
            return requirement.specifier
    raise RuntimeError("the installed trl declares no vllm extra; cannot tell its vLLM range")


IMPORT_CHECK_SECONDS = 300  # ours: a first import of vLLM on a GPU node can take a minute


def import_problem(package: str) -> str | None:
    """The last line of the error that ``import package`` gives in a fresh interpreter (the
    driver itself never imports DeepSpeed or vLLM), or None when it imports."""
    try:
        result = subprocess.run(
            [sys.executable, "-c", f"import {package}"],
            capture_output=True,
            text=True,
            timeout=IMPORT_CHECK_SECONDS,
        )
    except subprocess.TimeoutExpired:
        return f"import {package} did not finish in {IMPORT_CHECK_SECONDS} s"
    if result.returncode == 0:
        return None
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"import {package} exited with status {result.returncode}"


def vllm_problem(check_import: bool = False) -> str | None:
    """Why vLLM cannot serve TRL's GRPO or our evaluator here (one line), or None.
    ``check_import``: also import it (in a child process)."""
    version = installed_version("vllm")
    trl = importlib.metadata.version("trl")
    if version is None:
        return f"vLLM is not installed: {GPU_EXTRAS} (GPU machines)"
    if Version(Version(version).base_version) not in trl_vllm_versions():
        return (
            f"vLLM {version} is installed, but TRL {trl} supports vllm{trl_vllm_versions()}: "
            f"{GPU_EXTRAS} installs the pinned release"
        )
    failed = import_problem("vllm") if check_import else None
    return f"vLLM {version} does not import ({failed}): {GPU_EXTRAS}" if failed else None


def deepspeed_problem(source: str, check_import: bool = False) -> str | None:
    """Why the DeepSpeed that ``source`` asks for cannot run here (one line), or None.
    ``check_import``: also import it (in a child process)."""
    if installed_version("deepspeed") is None:
        return f"{source} runs under DeepSpeed, which is not installed: {GPU_EXTRAS}"
    failed = import_problem("deepspeed") if check_import else None
    if failed:
        return f"{source} runs under DeepSpeed, which does not import ({failed})"
    return None


def backend_lines() -> list[str]:
    """What the plan prints about the optional backends."""
    vllm, deepspeed = installed_version("vllm"), installed_version("deepspeed")
    vllm_note = vllm_problem()
    return [
        f"DeepSpeed: {deepspeed or 'not installed'}",
        f"vLLM: {vllm or 'not installed'}"
        + (f" ({vllm_note})" if vllm and vllm_note else "")
        + f" (TRL {importlib.metadata.version('trl')} supports vllm{trl_vllm_versions()})",
    ]


__all__ = [
    "GPU_EXTRAS",
    "LaunchSetup",
    "backend_lines",
    "deepspeed_problem",
    "import_problem",
    "installed_version",
    "launch_setup",
    "trl_vllm_versions",
    "vllm_problem",
]
