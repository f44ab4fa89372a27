"""Images for humans: flow colour coding, visibility palette, labelled panels.

Flow uses the Middlebury colour wheel of Baker et al., "A Database and Evaluation Methodology for
Optical Flow" (IJCV 2011): hue encodes direction (``+x`` red, ``-x`` cyan-blue, image ``y``
pointing down) and saturation the magnitude relative to a maximum, so zero flow is white.

Image values follow ``posetransfer.conventions``: float ``[-1, 1]`` in tensors, ``uint8`` on disk,
with ``v_float = v_uint8 / 127.5 - 1``; :func:`posetransfer.io.tensor_to_uint8` and
:func:`posetransfer.io.uint8_to_tensor` are the only conversions (exact round trip).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Final

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from posetransfer.conventions import Visibility
from posetransfer.io import check_rgb

__all__ = [
    "VISIBILITY_COLORS",
    "flow_to_color",
    "flow_wheel_legend",
    "make_panel",
    "visibility_to_color",
]

#: RGB colour of each visibility class: VISIBLE green, INVISIBLE orange, BACKGROUND light grey.
VISIBILITY_COLORS: Final[Mapping[Visibility, tuple[int, int, int]]] = MappingProxyType(
    {
        Visibility.VISIBLE: (60, 180, 75),
        Visibility.INVISIBLE: (245, 130, 48),
        Visibility.BACKGROUND: (235, 235, 235),
    }
)

# Middlebury wheel: number of hue steps between red, yellow, green, cyan, blue, magenta, red.
_WHEEL_SEGMENTS: Final[tuple[int, ...]] = (15, 6, 4, 11, 13, 6)
_PANEL_BACKGROUND: Final[int] = 255


def _color_wheel() -> np.ndarray:
    """The 55-entry Middlebury colour wheel as ``(55, 3)`` float RGB in ``[0, 255]``."""
    ramps = [np.floor(255 * np.arange(n) / n) for n in _WHEEL_SEGMENTS]
    full = [np.full(n, 255.0) for n in _WHEEL_SEGMENTS]
    zero = [np.zeros(n) for n in _WHEEL_SEGMENTS]
    # Per segment: which channel is full, which ramps up (+) or down (-), which is zero.
    red_to_yellow = np.stack([full[0], ramps[0], zero[0]], axis=1)
    yellow_to_green = np.stack([255 - ramps[1], full[1], zero[1]], axis=1)
    green_to_cyan = np.stack([zero[2], full[2], ramps[2]], axis=1)
    cyan_to_blue = np.stack([zero[3], 255 - ramps[3], full[3]], axis=1)
    blue_to_magenta = np.stack([ramps[4], zero[4], full[4]], axis=1)
    magenta_to_red = np.stack([full[5], zero[5], 255 - ramps[5]], axis=1)
    return np.concatenate(
        [
            red_to_yellow,
            yellow_to_green,
            green_to_cyan,
            cyan_to_blue,
            blue_to_magenta,
            magenta_to_red,
        ]
    )


def _to_numpy(a: torch.Tensor | np.ndarray) -> np.ndarray:
    """Detach a tensor to a CPU numpy array (float32 for floating tensors); pass arrays through."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu()
        return (a.float() if a.is_floating_point() else a).numpy()
    if isinstance(a, np.ndarray):
        return a
    raise ValueError(f"expected a torch.Tensor or np.ndarray, got {type(a).__name__}")


def flow_to_color(
    flow: torch.Tensor | np.ndarray, max_magnitude: float | None = None
) -> np.ndarray:
    """Colour-code a flow field with the Middlebury wheel.

    Saturation is ``min(|F| / max_magnitude, 1)``: magnitudes at or above the maximum get the
    pure wheel colour (clipped, where the Middlebury code darkens them). Non-finite vectors are
    drawn black. Hue is interpolated around the 55-colour wheel; ``+x`` is pure red.

    Args:
        flow: ``(2, H, W)`` or ``(H, W, 2)`` flow ``(dx, dy)``; a leading axis of 2 is read as
            channels first.
        max_magnitude: Magnitude drawn fully saturated; defaults to the largest finite
            magnitude in ``flow`` (a zero flow is then all white). Fix it to compare panels.

    Returns:
        ``(H, W, 3)`` uint8 RGB image.
    """
    arr = _to_numpy(flow).astype(np.float64)
    if arr.ndim != 3 or 2 not in (arr.shape[0], arr.shape[-1]):
        raise ValueError(f"flow must have shape (2, H, W) or (H, W, 2), got flow.shape={arr.shape}")
    dx, dy = (arr[0], arr[1]) if arr.shape[0] == 2 else (arr[..., 0], arr[..., 1])
    finite = np.isfinite(dx) & np.isfinite(dy)
    dx, dy = np.where(finite, dx, 0.0), np.where(finite, dy, 0.0)
    radius = np.hypot(dx, dy)
    if max_magnitude is None:
        max_magnitude = float(radius.max(initial=0.0))
    elif not max_magnitude > 0:
        raise ValueError(f"max_magnitude must be positive, got max_magnitude={max_magnitude!r}")
    saturation = np.clip(radius / max_magnitude, 0.0, 1.0) if max_magnitude > 0 else radius * 0

    wheel = _color_wheel() / 255.0
    num_colors = len(wheel)
    angle = np.arctan2(-dy, -dx) / np.pi  # in [-1, 1]; +x gives -1 or +1: red either way
    # Scaled by num_colors (not num_colors - 1 as in the reference code) so the wheel has no seam.
    position = (angle + 1) / 2 * num_colors % num_colors
    k0 = np.minimum(np.floor(position).astype(np.int64), num_colors - 1)
    k1 = (k0 + 1) % num_colors
    frac = (position - k0)[..., None]
    hue = (1 - frac) * wheel[k0] + frac * wheel[k1]
    color = 1 - saturation[..., None] * (1 - hue)
    color[~finite] = 0.0
    return np.round(255 * color).astype(np.uint8)


