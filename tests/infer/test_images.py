"""Tests of ``infer.images``: odd image files built with PIL go in, upright RGB uint8 comes out."""

from __future__ import annotations

import logging
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from posetransfer.infer.images import ImageInputError, as_rgb, load_image, load_image_with_alpha


def _on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Reference compositing in float64."""
    a = alpha.astype(np.float64)[..., None] / 255.0
    return np.rint(rgb * a + 255.0 * (1.0 - a)).astype(np.uint8)


def _png_header(width: int, height: int) -> bytes:
    """A PNG holding only a header (IHDR) that declares ``width x height`` RGB pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


# ------------------------------------------------------------------------------- orientation


@pytest.mark.parametrize(("orientation", "turns"), [(6, -1), (8, 1), (3, 2), (1, 0)])
def test_exif_orientation_is_applied(
    tmp_path: Path, rng: np.random.Generator, orientation: int, turns: int
) -> None:
    stored = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)  # landscape as stored
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "phone.png"
    Image.fromarray(stored).save(path, exif=exif)
    # 6: rotate 90 degrees clockwise to view (np.rot90 k=-1); 8: counter-clockwise.
    np.testing.assert_array_equal(load_image(path), np.rot90(stored, k=turns))


def test_exif_orientation_of_a_jpeg(tmp_path: Path) -> None:
    stored = np.zeros((32, 64, 3), np.uint8)
    stored[:, :32] = (255, 0, 0)  # left half red, right half black
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    out = load_image(path)
    assert out.shape == (64, 32, 3)  # portrait after turning
    # Turned clockwise, the stored left half is on top.
    assert out[:24, :, 0].min() > 200 and out[40:, :, 0].max() < 60


# ----------------------------------------------------------------------------------- modes


def test_rgba_is_composited_on_white_and_alpha_is_returned(tmp_path: Path) -> None:
    rgb = np.array([[[200, 10, 40], [0, 255, 0], [30, 60, 90]]], np.uint8)
    alpha = np.array([[0, 255, 128]], np.uint8)
    path = tmp_path / "cut-out.png"
    Image.fromarray(np.dstack([rgb, alpha])).save(path)
    np.testing.assert_array_equal(load_image(path), _on_white(rgb, alpha))
    assert load_image(path)[0, 0].tolist() == [255, 255, 255]
    rgb_out, alpha_out = load_image_with_alpha(path)
    np.testing.assert_array_equal(rgb_out, rgb)
    np.testing.assert_array_equal(alpha_out, alpha)


def test_la_gray_with_alpha(tmp_path: Path) -> None:
    la = np.array([[[10, 0], [10, 255], [100, 64]]], np.uint8)
    path = tmp_path / "la.png"
    Image.fromarray(la, mode="LA").save(path)
    expected = _on_white(np.repeat(la[..., :1], 3, axis=2), la[..., 1])
    np.testing.assert_array_equal(load_image(path), expected)


def test_palette_with_transparency(tmp_path: Path) -> None:
    im = Image.new("P", (3, 2))
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * (3 * 253))
    im.putdata([0, 1, 2, 2, 1, 0])
    im.info["transparency"] = 0  # index 0 is transparent
    path = tmp_path / "palette.png"
    im.save(path, transparency=0)
    out = load_image(path)
    assert out[0, 0].tolist() == [255, 255, 255]  # transparent -> white, not black
    assert out[0, 1].tolist() == [255, 0, 0] and out[0, 2].tolist() == [0, 0, 255]
    _, alpha = load_image_with_alpha(path)
    np.testing.assert_array_equal(alpha, [[0, 255, 255], [255, 255, 0]])


def test_opaque_images_have_no_alpha(tmp_path: Path) -> None:
    path = tmp_path / "opaque.png"
    Image.new("P", (4, 3), 7).save(path)
    assert load_image_with_alpha(path)[1] is None


