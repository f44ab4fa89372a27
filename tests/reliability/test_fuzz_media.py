"""Fuzzing the image and video readers: every mode and format Pillow writes (palette, 16-bit,
CMYK, EXIF-rotated, ...), truncated and zero-byte files, wrong extensions, headers that declare
huge images (decompression bombs), and videos damaged anywhere.

A read that succeeds must give ``(H, W, 3)`` uint8 RGB arrays of a sane size.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import strategies as st
from PIL import Image

from posetransfer.infer.images import DEFAULT_MAX_PIXELS, load_image
from posetransfer.infer.video import VideoWriter, iter_frames, video_info

from .fuzzing import QUICK_EXAMPLES, SLOW_EXAMPLES, check_reader, fuzz_bytes, run_fuzz

SUFFIXES = (".png", ".jpg", ".gif", ".bmp", ".tiff", ".webp", ".mp4", ".txt", "")


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def image_seeds() -> list[bytes]:
    """Small images of the modes and formats a user may give."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (11, 17, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 3
    wide = Image.fromarray(rng.integers(0, 65536, (11, 17), dtype=np.uint16))
    return [
        _encode(rgb, "PNG"),
        _encode(rgb, "JPEG", exif=exif.tobytes(), quality=80),
        _encode(rgb.convert("CMYK"), "JPEG"),
        _encode(palette, "PNG"),
        _encode(palette, "GIF"),
        _encode(wide, "PNG"),
        _encode(wide, "TIFF"),
        _encode(rgb.convert("RGBA"), "WEBP"),
        _encode(rgb.convert("LA"), "PNG"),
        _encode(rgb.convert("1"), "BMP"),
        _encode(rgb.convert("F"), "TIFF"),
        b"",  # zero bytes
    ]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _declared_size_png() -> st.SearchStrategy[bytes]:
    """A valid PNG header with any declared size (decompression bombs) and a little data."""

    def build(width: int, height: int, mode: int, data: bytes) -> bytes:
        header = struct.pack(">IIBBBBB", width, height, 8, mode, 0, 0, 0)
        body = _png_chunk(b"IDAT", zlib.compress(data)) if data else b""
        return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + body + _png_chunk(b"IEND", b"")

    sides = st.one_of(st.integers(0, 64), st.integers(1, 2**31 - 1))
    return st.builds(build, sides, sides, st.sampled_from([0, 2, 3, 4, 6]),
                     st.binary(max_size=300))  # fmt: skip


def _read_image(path: Path) -> None:
    image = load_image(path)
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8, image.shape
    assert image.shape[0] * image.shape[1] <= DEFAULT_MAX_PIXELS


def fuzz_image(tmp_path: Path, examples: int) -> None:
    strategy = st.tuples(
        st.sampled_from(SUFFIXES), fuzz_bytes(image_seeds(), extra=[_declared_size_png()])
    )

    def body(item: tuple[str, bytes]) -> None:
        suffix, data = item
        path = tmp_path / f"photo{suffix}"
        path.write_bytes(data)
        try:
            check_reader("image file", _read_image, path)
        finally:
            path.unlink()

    run_fuzz(strategy, body, examples)


def video_seeds(tmp_path: Path) -> list[bytes]:
    rng = np.random.default_rng(1)
    seeds = []
    for k, (height, width) in enumerate([(24, 32), (25, 33)]):
        path = tmp_path / f"seed{k}.mp4"
        with VideoWriter(path, 10, preset="ultrafast") as writer:
            for _ in range(6):
                writer.write(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        seeds.append(path.read_bytes())
    return seeds


def _read_video(path: Path) -> None:
    info = video_info(path)
    assert info.width * info.height <= DEFAULT_MAX_PIXELS
    for _, frame in iter_frames(path, max_frames=12):
        assert frame.shape == (info.height, info.width, 3) and frame.dtype == np.uint8


def fuzz_video(tmp_path: Path, examples: int) -> None:
    strategy = st.tuples(
        st.sampled_from((".mp4", ".mkv", ".png")), fuzz_bytes(video_seeds(tmp_path))
    )

    def body(item: tuple[str, bytes]) -> None:
        suffix, data = item
        path = tmp_path / f"clip{suffix}"
        path.write_bytes(data)
        try:
            check_reader("video file", _read_video, path)
        finally:
            path.unlink()

    run_fuzz(strategy, body, examples)


FUZZERS = {"image": fuzz_image, "video": fuzz_video}


@pytest.mark.parametrize("reader", sorted(FUZZERS))
def test_fuzz_quick(reader: str, tmp_path: Path) -> None:
    FUZZERS[reader](tmp_path, QUICK_EXAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize("reader", sorted(FUZZERS))
def test_fuzz_slow(reader: str, tmp_path: Path) -> None:
    FUZZERS[reader](tmp_path, SLOW_EXAMPLES)
