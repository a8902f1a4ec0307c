"""One command-line convention for the evaluation commands (as TRL's): one options dataclass
per command, every field with its help, parsed by ``HfArgumentParser`` and passed around whole.
"""

from __future__ import annotations

import argparse
from typing import NoReturn, TypeVar

from transformers import HfArgumentParser

Options = TypeVar("Options")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and each option's default."""


class OptionsParser(HfArgumentParser):
    """``HfArgumentParser`` of one options dataclass whose usage errors are one line (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def parse_options(
    options: type[Options], argv: list[str] | None, prog: str, doc: str | None
) -> tuple[Options, list[str]]:
    """The options dataclass parsed from ``argv`` (default: ``sys.argv``), and the arguments
    that are not options (positionals); an option it does not know is a usage error."""
    parser = OptionsParser(
        options, prog=prog, description=doc, allow_abbrev=False, formatter_class=_HelpFormatter
    )
    parsed, rest = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    unknown = [a for a in rest if a.startswith("-")]
    if unknown:
        parser.error(f"unknown option(s) {' '.join(unknown)}")
    return parsed, rest
