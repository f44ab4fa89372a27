"""Pixel metrics per image: PSNR, L1 and masked L1, in float64.

Scales are explicit. Inputs carry values on a scale whose full range is ``data_range`` (255 for
8-bit values, 1 for ``[0, 1]`` floats, 2 for ``[-1, 1]``):

- PSNR ``= 10 log10(data_range^2 / MSE)`` per image, MSE over all channels and pixels
  (skimage's ``peak_signal_noise_ratio``; GFLA/CFLD average it over images). Identical images
  give ``+inf``; :func:`finite_mean` averages the finite values and counts the others.
- L1 ``= mean |pred - target| / data_range``, i.e. the mean absolute error on the ``[0, 1]``
  scale (GFLA's ``l1`` on ``[0, 1]`` images). The Def-GAN/PATN ``l1_score`` works on
  ``[-1, 1]`` and is exactly twice this value.
- masked L1: the same mean restricted to pixels inside the mask (all channels), so the
  background does not dilute it; an empty mask gives NaN.
"""

from __future__ import annotations

import torch

__all__ = ["finite_mean", "l1", "masked_l1", "psnr"]


def _check(pred: torch.Tensor, target: torch.Tensor, data_range: float, name: str) -> None:
    if pred.ndim != 4 or pred.shape != target.shape:
        raise ValueError(
            f"{name} expects two (B, C, H, W) tensors of the same shape, got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if not (isinstance(data_range, int | float) and data_range > 0):
        raise ValueError(f"{name}: data_range must be a positive number, got {data_range!r}")


def psnr(pred: torch.Tensor, target: torch.Tensor, *, data_range: float) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, in dB.

    Args:
        pred: ``(B, C, H, W)`` generated images.
        target: ``(B, C, H, W)`` ground truth on the same scale.
        data_range: Full range of that scale (255 for 8-bit values).

    Returns:
        ``(B,)`` float64; ``+inf`` where the images are identical.
    """
    _check(pred, target, data_range, "psnr")
    diff = pred.to(torch.float64) - target.to(torch.float64)
    mse = diff.square().flatten(1).mean(dim=1)
    return 10.0 * torch.log10(data_range**2 / mse)  # mse == 0 -> +inf, no warning in torch


def l1(pred: torch.Tensor, target: torch.Tensor, *, data_range: float) -> torch.Tensor:
    """Mean absolute error per image on the ``[0, 1]`` scale.

    Args:
        pred: ``(B, C, H, W)`` generated images.
        target: ``(B, C, H, W)`` ground truth on the same scale.
        data_range: Full range of that scale; differences are divided by it.

    Returns:
        ``(B,)`` float64.
    """
    _check(pred, target, data_range, "l1")
    diff = (pred.to(torch.float64) - target.to(torch.float64)).abs()
    return diff.flatten(1).mean(dim=1) / data_range


def masked_l1(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, *, data_range: float
) -> torch.Tensor:
    """Mean absolute error over the pixels inside ``mask``, on the ``[0, 1]`` scale.

    Args:
        pred: ``(B, C, H, W)`` generated images.
        target: ``(B, C, H, W)`` ground truth on the same scale.
        mask: ``(B, 1, H, W)`` or ``(B, H, W)``, bool or 0/1.
        data_range: Full range of the image scale.

    Returns:
        ``(B,)`` float64; NaN for an empty mask.
    """
    _check(pred, target, data_range, "masked_l1")
    b, c, h, w = pred.shape
    if tuple(mask.shape) not in ((b, 1, h, w), (b, h, w)):
        raise ValueError(
            f"masked_l1: mask must be ({b}, 1, {h}, {w}) or ({b}, {h}, {w}), "
            f"got {tuple(mask.shape)}"
        )
    m = mask.reshape(b, 1, h, w).to(torch.float64)
    diff = (pred.to(torch.float64) - target.to(torch.float64)).abs() * m
    count = m.flatten(1).sum(dim=1) * c
    return diff.flatten(1).sum(dim=1) / count / data_range  # 0 / 0 -> NaN for an empty mask


def finite_mean(values: torch.Tensor) -> tuple[float | None, int]:
    """Mean of the finite entries and the number of non-finite ones (inf PSNR, NaN SSIM).

    Args:
        values: ``(N,)`` per-image values.

    Returns:
        ``(mean, num_nonfinite)``; the mean is None when no entry is finite.
    """
    flat = values.reshape(-1).to(torch.float64)
    finite = torch.isfinite(flat)
    count = int(finite.sum())
    mean = float(flat[finite].mean()) if count else None
    return mean, int(flat.numel() - count)
