"""The web app in headless Chromium (Debian's ``chromium`` and ``chromium-driver``, driven by
selenium): upload a real photo, pick a gallery pose, move a joint, re-pose, and check the result
is a picture of the photo's size and that the page loaded nothing from anywhere else.

Without Chromium or its driver the test fails with the install command, unless
``POSETRANSFER_SKIP_BROWSER_TESTS=1`` (then it is skipped). Two variables make the README's
screenshot with the same steps: ``POSETRANSFER_APP_SCREENSHOT=docs/images/app.png`` (where to
save it) and ``POSETRANSFER_APP_RUN=demo_out/runs/full`` (the run to serve; default: the tiny
test run).
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from posetransfer.app.config import AppConfig
from tests.app.conftest import PHOTO, RUN
from tests.browser import SKIP_ENV, find_chromium

# Gradio 6.31's queue uses pandas options that pandas 3 deprecates (not ours to fix)
pytestmark = pytest.mark.filterwarnings("ignore:::gradio.queueing")

pytest.importorskip("gradio")
pytest.importorskip("mediapipe")
httpx = pytest.importorskip("httpx")
webdriver = pytest.importorskip("selenium.webdriver")

DRIVER_ENV = "POSETRANSFER_CHROMEDRIVER"
TIMEOUT = 60


def _find_driver() -> str:
    for candidate in (os.environ.get(DRIVER_ENV), shutil.which("chromedriver")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"chromedriver not found and {SKIP_ENV}=1")
    pytest.fail(
        "chromedriver not found: the web app test drives headless Chromium with selenium. "
        "Install it (Debian/Ubuntu: `sudo apt-get install -y chromium chromium-driver`; "
        f"`make test` does this), point {DRIVER_ENV} at a driver, or set {SKIP_ENV}=1 to skip.",
        pytrace=False,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from posetransfer.app.server import AppServer

    tmp = tmp_path_factory.mktemp("serve")
    run = Path(os.environ.get("POSETRANSFER_APP_RUN") or RUN)
    config = AppConfig(port=0, device="cpu", temp_dir=str(tmp))  # the default limits
    with AppServer(config, run) as server:
        yield server
    assert list(tmp.iterdir()) == []


@pytest.fixture(scope="module")
def browser(server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium.webdriver.chrome.service import Service

    chromium, driver = find_chromium(), _find_driver()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tmp_path_factory.mktemp("profile")
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1500",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    browser = webdriver.Chrome(service=Service(driver), options=options)
    browser.set_page_load_timeout(TIMEOUT)
    try:
        yield browser
    finally:
        browser.quit()


def _wait(browser: Any, condition: Any, timeout: float = TIMEOUT) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout, poll_frequency=0.1).until(condition)


def _src(browser: Any, element_id: str) -> str | None:
    return browser.execute_script(
        f"const i = document.querySelector('#{element_id} img'); return i ? i.src : null"
    )


def _loaded_size(browser: Any, element_id: str) -> list[int] | None:
    return browser.execute_script(
        f"const i = document.querySelector('#{element_id} img');"
        "return i && i.complete && i.naturalWidth > 0 ? [i.naturalWidth, i.naturalHeight] : null"
    )


def test_upload_pick_a_pose_and_get_the_result(server: Any, browser: Any) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    browser.get(server.url)
    upload = _wait(browser, lambda b: b.find_element(By.CSS_SELECTOR, "#photo-source input"))
    upload.send_keys(str(PHOTO.resolve()))
    _wait(browser, lambda b: _loaded_size(b, "photo-source"))

    # a gallery pose replaces the target skeleton
    before = _src(browser, "pose-canvas")
    thumbs = browser.find_elements(By.CSS_SELECTOR, "#pose-gallery button.thumbnail-item")
    picked = next(t for t in thumbs if t.text.strip() == "hand raised")
    picked.click()
    _wait(browser, lambda b: _src(b, "pose-canvas") not in (None, before))

    # a click on the skeleton moves the selected joint (r_wrist) there
    canvas = browser.find_element(By.CSS_SELECTOR, "#pose-canvas img")
    moved_from = _src(browser, "pose-canvas")
    ActionChains(browser).move_to_element(canvas).click().perform()  # the picture's centre
    _wait(browser, lambda b: _src(b, "pose-canvas") != moved_from)
    browser.find_element(By.XPATH, "//button[contains(., 'Target pose as JSON')]").click()
    text = _wait(browser, lambda b: b.find_element(By.CSS_SELECTOR, "#pose-json textarea"))
    wrist = json.loads(text.get_attribute("value"))[4]
    assert abs(wrist[0] - 88) <= 3 and abs(wrist[1] - 128) <= 3  # the 176x256 canvas' centre

    browser.find_element(By.CSS_SELECTOR, "#repose-button").click()
    size = _wait(browser, lambda b: _loaded_size(b, "result-image"))
    assert size == [144, 256]  # pasted into the photo: its size (W x H)
    assert _wait(browser, lambda b: _loaded_size(b, "flow-image"))
    reply = httpx.get(_src(browser, "result-image"), timeout=30)
    with Image.open(io.BytesIO(reply.content)) as result:
        assert result.format == "PNG" and result.size == (144, 256) and result.mode == "RGB"
    status = browser.find_element(By.CSS_SELECTOR, "#photo-status").text
    assert status.startswith(f"{PHOTO.name}: re-posed")

    # everything the page loaded came from this server (fonts, scripts, pictures)
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(r => r.name)"
    )
    outside = [r for r in resources if not r.startswith(server.url.rstrip("/"))]
    assert outside == [] and len(resources) > 5

    screenshot = os.environ.get("POSETRANSFER_APP_SCREENSHOT")
    if screenshot:
        browser.execute_script("window.scrollTo(0, 0)")
        browser.find_element(By.XPATH, "//button[contains(., 'Target pose as JSON')]").click()
        browser.save_screenshot(screenshot)
