"""The declared dependency floors are versions that have what the recipes use (issue 9)."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).parents[1] / "pyproject.toml"
# the first release with what this project uses (checked against each library's changelog)
NEEDED = {
    "transformers": "5.23",  # TrainingArguments.activation_checkpointing (5.18: vision
    # assistant_only_loss)
    "trl": "1.16",  # GRPOConfig / SFTConfig fields of the recipes, vllm_max_model_length
    "accelerate": "1.15",
    "torch": "2.13",
}


def _requirements() -> dict[str, Requirement]:
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    return {Requirement(d).name.lower(): Requirement(d) for d in deps}


def _floor(requirement: Requirement) -> Version | None:
    floors = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==")]
    return max(floors) if floors else None


def test_floors_have_what_the_recipes_use():
    requirements = _requirements()
    for name, needed in NEEDED.items():
        floor = _floor(requirements[name])
        assert floor is not None and floor >= Version(needed), (name, floor, needed)


def test_every_dependency_has_a_floor_the_installed_version_meets():
    for name, requirement in _requirements().items():
        assert _floor(requirement) is not None, name
        assert requirement.specifier.contains(version(name), prereleases=True), name
