"""Video in and out: frames of a driving video as RGB arrays, and browser-playable MP4 output.

The backend is PyAV (``pip install 'posetransfer[video]'``), which ships the FFmpeg libraries with
libx264 in its wheel; docs/real_people.md has the evidence for choosing it over imageio-ffmpeg.

- :func:`video_info`: fps, frame count, display size and duration of a video file;
- :func:`iter_frames`: ``(index, (H, W, 3) uint8 RGB)`` frames, every ``every``-th, upright
  (a phone video's rotation metadata is applied, as the ``ffmpeg`` command does);
- :class:`VideoWriter`: RGB frames to an H.264/yuv420p MP4 with even sizes and the index at the
  front (``+faststart``), written to a temporary file next to the target and renamed over it only
  when the ``with`` block ends cleanly.

Every failure raises :class:`VideoInputError` (a ``ValueError`` naming the file) or, without the
backend, :class:`VideoBackendMissingError` (an ``ImportError`` saying what to install).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, Final

import numpy as np

from posetransfer.io import check_rgb

__all__ = [
    "DEFAULT_CRF",
    "VIDEO_SUFFIXES",
    "VideoBackendMissingError",
    "VideoInfo",
    "VideoInputError",
    "VideoWriter",
    "iter_frames",
    "video_info",
]

logger = logging.getLogger(__name__)

#: x264 constant rate factor of :class:`VideoWriter`: 0 lossless, 18 visually lossless, 51 worst.
DEFAULT_CRF: Final[int] = 18

_INSTALL_HINT: Final[str] = "pip install 'posetransfer[video]'"

#: File suffixes treated as videos by the commands (lower case).
VIDEO_SUFFIXES: Final[tuple[str, ...]] = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm")

_PRESETS: Final = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow")


class VideoInputError(ValueError):
    """A video that cannot be used; the message names the file and why."""


class VideoBackendMissingError(ImportError):
    """PyAV is not installed; the message says how to install it."""


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds, as played (rotation metadata applied).

    Attributes:
        path: The file.
        fps: Frames per second (the stream's average rate).
        frame_count: Number of frames in the video stream (from the container's index, or by
            counting packets when the container does not record it).
        width: Displayed frame width in pixels.
        height: Displayed frame height in pixels.
        duration: Seconds (the stream's duration, or ``frame_count / fps`` when unrecorded).
        codec: The codec's FFmpeg name (``"h264"``, ``"vp9"``, ...).
        rotation: Degrees counter-clockwise applied to stored frames for display (0, 90, 180, 270).
    """

    path: Path
    fps: float
    frame_count: int
    width: int
    height: int
    duration: float
    codec: str
    rotation: int = 0


def video_info(path: str | os.PathLike[str]) -> VideoInfo:
    """Read a video's frame rate, frame count, displayed size and duration.

    The first frame is decoded (to check that the stream decodes and to read its rotation).

    Args:
        path: A video file FFmpeg can read (MP4, MOV, MKV, WebM, AVI, ...).

    Returns:
        The :class:`VideoInfo`.

    Raises:
        VideoInputError: If the file is missing, not a video, has no video stream or no frame.
        VideoBackendMissingError: If PyAV is not installed.
    """
    av = _import_av()
    path = Path(path)
    with _open_input(av, path) as container:
        stream = container.streams.video[0]
        frame_count = int(stream.frames or 0)
        if frame_count <= 0:  # MKV/WebM record no count: count packets (no decoding)
            with _open_input(av, path) as counting:
                video = counting.streams.video[0]
                frame_count = sum(1 for packet in counting.demux(video) if packet.size)
        if frame_count <= 0:
            raise VideoInputError(f"{path}: the video stream has no frames")
        first = next(_decode(av, path, container, stream), None)
        if first is None:
            raise VideoInputError(f"{path}: no frame of the video stream could be decoded")
        rotation = _rotation(first)
        width, height = first.width, first.height
        if rotation in (90, 270):
            width, height = height, width
        rate = stream.average_rate or stream.guessed_rate
        if not rate:
            raise VideoInputError(f"{path}: the video stream records no frame rate")
        fps = float(rate)
        duration = _duration(stream, container) or frame_count / fps
        codec = str(stream.codec_context.name)
        return VideoInfo(path, fps, frame_count, int(width), int(height), duration, codec, rotation)


