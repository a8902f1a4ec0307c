"""The Space's functions without a browser: uploads read and rendered exactly as the dataset
builder reads and renders them, bad uploads and options answered with one-line messages, the
model asked as the evaluator asks it, and ``push-space`` against the local test Hub."""

from __future__ import annotations

import importlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from huggingface_hub import HfApi
from PIL import Image

from dataset_builder.class_map import load_class_map
from dataset_builder.qa_rows import variant_row
from dataset_builder.volumes import load_case_volumes
from hub_cards.__main__ import main as hub_main
from model_training.evaluation.generation import generate_replies, load_model
from model_training.evaluation.sam import build_tiny_sam, load_segmenter
from model_training.grounding import format_answer, frame_for
from model_training.processor import load_processor
from model_training.tiny_model import build_tiny_model

from .conftest import LPS_AFFINE, write_nifti
from .decoding_support import argmax_reply, build_penalised_model
from .space_support import SPACE_DIR, case_with_rows, grounding_view, scan_input, space_app

CLASSES = list(load_class_map().classes)


@pytest.fixture(scope="module")
def case(synthetic_source):
    return case_with_rows(synthetic_source)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("space-model") / "tiny")


@pytest.fixture(scope="module")
def space(tiny_model) -> space_app.SpaceApp:
    return space_app.SpaceApp(space_app.SpaceArguments(model=str(tiny_model)))


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_scan_is_read_as_the_builder_reads_it(case):
    spec, _ = case
    volumes = load_case_volumes(spec)
    alone = scan_input.load_scan(spec.ct_path)
    both = scan_input.load_scan(spec.ct_path, spec.mask_path)
    assert alone.ct.dtype == volumes.ct.dtype and np.array_equal(alone.ct, volumes.ct)
    assert np.array_equal(both.ct, volumes.ct) and np.array_equal(both.masks, volumes.masks)
    assert alone.masks is None and both.masks.shape[0] == volumes.masks.shape[0]


def test_rendering_and_question_equal_the_builders_rows(case):
    spec, rows = case
    scan = scan_input.load_scan(spec.ct_path, spec.mask_path)
    options = scan_input.window_options("lung")
    for row in rows:
        box = scan_input.finding_box(scan, row["finding_index"], row["slice_index"])
        assert list(box) == row["bbox"]
        rendered = scan_input.render(scan, row["slice_index"], box, options)
        for variant, column in (("zoom", "zoom_png"), ("plain", "plain_png")):
            png, question = scan_input.model_input(rendered, variant, CLASSES)
            assert png == row[column]
            assert question == variant_row(row, variant, CLASSES)["question"]


def test_a_png_slice_with_the_drawn_box_gives_the_datasets_zoom_image(case, tmp_path):
    _, rows = case
    row = rows[0]
    path = tmp_path / "slice.png"
    path.write_bytes(row["plain_png"])
    scan = scan_input.load_scan(path)
    x0, y0, x1, y1 = row["bbox"]
    box = scan_input.box_from_clicks((x1 - 1, y0), (x0, y1 - 1))  # two clicks, any order
    rendered = scan_input.render(scan, 0, box, scan_input.window_options("lung"))
    assert np.array_equal(_pixels(rendered.zoom_png), _pixels(row["zoom_png"]))
    assert np.array_equal(_pixels(rendered.plain_png), _pixels(row["plain_png"]))


@pytest.mark.parametrize("window", list(scan_input.WINDOWS))
def test_grey_levels_survive_the_builders_windowing(window):
    from dataset_builder.render import window_slice

    options = scan_input.window_options(window)
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    hu, opts = scan_input.image_as_hu(grey, options)
    assert np.array_equal(window_slice(hu.T, opts), grey)


def test_window_presets_change_the_view(case):
    spec, rows = case
    scan = scan_input.load_scan(spec.ct_path)
    k = rows[0]["slice_index"]
    lung = scan_input.slice_view(scan, k, scan_input.window_options("lung"))
    mediastinum = scan_input.slice_view(scan, k, scan_input.window_options("mediastinum"))
    assert np.array_equal(
        lung, np.asarray(Image.open(io.BytesIO(rows[0]["plain_png"])).convert("L"))
    )
    assert not np.array_equal(lung, mediastinum)


