"""The task folder lmms_eval_tasks/ct_rate_vqa/ in the REAL lmms-eval 0.7.3 harness scores a
checkpoint exactly as our evaluator (``python -m model_training.evaluation.evaluate``) does.

lmms-eval lives in a virtual environment of its own (its requirements would move this venv's
torch and add a torchvision that breaks here): ``$LMMS_EVAL_PYTHON`` names its python; without
it the test builds one once with ``.ci/lmms_eval_env.sh`` under ``.cache/lmms-eval-venv`` (a
few minutes, then reused). The harness runs in a subprocess, as a user runs it (lmms-eval's own
command line, through tests/lmms_harness.py, which registers a CPU chat model class built on
lmms-eval's ``huggingface`` class and our processor).

The model: the tiny Qwen2.5-VL briefly SFT-trained on the evaluated rows, so that it answers in
our format (a random one would reply gibberish and every comparison would be None == None),
then given the generation config a run's final/ publishes (its base's Qwen2.5-VL-Instruct
values replaced by the evaluation's decoding: lmms-eval lets the checkpoint decide). The
grounding task (``ct_rate_vqa_grounding``) gets its own tiny model, SFT-trained on the evaluated
grounding rows' true boxes and points (model-input frame), so that its replies hold boxes to
score, and its own harness run; our evaluator scores the same rows with ``--config grounding
--sam-model none``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from datasets import load_dataset
from transformers import GenerationConfig
from trl import ModelConfig, SFTConfig

from common.names import GROUNDING_TASK
from model_training.configs import CTRateVQAArguments
from model_training.evaluation.decoding import Decoding
from model_training.evaluation.evaluate import main as evaluate_main
from model_training.final_model import write_decoding
from model_training.sft import train_sft
from model_training.tiny_model import MAX_PIXELS, MIN_PIXELS, build_tiny_model

from .decoding_support import CHECKPOINT_DECODING
from .lmms_harness import MODEL_ID
from .lmms_task_files import TASK_DIR, TASK_FILES, load_task

REPO = Path(__file__).resolve().parents[1]
PYTHON_VARIABLE = "LMMS_EVAL_PYTHON"
DEFAULT_VENV = REPO / ".cache" / "lmms-eval-venv"
ENV_SCRIPT = REPO / ".ci" / "lmms_eval_env.sh"
ROWS = 16  # at most this many test rows per task (the first ones, in both evaluators)
BATCH_SIZE = 16  # = our evaluator's default --batch-size: the same rows share a padded batch
MODES = {"ct_rate_vqa": "think", "ct_rate_vqa_no_think": "no-think", "ct_rate_vqa_plain": "think"}
GROUNDING = "ct_rate_vqa_grounding"
GROUNDING_MODE = "think"
SFT_EPOCHS = 16  # ours: ~60 steps at lr 3e-3 teach the tiny model to answer in <answer> tags
SFT_LEARNING_RATE = 3e-3
SFT_BATCH_SIZE = 4
HARNESS_TIMEOUT_S = 900
GROUNDING_SFT_EPOCHS = 24  # ours: enough for the tiny model to write boxes near the lesions


def _works(python: Path) -> bool:
    probe = [str(python), "-c", "import lmms_eval, model_training.processor"]
    return python.is_file() and subprocess.run(probe, cwd=REPO, capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def lmms_python() -> Path:
    """The python of a venv holding lmms-eval 0.7.3 and this project (built once if needed)."""
    given = os.environ.get(PYTHON_VARIABLE)
    if given:
        python = Path(given)
        assert _works(python), (
            f"${PYTHON_VARIABLE}={given} cannot import lmms_eval: see {ENV_SCRIPT}"
        )
        return python
    python = DEFAULT_VENV / "bin" / "python"
    if not _works(python):
        subprocess.run(["bash", str(ENV_SCRIPT), str(DEFAULT_VENV)], cwd=REPO, check=True)
    assert _works(python)
    return python


def _as_published(folder: Path) -> Path:
    """``folder`` as a run publishes it: its base's generation config (Qwen2.5-VL-Instruct's
    sampling values and repetition penalty 1.05), which the driver's final/ replaces with the
    evaluation's decoding (lmms-eval's chat classes let the checkpoint's config decide what
    they do not pass: its penalty would apply)."""
    config = GenerationConfig.from_pretrained(folder)
    config.update(**CHECKPOINT_DECODING)
    config.save_pretrained(folder)
    write_decoding(folder, Decoding())
    return folder


def _sft_tiny_model(built_dataset: Path, root: Path, epochs: int, **task) -> Path:
    """The tiny Qwen2.5-VL after a short SFT on the first evaluated test rows, as published."""
    return _as_published(
        train_sft(
            CTRateVQAArguments(
                dataset_name=str(built_dataset),
                dataset_train_split="test",
                dataset_limit=ROWS,
                sft_target="finding",
                trainable_scope="full",
                **task,
            ),
            SFTConfig(
                output_dir=str(root / "sft"),
                num_train_epochs=epochs,
                per_device_train_batch_size=SFT_BATCH_SIZE,
                learning_rate=SFT_LEARNING_RATE,
                lr_scheduler_type="cosine",
                warmup_steps=0.1,
                assistant_only_loss=True,
                max_length=None,
                bf16=False,
                use_cpu=True,
                activation_checkpointing=False,
                report_to="none",
                save_strategy="no",
                dataloader_num_workers=0,
                seed=0,
            ),
            ModelConfig(model_name_or_path=str(build_tiny_model(root / "tiny"))),
        )
    )


@pytest.fixture(scope="module")
def answering_model(built_dataset: Path, tmp_path_factory) -> Path:
    """The tiny model SFT-trained on classification rows: it answers in tags."""
    root = tmp_path_factory.mktemp("lmms-harness-model")
    return _sft_tiny_model(built_dataset, root, SFT_EPOCHS)


@pytest.fixture(scope="module")
def grounding_model(built_dataset: Path, tmp_path_factory) -> Path:
    """The tiny model SFT-trained on grounding rows: it answers with a box and two points."""
    root = tmp_path_factory.mktemp("lmms-harness-grounding-model")
    return _sft_tiny_model(built_dataset, root, GROUNDING_SFT_EPOCHS, task=GROUNDING_TASK)


def _task_folder(built_dataset: Path, out: Path) -> Path:
    """The task folder as a user copies it, pointed at the built dataset folder (a local folder
    needs no token)."""
    folder = out / "ct_rate_vqa"
    shutil.copytree(TASK_DIR, folder)
    main_yaml = folder / "ct_rate_vqa.yaml"
    config = yaml.load(main_yaml.read_text(), Loader=yaml.BaseLoader)  # (tags as text)
    assert config["dataset_path"] == "ORG/CT-RATE-VQA" and "token" in config["dataset_kwargs"]
    text = main_yaml.read_text().replace(
        "dataset_path: ORG/CT-RATE-VQA", f"dataset_path: {built_dataset}"
    )
    text = text.replace("  token: true  # the dataset is gated (CC BY-NC-SA sources)\n", "  {}\n")
    main_yaml.write_text(text)
    config = yaml.load(main_yaml.read_text(), Loader=yaml.BaseLoader)
    assert config["dataset_path"] == str(built_dataset) and config["dataset_kwargs"] == {}
    # the grounding scores' resize bounds: the tiny model's processor's, as the folder tells a
    # user of another processor to set them
    utils = folder / "utils.py"
    text = utils.read_text()
    for name, value in (("MIN", MIN_PIXELS), ("MAX", MAX_PIXELS)):
        line = re.compile(rf"^GROUNDING_{name}_PIXELS = .*$", re.MULTILINE)
        assert len(line.findall(text)) == 1
        text = line.sub(f"GROUNDING_{name}_PIXELS = {value}", text)
    utils.write_text(text)
    return folder


def _run_harness(python: Path, model: Path, tasks: list[str], dataset: Path, out: Path) -> dict:
    """lmms-eval's results and logged samples of ``tasks`` for ``model``, by task name."""
    command = [
        str(python), "-m", "tests.lmms_harness",
        "--model", MODEL_ID,
        "--model_args",
        f"pretrained={model},device=cpu,min_pixels={MIN_PIXELS},max_pixels={MAX_PIXELS}",
        "--tasks", ",".join(tasks),
        "--include_path", str(_task_folder(dataset, out)),
        "--batch_size", str(BATCH_SIZE),
        "--limit", str(ROWS),
        "--log_samples",
        "--output_path", str(out / "results"),
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}  # nothing to fetch
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=HARNESS_TIMEOUT_S
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    found = list((out / "results").glob("*/*_results.json"))
    assert len(found) == 1, done.stdout[-3000:] + done.stderr[-5000:]
    (results_file,) = found
    results = json.loads(results_file.read_text())["results"]
    samples = {
        task: [
            json.loads(line)
            for line in next(results_file.parent.glob(f"*_samples_{task}.jsonl"))
            .read_text()
            .splitlines()
        ]
        for task in tasks
    }
    return {"results": results, "samples": samples}