def iter_frames(
    path: str | os.PathLike[str], every: int = 1, max_frames: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Decode a video's frames in order, upright, as RGB arrays.

    Every frame is decoded (H.264 needs its references); only the kept ones are converted.

    Args:
        path: A video file FFmpeg can read.
        every: Keep frames ``0, every, 2 * every, ...``; a positive integer.
        max_frames: Stop after yielding this many frames; None for all; a positive integer.

    Yields:
        ``(index, frame)``: the frame's 0-based position in the stream and an ``(H, W, 3)``
        uint8 RGB array (``H, W`` as in :func:`video_info`, rotation applied).

    Raises:
        VideoInputError: If the file is missing, not a video, has no video stream, no frame, or
            fails to decode part-way (the message names the frame index).
        VideoBackendMissingError: If PyAV is not installed.
        ValueError: On a bad ``every`` or ``max_frames``.
    """
    _check_positive_int(every, "every")
    if max_frames is not None:
        _check_positive_int(max_frames, "max_frames")
    av = _import_av()
    path = Path(path)
    with _open_input(av, path) as container:
        stream = container.streams.video[0]
        yielded, index, size = 0, -1, None
        for index, frame in enumerate(_decode(av, path, container, stream)):
            size = size or (frame.height, frame.width)
            if (frame.height, frame.width) != size:
                raise VideoInputError(
                    f"{path}: frame {index} is {frame.height}x{frame.width} (HxW) but the video "
                    f"started at {size[0]}x{size[1]}; videos that change size are not supported"
                )
            if index % every:
                continue
            rgb = frame.to_ndarray(format="rgb24")
            rotation = _rotation(frame)
            if rotation:
                rgb = np.ascontiguousarray(np.rot90(rgb, rotation // 90))
            yield index, rgb
            yielded += 1
            if max_frames is not None and yielded >= max_frames:
                return
        if index < 0:
            raise VideoInputError(f"{path}: the video stream has no frames")


class VideoWriter:
    """Write RGB frames to a browser-playable MP4 (H.264, yuv420p), atomically.

    Frames go to a hidden temporary file in the target's folder; leaving the ``with`` block
    normally (``with VideoWriter(path, 25) as w: w.write(frame)``) finishes the stream and
    renames it to ``path``; an exception (or Ctrl-C) inside the block deletes it, so no
    half-written video ever carries the final name. Odd frame sizes are padded by one pixel
    (edge pixels repeated) at the right/bottom, since yuv420p needs even sizes.

    Args:
        path: Destination ``.mp4`` file; parent folders are created.
        fps: Frames per second, positive and finite; stored as the nearest fraction with a
            denominator up to 1001 (30000/1001 for NTSC's 29.97002997...).
        size: ``(H, W)`` every frame must have; None takes the first frame's size.
        crf: x264 constant rate factor, 0 (lossless) to 51 (worst); 18 is visually lossless.
        preset: x264 speed/size preset, ``"ultrafast"`` ... ``"medium"`` ... ``"slow"``.

    Raises:
        ValueError: On a bad ``fps``, ``size``, ``crf`` or ``preset``.
        VideoBackendMissingError: If PyAV is not installed.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float,
        size: tuple[int, int] | None = None,
        *,
        crf: int = DEFAULT_CRF,
        preset: str = "medium",
    ) -> None:
        if isinstance(fps, bool) or not isinstance(fps, int | float | Fraction) or fps <= 0:
            raise ValueError(f"VideoWriter fps must be a positive finite number, got {fps!r}")
        if not math.isfinite(fps):
            raise ValueError(f"VideoWriter fps must be a positive finite number, got {fps!r}")
        if size is not None and (not isinstance(size, tuple | list) or len(size) != 2):
            raise ValueError(f"VideoWriter size must be (H, W) positive integers, got {size!r}")
        for value in size or ():
            _check_positive_int(value, f"VideoWriter size {size!r}")
        if isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= 51:
            raise ValueError(f"VideoWriter crf must be an integer in [0, 51], got {crf!r}")
        if preset not in _PRESETS:
            raise ValueError(f"VideoWriter preset must be one of {_PRESETS}, got {preset!r}")
        self._av = _import_av()
        self.path = Path(path)
        self.fps = Fraction(fps).limit_denominator(1001)
        self.size: tuple[int, int] | None = (int(size[0]), int(size[1])) if size else None
        self.crf = crf
        self.preset = preset
        self.frames_written = 0
        self._tmp: Path | None = None
        self._container: Any = None
        self._stream: Any = None

    def __enter__(self) -> VideoWriter:
        if self._tmp is not None:
            raise RuntimeError(f"VideoWriter for {self.path} is already open")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A fresh hidden name that FFmpeg creates (so the file gets the umask's permissions).
        self._tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(6)}.part")
        try:
            self._container = self._av.open(
                str(self._tmp), "w", format="mp4", options={"movflags": "+faststart"}
            )
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None
            raise
        return self

    def write(self, frame: np.ndarray) -> None:
        """Append one frame.

        Args:
            frame: ``(H, W, 3)`` uint8 RGB, the writer's size (the first frame's by default).

        Raises:
            ValueError: If the frame is not ``(H, W, 3)`` uint8 or its size differs from the
                writer's; the message names the frame index and the file.
            RuntimeError: If called outside the ``with`` block.
        """
        if self._container is None:
            raise RuntimeError(f"VideoWriter for {self.path} is not open: use it in a with block")
        check_rgb(frame, f"frame {self.frames_written} of {self.path}")
        height, width = frame.shape[:2]
        if self.size is None:
            self.size = (height, width)
        if (height, width) != self.size:
            raise ValueError(
                f"frame {self.frames_written} of {self.path} is {height}x{width} (HxW) but the "
                f"video is {self.size[0]}x{self.size[1]}: every frame must have the same size"
            )
        if self._stream is None:
            self._stream = self._open_stream(height, width)
        pad_h, pad_w = height % 2, width % 2
        if pad_h or pad_w:
            frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        video_frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.frames_written += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tmp, container = self._tmp, self._container
        self._tmp = self._container = None
        if tmp is None:
            return
        saved = False
        try:
            if exc_type is None:
                if self.frames_written == 0:
                    raise ValueError(f"no frame was written to {self.path}; nothing saved")
                for packet in self._stream.encode():  # flush the encoder
                    container.mux(packet)
                container.close()
                with open(tmp, "rb") as f:
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
                saved = True
                logger.info(
                    "wrote %s: %d frames at %s fps", self.path, self.frames_written, self.fps
                )
        finally:
            self._stream = None
            if not saved:
                with contextlib.suppress(Exception):
                    container.close()
                tmp.unlink(missing_ok=True)

    def _open_stream(self, height: int, width: int) -> Any:
        """Add the H.264 stream, sized up to even numbers."""
        stream = self._container.add_stream("libx264", rate=self.fps)
        stream.width, stream.height = width + width % 2, height + height % 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(self.crf), "preset": self.preset}
        return stream


