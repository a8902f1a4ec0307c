"""How a training stage's options are read: TRL's ``TrlParser`` (YAML ``--config`` plus command
line) with one-line errors, a type check of the YAML's values, and the ranges the trainers
do not check.

A YAML value of the wrong type (``num_train_epochs: two``, ``max_steps: 1.5``,
``reward_funcs: {a: 1}``) is refused naming the file, the field and the value: ``TrlParser``
would hand a non-string value to the dataclass as it is, and print its whole usage for a string
it cannot convert. Hugging Face reads some out-of-range values as "not set" (``max_steps: -3``
trains by epochs, ``save_total_limit: 0`` keeps every checkpoint, a negative
``max_grad_norm`` turns clipping off): :data:`RANGES` refuses them, for the stage scripts and
for the run driver's stages alike (``check_ranges``).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NoReturn

import yaml
from trl import TrlParser

from common.cli_options import typed_values
from common.errors import UserError

from .configs import ConfigError


def _at_least(low: float) -> Callable[[object], bool]:
    return lambda v: isinstance(v, int | float) and not math.isnan(v) and v >= low


def _above(low: float) -> Callable[[object], bool]:
    return lambda v: isinstance(v, int | float) and not math.isnan(v) and v > low


def _or_unset(test: Callable[[object], bool]) -> Callable[[object], bool]:
    return lambda v: v is None or test(v)


def _fraction(v: object) -> bool:
    return isinstance(v, int | float) and 0 < v <= 1


# field: (the test a value must pass, the allowed values in words); a field the stage's
# dataclasses lack is not checked. Ours: where Hugging Face reads a value as "not set" or
# fails later on it.
RANGES: dict[str, tuple[Callable[[object], bool], str]] = {
    "max_steps": (lambda v: v == -1 or _above(0)(v), "-1 (unset: num_train_epochs) or 1 or more"),
    "num_train_epochs": (_above(0), "more than 0"),
    "learning_rate": (_at_least(0), "0 or more"),
    "per_device_train_batch_size": (_at_least(1), "1 or more"),
    "per_device_eval_batch_size": (_at_least(1), "1 or more"),
    "gradient_accumulation_steps": (_at_least(1), "1 or more"),
    "eval_accumulation_steps": (_or_unset(_at_least(1)), "1 or more, or unset"),
    "logging_steps": (_above(0), "more than 0 (under 1: a fraction of the steps)"),
    "save_steps": (_above(0), "more than 0 (under 1: a fraction of the steps)"),
    "eval_steps": (_or_unset(_above(0)), "more than 0, or unset"),
    "warmup_steps": (_at_least(0), "0 or more (under 1: a fraction of the steps)"),
    "weight_decay": (_at_least(0), "0 or more"),
    "max_grad_norm": (_at_least(0), "0 or more (0: no clipping)"),
    "save_total_limit": (_or_unset(_at_least(1)), "1 or more, or unset (every checkpoint kept)"),
    "seed": (_at_least(0), "0 or more"),
    "data_seed": (_or_unset(_at_least(0)), "0 or more, or unset"),
    "dataloader_num_workers": (_at_least(0), "0 or more"),
    "dataloader_prefetch_factor": (_or_unset(_at_least(1)), "1 or more, or unset"),
    "adam_beta1": (lambda v: _at_least(0)(v) and v < 1, "0 or more and under 1"),
    "adam_beta2": (lambda v: _at_least(0)(v) and v < 1, "0 or more and under 1"),
    "adam_epsilon": (_above(0), "more than 0"),
    "label_smoothing_factor": (lambda v: _at_least(0)(v) and v < 1, "0 or more and under 1"),
    "max_length": (_or_unset(_at_least(1)), "1 or more, or unset"),
    "num_generations": (_or_unset(_at_least(2)), "2 or more (GRPO compares completions)"),
    "num_generations_eval": (_or_unset(_at_least(1)), "1 or more, or unset"),
    "max_completion_length": (_or_unset(_at_least(1)), "1 or more, or unset"),
    "temperature": (_above(0), "more than 0"),
    "top_p": (_fraction, "more than 0 and at most 1"),
    "top_k": (_at_least(0), "0 (off) or more"),
    "min_p": (_or_unset(lambda v: _at_least(0)(v) and v <= 1), "0 to 1, or unset"),
    "repetition_penalty": (_above(0), "more than 0"),
    "beta": (_at_least(0), "0 or more"),
    "epsilon": (_at_least(0), "0 or more"),
    "epsilon_high": (_or_unset(_at_least(0)), "0 or more, or unset"),
    "num_iterations": (_at_least(1), "1 or more"),
    "steps_per_generation": (_or_unset(_at_least(1)), "1 or more, or unset"),
    "generation_batch_size": (_or_unset(_at_least(1)), "1 or more, or unset"),
    "vllm_gpu_memory_utilization": (_fraction, "more than 0 and at most 1"),
}  # fmt: skip


def range_problem(objects: Iterable[object]) -> str | None:
    """``field=value: must be ...`` for the first field of ``objects`` (parsed dataclasses)
    outside :data:`RANGES`, or None."""
    for obj in objects:
        for name, (test, allowed) in RANGES.items():
            if hasattr(obj, name) and not test(getattr(obj, name)):
                return f"{name}={getattr(obj, name)!r} is out of range: it must be {allowed}"
    return None


def check_ranges(
    objects: Iterable[object], where: str, error: type[UserError] = ConfigError
) -> None:
    """Raise ``error`` naming ``where`` (the stage or file) and the first out-of-range field."""
    problem = range_problem(objects)
    if problem:
        raise error(f"{where}: {problem}")


class StageParser(TrlParser):
    """``TrlParser`` whose usage errors are one line (a ConfigError, exit 2 in a stage
    script) and whose ``--config`` YAML is type-checked before it becomes the defaults."""

    error_class: type[UserError] = ConfigError

    def __init__(self, *types: type):
        super().__init__(types, allow_abbrev=False)

    def error(self, message: str) -> NoReturn:
        raise self.error_class(f"command line: {message}")

    def fields(self) -> set[str]:
        return {action.dest for action in self._actions}

    def typed_defaults(self, values: dict, where: str) -> list[str]:
        """Check ``values`` (a YAML mapping) against the fields' types, naming ``where``, then
        set them as the defaults; return what the parser does not know (TRL's
        ``set_defaults_with_config``)."""
        try:
            checked = typed_values(tuple(self.dataclass_types), values, where)
        except UserError as err:
            raise self.error_class(str(err)) from None
        return self.set_defaults_with_config(**checked)

    def parse_args_and_config(self, args: Iterable[str] | None = None, **kwargs) -> tuple:  # type: ignore[override]
        """TRL's, with the ``--config`` file read here: a missing or malformed file, or a
        value of the wrong type, is one line naming it."""
        args = list(sys.argv[1:] if args is None else args)
        if "--config" in args:
            at = args.index("--config")
            if at + 1 >= len(args):
                self.error("--config needs a recipe YAML file")
            path = Path(args[at + 1])
            del args[at : at + 2]
            try:
                config = yaml.safe_load(path.read_text())
            except (OSError, yaml.YAMLError) as err:
                raise self.error_class(
                    f"recipe {path} cannot be read ({type(err).__name__}: "
                    f"{str(err).splitlines()[0] if str(err) else ''})"
                ) from None
            if not isinstance(config, dict):
                raise self.error_class(f"recipe {path} must be a YAML mapping of field: value")
            env = config.pop("env", {})  # TRL's: environment variables for the stage
            if not isinstance(env, dict):
                raise self.error_class(f"recipe {path}: env must be a mapping of NAME: value")
            os.environ.update({str(k): str(v) for k, v in env.items()})
            unknown = self.typed_defaults(config, f"recipe {path}")
            if unknown:
                names = sorted({t[2:] for t in unknown if t.startswith("--")})
                raise self.error_class(f"recipe {path}: unknown field(s) {names} (see --help)")
        return super().parse_args_and_config(args, **kwargs)


__all__ = ["RANGES", "StageParser", "check_ranges", "range_problem"]