def _write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_bad_uploads_give_messages(space, case, tmp_path):
    spec, _ = case
    ct = nib.load(spec.ct_path)
    four_d = write_nifti(tmp_path / "4d.nii.gz", np.zeros((8, 8, 4, 2), np.int16), LPS_AFFINE)
    wrong = write_nifti(tmp_path / "mask.nii.gz", np.zeros((1, 16, 16, 4), np.uint8), np.eye(4))
    png = _write(tmp_path, "slice.png", case[1][0]["plain_png"])
    cases = {
        (_write(tmp_path, "empty.nii.gz", b""), None): "is empty (0 bytes)",
        (_write(tmp_path, "notes.nii.gz", b"hello, not a CT"), None): "not a NIfTI file",
        (str(four_d), None): "has 4 dimensions, expected 3",
        (str(spec.ct_path), str(wrong)): f"does not match CT shape {ct.shape}",
        (png, str(spec.mask_path)): "needs a NIfTI CT",
        (None, None): "no scan uploaded",
    }
    # issue 20: voxels that are not finite, in the CT alone, the CT of a pair, or the mask
    nan_ct = np.full((16, 16, 4), np.nan, np.float32)
    inf_ct = np.asarray(ct.dataobj, np.float32).copy()
    inf_ct[0, 0, 0] = np.inf
    nan_mask = np.asarray(nib.load(spec.mask_path).dataobj, np.float32).copy()
    nan_mask[0, :4, :4, 0] = np.nan  # np.rint(NaN) as an integer is no 0: it was a lesion
    for name, array in (("all_nan.nii.gz", nan_ct), ("one_inf.nii.gz", inf_ct)):
        cases[(str(write_nifti(tmp_path / name, array, ct.affine)), None)] = "not finite"
    inf_pair = str(tmp_path / "one_inf.nii.gz")
    cases[(inf_pair, str(spec.mask_path))] = "not finite"
    bad_mask = write_nifti(tmp_path / "nan_mask.nii.gz", nan_mask, np.eye(4))
    cases[(str(spec.ct_path), str(bad_mask))] = "not finite"
    for (ct_file, mask_file), expected in cases.items():
        scan, *_, status, picker, box, clicks = space.load(ct_file, mask_file, "lung")
        assert scan is None and picker is None, expected
        assert status.startswith("**Error:**") and expected in status and "\n" not in status


def test_choices_that_cannot_be_used_give_messages(space, case):
    spec, rows = case
    scan = scan_input.load_scan(spec.ct_path, spec.mask_path)
    choice = f"finding {rows[0]['finding_index']}: x"
    empty = next(
        k for k in range(scan.slices) if k not in scan.finding_slices(rows[0]["finding_index"])
    )
    box, status = space.move_slice(scan, choice, empty, "1,2,3,4")
    assert box == "" and "no lesion above the dataset's size threshold" in status
    for text in ("1,2,3", "5,5,5,9", "0,0,999,10", "a,b,c,d"):
        _, image, _, status = space.preview(scan, rows[0]["slice_index"], text, "lung", "zoom")
        assert image is None and status.startswith("**Error:** box")
    think, answer, reply, status = space.ask(None, 0, "", "lung", "zoom", "think")
    assert "upload a scan" in status and reply == ""


def test_the_page_flow_asks_the_model_as_the_evaluator_does(space, case, tiny_model):
    spec, rows = case
    row = rows[-1]
    scan, slider, finding, status, *_ = space.load(str(spec.ct_path), str(spec.mask_path), "lung")
    assert status.startswith("Loaded") and len(finding["choices"]) == 1 + scan.masks.shape[0]
    label = finding["choices"][1 + row["finding_index"]]
    slice_index, box, status = space.choose_finding(scan, label, row["slice_index"])
    assert (slice_index, box) == (row["slice_index"], ",".join(map(str, row["bbox"])))
    picker, shown, question, status = space.preview(scan, slice_index, box, "lung", "zoom")
    assert np.array_equal(np.asarray(shown.convert("RGB")), _pixels(row["zoom_png"]))
    assert question == variant_row(row, "zoom", CLASSES)["question"]
    model, processor = load_model(str(tiny_model))
    dataset_row = {"image": Image.open(io.BytesIO(row["zoom_png"])), "question": question}
    for mode in ("think", "no-think"):
        (expected,) = generate_replies(model, processor, [dataset_row], mode, 96)
        think, answer, reply, status = space.ask(scan, slice_index, box, "lung", "zoom", mode)
        assert status == "Done." and reply == expected and reply.strip()


