"""The Space in a real browser: ``python space/app.py`` on 127.0.0.1 driven by headless Chromium
(Selenium): upload a synthetic CT and its mask, pick a finding and its slice, ask the model and
find on the page the reply the same model gives in-process; then a bad upload and its message.
Skips (saying why) only when Chromium or its driver is not installed."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from dataset_builder.class_map import load_class_map
from dataset_builder.qa_rows import variant_row
from model_training.evaluation.generation import generate_replies, load_model
from model_training.tiny_model import build_tiny_model

from .hub_server import free_port
from .space_support import SPACE_DIR, case_with_rows

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
STARTUP_WAIT_S = 180  # imports of torch + transformers + gradio on a busy 2-core machine
ACTION_WAIT_S = 120  # model load and generation on CPU


def _serve(model: Path, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "NO_PROXY": "127.0.0.1,localhost"}
    command = [
        sys.executable,
        str(SPACE_DIR / "app.py"),
        "--model",
        str(model),
        "--port",
        str(port),
    ]
    return subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _wait_until_up(url: str, server: subprocess.Popen, log: Path) -> None:
    from selenium.webdriver.support.wait import WebDriverWait

    def up(_) -> bool:
        assert server.poll() is None, f"the app exited: {log.read_text()[-2000:]}"
        try:
            return urllib.request.urlopen(url, timeout=5).status == 200
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
def test_upload_choose_ask_and_a_bad_upload_in_the_browser(synthetic_source, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.wait import WebDriverWait

    spec, rows = case_with_rows(synthetic_source)
    row = rows[-1]
    classes = list(load_class_map().classes)
    model_dir = build_tiny_model(tmp_path / "tiny")
    model, processor = load_model(str(model_dir))
    question = variant_row(row, "zoom", classes)["question"]
    image = Image.open(io.BytesIO(row["zoom_png"]))
    (expected,) = generate_replies(
        model, processor, [{"image": image, "question": question}], "think", 96
    )
    assert expected.strip()

    port, log = free_port(), tmp_path / "app.log"
    server = _serve(model_dir, port, log)
    driver = None
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_until_up(url, server, log)
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
        shot = _screenshot(driver, tmp_path, "space_answer.png")
        assert Image.open(shot).size[0] > 0

        bad = tmp_path / "not_a_ct.nii.gz"
        bad.write_bytes(b"this is not a CT volume")
        driver.find_element(By.CSS_SELECTOR, "#mask-file button[aria-label='Clear']").click()
        driver.find_element(By.CSS_SELECTOR, "#scan-file button[aria-label='Clear']").click()
        driver.find_element(By.CSS_SELECTOR, "#scan-file input[type=file]").send_keys(str(bad))
        wait.until(lambda d: "Error" in text_of("status"))
        assert "not a NIfTI file" in text_of("status")
        _screenshot(driver, tmp_path, "space_bad_upload.png")
        assert server.poll() is None  # the app keeps running
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=30)
