"""The project's command-line convention (as TRL's): one options dataclass per command, every
field with its ``help``, parsed by transformers' ``HfArgumentParser`` and passed around whole.

Beyond ``HfArgumentParser``: usage errors are one line (exit status 2), ``--help`` shows each
option's default (and a field's ``source`` metadata: where the default comes from), a field
with ``positional`` metadata is a positional argument, an optional field reads ``none`` as
None, and a bool field that defaults to False also takes ``--no-<name>``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import inspect
import types
import typing
from collections.abc import Callable
from types import NoneType
from typing import NoReturn

from transformers import HfArgumentParser

_ARGPARSE_KEYS = ("help", "aliases", "choices", "metavar")  # metadata handed to argparse


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The description as written, and each option's default (a required one has none)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.required else super()._get_help_string(action)


def _or_none(kind: Callable[[str], object]) -> Callable[[str], object]:
    def parse(text: str) -> object:
        return None if text.lower() in ("none", "null", "") else kind(text)

    parse.__name__ = getattr(kind, "__name__", "value")  # argparse names it in its errors
    return parse


class OptionsParser(HfArgumentParser):
    """``HfArgumentParser`` whose usage errors are one line (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")

    @staticmethod
    def _parse_dataclass_field(parser: argparse.ArgumentParser, field: dataclasses.Field) -> None:
        meta = field.metadata
        help_text = meta.get("help", "") + (f" [{meta['source']}]" if "source" in meta else "")
        field = copy.copy(field)  # HfArgumentParser narrows field.type in place
        field.metadata = types.MappingProxyType(  # type: ignore[misc]
            {k: v for k, v in meta.items() if k in _ARGPARSE_KEYS}
            | {"help": help_text.replace("%", "%%")}
        )
        nullable = NoneType in typing.get_args(field.type) and bool not in typing.get_args(
            field.type
        )
        if meta.get("positional"):
            kind = next(
                a for a in typing.get_args(field.type) or (field.type,) if a is not NoneType
            )
            parser.add_argument(field.name, type=kind, help=field.metadata["help"])
            return
        HfArgumentParser._parse_dataclass_field(parser, field)
        action = next(a for a in reversed(parser._actions) if a.dest == field.name)
        if nullable and action.type is not None:
            action.type = _or_none(action.type)
        if field.type is bool and field.default is False:
            parser.add_argument(
                f"--no_{field.name}",
                f"--no-{field.name.replace('_', '-')}",
                action="store_false",
                dest=field.name,
                help=argparse.SUPPRESS,
            )


def parse_options(
    options: type | tuple[type, ...],
    argv: list[str] | None,
    prog: str,
    doc: str | None,
    positionals: bool = False,
) -> tuple[object, ...]:
    """One instance of each options dataclass, parsed from ``argv`` (default: ``sys.argv``).
    An unknown option is a usage error, and so is a surplus argument unless ``positionals``
    (then the list of them comes last); an invalid value a dataclass refuses (``ValueError``
    from its ``__post_init__``) propagates."""
    parser = OptionsParser(
        options,
        prog=prog,
        description=inspect.cleandoc(doc or ""),
        allow_abbrev=False,
        formatter_class=_HelpFormatter,
    )
    *parsed, rest = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    surplus = [a for a in rest if a.startswith("-")] if positionals else rest
    if surplus:
        parser.error(f"unrecognized argument(s) {' '.join(surplus)}")
    return (*parsed, rest) if positionals else tuple(parsed)


def to_argv(
    options: object, *, always: tuple[str, ...] = (), default: object | None = None
) -> list[str]:
    """The command line that parses back into ``options`` (a dataclass of this convention),
    for a child process: the fields that differ from ``default`` (an instance of the same
    dataclass; without one, the fields' own defaults) and the fields named in ``always``. The only
    place a dataclass becomes argv: in-process callers pass the dataclass itself."""
    argv: list[str] = []
    for f in dataclasses.fields(options):  # type: ignore[arg-type]
        if not f.init:
            continue
        value = getattr(options, f.name)
        if default is not None:
            base = getattr(default, f.name)
        elif f.default is not dataclasses.MISSING:
            base = f.default
        elif f.default_factory is not dataclasses.MISSING:
            base = f.default_factory()
        else:
            base = dataclasses.MISSING
        if f.name not in always and value == base:
            continue
        flag = f"--{f.name.replace('_', '-')}"
        if f.metadata.get("positional"):
            argv.append(str(value))
        elif isinstance(value, bool):
            argv.append(flag if value else f"--no-{f.name.replace('_', '-')}")
        elif value is None:
            argv += [flag, "none"]
        elif isinstance(value, list | tuple):
            argv += [flag, *map(str, value)]
        elif isinstance(value, dict):
            raise TypeError(f"{f.name}: a dict option cannot be written as a command line")
        else:
            argv += [flag, str(value)]
    return argv
