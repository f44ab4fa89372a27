"""Tests for posetransfer.infer.video: reading frames with their metadata, atomic MP4 writing."""

from __future__ import annotations

import builtins
import wave
from pathlib import Path

import numpy as np
import pytest

from posetransfer.infer.video import (
    VideoBackendMissingError,
    VideoInputError,
    VideoWriter,
    iter_frames,
    video_info,
)

av = pytest.importorskip("av", reason="the video extra (PyAV) is not installed")


def _frames(count: int, height: int = 48, width: int = 64) -> list[np.ndarray]:
    """Smooth frames with an 8x8 block that moves 2 pixels right per frame (identifies order)."""
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 96)], -1)
    frames = []
    for i in range(count):
        frame = base.astype(np.uint8)
        frame[8:16, 2 * i : 2 * i + 8] = 255
        frames.append(frame)
    return frames


def _write(path: Path, frames: list[np.ndarray], fps: float = 10.0, **kwargs) -> Path:
    with VideoWriter(path, fps, **kwargs) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ------------------------------------------------------------------------------ round trip


def test_round_trip_metadata_and_frames(tmp_path: Path) -> None:
    frames = _frames(12)
    path = _write(tmp_path / "clip.mp4", frames, fps=12.5, crf=0)
    info = video_info(path)
    assert (info.fps, info.frame_count, info.width, info.height) == (12.5, 12, 64, 48)
    assert info.duration == pytest.approx(12 / 12.5)
    assert (info.codec, info.rotation) == ("h264", 0)
    decoded = list(iter_frames(path))
    assert [i for i, _ in decoded] == list(range(12))
    for i, frame in decoded:
        assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
        errors = [np.abs(frame.astype(int) - f).mean() for f in frames]
        assert errors[i] < 2.0
        assert int(np.argmin(errors)) == i  # the frames come back in order


def test_output_is_browser_playable_h264(tmp_path: Path) -> None:
    path = _write(tmp_path / "clip.mp4", _frames(5))
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
    data = path.read_bytes()
    assert 0 <= data.find(b"moov") < data.find(b"mdat")  # faststart: index before the media


