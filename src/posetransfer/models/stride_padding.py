"""Padding to a network's stride and cropping back, so every image size is accepted.

The U-Nets halve their input ``L`` times, so they run on sizes that are multiples of their
stride ``2**L``. Their ``forward`` pads any other size up to the next multiple and crops the
outputs back. Padding goes on the bottom and right only, so pixel ``(i, j)`` and every
coordinate (keypoints, flow vectors) keep their meaning; what fills the new pixels depends on
the input:

- images (``[-1, 1]``): the border pixels are replicated (no hard edge for the convolutions);
- pose maps and flow: zero (no keypoint there; flow is 0 on background by convention);
- visibility: :attr:`~posetransfer.conventions.Visibility.BACKGROUND` (codes, or one-hot
  probabilities), so the padded area is background for every visibility-aware layer.

A size that already is a multiple is returned untouched (the same tensor object), so those
outputs are bit-identical to running the network directly.
"""

from __future__ import annotations

from typing import overload

import torch
import torch.nn.functional as F

from posetransfer.conventions import NUM_VISIBILITY_CLASSES, Visibility

__all__ = [
    "crop_to",
    "pad_amount",
    "pad_constant",
    "pad_image",
    "pad_visibility",
    "padded_size",
]

_BG = int(Visibility.BACKGROUND)


def padded_size(size: tuple[int, int], stride: int) -> tuple[int, int]:
    """``(H, W)`` rounded up to multiples of ``stride``."""
    return (-(-size[0] // stride) * stride, -(-size[1] // stride) * stride)


def pad_amount(size: tuple[int, int], stride: int) -> tuple[int, int]:
    """Rows and columns ``(pad_h, pad_w)`` to add at the bottom and right of an ``(H, W)`` size."""
    height, width = padded_size(size, stride)
    return height - size[0], width - size[1]


def pad_image(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Pad ``(B, C, H, W)`` at the bottom/right by replicating the last row/column.

    Returns:
        ``(B, C, H', W')`` with ``H'``, ``W'`` the next multiples of ``stride``; ``x`` itself if
        nothing is needed.
    """
    pad_h, pad_w = pad_amount((x.shape[-2], x.shape[-1]), stride)
    if not (pad_h or pad_w):
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")


@overload
def pad_constant(x: torch.Tensor, stride: int, value: float = 0.0) -> torch.Tensor: ...
@overload
def pad_constant(x: None, stride: int, value: float = 0.0) -> None: ...
def pad_constant(x: torch.Tensor | None, stride: int, value: float = 0.0) -> torch.Tensor | None:
    """Pad ``(B, C, H, W)`` at the bottom/right with ``value`` (0 for pose maps and flow).

    Returns:
        ``(B, C, H', W')``; ``x`` itself if nothing is needed; None for None.
    """
    if x is None:
        return None
    pad_h, pad_w = pad_amount((x.shape[-2], x.shape[-1]), stride)
    if not (pad_h or pad_w):
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), value=value)


@overload
def pad_visibility(vis: torch.Tensor, stride: int) -> torch.Tensor: ...
@overload
def pad_visibility(vis: None, stride: int) -> None: ...
def pad_visibility(vis: torch.Tensor | None, stride: int) -> torch.Tensor | None:
    """Pad visibility at the bottom/right as BACKGROUND; None stays None.

    Args:
        vis: ``(B, H, W)`` integer codes, or ``(B, 3, H, W)`` class probabilities.
        stride: Pad ``H`` and ``W`` to its multiples.

    Returns:
        Codes padded with ``Visibility.BACKGROUND``, or probabilities padded with its one-hot
        vector; ``vis`` itself if nothing is needed.
    """
    if vis is None:
        return None
    pad_h, pad_w = pad_amount((vis.shape[-2], vis.shape[-1]), stride)
    if not (pad_h or pad_w):
        return vis
    pads = (0, pad_w, 0, pad_h)
    if vis.ndim == 3:
        return F.pad(vis, pads, value=_BG)
    channels = [
        F.pad(vis[:, c : c + 1], pads, value=float(c == _BG)) for c in range(NUM_VISIBILITY_CLASSES)
    ]
    return torch.cat(channels, dim=1)


@overload
def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor: ...
@overload
def crop_to(x: None, size: tuple[int, int]) -> None: ...
def crop_to(x: torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor | None:
    """The top-left ``(H, W)`` of ``(..., H', W')`` (a view; ``x`` itself if already that size)."""
    if x is None or tuple(x.shape[-2:]) == tuple(size):
        return x
    return x[..., : size[0], : size[1]]
