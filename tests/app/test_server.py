"""The web app as a server (posetransfer.app.server) on a free port of 127.0.0.1, driven through its
HTTP API with ``gradio_client``: the photo and video paths, malformed and oversized uploads,
paths a browser could name, a bounded load test, and that nothing leaves this machine."""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from posetransfer.app.poses import load_library, pose_to_text
from tests.app.conftest import MODEL_SIZE, PHOTO, RUN, TARGET_PHOTO

# Gradio 6.31's queue uses pandas options that pandas 3 deprecates (not ours to fix)
pytestmark = pytest.mark.filterwarnings("ignore:::gradio.queueing")

pytest.importorskip("gradio")
pytest.importorskip("mediapipe")
httpx = pytest.importorskip("httpx")
gradio_client = pytest.importorskip("gradio_client")

POSE = pose_to_text(next(p.pose for p in load_library() if p.name == "hand raised"))


@pytest.fixture(scope="module")
def client(app_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return gradio_client.Client(
        app_server.url,
        verbose=False,
        analytics_enabled=False,
        download_files=str(tmp_path_factory.mktemp("downloads")),
    )


def _size(path: str) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def test_the_page_is_served_on_loopback(app_server: Any) -> None:
    assert app_server.url.startswith("http://127.0.0.1:")
    page = httpx.get(app_server.url, timeout=30)
    assert page.status_code == 200
    config = httpx.get(app_server.url + "config", timeout=30).json()
    assert config["title"] == "posetransfer"
    assert config["max_file_size"] == 1024 * 1024
    assert config["analytics_enabled"] is False
    names = {d.get("api_name") for d in config["dependencies"]}
    assert {"repose", "target_pose", "animate"} <= names


def test_model_jobs_share_one_bounded_queue(app_server: Any) -> None:
    blocks = app_server.blocks
    assert blocks._queue.max_size == app_server.config.queue_size
    model = [
        fn for fn in blocks.fns.values() if fn.api_name in ("repose", "target_pose", "animate")
    ]
    assert len(model) == 3
    assert {fn.concurrency_id for fn in model} == {"model"}
    assert {fn.concurrency_limit for fn in model} == {1}


def test_photo_api(client: Any) -> None:
    result, flow, vis, message = client.predict(
        gradio_client.handle_file(str(PHOTO)), POSE, "regressor", True, api_name="/repose"
    )
    assert _size(result) == (144, 256)  # pasted into the photo (W x H)
    # served from the app's own files, copied into Gradio's cache atomically
    assert Path(result).name.startswith("result-") and Path(flow).name.startswith("flow-")
    assert _size(flow) == _size(vis) == (256, 256)  # the 32x32 frame, enlarged 8x
    assert message.startswith(f"{PHOTO.name}: re-posed with the regressor flow")
    result, *_ = client.predict(
        gradio_client.handle_file(str(PHOTO)), POSE, "regressor", False, api_name="/repose"
    )
    assert _size(result) == MODEL_SIZE


def test_target_pose_api(client: Any) -> None:
    text, canvas, table, message = client.predict(
        gradio_client.handle_file(str(TARGET_PHOTO)), "r_wrist", api_name="/target_pose"
    )
    points = json.loads(text)
    assert len(points) == 18 and sum(p is not None for p in points) >= 15
    assert _size(canvas) == (176, 256)
    assert [row[0] for row in table["data"]][:2] == ["nose", "neck"]
    assert message == f"target pose from {TARGET_PHOTO.name}"


def test_video_api(client: Any, driving_video: Path) -> None:
    from posetransfer.infer.video import video_info

    job = client.submit(
        gradio_client.handle_file(str(PHOTO)),
        gradio_client.handle_file(str(driving_video)),
        "regressor",
        True,
        1,
        api_name="/animate",
    )
    video, message = job.result(timeout=120)
    path = video["video"] if isinstance(video, dict) else video
    info = video_info(path)
    assert info.frame_count == 6 and (info.height, info.width) == (256, 2 * 144)
    assert "6 frames at 10 fps" in message and "cut to the first 6 of 9 frames" in message


def test_malformed_uploads_get_messages(client: Any, tmp_path: Path) -> None:
    handle = gradio_client.handle_file
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo\n" * 50)
    with pytest.raises(gradio_client.exceptions.AppError, match=r"notes\.jpg: not an image"):
        client.predict(handle(str(text)), POSE, "regressor", True, api_name="/repose")
    half = tmp_path / "half.jpg"
    half.write_bytes(PHOTO.read_bytes()[:2000])
    with pytest.raises(gradio_client.exceptions.AppError, match=r"half\.jpg"):
        client.predict(handle(str(half)), POSE, "regressor", True, api_name="/repose")
    with pytest.raises(gradio_client.exceptions.AppError, match="not valid JSON"):
        client.predict(handle(str(PHOTO)), "[[1, 2", "regressor", True, api_name="/repose")
    with pytest.raises(gradio_client.exceptions.AppError, match="flow must be"):
        client.predict(handle(str(PHOTO)), POSE, "optical", True, api_name="/repose")
    fake = tmp_path / "clip.mp4"
    fake.write_bytes(b"\x00not a video" * 100)
    with pytest.raises(gradio_client.exceptions.AppError, match=r"clip\.mp4: not a readable video"):
        client.predict(
            handle(str(PHOTO)), handle(str(fake)), "regressor", False, 1, api_name="/animate"
        )
    escaped = tmp_path / "a&b.jpg"  # messages are HTML to Gradio: names are escaped
    escaped.write_text("no")
    with pytest.raises(gradio_client.exceptions.AppError, match=r"a&amp;b\.jpg: not an image"):
        client.predict(handle(str(escaped)), POSE, "regressor", True, api_name="/repose")


def test_oversized_uploads_are_refused(app_server: Any, client: Any, tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    noise = np.random.default_rng(0).integers(0, 256, (800, 600, 3), dtype=np.uint8)
    Image.fromarray(noise).save(big)
    assert big.stat().st_size > 1024 * 1024
    with pytest.raises(ValueError, match="exceeds the maximum file size"):  # the client checks
        client.predict(
            gradio_client.handle_file(str(big)), POSE, "regressor", True, api_name="/repose"
        )
    with big.open("rb") as file:  # and so does the server, for clients that do not
        reply = httpx.post(
            app_server.url + "gradio_api/upload", files={"files": ("big.png", file)}, timeout=30
        )
    assert reply.status_code == 413 and "File size exceeded" in reply.text


def test_no_browser_path_opens_a_server_file(app_server: Any, tmp_path: Path) -> None:
    for target in ("/etc/passwd", RUN / "config.yaml", Path(__file__), Path.cwd() / "README.md"):
        reply = httpx.get(f"{app_server.url}gradio_api/file={target}", timeout=30)
        assert reply.status_code == 403, target
    # an API call naming a server file instead of uploading it is refused before any handler
    record = {"path": "/etc/passwd", "orig_name": "x.jpg", "meta": {"_type": "gradio.FileData"}}
    start = httpx.post(
        app_server.url + "gradio_api/call/repose",
        json={"data": [record, POSE, "regressor", True]},
        timeout=30,
    )
    assert start.status_code == 200, start.text
    event = start.json()["event_id"]
    stream = httpx.get(f"{app_server.url}gradio_api/call/repose/{event}", timeout=60).text
    assert "event: error" in stream and "root:" not in stream


def test_eight_concurrent_requests_all_succeed_in_bounded_memory(
    app_server: Any, client: Any
) -> None:
    handle = gradio_client.handle_file
    engine = app_server.engine
    engine.peak_active = 0
    for _ in range(2):  # warm-up: caches, first allocations
        client.predict(handle(str(PHOTO)), POSE, "regressor", True, api_name="/repose")
    baseline, peak = _rss_mb(), [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], _rss_mb())

    sampler = threading.Thread(target=sample)
    sampler.start()
    photos = [PHOTO] * 6 + [TARGET_PHOTO] * 2  # identical requests: identical pictures
    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(8) as pool:
            futures = [
                pool.submit(
                    client.predict, handle(str(p)), POSE, "regressor", True, api_name="/repose"
                )
                for p in photos
            ]
            results = [f.result(timeout=120) for f in futures]
    finally:
        done.set()
        sampler.join()
    elapsed = time.perf_counter() - start
    assert [_size(r[0]) for r in results] == [_size(str(p)) for p in photos]
    assert engine.peak_active == 1  # the queue ran them one at a time
    assert elapsed < 60
    assert peak[0] - baseline < 300, f"RSS grew from {baseline:.0f} to {peak[0]:.0f} MB"


def test_nothing_tried_to_leave_this_machine(app_server: Any) -> None:
    """Analytics, update checks and telemetry are off: the network guard refused nothing."""
    assert app_server.guard.refused == []
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
