"""One command-line convention for every command (as TRL's): one options dataclass per
command, every field with its help, parsed by ``HfArgumentParser`` and passed around whole. The
parser is the project's one (``hub_cards.cli_options``); the evaluation commands also take
positional arguments (the leaderboard's RESULTS).
"""

from __future__ import annotations

from typing import TypeVar

from hub_cards.cli_options import parse_options as _parse

Options = TypeVar("Options")


def parse_options(
    options: type[Options], argv: list[str] | None, prog: str, doc: str | None
) -> tuple[Options, list[str]]:
    """The options dataclass parsed from ``argv`` (default: ``sys.argv``), and the arguments
    that are not options (positionals); an option it does not know is a usage error (one
    line, exit 2)."""
    parsed, rest = _parse(options, argv, prog, doc, positionals=True)
    return parsed, rest
