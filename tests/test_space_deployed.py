"""The Space as the Hub runs it, in a real browser.

A tiny model goes up to the local test Hub; ``space/``, its card's ``models:`` entry set to that
repo, goes up with ``push-space``; ``snapshot_download`` brings the Space repo into a fresh
folder, and it starts as the Hub starts a Space: ``python app.py`` in that folder, no arguments,
``GRADIO_SERVER_NAME=0.0.0.0``, ``GRADIO_SERVER_PORT``, ``SPACE_ID`` and ``SYSTEM=spaces`` in the
environment, a fresh ``HF_HOME`` and no other model setting. Headless Chromium (Selenium), on
this machine's non-loopback address, uploads a synthetic CT and its mask, picks a finding and its
slice, asks the model and finds on the page the reply the same model gives in-process; then
uploads an all-NaN CT and reads the refusal. Skips (saying why) only when Chromium or its driver
is not installed.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import metadata_load, metadata_save, snapshot_download
from PIL import Image

from dataset_builder.class_map import load_class_map
from dataset_builder.qa_rows import variant_row
from hub_cards.model_card import write_model_card
from hub_cards.publish import push_model, push_space
from model_training.evaluation.generation import generate_replies, load_model
from model_training.tiny_model import build_tiny_model

from .conftest import LPS_AFFINE, write_nifti
from .hub_server import free_port
from .space_support import SPACE_DIR, case_with_rows

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
STARTUP_WAIT_S = 180  # imports of torch + transformers + gradio on a busy 2-core machine
ACTION_WAIT_S = 120  # model download, load and generation on CPU
MODEL_REPO, SPACE_REPO = "medreason/space-model", "medreason/chest-ct-space"
MODEL_SETTINGS = ("MEDREASON_MODEL",)  # the Space's own model setting: not set here


def _non_loopback_address() -> str | None:
    """This machine's address on its default route (no packet is sent), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only the route is looked up
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def _deploy(tmp_path: Path) -> tuple[Path, Path]:
    """(the tiny model folder, the Space as downloaded from the test Hub)."""
    model_dir = build_tiny_model(tmp_path / "tiny")
    write_model_card(model_dir, {"base_model": "tiny-qwen2.5-vl"})  # license and notice
    push_model(model_dir, MODEL_REPO)
    source = tmp_path / "space-source"
    shutil.copytree(SPACE_DIR, source, ignore=shutil.ignore_patterns("__pycache__"))
    card = metadata_load(source / "README.md")
    card["models"] = [MODEL_REPO]
    metadata_save(source / "README.md", card)
    push_space(source, SPACE_REPO)
    deployed = Path(
        snapshot_download(SPACE_REPO, repo_type="space", local_dir=tmp_path / "deployed")
    )
    return model_dir, deployed


def _serve_as_spaces_do(folder: Path, port: int, hf_home: Path, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in MODEL_SETTINGS}
    env.update(
        GRADIO_SERVER_NAME="0.0.0.0",
        GRADIO_SERVER_PORT=str(port),
        SPACE_ID=SPACE_REPO,
        SYSTEM="spaces",
        HF_HOME=str(hf_home),  # HF_ENDPOINT: the test Hub (conftest)
        PYTHONUNBUFFERED="1",
        NO_PROXY="*",
    )
    return subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=folder,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def _wait_until_up(url: str, server: subprocess.Popen, log: Path) -> None:
    from selenium.webdriver.support.wait import WebDriverWait

    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy

    def up(_) -> bool:
        assert server.poll() is None, f"the app exited: {log.read_text()[-2000:]}"
        try:
            return direct.open(url, timeout=5).status == 200
        except OSError:
            return False

    WebDriverWait(None, STARTUP_WAIT_S, poll_frequency=1).until(up)


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--no-proxy-server",
        "--window-size=1400,2600",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