# --------------------------------------------------------------------------------- helpers


def _import_av() -> ModuleType:
    """PyAV, or an error that says how to install it."""
    try:
        import av
    except ImportError as error:
        raise VideoBackendMissingError(
            f"reading and writing videos needs PyAV, which is not installed: {_INSTALL_HINT}"
        ) from error
    return av


@contextlib.contextmanager
def _open_input(av: ModuleType, path: Path) -> Iterator[Any]:
    """Open ``path`` for reading with errors that name the file; yields the container."""
    if not path.is_file():
        raise VideoInputError(f"{path}: {'not a file' if path.exists() else 'no such video file'}")
    try:
        # metadata_errors: a damaged title or tag is not UTF-8 (fuzzing found UnicodeDecodeError)
        container = av.open(str(path), "r", metadata_errors="replace")
    except (av.error.FFmpegError, UnicodeDecodeError) as error:
        raise VideoInputError(f"{path}: not a readable video ({_reason(error)})") from error
    try:
        if not container.streams:
            raise VideoInputError(f"{path}: holds no stream at all (a video with zero frames?)")
        if not container.streams.video:
            kinds = ", ".join(sorted({str(s.type) for s in container.streams}))
            raise VideoInputError(f"{path}: no video stream (only {kinds})")
        yield container
    finally:
        container.close()


def _decode(av: ModuleType, path: Path, container: Any, stream: Any) -> Iterator[Any]:
    """Decoded frames of ``stream``; a decoding error names the file and the frame index."""
    index = 0
    try:
        for frame in container.decode(stream):
            yield frame
            index += 1
    except av.error.FFmpegError as error:
        raise VideoInputError(
            f"{path}: decoding failed at frame {index} ({_reason(error)}); the file may be "
            "truncated or corrupt"
        ) from error


def _rotation(frame: Any) -> int:
    """Counter-clockwise display rotation of a decoded frame, in {0, 90, 180, 270}."""
    degrees = getattr(frame, "rotation", 0) or 0
    return round(degrees / 90.0) % 4 * 90


def _duration(stream: Any, container: Any) -> float | None:
    """The stream's duration in seconds, else the container's, else None."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return container.duration / 1_000_000 if container.duration else None  # AV_TIME_BASE


def _reason(error: Exception) -> str:
    """FFmpeg's message without the errno and file name PyAV adds."""
    return getattr(error, "strerror", None) or str(error)


def _check_positive_int(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
