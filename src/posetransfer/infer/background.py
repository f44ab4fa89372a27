"""Backgrounds for real photos: remove the person, fill the hole, composite the new person on top.

Our networks were trained on plain backgrounds; a photo has a real one. The output keeps it:

1. :func:`dilate_mask` grows the detector's person mask a little, so no halo of the person stays;
2. :func:`inpaint` fills the masked pixels from the rest of the image by push-pull interpolation
   (a pyramid of masked averages: coarse levels fill the hole, fine levels keep the known pixels);
3. :func:`composite` lays the generated person over that background through the *predicted target*
   mask (the flow's non-background pixels), feathered so the edges are soft.

All functions work on numpy arrays on the CPU and cost a few milliseconds at 256x176.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["composite", "dilate_mask", "feather_mask", "inpaint", "solid_background"]


def _check_image(image: np.ndarray, name: str = "image") -> tuple[int, int]:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", type(image).__name__)
        raise ValueError(f"{name} must be an (H, W, 3) array, got shape {shape}")
    return image.shape[0], image.shape[1]


def _check_mask(mask: np.ndarray, size: tuple[int, int], name: str = "mask") -> np.ndarray:
    if not isinstance(mask, np.ndarray) or mask.shape != size:
        shape = getattr(mask, "shape", type(mask).__name__)
        raise ValueError(f"{name} must be an {size} array matching the image, got shape {shape}")
    mask = mask.astype(np.float32)
    if not np.isfinite(mask).all():
        raise ValueError(f"{name} has non-finite values")
    return np.clip(mask, 0.0, 1.0)


def dilate_mask(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of ``mask > 0.5`` by a square of ``2 * radius + 1`` pixels.

    Args:
        mask: ``(H, W)`` float or bool mask.
        radius: Pixels to grow by (0 returns the thresholded mask).

    Returns:
        ``(H, W)`` bool mask.
    """
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    binary = torch.from_numpy(np.asarray(mask, dtype=np.float32) > 0.5).float()[None, None]
    if radius:
        binary = F.max_pool2d(binary, 2 * radius + 1, stride=1, padding=radius)
    return binary[0, 0].numpy() > 0.5


def inpaint(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Fill the ``hole`` pixels of ``image`` from the others (push-pull interpolation).

    Known pixels are kept exactly. Each coarser level averages the known pixels of 2x2 blocks;
    going back up, a hole pixel takes the bilinear upsampling of the level below. The result is
    smooth inside the hole and continuous at its border: a plausible plate for a person to stand
    on, not a texture synthesis.

    Args:
        image: ``(H, W, 3)`` uint8 image.
        hole: ``(H, W)`` mask, true (or > 0.5) where the pixels are to be filled.

    Returns:
        ``(H, W, 3)`` uint8 image.

    Raises:
        ValueError: On mismatched shapes, or a hole that covers the whole image.
    """
    size = _check_image(image)
    known = 1.0 - (_check_mask(np.asarray(hole, dtype=np.float32), size, "hole") > 0.5)
    if known.sum() == 0:
        raise ValueError("the hole covers the whole image: nothing to fill it from")
    color = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)[None]
    weight = torch.from_numpy(known.astype(np.float32))[None, None]
    levels = [(color * weight, weight)]
    while min(levels[-1][1].shape[-2:]) > 1 and (levels[-1][1] == 0).any():
        c, w = levels[-1]
        levels.append((F.avg_pool2d(c, 2, ceil_mode=True), F.avg_pool2d(w, 2, ceil_mode=True)))
    c, w = levels[-1]
    filled = c / w.clamp_min(1e-8)
    if (w == 0).any():  # a 1-pixel level with no known pixel cannot happen: known.sum() > 0
        filled = torch.where(w > 0, filled, (c.sum((2, 3), keepdim=True) / w.sum()))
    for c, w in reversed(levels[:-1]):  # c is premultiplied: c = mean * w
        up = F.interpolate(filled, size=c.shape[-2:], mode="bilinear", align_corners=False)
        filled = c + up * (1.0 - w)
    out = filled[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    keep = known.astype(bool)
    out[keep] = image[keep]
    return out


def feather_mask(mask: np.ndarray, sigma: float) -> np.ndarray:
    """Soften a mask's edges with a Gaussian of ``sigma`` pixels (0: unchanged).

    Args:
        mask: ``(H, W)`` mask in ``[0, 1]``.
        sigma: Gaussian standard deviation in pixels.

    Returns:
        ``(H, W)`` float32 mask in ``[0, 1]``.
    """
    mask = _check_mask(np.asarray(mask, dtype=np.float32), np.asarray(mask).shape)
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    if sigma == 0:
        return mask
    radius = max(1, int(3 * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    m = torch.from_numpy(mask)[None, None]
    m = F.conv2d(F.pad(m, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    m = F.conv2d(F.pad(m, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    return m[0, 0].clamp(0, 1).numpy()


def composite(
    foreground: np.ndarray, background: np.ndarray, mask: np.ndarray, feather: float = 1.5
) -> np.ndarray:
    """``mask * foreground + (1 - mask) * background`` with a feathered ``mask``.

    Args:
        foreground: ``(H, W, 3)`` uint8 image (the generated person).
        background: ``(H, W, 3)`` uint8 image.
        mask: ``(H, W)`` mask of the foreground in ``[0, 1]``.
        feather: Gaussian sigma in pixels applied to the mask's edges.

    Returns:
        ``(H, W, 3)`` uint8 image.
    """
    size = _check_image(foreground, "foreground")
    if _check_image(background, "background") != size:
        raise ValueError(f"background is {background.shape[:2]}, foreground {size}")
    alpha = feather_mask(_check_mask(np.asarray(mask, dtype=np.float32), size), feather)[..., None]
    out = alpha * foreground.astype(np.float32) + (1 - alpha) * background.astype(np.float32)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def solid_background(size: tuple[int, int], color: tuple[int, int, int]) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 image of one ``color``."""
    if len(color) != 3 or not all(0 <= c <= 255 for c in color):
        raise ValueError(f"color must be three values in [0, 255], got {color}")
    return np.broadcast_to(np.asarray(color, np.uint8), (*size, 3)).copy()
