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


def test_recipe_values_are_checked_against_the_option_types():
    """issue 20: a YAML value of the wrong type reached the dataclass as it was (or printed the
    whole usage); typed_values names where, the field and the value, in one line."""
    from dataclasses import dataclass, field

    from common.cli_options import typed_values
    from common.errors import UserError

    @dataclass
    class Options:
        steps: int = field(default=1, metadata={"help": "steps"})
        rate: float = field(default=0.1, metadata={"help": "rate"})
        names: list[str] = field(default_factory=list, metadata={"help": "names"})
        limit: int | None = field(default=None, metadata={"help": "limit"})
        on: bool = field(default=False, metadata={"help": "on"})

    good = {"steps": "3", "rate": "1e-5", "names": "a b", "limit": "none", "on": "yes", "x": 1}
    assert typed_values(Options, good, "f.yaml") == {**good, "names": ["a", "b"]}
    for name, value, kind in [("steps", 1.5, "an integer"), ("rate", "fast", "a number"),
                              ("names", {"a": 1}, "a list of strings"),
                              ("limit", [1], "an integer or none"), ("on", 3, "true or false"),
                              ("steps", True, "an integer")]:  # fmt: skip
        with pytest.raises(UserError) as error:
            typed_values(Options, {name: value}, "f.yaml, 's' section")
        assert str(error.value) == f"f.yaml, 's' section: {name}: {value!r} is not {kind}"


def test_a_bad_option_type_is_one_line(capsys):
    """A plain command: one line naming the option and the value, exit status 2, no usage."""
    from model_training.tiny_model import main as tiny_model

    with pytest.raises(SystemExit) as stop:
        tiny_model(["--out", "x", "--seed", "abc"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert (
        err == "error: argument --seed: invalid int value: 'abc' (see python -m "
        "model_training.tiny_model --help)"
    )