def flow_wheel_legend(size: int = 64) -> np.ndarray:
    """A disc showing the colour of every direction at full to zero magnitude.

    Args:
        size: Side of the square image in pixels.

    Returns:
        ``(size, size, 3)`` uint8 RGB; the disc of radius ``size / 2`` is colour-coded as the
        flow from its centre, outside it is white.
    """
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got size={size!r}")
    centres = (np.arange(size) + 0.5 - size / 2) / (size / 2)
    dy, dx = np.meshgrid(centres, centres, indexing="ij")
    image = flow_to_color(np.stack([dx, dy]), max_magnitude=1.0)
    image[np.hypot(dx, dy) > 1.0] = _PANEL_BACKGROUND
    return image


def visibility_to_color(vis: torch.Tensor | np.ndarray) -> np.ndarray:
    """Paint visibility codes with :data:`VISIBILITY_COLORS`.

    Args:
        vis: ``(H, W)`` integer :class:`~posetransfer.conventions.Visibility` codes.

    Returns:
        ``(H, W, 3)`` uint8 RGB image.
    """
    arr = _to_numpy(vis)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"vis must be an (H, W) integer array, got {arr.shape} {arr.dtype}")
    bad = ~np.isin(arr, [int(v) for v in Visibility])
    if bad.any():
        raise ValueError(
            f"vis holds codes outside Visibility {list(map(int, Visibility))}: "
            f"{sorted(set(arr[bad].tolist()))[:10]}"
        )
    palette = np.zeros((max(Visibility) + 1, 3), dtype=np.uint8)
    for code, rgb in VISIBILITY_COLORS.items():
        palette[code] = rgb
    return palette[arr]


def _label_band(text: str, width: int, height: int) -> np.ndarray:
    """Render ``text`` in black on a white ``(height, width, 3)`` band, clipped to the band."""
    band = Image.new("RGB", (width, height), (_PANEL_BACKGROUND,) * 3)
    ImageDraw.Draw(band).text((1, 1), text, fill=(0, 0, 0), font=ImageFont.load_default())
    return np.asarray(band)


def make_panel(
    images: Sequence[np.ndarray], labels: Sequence[str] | None = None, pad: int = 4
) -> np.ndarray:
    """Lay images out left to right on white, with an optional text label above each.

    Args:
        images: ``(H_k, W_k, 3)`` uint8 images; heights may differ (top-aligned).
        labels: One string per image, drawn with PIL's default font; ``None`` for no labels.
        pad: White margin in pixels around and between images.

    Returns:
        ``(pad + L + max H_k + pad, sum W_k + (n + 1) * pad, 3)`` uint8 panel, where ``L`` is
        the label band height plus ``pad`` (0 without labels).
    """
    if len(images) == 0:
        raise ValueError("images must hold at least one image")
    for k, image in enumerate(images):
        check_rgb(image, f"images[{k}]")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"got {len(labels)} labels for {len(images)} images")
    if not isinstance(pad, int) or pad < 0:
        raise ValueError(f"pad must be a non-negative int, got pad={pad!r}")
    label_h = 0
    if labels is not None:
        font = ImageFont.load_default()
        label_h = int(max(font.getbbox(text or " ")[3] for text in labels)) + 2
    top = pad + (label_h + pad if labels is not None else 0)
    height = top + max(image.shape[0] for image in images) + pad
    width = sum(image.shape[1] for image in images) + (len(images) + 1) * pad
    panel = np.full((height, width, 3), _PANEL_BACKGROUND, dtype=np.uint8)
    left = pad
    for k, image in enumerate(images):
        h, w = image.shape[:2]
        if labels is not None:
            panel[pad : pad + label_h, left : left + w] = _label_band(labels[k], w, label_h)
        panel[top : top + h, left : left + w] = image
        left += w + pad
    return panel