@pytest.fixture(scope="module")
def harness_run(lmms_python, answering_model, built_dataset, tmp_path_factory) -> dict:
    """lmms-eval's results and logged samples for the three classification tasks."""
    out = tmp_path_factory.mktemp("lmms-harness")
    return _run_harness(lmms_python, answering_model, list(MODES), built_dataset, out)


@pytest.fixture(scope="module")
def grounding_run(lmms_python, grounding_model, built_dataset, tmp_path_factory) -> dict:
    """lmms-eval's results and logged samples for the grounding task."""
    out = tmp_path_factory.mktemp("lmms-harness-grounding")
    return _run_harness(lmms_python, grounding_model, [GROUNDING], built_dataset, out)


def _our_evaluation(
    model: Path,
    dataset: Path,
    config: str,
    mode: str,
    max_new_tokens: int,
    out: Path,
    extra: tuple[str, ...] = (),
):
    argv = [
        "--model", str(model), "--dataset", str(dataset), "--output_dir", str(out),
        "--config", config, "--mode", mode, "--limit", str(ROWS),
        "--max_new_tokens", str(max_new_tokens), "--batch_size", str(BATCH_SIZE), "--no-progress",
        *extra,
    ]  # fmt: skip
    assert evaluate_main(argv) == 0
    report = json.loads((out / "results.json").read_text())["modes"][mode]
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    return report, {row["id"]: row for row in rows}


