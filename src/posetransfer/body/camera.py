"""Weak-perspective (scaled orthographic) camera from Anny's world frame to image pixels.

Model
    The camera looks along world **+Y** at the body (which faces -Y at zero global orientation),
    with image x to the world +X and image y to world -Z (down)::

        x = s * X + tx,    y = -s * Z + ty,    depth = s * Y

    ``camera = (log s, tx, ty)``: ``s`` is the scale in pixels per metre (stored as a log so the
    fit keeps it positive), ``(tx, ty)`` the image position of the world origin (the pelvis).

Why weak perspective
    DeepFashion and Market-1501 photos are long-focal-length shots of a person who is small
    compared with the camera distance, so the perspective effect across the body is a few percent.
    A full perspective camera adds a focal length and a depth that 2D keypoints barely constrain;
    the weak-perspective camera keeps the 2D fit well conditioned, and it is what HMR (whose fits
    the paper used) estimates.

Convention
    Image coordinates follow ``posetransfer.conventions``: pixels, origin at the top-left corner
    of the top-left pixel, so pixel ``(row i, col j)`` has its centre at ``(j + 0.5, i + 0.5)``.
    ``depth`` is in pixels too and increases away from the camera (a surface facing the camera has
    smaller depth than the back of the body), as ``posetransfer.render.rasterize`` expects. On a
    frontal body the person's right appears on the image left, as in a photo of someone facing
    the camera.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["camera_scale", "make_camera", "project", "rescale_camera"]


def _check_camera(camera: Tensor, name: str = "camera") -> None:
    if camera.shape[-1:] != (3,):
        raise ValueError(
            f"{name} must have shape (..., 3) = (log s, tx, ty), got {tuple(camera.shape)}"
        )


def make_camera(scale: Tensor | float, tx: Tensor | float, ty: Tensor | float) -> Tensor:
    """Build ``(..., 3)`` cameras from a scale in pixels per metre and a translation in pixels.

    Args:
        scale: Pixels per metre, positive; a float or a tensor of any batch shape.
        tx: Image x of the world origin (pixels).
        ty: Image y of the world origin (pixels).

    Returns:
        ``(..., 3)`` float32 cameras ``(log s, tx, ty)``.
    """
    s, x, y = torch.broadcast_tensors(
        *(torch.as_tensor(v, dtype=torch.float32) for v in (scale, tx, ty))
    )
    if (s <= 0).any():
        raise ValueError(f"camera scale must be positive, got min {s.min().item()}")
    return torch.stack([s.log(), x, y], dim=-1)


def camera_scale(camera: Tensor) -> Tensor:
    """Pixels per metre ``s`` of ``(..., 3)`` cameras, shape ``(...)``."""
    _check_camera(camera)
    return camera[..., 0].exp()


def project(points: Tensor, camera: Tensor) -> Tensor:
    """Project world points to image space.

    Args:
        points: ``(B, N, 3)`` world points in metres (Z up, body facing -Y).
        camera: ``(B, 3)`` cameras ``(log s, tx, ty)``.

    Returns:
        ``(B, N, 3)`` image-space points ``(x, y, depth)`` in pixels; depth increases away from
        the camera.
    """
    _check_camera(camera)
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"points must have shape (B, N, 3), got {tuple(points.shape)}")
    if camera.ndim != 2 or camera.shape[0] not in (1, points.shape[0]):
        raise ValueError(
            f"camera must have shape (B, 3) with B = {points.shape[0]}, got {tuple(camera.shape)}"
        )
    s = camera[:, 0].exp()[:, None]
    x = s * points[..., 0] + camera[:, 1, None]
    y = -s * points[..., 2] + camera[:, 2, None]
    depth = s * points[..., 1]
    return torch.stack([x, y, depth], dim=-1)


def rescale_camera(camera: Tensor, factor: float) -> Tensor:
    """The camera for the same view of an image resized by ``factor`` in both directions.

    Resizing an image by ``f`` maps the point at ``x`` (pixel-corner origin) to ``f * x``, so the
    scale and the translation are multiplied by ``f``.

    Args:
        camera: ``(..., 3)`` cameras ``(log s, tx, ty)``.
        factor: Positive resize factor (e.g. 2.0 from 256x176 to 512x352).

    Returns:
        ``(..., 3)`` rescaled cameras.
    """
    _check_camera(camera)
    if not factor > 0 or not math.isfinite(factor):
        raise ValueError(f"rescale factor must be a positive finite number, got {factor}")
    return torch.stack(
        [camera[..., 0] + math.log(factor), camera[..., 1] * factor, camera[..., 2] * factor],
        dim=-1,
    )
