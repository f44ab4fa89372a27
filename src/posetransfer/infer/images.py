"""Any image in: photos of every mode, size and orientation as ``(H, W, 3)`` uint8 RGB arrays.

:func:`load_image` reads a file the way a person expects to see it:

- EXIF orientation is applied (``ImageOps.exif_transpose``), so a portrait phone photo stored
  sideways comes out upright;
- transparency (RGBA, LA, palette or grayscale with a transparent colour) is composited on white;
  :func:`load_image_with_alpha` returns the alpha channel separately instead;
- grayscale (``L``, ``1``) is repeated to three channels; 16-bit (``I;16``, ``I;16B``, ``I``)
  is scaled with ``round(v / 257)`` so 65535 maps to 255; float (``F``) must lie in ``[0, 1]``;
  ``CMYK`` and ``YCbCr`` are converted by Pillow (no ICC colour management);
- an image with more than ``max_pixels`` pixels is shrunk while it is read: JPEGs decode at a
  reduced DCT scale (``Image.draft``), other formats are reduced by box averaging then Lanczos
  (``Image.resize(..., reducing_gap=...)``), all in Pillow's 8/16-bit buffers, so no full-size
  float array is ever made; an info line is logged;
- an image whose header declares more than ``max_decode_pixels`` pixels is refused before any
  pixel is decoded (decompression bombs).

Every failure (missing file, not an image, truncated file, empty image, unsupported mode) raises
:class:`ImageInputError`, a ``ValueError`` whose message names the file.

:func:`as_rgb` does the same conversion for images already in memory: a PIL image, or a numpy
array ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` of uint8, uint16 or float in
``[0, 1]``.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from pathlib import Path
from typing import Final

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "MAX_DECODE_PIXELS",
    "ImageInputError",
    "as_rgb",
    "load_image",
    "load_image_with_alpha",
]

logger = logging.getLogger(__name__)

#: Images with more pixels than this are shrunk while read (about 16.8 megapixels).
DEFAULT_MAX_PIXELS: Final[int] = 4096 * 4096

#: Images whose header declares more pixels than this are refused unread (decompression bombs).
MAX_DECODE_PIXELS: Final[int] = 200_000_000

_SIXTEEN_BIT: Final[frozenset[str]] = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})


class ImageInputError(ValueError):
    """An image that cannot be used; the message names the file (or the argument) and why."""


def load_image(
    path: str | os.PathLike[str],
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    *,
    max_decode_pixels: int = MAX_DECODE_PIXELS,
) -> np.ndarray:
    """Read an image file as upright RGB, transparency composited on white.

    Args:
        path: Any file Pillow can read.
        max_pixels: Shrink (keeping the aspect ratio) to at most this many pixels; None keeps
            the full size.
        max_decode_pixels: Refuse files whose header declares more pixels than this.

    Returns:
        ``(H, W, 3)`` uint8 RGB array, ``H, W`` after EXIF orientation and shrinking.

    Raises:
        ImageInputError: Missing file, not an image, truncated or corrupt file, 0 pixels, too
            many pixels or an unsupported mode; the message names the file.
    """
    rgb, alpha = load_image_with_alpha(path, max_pixels, max_decode_pixels=max_decode_pixels)
    return rgb if alpha is None else _composite_on_white(rgb, alpha)


def load_image_with_alpha(
    path: str | os.PathLike[str],
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    *,
    max_decode_pixels: int = MAX_DECODE_PIXELS,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read an image file as upright RGB and its alpha channel, if it has one.

    Args:
        path: Any file Pillow can read.
        max_pixels: As in :func:`load_image`.
        max_decode_pixels: As in :func:`load_image`.

    Returns:
        ``rgb`` ``(H, W, 3)`` uint8 (colour of transparent pixels as stored, not composited) and
        ``alpha`` ``(H, W)`` uint8 (255 opaque), or None when the image has no transparency.

    Raises:
        ImageInputError: As :func:`load_image`.
    """
    path = Path(path)
    if max_pixels is not None and max_pixels < 1:
        raise ValueError(
            f"max_pixels must be a positive number of pixels or None, got {max_pixels}"
        )
    im = _open(path, max_decode_pixels)
    try:
        stored_size = im.size
        target = _target_size(stored_size, max_pixels)
        if target is not None and im.format == "JPEG":
            im.draft(None, target)  # DCT scaling: decodes at 1/2, 1/4 or 1/8, never below target
        try:
            im.load()
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageInputError(f"{path}: image is truncated or corrupt ({exc})") from None
        except MemoryError:  # Pillow reads the rest of a chunk as long as its header claims
            reason = "a chunk declares more data than memory"
            raise ImageInputError(f"{path}: image is corrupt ({reason})") from None
        im = _shrink(im, target)
        if target is not None:
            logger.info(
                "%s: downscaled from %dx%d to %dx%d (max_pixels=%d)",
                path, *stored_size, *target, max_pixels,
            )  # fmt: skip
        try:
            im = ImageOps.exif_transpose(im)
        except Exception as exc:  # malformed EXIF must not hide a readable image
            logger.warning("%s: EXIF orientation ignored (%s)", path, exc)
        return _to_rgb_alpha(im, str(path))
    finally:
        im.close()


