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
import enum
import inspect
import types
import typing
from collections.abc import Callable
from types import NoneType
from typing import NoReturn

from transformers import HfArgumentParser

from .errors import UserError

_ARGPARSE_KEYS = ("help", "aliases", "choices", "metavar")  # metadata handed to argparse
_NONE_WORDS = ("none", "null")  # an optional option's value None, as _or_none reads it
_BOOL_WORDS = ("true", "false", "yes", "no", "t", "f", "y", "n", "1", "0")  # string_to_bool's


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


def field_types(options: type | tuple[type, ...]) -> dict[str, object]:
    """{field: its type} of the options dataclasses (the first that has a field wins); a
    field whose annotation cannot be resolved is left out (not checked)."""
    found: dict[str, object] = {}
    for kind in reversed(options if isinstance(options, tuple) else (options,)):
        try:
            hints = typing.get_type_hints(kind)
        except (NameError, TypeError):
            hints = {}
        for f in dataclasses.fields(kind):
            if f.init and f.name in hints:
                found[f.name] = hints[f.name]
    return found


def _converts(kind: Callable[[str], object], text: str) -> bool:
    try:
        kind(text)
    except (TypeError, ValueError):
        return False
    return True


def accepts(value: object, kind: object) -> bool:
    """Whether a recipe's (YAML) ``value`` is one of ``kind``, as the command line would
    read it: a string for a number is the number it spells, 'none' the None of an optional
    field. Types other than these (bool, int, float, str, None, Literal, Enum, list, tuple,
    dict, unions of them) are not checked."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return any(accepts(value, member) for member in args)
    if kind is NoneType:
        return value is None or isinstance(value, str) and value.lower() in _NONE_WORDS
    if origin is typing.Literal:
        return value in args or str(value) in map(str, args)
    if kind is bool:
        return isinstance(value, bool) or isinstance(value, str) and value.lower() in _BOOL_WORDS
    if kind in (int, float):
        if isinstance(value, str):
            return _converts(kind, value)  # type: ignore[arg-type]
        allowed = int if kind is int else (int, float)
        return isinstance(value, allowed) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        values = [m.value for m in kind]
        return isinstance(value, kind) or value in values or str(value) in map(str, values)
    if origin in (list, tuple, set) or kind in (list, tuple, set):
        item = args[0] if args else typing.Any
        return isinstance(value, list | tuple) and all(accepts(v, item) for v in value)
    if origin is dict or kind is dict:
        return isinstance(value, dict)
    return True


def describe(kind: object) -> str:
    """``kind`` in words, for a message."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(describe(member) for member in args))
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, args))
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return "one of " + ", ".join(str(m.value) for m in kind)
    if origin in (list, tuple, set) or kind in (list, tuple, set):
        plural = {str: "strings", int: "integers", float: "numbers", bool: "true/false values"}
        return f"a list of {plural.get(args[0], describe(args[0]))}" if args else "a list"
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
             dict: "a mapping", NoneType: "none"}  # fmt: skip
    return words.get(kind, getattr(kind, "__name__", str(kind)))  # type: ignore[call-overload]


def _list_kind(kind: object) -> bool:
    members = typing.get_args(kind) if typing.get_origin(kind) in (
        typing.Union, types.UnionType) else (kind,)  # fmt: skip
    return any(typing.get_origin(m) in (list, tuple) or m in (list, tuple) for m in members)


def typed_values(
    options: type | tuple[type, ...], values: dict[str, object], where: str
) -> dict[str, object]:
    """``values`` (fields from a YAML file) checked against the options dataclasses' field
    types (:func:`accepts`); a string for a list field becomes its words, as the command line
    splits them. Fields the dataclasses do not have are passed on as they are (the caller
    names them). A value of the wrong type is a UserError naming ``where`` (the file and its
    section), the field and the value."""
    kinds = field_types(options)
    checked = dict(values)
    for name, value in values.items():
        if name not in kinds or accepts(value, kinds[name]):
            continue
        if (
            isinstance(value, str)
            and _list_kind(kinds[name])
            and accepts(value.split(), kinds[name])
        ):
            checked[name] = value.split()
            continue
        raise UserError(f"{where}: {name}: {value!r} is not {describe(kinds[name])}")
    return checked


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


__all__ = [
    "OptionsParser", "accepts", "describe", "field_types", "parse_options", "to_argv",
    "typed_values",
]  # fmt: skip