def test_odd_size_is_padded_to_even_by_repeating_edges(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    # Gray blocks: yuv420p keeps luma at full resolution, so at crf 0 only rounding is lost.
    gray = np.repeat(np.repeat(rng.integers(16, 236, (6, 8), dtype=np.uint8), 6, 0), 6, 1)
    frame = np.repeat(gray[:35, :45, None], 3, axis=2)  # 35 x 45: both odd
    path = _write(tmp_path / "odd.mp4", [frame] * 3, crf=0)
    info = video_info(path)
    assert (info.height, info.width) == (36, 46)
    _, decoded = next(iter_frames(path))
    assert np.abs(decoded[:35, :45].astype(int) - frame).max() <= 2
    assert np.abs(decoded[35, :45].astype(int) - frame[34]).max() <= 2  # bottom row repeated
    assert np.abs(decoded[:35, 45].astype(int) - frame[:, 44]).max() <= 2  # right column


def test_crf_trades_size_for_quality(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(4)]
    sizes, errors = [], []
    for crf in (0, 40):
        path = _write(tmp_path / f"crf{crf}.mp4", frames, crf=crf, preset="ultrafast")
        sizes.append(path.stat().st_size)
        errors.append(np.abs(next(iter_frames(path))[1].astype(int) - frames[0]).mean())
    assert sizes[0] > 2 * sizes[1]
    assert errors[0] < errors[1]


def test_every_and_max_frames(tmp_path: Path) -> None:
    path = _write(tmp_path / "clip.mp4", _frames(10))
    assert [i for i, _ in iter_frames(path, every=3)] == [0, 3, 6, 9]
    assert [i for i, _ in iter_frames(path, every=3, max_frames=2)] == [0, 3]
    assert [i for i, _ in iter_frames(path, max_frames=50)] == list(range(10))


def test_ntsc_rate_is_kept(tmp_path: Path) -> None:
    path = _write(tmp_path / "ntsc.mp4", _frames(6), fps=30000 / 1001)
    assert video_info(path).fps == pytest.approx(30000 / 1001, rel=1e-9)


@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_rotation_metadata_is_applied_as_ffmpeg_does(tmp_path: Path, degrees: int) -> None:
    # A phone video stores frames sideways plus a display rotation; the ffmpeg command shows
    # the stored frame turned counter-clockwise by `degrees` (checked with its CLI: a red
    # top-left corner lands bottom-left for 90, top-right for -90).
    stored = np.zeros((32, 48, 3), np.uint8)
    stored[:8, :8] = (255, 0, 0)
    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        stream.set_display_rotation(degrees)
        for _ in range(2):
            for packet in stream.encode(av.VideoFrame.from_ndarray(stored, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    info = video_info(path)
    expected_shape = (32, 48) if degrees == 180 else (48, 32)
    assert (info.height, info.width) == expected_shape
    _, frame = next(iter_frames(path))
    assert frame.shape[:2] == expected_shape
    red = frame[..., 0] > 128
    rows, cols = np.nonzero(red)
    bottom, right = rows.mean() > frame.shape[0] / 2, cols.mean() > frame.shape[1] / 2
    assert (bottom, right) == {90: (True, False), -90: (False, True), 180: (True, True)}[degrees]


# ------------------------------------------------------------------------------ atomic writes


def test_exception_inside_the_block_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="boom"), VideoWriter(target, 10) as writer:
        for frame in _frames(4):
            writer.write(frame)
        raise RuntimeError("boom")
    assert not target.exists()
    assert _leftovers(tmp_path) == []


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = _write(tmp_path / "out.mp4", _frames(3))
    before = target.read_bytes()
    with pytest.raises(KeyboardInterrupt), VideoWriter(target, 10) as writer:
        writer.write(_frames(1)[0])
        raise KeyboardInterrupt
    assert target.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_size_change_mid_stream_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    frames = [*_frames(2), _frames(1)[0][:, :62]]
    with (
        pytest.raises(ValueError, match=r"frame 2 of .*out\.mp4 is 48x62"),
        VideoWriter(target, 10) as writer,
    ):
        for frame in frames:
            writer.write(frame)
    assert not target.exists() and _leftovers(tmp_path) == []


def test_declared_size_is_enforced(tmp_path: Path) -> None:
    with (
        pytest.raises(ValueError, match=r"frame 0 .* is 48x64"),
        VideoWriter(tmp_path / "a.mp4", 10, size=(64, 48)) as writer,
    ):
        writer.write(_frames(1)[0])
    assert list(tmp_path.iterdir()) == []


def test_no_frames_written_is_an_error(tmp_path: Path) -> None:
    with (
        pytest.raises(ValueError, match="no frame was written"),
        VideoWriter(tmp_path / "e.mp4", 5),
    ):
        pass
    assert list(tmp_path.iterdir()) == []


def test_writer_argument_errors(tmp_path: Path) -> None:
    path = tmp_path / "x.mp4"
    for fps in (0, -1, float("nan"), float("inf"), True, "25"):
        with pytest.raises(ValueError, match="fps"):
            VideoWriter(path, fps)  # type: ignore[arg-type]
    for size in ((0, 4), (4,), (4.0, 4), "44"):
        with pytest.raises(ValueError, match="size"):
            VideoWriter(path, 10, size=size)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="crf"):
        VideoWriter(path, 10, crf=52)
    with pytest.raises(ValueError, match="preset"):
        VideoWriter(path, 10, preset="turbo")
    writer = VideoWriter(path, 10)
    with pytest.raises(RuntimeError, match="with block"):
        writer.write(_frames(1)[0])
    with pytest.raises(ValueError, match="uint8"), VideoWriter(path, 10) as open_writer:
        open_writer.write(_frames(1)[0].astype(np.float32))
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ reading errors


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(VideoInputError, match=r"nope\.mp4: no such video file"):
        video_info(tmp_path / "nope.mp4")
    with pytest.raises(VideoInputError, match="no such video file"):
        next(iter_frames(tmp_path / "nope.mp4"))


def test_not_a_video(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("these are not frames\n" * 20)
    with pytest.raises(VideoInputError, match=r"notes\.mp4: not a readable video"):
        video_info(text)
    with pytest.raises(VideoInputError, match="not a file"):
        video_info(tmp_path)


def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "sound.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(np.zeros(800, np.int16).tobytes())
    with pytest.raises(VideoInputError, match=r"sound\.wav: no video stream \(only audio\)"):
        video_info(path)


@pytest.mark.parametrize(("fmt", "codec"), [("avi", "mpeg4"), ("mp4", "libx264")])
def test_zero_frame_video(tmp_path: Path, fmt: str, codec: str) -> None:
    path = tmp_path / f"empty.{fmt}"
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        container.start_encoding()
    with pytest.raises(VideoInputError, match=r"zero frames|has no frames"):
        video_info(path)
    with pytest.raises(VideoInputError, match=r"zero frames|has no frames"):
        list(iter_frames(path))


def test_video_that_changes_size_mid_stream(tmp_path: Path) -> None:
    # MPEG-TS streams concatenate byte-wise: 3 frames of 32x48, then 3 of 64x48.
    parts = []
    for height in (32, 64):
        part = tmp_path / f"{height}.ts"
        with av.open(str(part), "w", format="mpegts") as container:
            stream = container.add_stream("libx264", rate=10)
            stream.width, stream.height, stream.pix_fmt = 48, height, "yuv420p"
            for frame in _frames(3, height, 48):
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        parts.append(part.read_bytes())
    mixed = tmp_path / "mixed.ts"
    mixed.write_bytes(b"".join(parts))
    assert video_info(mixed).frame_count == 6  # counted from packets: TS records no count
    with pytest.raises(VideoInputError, match=r"mixed\.ts: frame 3 is 64x48 .* started at 32x48"):
        list(iter_frames(mixed, every=5))


def test_truncated_video_names_the_failing_frame(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(20)]
    data = _write(tmp_path / "full.mp4", frames, preset="ultrafast").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoInputError, match=r"cut\.mp4: decoding failed at frame \d+"):
        list(iter_frames(cut))


def test_bad_every_and_max_frames(tmp_path: Path) -> None:
    path = tmp_path / "unused.mp4"
    for kwargs in ({"every": 0}, {"every": 1.5}, {"max_frames": 0}, {"max_frames": True}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            next(iter_frames(path, **kwargs))


def test_missing_backend_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    real_import = builtins.__import__

    def no_av(name, *args, **kwargs):
        if name == "av" or name.startswith("av."):
            raise ImportError("No module named 'av'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_av)
    for call in (lambda: video_info(tmp_path / "a.mp4"), lambda: VideoWriter(tmp_path / "a", 5)):
        with pytest.raises(VideoBackendMissingError, match=r"pip install 'posetransfer\[video\]'"):
            call()


REAL = Path(__file__).resolve().parents[2] / ".cache" / "real"  # `make real-videos`


@pytest.mark.parametrize(
    ("relative", "codec"),
    [
        ("pose2sim/Pose2Sim/Demo_SinglePerson/videos/cam01.mp4", "h264"),
        ("sports2d/Sports2D/Demo/demo.mp4", "vp9"),
    ],
)
def test_real_video_count_matches_the_decoded_frames(relative: str, codec: str) -> None:
    path = REAL / relative
    if not path.exists():
        pytest.skip(f"{path} not fetched (make real-videos)")
    info = video_info(path)
    assert info.codec == codec and info.duration == pytest.approx(info.frame_count / info.fps)
    indices, shapes = [], set()
    last = info.frame_count - 1
    for index, frame in iter_frames(path, every=last):
        indices.append(index)
        shapes.add(frame.shape)
    assert indices == [0, last]  # the last counted frame decodes
    assert shapes == {(info.height, info.width, 3)}