def test_the_tasks_checked_are_the_folders_tasks():
    assert sorted(f"{task}.yaml" for task in [*MODES, GROUNDING]) == TASK_FILES


@pytest.mark.parametrize("task", list(MODES))
def test_harness_scores_as_our_evaluator(
    task, harness_run, answering_model, built_dataset, tmp_path
):
    config = load_task(f"{task}.yaml")
    assert config["lmms_eval_specific_kwargs"]["default"]["prompt_mode"] == MODES[task]
    generation = config["generation_kwargs"]
    assert generation["do_sample"] is False and generation["temperature"] == 0  # greedy, as ours
    ours, our_rows = _our_evaluation(
        answering_model, built_dataset, config["dataset_name"], MODES[task],
        generation["max_new_tokens"], tmp_path / "ours",
    )  # fmt: skip

    samples = harness_run["samples"][task]
    rows = load_dataset(str(built_dataset), config["dataset_name"], split=config["test_split"])
    assert len(samples) == min(ROWS, len(rows)) == ours["n"] > 1
    theirs = {s["accuracy"]["id"]: s for s in samples}
    assert set(theirs) == set(our_rows)  # the same rows
    for id_, row in our_rows.items():
        sample = theirs[id_]
        # the raw replies match (lmms-eval's huggingface class ignores the "</answer>" stop
        # string, as our evaluator; reasoning_tags: none keeps the <think> block)
        assert sample["filtered_resps"] == row["output"], id_
        assert sample["accuracy"]["prediction"] == row["answer"], id_
        assert sample["accuracy"]["parsed_by"] == row["parsed_by"], id_
        assert sample["accuracy"]["gold"] == row["gold"] == sample["target"]
    # not vacuous: the model answers in tags, and some answers are right
    answered = [row for row in our_rows.values() if row["parsed_by"] == "tags"]
    assert len(answered) >= len(samples) // 2, [row["output"] for row in our_rows.values()]
    assert any(row["correct"] for row in answered)
    assert len({row["answer"] for row in answered}) >= 2  # not one class for every row
    # the replies reason first (SFT target "finding"), so equal raw replies show that the
    # harness kept the <think> block (reasoning_tags: none)
    assert any("<think>" in row["output"] for row in answered)

    metrics = harness_run["results"][task]
    assert metrics["accuracy,none"] == pytest.approx(ours["accuracy_micro"])
    assert metrics["macro_accuracy,none"] == pytest.approx(ours["accuracy_macro"])
    assert metrics["validity_rate,none"] == pytest.approx(ours["validity_rate"])
    assert metrics["fallback_rate,none"] == pytest.approx(ours["fallback_rate"])