def as_rgb(image: Image.Image | np.ndarray, name: str = "image") -> np.ndarray:
    """Convert an image in memory to ``(H, W, 3)`` uint8 RGB, transparency composited on white.

    Args:
        image: A PIL image of any mode (converted as :func:`load_image` converts files, without
            EXIF orientation or shrinking), or a numpy array ``(H, W)``, ``(H, W, 1)``,
            ``(H, W, 3)`` or ``(H, W, 4)`` (RGBA) of dtype uint8, uint16 (scaled by ``1/257``)
            or float in ``[0, 1]`` (scaled by 255 and rounded).
        name: What to call ``image`` in error messages.

    Returns:
        ``(H, W, 3)`` uint8 array; an ``(H, W, 3)`` uint8 input is returned as it is.

    Raises:
        ImageInputError: On another type, shape or dtype, NaN, floats outside ``[0, 1]`` or an
            empty image; the message names ``name`` and what was wrong.
    """
    if isinstance(image, Image.Image):
        if image.width == 0 or image.height == 0:
            raise ImageInputError(f"{name}: image has 0 pixels (size {image.size})")
        rgb, alpha = _to_rgb_alpha(image, name)
        return rgb if alpha is None else _composite_on_white(rgb, alpha)
    if not isinstance(image, np.ndarray):
        raise ImageInputError(
            f"{name} must be a PIL image or a numpy array, got {type(image).__name__}"
        )
    arr = image
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise ImageInputError(
            f"{name} must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {image.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageInputError(f"{name} has 0 pixels (shape {image.shape})")
    arr = _to_uint8(arr, name)
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.shape[2] == 4:
        return _composite_on_white(arr[:, :, :3], arr[:, :, 3])
    return arr


# --------------------------------------------------------------------------------- reading


def _open(path: Path, max_decode_pixels: int) -> Image.Image:
    """Open ``path`` lazily (header only) and check its size."""
    if not path.exists():
        raise ImageInputError(f"{path}: no such file")
    if path.is_dir():
        raise ImageInputError(f"{path}: is a folder, not an image file")
    try:
        with warnings.catch_warnings():  # our own max_decode_pixels guard replaces Pillow's warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise ImageInputError(f"{path}: refused as a possible decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise ImageInputError(f"{path}: not an image file Pillow can read") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageInputError(f"{path}: unreadable image header ({exc})") from None
    width, height = im.size
    if width <= 0 or height <= 0:
        im.close()
        raise ImageInputError(f"{path}: image has 0 pixels (size {width}x{height})")
    if width * height > max_decode_pixels:
        im.close()
        raise ImageInputError(
            f"{path}: {width}x{height} = {width * height} pixels exceeds max_decode_pixels="
            f"{max_decode_pixels}; refused as a possible decompression bomb"
        )
    return im


def _target_size(size: tuple[int, int], max_pixels: int | None) -> tuple[int, int] | None:
    """``(W, H)`` with at most ``max_pixels`` pixels at the same aspect, or None if no shrink."""
    width, height = size
    if max_pixels is None or width * height <= max_pixels:
        return None
    scale = math.sqrt(max_pixels / (width * height))
    return max(1, math.floor(width * scale)), max(1, math.floor(height * scale))


def _shrink(im: Image.Image, target: tuple[int, int] | None) -> Image.Image:
    """Resize a loaded image to ``target`` ``(W, H)`` (no-op when None)."""
    if target is None:
        return im
    if im.mode in ("P", "PA", "1"):  # palette indices cannot be averaged
        im = im.convert("L" if im.mode == "1" else "RGBA" if _has_transparency(im) else "RGB")
    extrema = im.getextrema() if im.mode in ("I", "F") else None
    if im.size != target:
        # reducing_gap: box-average by an integer factor first (fast), then Lanczos; Pillow's
        # reduce has no 16-bit modes, so those resize directly.
        gap = None if im.mode in _SIXTEEN_BIT else 3.0
        im = im.resize(target, Image.Resampling.LANCZOS, reducing_gap=gap)
    if extrema is not None:  # Lanczos overshoot must not push values out of the input's range
        im = Image.fromarray(np.clip(np.asarray(im), *extrema))
    return im


def _has_transparency(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or im.info.get("transparency") is not None


def _to_rgb_alpha(im: Image.Image, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Any PIL mode -> ``(H, W, 3)`` uint8 and ``(H, W)`` uint8 alpha or None."""
    mode = im.mode
    if mode in _SIXTEEN_BIT or mode in ("I", "F"):
        gray = _to_uint8(np.asarray(im), f"{name} (mode {mode})", wide_ints=True)
        return np.repeat(gray[:, :, None], 3, axis=2), None
    if _has_transparency(im):
        try:
            rgba = np.asarray(im.convert("RGBA"))
        except (ValueError, OSError) as exc:
            raise ImageInputError(f"{name}: cannot convert mode {mode} to RGBA ({exc})") from None
        return np.ascontiguousarray(rgba[:, :, :3]), np.ascontiguousarray(rgba[:, :, 3])
    if mode != "RGB":
        try:
            im = im.convert("RGB")
        except (ValueError, OSError) as exc:
            raise ImageInputError(f"{name}: cannot convert mode {mode} to RGB ({exc})") from None
    return np.array(im, dtype=np.uint8), None


def _to_uint8(arr: np.ndarray, name: str, *, wide_ints: bool = False) -> np.ndarray:
    """uint8 as is; uint16 ``round(v / 257)``; float in ``[0, 1]`` ``round(v * 255)``.

    ``wide_ints`` also reads other integer dtypes (Pillow's mode ``I``) as 16-bit values.
    """
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype.kind in "iu" and (arr.dtype == np.uint16 or wide_ints):
        if arr.dtype != np.uint16:  # mode "I" (int32) must hold 16-bit values
            lo, hi = int(arr.min()), int(arr.max())
            if lo < 0 or hi > 65535:
                raise ImageInputError(
                    f"{name}: 32-bit integer values in [{lo}, {hi}] are not 16-bit "
                    "(expected [0, 65535])"
                )
            arr = arr.astype(np.uint16)
        # round(v / 257) in uint16 arithmetic: no overflow, no float copy.
        quotient = arr // 257
        quotient += (arr - quotient * 257) >= 129
        return quotient.astype(np.uint8)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ImageInputError(f"{name}: float image holds NaN or inf")
        low, high = float(arr.min()), float(arr.max())
        if low < 0.0 or high > 1.0:
            raise ImageInputError(
                f"{name}: float values in [{low:.4g}, {high:.4g}] are outside [0, 1]"
            )
        return np.rint(arr * 255.0).astype(np.uint8)
    raise ImageInputError(
        f"{name}: dtype {arr.dtype} is not supported; expected uint8, uint16 or float in "
        "[0, 1] (cast 8-bit integer arrays with .astype(np.uint8))"
    )


def _composite_on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``rgb * a + 255 * (1 - a)`` rounded, in integers.

    ``rgb`` ``(H, W, 3)`` uint8, ``alpha`` ``(H, W)`` uint8 -> ``(H, W, 3)`` uint8.
    """
    a = alpha.astype(np.uint16)[:, :, None]
    out = (rgb.astype(np.uint16) * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)
