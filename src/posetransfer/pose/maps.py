"""Pose maps: keypoints rendered as image-sized channels for the networks.

Convention:
    Inputs are batched: ``xy`` ``(B, 18, 2)`` float continuous ``(x, y)`` pixels and ``valid``
    ``(B, 18)`` bool (see :func:`posetransfer.pose.keypoints.stack_poses`). Maps are evaluated at
    the pixel centres ``(j + 0.5, i + 0.5)`` and returned as ``(B, C, H, W)`` in the dtype and on
    the device of ``xy``. An invalid keypoint (or a limb with an invalid end) gives a zero channel.

The original DIAF input is :func:`keypoint_disks` (radius 8 px on DeepFashion 256x256, 4 px on
Market 128x64). Its optional "gaussian" mode used ``exp(-d^2 / r^2)``; ours is the usual
``exp(-d^2 / (2 sigma^2))``, so ``sigma = r / sqrt(2)`` reproduces it.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Literal

import torch

from posetransfer.config import ConfigError
from posetransfer.conventions import LIMBS, NUM_KEYPOINTS

__all__ = [
    "PoseMapConfig",
    "keypoint_disks",
    "keypoint_heatmaps",
    "limb_maps",
    "num_pose_channels",
    "pose_maps",
]


@dataclass(frozen=True)
class PoseMapConfig:
    """How keypoints become network input channels.

    Attributes:
        kind: ``"disk"`` (binary disks, the original encoding) or ``"gaussian"``.
        sigma: Gaussian standard deviation in pixels (``kind="gaussian"``).
        radius: Disk radius in pixels (``kind="disk"``); 8 for 256x256 images, 4 for 128x64.
        limbs: Append one binary channel per limb of ``conventions.LIMBS``.
        limb_width: Full width of the limb strokes in pixels.
    """

    kind: Literal["gaussian", "disk"] = "disk"
    sigma: float = 6.0
    radius: float = 8.0
    limbs: bool = False
    limb_width: float = 4.0

    def __post_init__(self) -> None:
        if self.kind not in ("gaussian", "disk"):
            raise ConfigError(f"PoseMapConfig.kind must be 'gaussian' or 'disk', got {self.kind!r}")
        for name in ("sigma", "radius", "limb_width"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 < value < float("inf"):
                raise ConfigError(f"PoseMapConfig.{name} must be a positive number, got {value!r}")


def num_pose_channels(cfg: PoseMapConfig) -> int:
    """Channels of one pose's maps: 18 keypoint channels, plus 19 limb channels if enabled."""
    return NUM_KEYPOINTS + (len(LIMBS) if cfg.limbs else 0)


def pose_maps(
    xy: torch.Tensor, valid: torch.Tensor, size: tuple[int, int], cfg: PoseMapConfig
) -> torch.Tensor:
    """Render poses as configured by ``cfg``.

    Args:
        xy: ``(B, 18, 2)`` float keypoints in pixels.
        valid: ``(B, 18)`` bool.
        size: ``(H, W)`` of the maps.
        cfg: Encoding settings.

    Returns:
        ``(B, num_pose_channels(cfg), H, W)``: keypoint channels, then limb channels.
    """
    if cfg.kind == "gaussian":
        maps = keypoint_heatmaps(xy, valid, size, sigma=cfg.sigma)
    else:
        maps = keypoint_disks(xy, valid, size, radius=cfg.radius)
    if cfg.limbs:
        maps = torch.cat([maps, limb_maps(xy, valid, size, width=cfg.limb_width)], dim=1)
    return maps


def keypoint_heatmaps(
    xy: torch.Tensor, valid: torch.Tensor, size: tuple[int, int], sigma: float = 6.0
) -> torch.Tensor:
    """Gaussian bumps ``exp(-d^2 / (2 sigma^2))`` around each keypoint (differentiable in ``xy``).

    Args:
        xy: ``(B, 18, 2)`` float keypoints in pixels.
        valid: ``(B, 18)`` bool.
        size: ``(H, W)`` of the maps.
        sigma: Standard deviation in pixels, positive.

    Returns:
        ``(B, 18, H, W)`` in ``[0, 1]``; zero channels for invalid keypoints.
    """
    _check_positive(sigma, "sigma")
    dx2, dy2 = _axis_sq_dists(xy, valid, size)
    # exp is separable: an (H, 1) column times a (1, W) row per channel.
    inv = -0.5 / (sigma * sigma)
    maps = torch.exp(dy2 * inv) * torch.exp(dx2 * inv)
    return torch.where(valid[:, :, None, None], maps, 0.0)


