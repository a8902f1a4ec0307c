"""Issue 20, class 3: publish only what the card declares, and nothing local.

- A dataset push sends the build's top-level files and the files of the configs its card
  declares; stale configs left in the folder stay local (and leave the repo).
- No pushed file names a local path: the writers of a run's final/ and of results.json record
  names, and publishing refuses a text file that names a local path. The test downloads EVERY
  pushed file from the test Hub and greps it for the local paths used.
- A model repo (and a Space) never goes up without its card.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import load_dataset
from huggingface_hub import snapshot_download
from trl import ModelConfig

from common.names import TRAINING_SUMMARY_NAME
from dataset_builder.cli import main as builder_main
from hub_cards.__main__ import main as hub_main
from hub_cards.dataset_card import REPO_FILES, write_dataset_card
from hub_cards.local_paths import local_path_in, local_roots, text_of
from hub_cards.model_card import RESEARCH_NOTICE, write_model_card
from hub_cards.publish import NOTICE_MARKER, PublishError, push_dataset, push_model
from model_training.configs import CTRateVQAArguments
from model_training.evaluation.evaluate import EvaluateArguments, evaluate
from model_training.final_model import assemble_final
from model_training.policy import stage_record, write_training_summary
from model_training.run_recipe import REPO_ROOT, parse_run
from model_training.run_summary import card_inputs, run_summary
from model_training.tiny_model import build_tiny_model

from .space_support import SPACE_DIR

DATASET_REPO, MODEL_REPO = "medreason/ct-rate-vqa", "medreason/tiny-run"
KEPT = ("zoom", "zoom_inspect")  # the configs of a `--configs zoom` rebuild


def _one_line(capsys: pytest.CaptureFixture, *names: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    for name in names:
        assert name in err, err
    return err


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture
def carded(tiny: Path, tmp_path: Path) -> Path:
    """A copy of the tiny checkpoint with its model card."""
    folder = Path(shutil.copytree(tiny, tmp_path / "model"))
    write_model_card(folder, {"base_model": "tiny"})
    return folder


# -- what goes up is what the card declares ---------------------------------------------------


def test_a_dataset_push_sends_only_the_configs_its_card_declares(
    local_hub, built_dataset, tmp_path
):
    """The probe: a rebuild with --configs zoom over a three-config build left plain/,
    grounding/ and plain_inspect/ in the folder, and push uploaded them."""
    folder = Path(shutil.copytree(built_dataset, tmp_path / "ct-rate-vqa",
                                  ignore=shutil.ignore_patterns(".build_cache")))  # fmt: skip
    assert push_dataset(folder, DATASET_REPO).left_out == []  # the full build: all of it
    manifest = json.loads((folder / "build_manifest.json").read_text())
    stale = sorted(c for c in manifest["configs"] if c not in KEPT)
    assert {"plain", "grounding", "plain_inspect"} <= set(stale)
    for key in ("configs", "dataset_info"):  # the card and manifest a zoom-only build writes
        manifest[key] = {c: v for c, v in manifest[key].items() if c in KEPT}
    (folder / "build_manifest.json").write_text(json.dumps(manifest, indent=1))
    write_dataset_card(folder, manifest)
    (folder / "my_notes.txt").write_text("the user's own file")

    report = push_dataset(folder, DATASET_REPO)
    pushed = set(local_hub.files(DATASET_REPO, repo_type="dataset")) - {".gitattributes"}
    assert pushed == set(REPO_FILES) | {
        p.relative_to(folder).as_posix() for c in KEPT for p in (folder / c).glob("*.parquet")
    }
    assert {d.split("/")[0] for d in report.deleted} == set(stale)  # gone from the repo too
    assert {f.split("/")[0] for f in report.left_out} == {*stale, "my_notes.txt"}
    line = report.left_out_line()
    assert line and all(f"{c}/" in line for c in stale) and "my_notes.txt" in line
    assert load_dataset(DATASET_REPO, "zoom")["test"].num_rows > 0


def test_a_card_declaring_a_config_without_files_is_refused(local_hub, built_dataset, tmp_path,
                                                            capsys):  # fmt: skip
    folder = Path(shutil.copytree(built_dataset, tmp_path / "ct-rate-vqa",
                                  ignore=shutil.ignore_patterns(".build_cache")))  # fmt: skip
    shutil.rmtree(folder / "plain")
    assert builder_main(["push", str(folder), "--repo-id", DATASET_REPO]) == 2
    _one_line(capsys, "README.md", "'plain'", "plain/train-*", "rebuild")
    assert not local_hub.repo_exists(DATASET_REPO, repo_type="dataset")


# -- nothing local ----------------------------------------------------------------------------


def test_what_counts_as_a_local_path(tmp_path):
    folder = tmp_path / "run" / "final"
    roots = local_roots(folder)
    named = [
        str(folder / "recipe.yaml"),
        f"output_dir: {tmp_path}/other-run",  # a sibling below a parent of the pushed folder
        f"--dataset_name={tmp_path.parent}/data",
        f"file://{tmp_path}/x",
        f"(from {Path.cwd()}/recipes/demo-cpu.yaml)",
        f"the folder {tmp_path}.",
    ]
    if len(Path.home().parts) > 2:  # /home/NAME, /Users/NAME (a one-part home: by existence)
        named.append(f'"{Path.home()}/.cache/huggingface/hub/models--org--m/snapshots/abc"')
    for text in named:
        assert local_path_in(text, roots), text
    assert local_path_in(f"model: {tmp_path}/gone/x", set())  # its first parts exist here
    normal = [
        "see https://hub.example/datasets/org/ct-rate-vqa and and/or 1/2, km/h, n/a",
        f"https://host{tmp_path}/x s3://bucket{tmp_path}",  # a URL, not a local path
        '{"/home": 1, "/tmp": 2, "/root": 3, "/usr": 4, "/": 5, "Ġ/work": 6}',  # a vocabulary
        "#!/usr/bin/env python; /etc/hosts, /dev/null, /proc/meminfo",  # system folders
        "/no-such-folder-here/at-all, /tmp/x, /home/nobody-here/data, <answer>x</answer>",
    ]
    for text in normal:
        assert local_path_in(text, roots) is None, text
    escaped = tmp_path / "escaped.json"  # a JSON writer escapes non-ASCII and may escape "/"
    escaped.write_text(json.dumps({"m": str(tmp_path / "zoë")}).replace("/", "\\/"))
    assert str(tmp_path) not in escaped.read_text()
    assert local_path_in(text_of(escaped), roots) == str(tmp_path / "zoë")


def test_a_run_published_with_absolute_paths_names_none(
    local_hub, tiny, built_dataset, tmp_path, tmp_path_factory
):
    """The probe: model_training.run with absolute model, dataset and output paths, then
    push-model: recipe.yaml, results.json (the evaluator's) and run_summary.json named them."""
    run, model, dataset = tmp_path / "abs-run", str(tiny), str(built_dataset.absolute())
    argv = ["--output_dir", str(run), "--model_name_or_path", model, "--dataset_name", dataset]
    plan = parse_run(argv)  # the default recipe: an absolute path in this checkout
    assert plan.recipe_path.is_absolute()
    previous, logs = model, {}
    for stage in ("sft", "grpo"):  # the stage folders as the stages leave them
        shutil.copytree(tiny, run / stage)
        args = CTRateVQAArguments(dataset_name=dataset)
        record = stage_record(
            stage, args, ModelConfig(model_name_or_path=previous), str(run / stage)
        )
        write_training_summary(run / stage, {"trainable_scope": "full"}, 1, [], **record)
        logs[stage] = json.loads((run / stage / TRAINING_SUMMARY_NAME).read_text())
        previous = str(run / stage)
    out = run / "eval" / "grpo"
    options = EvaluateArguments(model=str(run / "grpo"), dataset=dataset, output_dir=str(out),
                                mode="no-think", limit=1, max_new_tokens=4)  # fmt: skip
    evaluate(options)  # a standalone evaluation: the writer of results.json
    results = json.loads((out / "results.json").read_text())
    assert (results["model"], results["dataset"]) == ("grpo", built_dataset.name)
    summary = run_summary(plan, {"classification": {"grpo": results}}, logs)
    training, dataset_id = card_inputs(plan, logs)
    final = assemble_final(run / "final", run / "grpo", plan.recipe, str(plan.recipe_path), logs,
                           training, results, summary, dataset_id)  # fmt: skip
    push_model(final, MODEL_REPO)

    pushed = Path(snapshot_download(MODEL_REPO, local_dir=tmp_path / "downloaded"))
    files = [p for p in pushed.rglob("*") if p.is_file() and ".cache" not in p.parts]
    assert {"recipe.yaml", "results.json", "run_summary.json", "README.md"} <= {
        p.name for p in files
    }
    local = {str(tmp_path_factory.getbasetemp()), str(REPO_ROOT), str(Path.home()) + "/"}
    for path in files:
        content = path.read_bytes()
        for text in local:
            assert text.encode() not in content, (path.name, text)
    recipe = (pushed / "recipe.yaml").read_text()
    assert "from recipes/demo-cpu.yaml + command line" in recipe
    assert f"output_dir: {run.name}\n" in recipe
    assert f"dataset_name: {built_dataset.name}\n" in recipe
    summary = json.loads((pushed / "run_summary.json").read_text())
    assert (summary["recipe"], summary["output_dir"]) == ("recipes/demo-cpu.yaml", run.name)


def test_a_file_naming_a_local_path_is_refused(local_hub, carded, capsys):
    (carded / "notes.json").write_text(json.dumps({"trained_from": str(carded.parent / "sft")}))
    assert hub_main(["push-model", str(carded), "--repo-id", MODEL_REPO]) == 2
    _one_line(capsys, str(carded / "notes.json"), str(carded.parent / "sft"))
    assert not local_hub.repo_exists(MODEL_REPO)
    (carded / "notes.json").write_text(json.dumps({"trained_from": "sft"}))
    assert hub_main(["push-model", str(carded), "--repo-id", MODEL_REPO]) == 0


# -- never without its card -------------------------------------------------------------------


def test_a_model_without_its_card_is_refused(local_hub, carded, capsys):
    assert NOTICE_MARKER in RESEARCH_NOTICE.lower()
    card = (carded / "README.md").read_text()
    (carded / "README.md").unlink()
    result = subprocess.run(  # as the user runs it
        [sys.executable, "-m", "hub_cards", "push-model", str(carded), "--repo-id", MODEL_REPO],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "has no README.md" in result.stderr
    assert "python -m model_training.run" in result.stderr
    for wrong, said in (
        ("---\nlicense: apache-2.0\n---\n# A Trainer's card\n", "declares license 'apache-2.0'"),
        (card.replace(RESEARCH_NOTICE, "For everyone."), "research-only notice"),
    ):
        (carded / "README.md").write_text(wrong)
        with pytest.raises(PublishError, match=said):
            push_model(carded, MODEL_REPO)
    assert not local_hub.repo_exists(MODEL_REPO)


def test_a_space_without_its_card_is_refused(local_hub, tmp_path, capsys):
    space = Path(shutil.copytree(SPACE_DIR, tmp_path / "space",
                                 ignore=shutil.ignore_patterns("__pycache__")))  # fmt: skip
    readme = space / "README.md"
    readme.write_text(readme.read_text().replace("license: cc-by-nc-sa-4.0\n", ""))
    assert hub_main(["push-space", str(space), "--repo-id", "medreason/space"]) == 2
    _one_line(capsys, str(readme), "license")
    assert not local_hub.repo_exists("medreason/space", repo_type="space")
