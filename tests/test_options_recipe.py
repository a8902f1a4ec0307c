"""Recipe values refused at parse time (reward names and weights, CTRateVQAArguments ranges) and
dataset errors as one-line DatasetErrors; the stage scripts print ``error: ...`` and exit 2."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from trl import ModelConfig, TrlParser

from model_training import grpo, sft
from model_training.configs import ConfigError, CTRateVQAArguments, GRPORecipe
from model_training.data import DatasetError, load_vqa

CPU = ["--use_cpu", "true", "--bf16", "false"]


def _grpo_parse(tmp_path: Path, *flags: str):
    parser = TrlParser((CTRateVQAArguments, GRPORecipe, ModelConfig))
    return parser.parse_args_and_config(["--output_dir", str(tmp_path), *CPU, *flags])


def test_reward_names_and_weights_are_checked_at_parse_time(tmp_path):
    with pytest.raises(ConfigError, match=r"\['formt'\].*valid names.*'correctness'"):
        _grpo_parse(tmp_path, "--reward_funcs", "formt", "correctness")
    with pytest.raises(ConfigError, match="reward_weights has 2 values.*names 3"):
        _grpo_parse(tmp_path, "--reward_weights", "1", "2")
    _, training, _ = _grpo_parse(tmp_path, "--reward_funcs", "format", "--reward_weights", "3")
    assert training.reward_weights == [3.0]


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"dataset_limit": 0}, "dataset_limit=0 must be at least 1"),
        ({"image_min_pixels": 0}, "image_min_pixels=0 must be at least 1"),
        ({"image_max_pixels": -5}, "image_max_pixels=-5"),
        ({"image_min_pixels": 10, "image_max_pixels": 9}, "exceeds"),
        ({"dataset_name": ""}, "dataset_name is required"),
        ({"dataset_config": None}, "dataset_config is required"),
        ({"dataset_train_split": ""}, "dataset_train_split is required"),
        ({"dataset_streaming": True}, "dataset_streaming"),
        ({"dataset_test_split": "validation"}, "dataset_test_split"),
        ({"ignore_bias_buffers": True}, "ignore_bias_buffers"),
        ({"prompt_mode": "cot"}, "prompt_mode"),
        ({"sft_target": "report"}, "sft_target"),
    ],
)
def test_dataset_arguments_out_of_range_are_refused(fields, match):
    with pytest.raises(ConfigError, match=match):
        CTRateVQAArguments(**fields)


@pytest.fixture
def small_dataset(tmp_path) -> Path:
    """A Hub-layout folder with one config ('zoom', split train) lacking the 'options' column."""
    root = tmp_path / "vqa"
    (root / "zoom").mkdir(parents=True)
    pd.DataFrame({"image": [b""], "question": ["q"], "answer": ["a"]}).to_parquet(
        root / "zoom" / "train.parquet"
    )
    (root / "README.md").write_text(
        "---\nconfigs:\n- config_name: zoom\n  data_files:\n  - split: train\n"
        "    path: zoom/train.parquet\n---\n"
    )
    return root


def test_dataset_errors_name_the_dataset_and_what_exists(small_dataset, tmp_path):
    cases = [
        ((str(tmp_path / "missing"), "zoom"), r"missing.*config 'zoom'.*no such folder"),
        ((str(small_dataset), "plain"), r"config 'plain'.*not found\. Available: \['zoom'\]"),
        ((str(small_dataset), "zoom", "valid"), r"split 'valid'.*Should be one of \['train'\]"),
        ((str(small_dataset), "zoom"), r"no column\(s\) \['options'\]; it has"),
    ]
    for call, match in cases:
        with pytest.raises(DatasetError, match=match) as error:
            load_vqa(*call)
        assert "\n" not in str(error.value)


def test_stage_scripts_print_the_error_and_exit_2(small_dataset, tmp_path, capsys):
    """Before any model is loaded (the model path does not exist)."""
    base = [
        "--model_name_or_path",
        str(tmp_path / "no-model"),
        "--output_dir",
        str(tmp_path / "out"),
        *CPU,
    ]
    runs = [
        (sft.main, ["--dataset_name", str(small_dataset), "--dataset_config", "plain"], "['zoom']"),
        (grpo.main, ["--dataset_name", str(tmp_path / "missing")], "no such folder"),
        (grpo.main, ["--reward_funcs", "formt"], "unknown reward_funcs ['formt']"),
        (sft.main, ["--dataset_limit", "0"], "dataset_limit=0"),
    ]
    for main, flags, expected in runs:
        assert main([*base, *flags]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and expected in err and "Traceback" not in err, err