def keypoint_disks(
    xy: torch.Tensor, valid: torch.Tensor, size: tuple[int, int], radius: float = 8.0
) -> torch.Tensor:
    """Binary disks: 1 at pixels whose centre is within ``radius`` of the keypoint (``d^2 <= r^2``).

    Args:
        xy: ``(B, 18, 2)`` float keypoints in pixels.
        valid: ``(B, 18)`` bool.
        size: ``(H, W)`` of the maps.
        radius: Disk radius in pixels, positive.

    Returns:
        ``(B, 18, H, W)`` of 0/1 values in the dtype of ``xy``; zero channels for invalid points.
    """
    _check_positive(radius, "radius")
    dx2, dy2 = _axis_sq_dists(xy, valid, size)
    inside = (dx2 + dy2 <= radius * radius) & valid[:, :, None, None]
    return inside.to(xy.dtype)


def limb_maps(
    xy: torch.Tensor, valid: torch.Tensor, size: tuple[int, int], width: float = 4.0
) -> torch.Tensor:
    """Binary strokes along the limbs of ``conventions.LIMBS``.

    A pixel is 1 when its centre lies within ``width / 2`` of the segment between the limb's two
    keypoints (round caps at the ends).

    Args:
        xy: ``(B, 18, 2)`` float keypoints in pixels.
        valid: ``(B, 18)`` bool.
        size: ``(H, W)`` of the maps.
        width: Full stroke width in pixels, positive.

    Returns:
        ``(B, 19, H, W)`` of 0/1 values; zero channels for limbs with an invalid end.
    """
    _check_positive(width, "width")
    height, width_px = _check_inputs(xy, valid, size)
    xy = torch.where(valid[..., None], xy, 0.0)
    start = torch.tensor([a for a, _ in LIMBS], device=xy.device)
    end = torch.tensor([b for _, b in LIMBS], device=xy.device)
    a, b = xy[:, start], xy[:, end]  # (B, L, 2)
    limb_valid = valid[:, start] & valid[:, end]  # (B, L)
    v = b - a
    ax, ay = a[..., 0, None, None], a[..., 1, None, None]  # (B, L, 1, 1)
    vx, vy = v[..., 0, None, None], v[..., 1, None, None]
    len2 = vx * vx + vy * vy
    px = _centres(width_px, xy)[None, None, None, :] - ax  # (B, L, 1, W)
    py = _centres(height, xy)[None, None, :, None] - ay  # (B, L, H, 1)
    # Closest point on the segment: a + t v with t clamped to [0, 1] (t = 0 for a zero-length limb).
    t = ((px * vx + py * vy) / torch.where(len2 > 0, len2, torch.ones_like(len2))).clamp(0, 1)
    dist2 = (px - t * vx) ** 2 + (py - t * vy) ** 2
    inside = (dist2 <= (width / 2) ** 2) & limb_valid[:, :, None, None]
    return inside.to(xy.dtype)


# --------------------------------------------------------------------------------- helpers


def _check_inputs(xy: torch.Tensor, valid: torch.Tensor, size: tuple[int, int]) -> tuple[int, int]:
    """Validate the shared arguments and return ``(H, W)``."""
    if not isinstance(xy, torch.Tensor) or xy.ndim != 3 or xy.shape[1:] != (NUM_KEYPOINTS, 2):
        shape = tuple(xy.shape) if isinstance(xy, torch.Tensor) else type(xy).__name__
        raise ValueError(f"xy must be a (B, 18, 2) tensor, got {shape}")
    if not xy.is_floating_point():
        raise ValueError(f"xy must be a floating-point tensor, got {xy.dtype}")
    if not isinstance(valid, torch.Tensor) or valid.shape != xy.shape[:2]:
        shape = tuple(valid.shape) if isinstance(valid, torch.Tensor) else type(valid).__name__
        raise ValueError(f"valid must be a ({xy.shape[0]}, 18) tensor to match xy, got {shape}")
    if valid.dtype != torch.bool:
        raise ValueError(f"valid must be a bool tensor, got {valid.dtype}")
    try:
        height, width = (operator.index(s) for s in size)
    except (TypeError, ValueError):
        height = width = 0
    if height <= 0 or width <= 0 or any(isinstance(s, bool) for s in size):
        raise ValueError(f"size must be two positive ints (H, W), got {size!r}")
    return height, width


def _check_positive(value: float, name: str) -> None:
    if not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def _centres(n: int, like: torch.Tensor) -> torch.Tensor:
    """Pixel-centre coordinates ``0.5, 1.5, ..., n - 0.5``."""
    return torch.arange(n, dtype=like.dtype, device=like.device) + 0.5


def _axis_sq_dists(
    xy: torch.Tensor, valid: torch.Tensor, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared x distances ``(B, 18, 1, W)`` and y distances ``(B, 18, H, 1)`` to pixel centres.

    Invalid keypoints are moved to 0 first so NaN placeholders cannot leak into the maps.
    """
    height, width = _check_inputs(xy, valid, size)
    xy = torch.where(valid[..., None], xy, 0.0)
    dx = _centres(width, xy)[None, None, None, :] - xy[..., 0, None, None]
    dy = _centres(height, xy)[None, None, :, None] - xy[..., 1, None, None]
    return dx * dx, dy * dy