def test_harness_scores_grounding_as_our_evaluator(
    grounding_run, grounding_model, built_dataset, tmp_path
):
    config = load_task(f"{GROUNDING}.yaml")
    assert config["lmms_eval_specific_kwargs"]["default"]["prompt_mode"] == GROUNDING_MODE
    generation = config["generation_kwargs"]
    assert generation["do_sample"] is False and generation["temperature"] == 0  # greedy, as ours
    ours, our_rows = _our_evaluation(
        grounding_model, built_dataset, config["dataset_name"], GROUNDING_MODE,
        generation["max_new_tokens"], tmp_path / "ours", ("--sam-model", "none"),
    )  # fmt: skip
    scored = {
        row["id"]: row
        for row in pq.read_table(tmp_path / "ours" / "predictions.parquet").to_pylist()
    }
    assert set(scored) == set(our_rows)

    samples = grounding_run["samples"][GROUNDING]
    rows = load_dataset(str(built_dataset), config["dataset_name"], split=config["test_split"])
    assert len(samples) == min(ROWS, len(rows)) == ours["n"] > 1
    theirs = {s["iou"]["id"]: s for s in samples}
    assert set(theirs) == set(our_rows)  # the same rows
    for id_, row in scored.items():
        sample = theirs[id_]
        assert sample["filtered_resps"] == row["output"] == our_rows[id_]["output"], id_
        record = sample["iou"]
        assert record["status"] == row["status"], id_
        assert record["box"] == (json.loads(row["box"]) if row["box"] else None), id_
        assert record["points"] == (json.loads(row["points"]) if row["points"] else None), id_
        assert record["iou"] == pytest.approx(row["iou"], abs=1e-12), id_
        assert sample["point_dice"] == pytest.approx(row["point_dice"], abs=1e-12), id_
        assert sample["iou_50"] == float(row["iou_hit"]), id_
    # not vacuous: boxes were parsed, some overlap their lesion, the points score somewhere
    boxed = [row for row in scored.values() if row["box"] is not None]
    assert len(boxed) >= len(samples) // 2, [row["output"] for row in scored.values()]
    assert sum(row["iou"] > 0 for row in boxed) >= 2
    assert any(row["point_dice"] > 0 for row in scored.values())
    assert any("<think>" in row["output"] for row in boxed)  # the <think> block was kept

    metrics = grounding_run["results"][GROUNDING]
    assert metrics["iou,none"] == pytest.approx(ours["iou_mean"]) and ours["iou_mean"] > 0
    assert metrics["iou_50,none"] == pytest.approx(ours["iou_50"])
    assert metrics["point_dice,none"] == pytest.approx(ours["point_dice_mean"])
