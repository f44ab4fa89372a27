"""Shared set-up of the web app tests: the tiny 32x32 run of tests/fixtures/old_run, real photos
of tests/fixtures/real, a 9-frame driving video made from three of them, and servers on a free
port of 127.0.0.1 (never another address)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from posetransfer.app.config import AppConfig

# Before anything imports huggingface_hub (through gradio_client), which reads these at import:
# the test clients must not reach out either (the servers set the same for themselves).
for _key, _value in {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "SE_AVOID_STATS": "true",
}.items():
    os.environ.setdefault(_key, _value)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RUN = FIXTURES / "old_run" / "gen_run"
REAL = FIXTURES / "real"
PHOTO = REAL / "single_cam01_f050.jpg"  # 144x256 (W x H), one person
TARGET_PHOTO = REAL / "single_cam02_f030.jpg"
DRIVING = ["single_cam02_f030.jpg", "single_cam03_f060.jpg", "single_cam04_f070.jpg"]
MODEL_SIZE = (32, 32)


def small_config(tmp: Path, **changes: object) -> AppConfig:
    """Small limits so that the limit paths run fast: 1 MiB uploads, 6 video frames."""
    settings: dict[str, object] = {
        "port": 0,
        "device": "cpu",
        "temp_dir": str(tmp),
        "max_upload_mb": 1.0,
        "max_video_frames": 6,
        "batch_size": 4,
    }
    settings.update(changes)
    return AppConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def driving_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 9-frame 10 fps MP4: three real frames, each shown three times (256x144)."""
    pytest.importorskip("av")
    from posetransfer.infer.images import load_image
    from posetransfer.infer.video import VideoWriter

    path = tmp_path_factory.mktemp("driving") / "driving.mp4"
    with VideoWriter(path, 10) as writer:
        for name in DRIVING:
            frame = np.ascontiguousarray(load_image(REAL / name)[:256, :144])
            for _ in range(3):
                writer.write(frame)
    return path


@pytest.fixture(scope="module")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The app on a free port of 127.0.0.1, serving the tiny run (one per test module)."""
    pytest.importorskip("gradio")
    pytest.importorskip("mediapipe")
    from posetransfer.app.server import AppServer

    tmp = tmp_path_factory.mktemp("serve")
    server = AppServer(small_config(tmp), RUN)
    server.start()
    try:
        yield server
    finally:
        server.close()
    assert list(tmp.iterdir()) == [], "the server left files in its temporary folder"
