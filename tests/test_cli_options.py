"""The command-line convention: each command's options are its dataclasses' fields (help,
default and, for BuildOptions, origin), parsed by HfArgumentParser."""

from __future__ import annotations

import dataclasses

import pytest

from common.cli_options import parse_options
from dataset_builder.cli import COMMANDS, PushArguments, main
from dataset_builder.config import BuildOptions


def _parse(argv: list[str]) -> BuildOptions:
    (options,) = parse_options((BuildOptions,), argv, "test", None)
    return options


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
    assert _parse(["--min_box_pixels", "7"]).min_box_pixels == 7  # both spellings
    assert _parse(["--plain-localisation-box"]).plain_localisation_box is True
    assert _parse(["--no-plain-localisation-box"]).plain_localisation_box is False
    assert _parse(["--localisation-box", "false"]).localisation_box is False


def test_positional_field():
    (push,) = parse_options((PushArguments,), ["--repo-id", "a/b", "dir"], "test", None)
    assert str(push.folder) == "dir" and push.repo_id == "a/b" and push.revision is None


def test_every_field_documents_its_origin():
    for f in dataclasses.fields(BuildOptions):
        assert f.metadata["help"] and f.metadata["source"].split(":")[0] in ("paper", "ours")


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_names_every_field(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for cls in COMMANDS[command][0]:
        for f in dataclasses.fields(cls):
            assert f.metadata["help"], f"{cls.__name__}.{f.name} has no help"
            flag = f.name if f.metadata.get("positional") else "--" + f.name.replace("_", "-")
            assert flag in text, f"{command} --help does not name {flag}"
    assert "(default: " in text


def test_top_level_help_and_bad_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)
    assert main(["bild"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bild" in err


def test_invalid_values_are_refused_with_the_option_named():
    with pytest.raises(ValueError, match="zoom_corner"):
        BuildOptions(zoom_corner="middle")
    with pytest.raises(ValueError, match="colour"):
        BuildOptions(zoom_border_color="green")


@pytest.mark.parametrize("command", ["hub_cards", "tiny_model"])
def test_other_commands_document_every_option(command, capsys):
    """issue 10: `python -m <command> --help` documents every option (one convention)."""
    if command == "hub_cards":
        from hub_cards.__main__ import PushModelArguments as options
        from hub_cards.__main__ import main as run

        argv = ["push-model", "--help"]
    else:
        from model_training.tiny_model import TinyModelArguments as options
        from model_training.tiny_model import main as run

        argv = ["--help"]
    with pytest.raises(SystemExit) as stop:
        run(argv)
    assert stop.value.code == 0
    shown = capsys.readouterr().out
    for item in dataclasses.fields(options):
        assert item.name in shown and item.metadata["help"].split()[0] in shown
