"""Every BuildOptions field is a command-line option with help, default and origin."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from dataset_builder.cli_options import add_dataclass_options, dataclass_from_args
from dataset_builder.config import BuildOptions


def _parse(argv: list[str]) -> BuildOptions:
    parser = argparse.ArgumentParser()
    add_dataclass_options(parser, BuildOptions)
    return dataclass_from_args(BuildOptions, parser.parse_args(argv))


def test_defaults_equal_the_dataclass_defaults():
    assert _parse([]) == BuildOptions()


def test_typed_overrides():
    options = _parse(
        [
            "--window-level",
            "-500",
            "--no-localisation-box",
            "--image-size",
            "384",
            "--source-splits",
            "train",
            "--zoom-corner",
            "lower-right",
        ]
    )
    assert options.window_level == -500.0 and options.localisation_box is False
    assert options.image_size == 384 and options.source_splits == ["train"]
    assert options.zoom_corner == "lower-right"
    assert _parse(["--image-size", "none"]).image_size is None


def test_every_field_documents_its_origin():
    for f in dataclasses.fields(BuildOptions):
        assert f.metadata["help"] and f.metadata["source"].split(":")[0] in ("paper", "ours")


def test_invalid_values_are_refused_with_the_option_named():
    with pytest.raises(ValueError, match="zoom_corner"):
        BuildOptions(zoom_corner="middle")
    with pytest.raises(ValueError, match="colour"):
        BuildOptions(zoom_border_color="green")