def test_the_space_decodes_greedily_whatever_the_checkpoint_asks(case, tmp_path):
    """issue 18: generate applied the checkpoint's repetition penalty; the evaluator no longer
    does, and the Space's reply stays the evaluator's (a plain argmax)."""
    model_runner = importlib.import_module("model_runner")
    penalised = build_penalised_model(tmp_path / "tiny")
    row = case[1][-1]
    question = variant_row(row, "zoom", CLASSES)["question"]
    runner = model_runner.ModelRunner(str(penalised), 24)
    reply = runner.ask(row["zoom_png"], question, CLASSES, "no-think")
    model, processor = runner.load()
    assert model.generation_config.repetition_penalty != 1.0
    shown = {"image": Image.open(io.BytesIO(row["zoom_png"])), "question": question}
    expected = argmax_reply(model, processor, shown, "no-think", 24)
    assert reply.text == expected


def test_missing_demo_model_is_explained_on_the_page(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    space = space_app.SpaceApp(space_app.SpaceArguments())
    assert "python -m model_training.run" in space.model_problem
    *_, status = space.ask(object(), 0, "1,1,2,2", "lung", "zoom", "think")
    assert "python -m model_training.run" in status


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--port", "0"], "--port 0: give a port between 1 and 65535"),
        (["--max-new-tokens", "0"], "--max-new-tokens 0"),
        (["--model", "no/such/folder"], "--model: model no/such/folder does not exist"),
        (["--class-map", "missing.json"], "--class-map: class map missing.json cannot be read"),
        (["--host", " "], "--host is empty"),
    ],
)
def test_bad_options_are_refused_in_one_line(argv, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert space_app.main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and "Traceback" not in err


GRADIO_ENV = ("GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT")
SPACE_ENV = ("MEDREASON_MODEL", "SPACE_ID", *GRADIO_ENV)


@pytest.fixture
def no_space_env(monkeypatch):
    """None of the variables the Hub (or the user) sets for the Space."""
    for name in SPACE_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_address_follows_gradios_variables_unless_given(no_space_env):
    """issue 20: the app passed its own 127.0.0.1:7860 and so overrode the Hub's variables."""
    serving = importlib.import_module("serving")
    assert serving.serve_address(None, None) == ("127.0.0.1", 7860)  # Gradio's defaults
    no_space_env.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    no_space_env.setenv("GRADIO_SERVER_PORT", "7861")
    (args,) = space_app.parse_options(space_app.SpaceArguments, [], "app.py", None)
    assert serving.serve_address(args.host, args.port) == ("0.0.0.0", 7861)
    (args,) = space_app.parse_options(
        space_app.SpaceArguments, ["--host", "127.0.0.1", "--port", "9000"], "app.py", None
    )
    assert serving.serve_address(args.host, args.port) == ("127.0.0.1", 9000)


def test_model_from_command_line_environment_or_space_card(no_space_env, tiny_model, tmp_path):
    """--model, else MEDREASON_MODEL, else (on a Space: SPACE_ID) the card's first models:
    entry, else the local demo folder: a local run with no arguments reaches no Hub."""
    serving = importlib.import_module("serving")
    (tmp_path / "README.md").write_text("---\nsdk: gradio\nmodels:\n  - org/card-model\n---\n")
    choose = serving.choose_model
    assert choose(None, tmp_path) == serving.ModelChoice(serving.DEMO_MODEL, None)
    no_space_env.setenv("SPACE_ID", "org/space")
    card = choose(None, tmp_path)
    assert card.name == "org/card-model" and "models: entry" in card.source
    no_space_env.setenv("MEDREASON_MODEL", str(tiny_model))
    assert choose(None, tmp_path) == serving.ModelChoice(str(tiny_model), "MEDREASON_MODEL")
    assert choose("x/y", tmp_path) == serving.ModelChoice("x/y", "--model")
    no_space_env.delenv("SPACE_ID")
    space = space_app.SpaceApp(space_app.SpaceArguments())  # the page's model, from the env
    assert space.runner.model_name == str(tiny_model) and space.model_problem is None


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"GRADIO_SERVER_PORT": "abc"}, "GRADIO_SERVER_PORT='abc': give a port between 1 and"),
        ({"GRADIO_SERVER_PORT": "70000"}, "GRADIO_SERVER_PORT='70000'"),
        ({"GRADIO_SERVER_NAME": " "}, "GRADIO_SERVER_NAME is empty"),
        ({"MEDREASON_MODEL": ""}, "MEDREASON_MODEL is empty"),
        ({"MEDREASON_MODEL": "no/such/folder"}, "MEDREASON_MODEL: model no/such/folder does not"),
        # on a Space, the card's liyf001/MEDREASON-R1, absent from the test Hub
        ({"SPACE_ID": "org/space"}, "the models: entry of"),
    ],
)
def test_bad_space_settings_are_refused_in_one_line(env, expected, no_space_env, capsys, local_hub):
    for name, value in env.items():  # HF_ENDPOINT: the (empty) test Hub
        no_space_env.setenv(name, value)
    assert space_app.main([]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "front_matter", ["models: [./local/folder]", "models: {a: 1}", "models: [[x]]"]
)
def test_a_space_card_whose_models_is_no_hub_id_is_refused(front_matter, no_space_env, tmp_path):
    serving = importlib.import_module("serving")
    (tmp_path / "README.md").write_text(f"---\nsdk: gradio\n{front_matter}\n---\n")
    no_space_env.setenv("SPACE_ID", "org/space")
    with pytest.raises(serving.SpaceError, match="does not start with a Hub model id"):
        serving.choose_model(None, tmp_path)