@pytest.mark.parametrize("mode", ["L", "1"])
def test_grayscale_is_repeated_to_three_channels(tmp_path: Path, mode: str) -> None:
    gray = np.array([[0, 255, 255], [255, 0, 0]], np.uint8)
    path = tmp_path / f"gray-{mode}.png"
    Image.fromarray(gray).convert(mode).save(path)
    out = load_image(path)
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, axis=2))


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 128, 129, 257, 32896, 65535]], np.uint16)
    path = tmp_path / "depth16.png"
    Image.fromarray(values).save(path)
    out = load_image(path)
    # round(v / 257): 128 -> 0 (0.498), 129 -> 1 (0.502), 32896 -> 128, 65535 -> 255.
    assert out[0, :, 0].tolist() == [0, 0, 1, 1, 128, 255]
    assert (out == out[..., :1]).all()


@pytest.mark.parametrize(("dtype", "mode"), [(">u2", "I;16B"), ("<i4", "I")])
def test_sixteen_bit_modes_in_memory(dtype: str, mode: str) -> None:
    values = np.array([[0, 65535, 257 * 100]]).astype(dtype)
    im = (
        Image.frombytes(mode, (3, 1), values.tobytes())
        if mode == "I;16B"
        else Image.fromarray(values)
    )
    assert im.mode == mode
    assert as_rgb(im)[0, :, 1].tolist() == [0, 255, 100]


def test_thirty_two_bit_values_are_refused_with_their_range() -> None:
    im = Image.fromarray(np.array([[-5, 70000]], np.int32))
    with pytest.raises(ImageInputError, match=r"\[-5, 70000\]"):
        as_rgb(im, name="depth")


def test_cmyk_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "print.jpg"
    cmyk = Image.new("CMYK", (16, 8), (0, 255, 255, 0))  # red ink mix
    cmyk.paste((0, 0, 0, 0), (8, 0, 16, 8))  # no ink: white
    cmyk.save(path, quality=95)
    assert Image.open(path).mode == "CMYK"
    out = load_image(path).astype(int)
    assert np.abs(out[:, :6] - [255, 0, 0]).max() < 12
    assert np.abs(out[:, 10:] - [255, 255, 255]).max() < 12


def test_ycbcr_in_memory(rng: np.random.Generator) -> None:
    rgb = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    out = as_rgb(Image.fromarray(rgb).convert("YCbCr"))
    assert np.abs(out.astype(int) - rgb).max() <= 3  # YCbCr round trip in 8 bits


# ------------------------------------------------------------------------------- big images


