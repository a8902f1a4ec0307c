"""Expose a dataclass's fields as command-line options (help text from field metadata).

A small stand-in for transformers' ``HfArgumentParser``, which forwards every metadata key
to argparse (our fields also carry a ``source``) and costs a transformers import.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing


def _base_type(annotation: object) -> tuple[object, bool]:
    """(type without None, whether None is allowed)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0], True
    return annotation, False


def _optional(kind: type) -> typing.Callable[[str], object]:
    def parse(text: str) -> object:
        return None if text.lower() in ("none", "null", "") else kind(text)

    parse.__name__ = kind.__name__
    return parse


def add_dataclass_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add ``--field-name`` for every field of ``cls`` (bools get ``--no-field-name``)."""
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(cls.__name__, (cls.__doc__ or "").strip().splitlines()[0])
    for f in dataclasses.fields(cls):
        kind, nullable = _base_type(hints[f.name])
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        source = f.metadata.get("source")
        help_text += f" [default: {default}{'; ' + source if source else ''}]"
        help_text = help_text.replace("%", "%%")
        if kind is bool:
            group.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=default,
                help=help_text,
            )
        elif typing.get_origin(kind) is list:
            group.add_argument(
                flag,
                dest=f.name,
                nargs="+",
                default=default,
                type=typing.get_args(kind)[0],
                help=help_text,
            )
        else:
            parse = _optional(kind) if nullable else kind
            group.add_argument(flag, dest=f.name, type=parse, default=default, help=help_text)


def dataclass_from_args(cls: type, args: argparse.Namespace) -> object:
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})