def _screenshot(driver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    driver.save_screenshot(str(path))
    if os.environ.get("SPACE_SCREENSHOT_DIR"):
        target = Path(os.environ["SPACE_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / name)
    return path


@pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="no headless browser: apt-get install chromium chromium-driver",
)
def test_the_pushed_space_starts_as_the_hub_starts_it_and_answers(
    local_hub, synthetic_source, tmp_path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.wait import WebDriverWait

    spec, rows = case_with_rows(synthetic_source)
    row = rows[-1]
    classes = list(load_class_map().classes)
    model_dir, deployed = _deploy(tmp_path)
    assert {"app.py", "serving.py", "common", "model_training"} <= {
        p.name for p in deployed.iterdir()
    }
    model, processor = load_model(str(model_dir))
    question = variant_row(row, "zoom", classes)["question"]
    image = Image.open(io.BytesIO(row["zoom_png"]))
    (expected,) = generate_replies(
        model, processor, [{"image": image, "question": question}], "think", 96
    )
    assert expected.strip()

    port, log, hf_home = free_port("0.0.0.0"), tmp_path / "app.log", tmp_path / "hf-home"
    server = _serve_as_spaces_do(deployed, port, hf_home, log)
    driver = None
    try:
        # reached on this machine's network address: the app bound GRADIO_SERVER_NAME 0.0.0.0
        address = _non_loopback_address()
        url = f"http://{address or '127.0.0.1'}:{port}/"
        _wait_until_up(url, server, log)
        printed = log.read_text()
        assert f"0.0.0.0:{port}" in printed, printed[-2000:]
        assert f"model: {MODEL_REPO} (the models: entry of" in printed, printed[-2000:]
        driver = _browser()
        driver.get(url)
        wait = WebDriverWait(driver, ACTION_WAIT_S)

        def text_of(elem_id: str) -> str:
            return driver.find_element(By.ID, elem_id).text

        def value_of(elem_id: str) -> str:
            return driver.find_element(
                By.CSS_SELECTOR, f"#{elem_id} textarea, #{elem_id} input"
            ).get_attribute("value")

        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#scan-file input[type=file]")))
        assert not driver.find_elements(By.ID, "model-problem")
        driver.find_element(By.CSS_SELECTOR, "#scan-file input[type=file]").send_keys(
            str(spec.ct_path)
        )
        wait.until(lambda d: "Loaded" in text_of("status"))
        driver.find_element(By.CSS_SELECTOR, "#mask-file input[type=file]").send_keys(
            str(spec.mask_path)
        )
        wait.until(lambda d: "finding(s)" in text_of("status"))

        slider_number = driver.find_element(By.CSS_SELECTOR, "#slice input[type=number]")
        slider_number.clear()
        slider_number.send_keys(str(row["slice_index"]))
        driver.find_element(By.CSS_SELECTOR, "#finding input").click()
        option = wait.until(
            ec.element_to_be_clickable(
                (By.XPATH, f"//li[contains(., 'finding {row['finding_index']}:')]")
            )
        )
        option.click()
        bbox = ",".join(map(str, row["bbox"]))
        wait.until(lambda d: value_of("box") == bbox and value_of("question") == question)
        assert slider_number.get_attribute("value") == str(row["slice_index"])
        assert "Ready" in text_of("status")

        driver.find_element(By.ID, "ask").click()
        wait.until(lambda d: value_of("reply") != "")
        assert value_of("reply") == expected
        assert "Done." in text_of("status") and value_of("answer")
        assert (hf_home / "hub" / "models--medreason--space-model").is_dir()  # from the Hub
        shot = _screenshot(driver, tmp_path, "space_answer.png")
        assert Image.open(shot).size[0] > 0

        nan_ct = np.full((16, 16, 4), np.nan, dtype=np.float32)
        bad = write_nifti(tmp_path / "all_nan.nii.gz", nan_ct, LPS_AFFINE)
        driver.find_element(By.CSS_SELECTOR, "#mask-file button[aria-label='Clear']").click()
        driver.find_element(By.CSS_SELECTOR, "#scan-file button[aria-label='Clear']").click()
        driver.find_element(By.CSS_SELECTOR, "#scan-file input[type=file]").send_keys(str(bad))
        wait.until(lambda d: bad.name in text_of("status"))  # not the Clear's message
        assert "Error" in text_of("status") and "not finite (NaN" in text_of("status")
        _screenshot(driver, tmp_path, "space_bad_upload.png")
        assert server.poll() is None  # the app keeps running
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=30)
