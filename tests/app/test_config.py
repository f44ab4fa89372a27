"""Tests for the app's settings and upload checks (posetransfer.app.config)."""

from __future__ import annotations

from pathlib import Path

import pytest

from posetransfer.app.config import (
    DEFAULT_RUN,
    AppConfig,
    AppInputError,
    check_upload,
    default_checkpoint,
    human_size,
)
from posetransfer.config import ConfigError


def test_defaults_are_the_safe_ones() -> None:
    cfg = AppConfig()
    assert cfg.host == "127.0.0.1" and cfg.is_local
    assert cfg.concurrency == 1 and cfg.queue_size >= 1
    assert cfg.max_upload_bytes == 50 * 1024 * 1024
    assert cfg.checkpoint is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"port": 65536}, "port must be in 0..65535"),
        ({"port": -1}, "port must be in 0..65535"),
        ({"host": " "}, "host must not be empty"),
        ({"flow": "optical"}, "flow must be"),
        ({"precision": "fp16"}, "precision must be 'fp32' or 'bf16'"),
        ({"max_upload_mb": 0}, "max_upload_mb must be > 0"),
        ({"max_video_frames": 0}, "max_video_frames must be >= 1"),
        ({"concurrency": 0}, "concurrency must be >= 1"),
        ({"queue_size": 0}, "queue_size must be >= 1"),
        ({"keep_minutes": -5}, "keep_minutes must be > 0"),
    ],
)
def test_bad_settings_are_config_errors(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AppConfig(**changes)


@pytest.mark.parametrize(
    ("host", "local"),
    [("127.0.0.1", True), ("127.0.0.5", True), ("localhost", True), ("::1", True),
     ("0.0.0.0", False), ("192.0.2.7", False)],
)  # fmt: skip
def test_is_local(host: str, local: bool) -> None:
    assert AppConfig(host=host).is_local is local


def test_default_checkpoint_is_the_demo_run_only_when_it_holds_a_run(tmp_path: Path) -> None:
    assert default_checkpoint(tmp_path) is None
    work = tmp_path / "demo_out" / "work" / "runs" / "full"  # where the demo trains it
    work.mkdir(parents=True)
    assert default_checkpoint(tmp_path) is None  # an empty folder is not a run
    (work / "config.yaml").write_text("{}\n")
    assert default_checkpoint(tmp_path) == work
    run = tmp_path / DEFAULT_RUN
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("{}\n")
    assert default_checkpoint(tmp_path) == run  # demo_out/runs/full first


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, "0 bytes"), (1023, "1023 bytes"), (1536, "1.5 KiB"), (50 * 2**20, "50 MiB"),
     (int(2.25 * 2**20), "2.25 MiB")],
)  # fmt: skip
def test_human_size(count: int, text: str) -> None:
    assert human_size(count) == text


def test_check_upload(tmp_path: Path) -> None:
    file = tmp_path / "photo.jpg"
    file.write_bytes(b"x" * 1000)
    assert check_upload(file, "photo", 1000) == file
    with pytest.raises(AppInputError, match="photo is 1000 bytes; this server accepts at most 999"):
        check_upload(file, "photo", 999)
    with pytest.raises(AppInputError, match="photo upload is missing"):
        check_upload(tmp_path / "gone.jpg", "photo", 1000)
    with pytest.raises(AppInputError, match="photo upload is missing"):
        check_upload(tmp_path, "photo", 1000)
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(AppInputError, match="empty file"):
        check_upload(tmp_path / "empty.jpg", "photo", 1000)