def test_a_bad_gradio_port_is_refused_before_gradio_reads_it(tmp_path):
    """Gradio parses GRADIO_SERVER_PORT as it is imported (a ValueError traceback): the app
    checks it first, as users start it."""
    env = {**os.environ, "GRADIO_SERVER_PORT": "http"}
    done = subprocess.run(
        [sys.executable, str(SPACE_DIR / "app.py")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        "error: GRADIO_SERVER_PORT='http': give a port between 1 and 65535, or unset it\n"
    )


def test_unknown_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as stop:
        space_app.main(["--shared"])
    assert stop.value.code == 2
    assert "unrecognized argument(s) --shared" in capsys.readouterr().err


def test_push_space_publishes_the_app_and_the_packages_it_imports(local_hub, capsys):
    repo = "medreason/space"
    assert hub_main(["push-space", str(SPACE_DIR), "--repo-id", repo]) == 0
    files = local_hub.files(repo, repo_type="space")
    for name in ("app.py", "scan_input.py", "model_runner.py", "README.md", "requirements.txt"):
        assert files[name] == (SPACE_DIR / name).read_bytes()
    import dataset_builder

    volumes = Path(dataset_builder.__file__).parent / "volumes.py"
    assert files["dataset_builder/volumes.py"] == volumes.read_bytes()
    assert "dataset_builder/data/category_classes.json" in files
    assert not any("__pycache__" in f for f in files)
    info = HfApi().space_info(repo)
    assert info.sdk == "gradio" and info.cardData["license"] == "cc-by-nc-sa-4.0"
    assert hub_main(["push-space", str(SPACE_DIR), "--repo-id", repo]) == 0
    assert "unchanged" in capsys.readouterr().out


def test_push_space_refuses_a_folder_without_a_space_card(local_hub, tmp_path, capsys):
    (tmp_path / "app.py").write_text("print('hi')\n")
    (tmp_path / "README.md").write_text(json.dumps({"not": "front matter"}))
    assert hub_main(["push-space", str(tmp_path), "--repo-id", "medreason/bad"]) == 2
    err = capsys.readouterr().err
    assert "must declare sdk: gradio" in err and err.count("\n") == 1
    assert not local_hub.repo_exists("medreason/bad", repo_type="space")


def test_readme_front_matter_is_a_space_card():
    from huggingface_hub import metadata_load

    meta = metadata_load(SPACE_DIR / "README.md")
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    assert meta["license"] == "cc-by-nc-sa-4.0"
    assert "not for clinical" in (SPACE_DIR / "README.md").read_text().lower()


def test_grounding_asks_as_the_evaluator_asks_a_grounding_row(space, case, tiny_model):
    """The plain slice and the dataset's query for the sentence, under the grounding prompt:
    the reply equals the evaluator's for the same grounding row."""
    spec, rows = case
    row = rows[-1]
    scan, *_ = space.load(str(spec.ct_path), str(spec.mask_path), "lung")
    box = ",".join(map(str, row["bbox"]))
    sentence = row["finding"]
    model, processor = load_model(str(tiny_model))
    grounding_row = {"image": Image.open(io.BytesIO(row["plain_png"])),
                     "query": grounding_view.query_for(sentence),
                     "bbox": row["bbox"], "points": [], "mask": None}  # fmt: skip
    (expected,) = generate_replies(model, processor, [grounding_row], "think", 96)
    image, text, think, reply, status = space.ground(
        scan, row["slice_index"], box, "lung", sentence, "think"
    )
    assert status == "Done." and reply == expected
    assert np.asarray(image).shape[:2] == _pixels(row["plain_png"]).shape[:2]
    # the random tiny model writes no box: said so, and the slice is shown undrawn but for
    # the mask's box in green
    assert text.startswith("No box in the reply")
    _, _, _, _, status = space.ground(scan, row["slice_index"], box, "lung", "  ", "think")
    assert "type the report sentence" in status


def test_grounding_overlay_draws_the_answer_and_sams_mask(case, tmp_path):
    """A hand-written answer in the model-input frame comes back to the slice's pixels through
    the one frame conversion; SAM's mask is the evaluator's segmenter's."""
    spec, rows = case
    row = rows[-1]
    png = row["plain_png"]
    image = Image.open(io.BytesIO(png)).convert("RGB")
    processor = load_processor(build_tiny_model(tmp_path / "tiny"))
    frame = frame_for(processor, image.size)
    true_box = list(row["bbox"])
    cx, cy = (true_box[0] + true_box[2]) // 2, (true_box[1] + true_box[3]) // 2
    reply_text = "<think>here</think><answer>" + format_answer(
        frame.box_to_model(true_box), [frame.point_to_model([cx, cy])] * 2
    ) + "</answer>"  # fmt: skip
    parsed = grounding_view.parse_grounding(reply_text)
    box = frame.box_to_image(parsed.box)
    points = [frame.point_to_image(p) for p in parsed.points]
    segmenter = load_segmenter(str(build_tiny_sam(tmp_path / "sam")))
    (mask,) = segmenter.masks(image, [(box, points)])
    reply = grounding_view.GroundingReply(reply_text, "here", "ok", box, points, mask)
    drawn = np.asarray(grounding_view.overlay(png, reply, true_box))
    x0, y0 = round(box[0]), round(box[1])
    assert tuple(drawn[y0 + 1, x0]) in (grounding_view.BOX_COLOUR, grounding_view.TRUE_BOX_COLOUR)
    assert tuple(drawn[cy, cx]) == grounding_view.POINT_COLOUR
    text = grounding_view.summary(reply, true_box)
    assert "IoU with the mask's box 1.00" in text or "IoU with the mask's box 0.9" in text
    assert f"SAM mask: {int(mask.sum())} pixels" in text


def test_a_missing_sam_is_refused_at_start(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert space_app.main(["--sam-model", str(tmp_path / "no-sam")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --sam-model") and err.count("\n") == 1