@pytest.fixture(scope="module")
def huge_jpeg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 8000x6000 JPEG: left half red, right half blue (~0.5 s to build)."""
    im = Image.new("RGB", (8000, 6000), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 4000, 6000))
    path = tmp_path_factory.mktemp("huge") / "huge.jpg"
    im.save(path, quality=80)
    return path


def test_huge_jpeg_is_decoded_small(
    huge_jpeg: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    drafts: list[tuple[int, int]] = []
    real_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        result = real_draft(self, mode, size)
        drafts.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    tracemalloc.start()
    with caplog.at_level(logging.INFO, logger="posetransfer.infer.images"):
        out = load_image(huge_jpeg, max_pixels=500_000)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    height, width, _ = out.shape
    assert height * width <= 500_000 and height * width > 480_000
    assert abs(width / height - 8000 / 6000) < 0.01
    assert drafts and drafts[0][0] < 8000  # DCT-scaled decode, not the full 8000 pixels
    assert peak < 8000 * 6000  # numpy never held even one full-size uint8 channel
    assert out[:, : width // 2 - 4, 0].min() > 200 and out[:, width // 2 + 4 :, 2].min() > 200
    assert "downscaled from 8000x6000" in caplog.text and str(huge_jpeg) in caplog.text


def test_large_png_with_alpha_is_shrunk(tmp_path: Path) -> None:
    rgba = np.zeros((900, 1200, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, 600:, 3] = 255  # left half transparent
    path = tmp_path / "large.png"
    Image.fromarray(rgba).save(path, compress_level=1)
    out = load_image(path, max_pixels=12_000)
    assert out.shape[0] * out.shape[1] <= 12_000 and out.shape[1] > out.shape[0]
    assert out[:, :20].min() > 245  # transparent half is white
    assert (out[:, -20:] == [255, 0, 0]).all()


def test_sixteen_bit_is_shrunk_and_scaled(tmp_path: Path) -> None:
    path = tmp_path / "wide16.png"
    Image.fromarray(np.full((300, 400), 65535, np.uint16)).save(path)
    out = load_image(path, max_pixels=1200)
    assert out.shape == (30, 40, 3) and (out == 255).all()


def test_small_images_are_not_resized(tmp_path: Path, rng: np.random.Generator) -> None:
    rgb = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    path = tmp_path / "small.png"
    Image.fromarray(rgb).save(path)
    np.testing.assert_array_equal(load_image(path, max_pixels=1200), rgb)
    np.testing.assert_array_equal(load_image(path, max_pixels=None), rgb)


# ------------------------------------------------------------------------------------ errors


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header(100_000, 100_000))
    with pytest.raises(ImageInputError, match="decompression bomb") as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_max_decode_pixels_is_our_own_limit(tmp_path: Path) -> None:
    path = tmp_path / "ok.png"
    Image.new("RGB", (50, 40)).save(path)
    with pytest.raises(ImageInputError, match="50x40 = 2000 pixels exceeds max_decode_pixels"):
        load_image(path, max_decode_pixels=1999)
    assert load_image(path, max_decode_pixels=2000).shape == (40, 50, 3)


def test_errors_name_the_file(tmp_path: Path, rng: np.random.Generator) -> None:
    missing = tmp_path / "nobody.jpg"
    with pytest.raises(ImageInputError, match="no such file") as info:
        load_image(missing)
    assert str(missing) in str(info.value) and isinstance(info.value, ValueError)

    text = tmp_path / "notes.jpg"
    text.write_text("not a picture\n")
    with pytest.raises(ImageInputError, match=f"{text}: not an image"):
        load_image(text)

    with pytest.raises(ImageInputError, match="is a folder"):
        load_image(tmp_path)

    full = tmp_path / "full.png"
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(full)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(ImageInputError, match=f"{truncated}: image is truncated"):
        load_image(truncated)

    empty = tmp_path / "empty.png"
    empty.write_bytes(_png_header(0, 5))
    with pytest.raises(ImageInputError, match=str(empty)):
        load_image(empty)


def test_bad_max_pixels(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_pixels"):
        load_image(tmp_path / "x.png", max_pixels=0)


# ------------------------------------------------------------------------------------ as_rgb


def test_as_rgb_arrays(rng: np.random.Generator) -> None:
    rgb = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    assert as_rgb(rgb) is rgb
    gray = rng.integers(0, 256, (4, 5), dtype=np.uint8)
    np.testing.assert_array_equal(as_rgb(gray), np.repeat(gray[..., None], 3, axis=2))
    np.testing.assert_array_equal(as_rgb(gray[..., None]), as_rgb(gray))
    rgba = rng.integers(0, 256, (4, 5, 4), dtype=np.uint8)
    np.testing.assert_array_equal(as_rgb(rgba), _on_white(rgba[..., :3], rgba[..., 3]))
    floats = rng.random((4, 5, 3))
    np.testing.assert_array_equal(as_rgb(floats), np.rint(floats * 255).astype(np.uint8))
    np.testing.assert_array_equal(as_rgb(floats.astype(np.float32)), as_rgb(floats))
    wide = (rgb.astype(np.uint16) * 257).astype(np.uint16)
    np.testing.assert_array_equal(as_rgb(wide), rgb)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((4, 5, 2), np.uint8), r"shape \(H, W\).*got \(4, 5, 2\)"),
        (np.zeros((4,), np.uint8), r"got \(4,\)"),
        (np.zeros((0, 5, 3), np.uint8), "0 pixels"),
        (np.zeros((4, 5, 3), np.int64), "dtype int64"),
        (np.full((4, 5, 3), 1.5), r"outside \[0, 1\]"),
        (np.full((4, 5, 3), np.nan), "NaN"),
        ([[1, 2]], "got list"),
    ],
)
def test_as_rgb_names_what_is_wrong(bad: object, message: str) -> None:
    with pytest.raises(ImageInputError, match=message) as info:
        as_rgb(bad, name="portrait")  # type: ignore[arg-type]
    assert "portrait" in str(info.value)
