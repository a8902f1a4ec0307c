"""The layers' contract: imports run down only.

common <- hub_cards <- dataset_builder <- model_training, and inside model_training:
training <- evaluation <- drivers. Every import counts, those inside functions too (an import
deferred to dodge a cycle is still an upward dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# model_training's drivers: they run the stages and the evaluator and write a run's outputs
# (``run`` and its ``run_*`` modules, and these)
DRIVERS = {"paper_tables", "dry_run", "final_model"}
# lowest first; a module may import its own layer and those before it
LAYERS = ("common", "hub_cards", "dataset_builder", "training", "evaluation", "drivers")


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name of ours; None for anything else."""
    parts = module.split(".")
    if parts[0] != "model_training":
        return parts[0] if parts[0] in LAYERS[:3] else None
    if len(parts) > 1 and parts[1] == "evaluation":
        return "evaluation"
    if len(parts) > 1 and (parts[1] in DRIVERS or parts[1].split("_")[0] == "run"):
        return "drivers"
    return "training"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, package: list[str] | None = None) -> list[tuple[int, str]]:
    """(line, dotted module) for every import in ``path``, relative ones resolved against
    ``package`` (default: the package ``path`` stands in)."""
    if package is None:
        package = module_name(path).split(".")
        if path.name != "__init__.py":
            package = package[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.append((node.lineno, module))
            if not node.module:  # from . import x: x is a module of that package
                found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def upward_imports() -> list[str]:
    problems = []
    for top in LAYERS[:3] + ("model_training",):
        for path in sorted((ROOT / top).rglob("*.py")):
            own = layer_of(module_name(path))
            for line, target in imported(path):
                other = layer_of(target)
                if other is not None and LAYERS.index(other) > LAYERS.index(own):
                    problems.append(
                        f"{path.relative_to(ROOT)}:{line} ({own}) imports {target} ({other})"
                    )
    return problems


def test_imports_run_down_only() -> None:
    assert upward_imports() == []


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("hub_cards.model_card", "from model_training.configs import X", "training"),
        ("model_training.grpo", "from .evaluation.evaluate import X", "evaluation"),
        ("model_training.evaluation.evaluate", "from ..run import X", "drivers"),
        ("common.names", "import dataset_builder.config", "dataset_builder"),
    ],
)
def test_contract_sees_an_upward_import(tmp_path, module, source, expected) -> None:
    """The checker finds an upward import written each way (absolute, relative, in a function)."""
    path = ROOT / (module.replace(".", "/") + ".py")
    fake = tmp_path / "probe.py"
    fake.write_text(f"def f():\n    {source}\n")
    package = module_name(path).split(".")[:-1]
    # resolve the probe as if it stood where the module stands
    found = [target for _, target in imported(fake, package) if layer_of(target) == expected]
    assert found and LAYERS.index(expected) > LAYERS.index(layer_of(module))
