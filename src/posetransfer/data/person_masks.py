"""Person masks stored beside a dataset's images: ``ROOT/masks/<split>/<image stem>.png``.

A mask is an 8-bit grayscale PNG (mode ``L``) the size of its image: the person probability times
255, rounded (``posetransfer make-dataset`` writes the detector's segmentation, cropped exactly
as the image). :func:`read_mask` gives it back as ``(H, W)`` float32 in ``[0, 1]``; threshold it
at 0.5 for a binary silhouette.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from posetransfer.data.formats import FormatError
from posetransfer.io import PathLike, atomic_open

__all__ = ["MASKS_DIR", "mask_path", "mask_to_uint8", "read_mask", "write_mask"]

#: Folder under the dataset root holding one sub-folder of masks per split.
MASKS_DIR = "masks"


def mask_path(root: PathLike, split: str, name: str) -> Path:
    """Where the mask of image ``name`` (a file name, any extension) of ``split`` lives."""
    return Path(root) / MASKS_DIR / split / f"{Path(name).stem}.png"


def mask_to_uint8(mask: np.ndarray) -> np.ndarray:
    """``(H, W)`` probabilities in ``[0, 1]`` -> ``(H, W)`` uint8, ``round(255 * p)``.

    Raises:
        ValueError: Not a 2-D array of finite values in ``[0, 1]``.
    """
    values = np.asarray(mask, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"a mask must be (H, W), got shape {values.shape}")
    if not np.isfinite(values).all() or values.min(initial=0) < 0 or values.max(initial=0) > 1:
        raise ValueError("a mask must hold finite values in [0, 1]")
    return np.rint(values * 255.0).astype(np.uint8)


def write_mask(path: PathLike, mask: np.ndarray) -> None:
    """Write an ``(H, W)`` uint8 mask as a grayscale PNG, atomically (parents created).

    Raises:
        ValueError: Not an ``(H, W)`` uint8 array.
    """
    if not isinstance(mask, np.ndarray) or mask.ndim != 2 or mask.dtype != np.uint8:
        shape = mask.shape if isinstance(mask, np.ndarray) else type(mask).__name__
        raise ValueError(f"{path}: a mask to write must be (H, W) uint8, got {shape}")
    with atomic_open(path, "wb") as f:
        Image.fromarray(mask).save(f, format="PNG")


def read_mask(path: PathLike) -> np.ndarray:
    """Read a mask PNG as ``(H, W)`` float32 in ``[0, 1]``.

    Raises:
        FormatError: A missing or unreadable file, or an image that is not 8-bit grayscale.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            if image.mode != "L":
                raise FormatError(path, f"a mask must be 8-bit grayscale (L), got {image.mode}")
            values = np.asarray(image, dtype=np.float32)
    except FileNotFoundError:
        raise FormatError(path, "mask file not found") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise FormatError(path, f"unreadable mask: {exc}") from None
    return values / np.float32(255.0)
