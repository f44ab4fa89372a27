"""SSIM (Wang et al. 2004) exactly as scikit-image computes it, batched, in float64 torch.

Reference: ``skimage.metrics.structural_similarity(a, b, channel_axis=..., data_range=...)`` with
either ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False`` (the Def-GAN/PATN
"SSIM", GFLA/CFLD's ``ssim_256``) or ``win_size=51`` uniform weights with the sample covariance
(GFLA/CFLD's ``ssim``). scikit-image filters the whole image (reflect padding) and then drops a
``(win_size - 1) / 2`` border from the SSIM map, so only *valid* windows count; here the filters
are valid convolutions, which give the same map without computing the border. Channels are
scored separately and averaged, as ``channel_axis`` does. The window rule is skimage's:
a Gaussian window has radius ``int(3.5 * sigma + 0.5)`` (11 taps for sigma 1.5), weights
``exp(-x^2 / (2 sigma^2))`` normalised to sum 1; a uniform window has ``win_size`` taps.

``data_range`` is always explicit: a number (255 for uint8 values), or ``"gen_range"``, the
generated image's ``max - min`` over all its channels, which the Def-GAN/PATN scripts pass
(``data_range=generated.max() - generated.min()``). SSIM is invariant to scaling both images and
the data range together, so 8-bit values with range 255 equal ``[0, 1]`` values with range 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

__all__ = [
    "GAUSSIAN_GEN_RANGE",
    "UNIFORM_7",
    "UNIFORM_51",
    "DataRange",
    "SSIMSpec",
    "gaussian_window",
    "masked_ssim",
    "ssim",
    "ssim_map",
]

#: A number, a ``(B,)`` tensor of per-image ranges, or ``"gen_range"``.
DataRange = float | torch.Tensor | Literal["gen_range"]


@dataclass(frozen=True)
class SSIMSpec:
    """One SSIM definition.

    Attributes:
        window: ``"gaussian"`` or ``"uniform"``.
        sigma: Gaussian standard deviation (``window="gaussian"`` only).
        win_size: Window size for ``"uniform"``; for ``"gaussian"`` None (derived from sigma).
        sample_covariance: Divide (co)variances by ``N - 1`` instead of ``N`` (skimage's
            ``use_sample_covariance``, its default, used by GFLA's win-51 SSIM).
        data_range: A number or ``"gen_range"``.
    """

    window: Literal["gaussian", "uniform"] = "gaussian"
    sigma: float = 1.5
    win_size: int | None = None
    sample_covariance: bool = False
    data_range: float | Literal["gen_range"] = "gen_range"

    def describe(self) -> str:
        """One line, in skimage's vocabulary."""
        if self.window == "gaussian":
            taps = 2 * _gaussian_radius(self.sigma) + 1
            win = f"Gaussian window sigma {self.sigma} ({taps} taps)"
        else:
            win = f"uniform {self.win_size}x{self.win_size} window"
        cov = "sample" if self.sample_covariance else "population"
        rng = (
            "data_range = generated max - min"
            if self.data_range == "gen_range"
            else f"data_range = {self.data_range:g} on 8-bit values"
        )
        return f"SSIM, {win}, {cov} covariance, {rng}, valid windows only (skimage)"


#: Def-GAN/PATN SSIM (``gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
#: data_range=generated.max() - generated.min()``); GFLA/CFLD call it ``ssim_256``.
GAUSSIAN_GEN_RANGE = SSIMSpec("gaussian", 1.5, None, False, "gen_range")
#: GFLA/CFLD/PIDM ``ssim``: ``compare_ssim(data_range=1, win_size=51)`` on ``[0, 1]`` images.
UNIFORM_51 = SSIMSpec("uniform", 1.5, 51, True, 255.0)
#: skimage's defaults (7x7 uniform, sample covariance), as the original Intr-Flow code used.
UNIFORM_7 = SSIMSpec("uniform", 1.5, 7, True, 255.0)


def _gaussian_radius(sigma: float, truncate: float = 3.5) -> int:
    return int(truncate * sigma + 0.5)


def gaussian_window(sigma: float, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """skimage/scipy's 1-D Gaussian: radius ``int(3.5 * sigma + 0.5)``, weights summing to 1.

    Returns:
        ``(2r + 1,)`` weights.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    radius = _gaussian_radius(sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * x**2 / sigma**2)
    return (w / w.sum()).to(dtype)


def _window(spec: SSIMSpec) -> torch.Tensor:
    if spec.window == "gaussian":
        return gaussian_window(spec.sigma)
    if spec.window == "uniform":
        if spec.win_size is None or spec.win_size < 1 or spec.win_size % 2 == 0:
            raise ValueError(f"uniform SSIM needs an odd positive win_size, got {spec.win_size}")
        return torch.full((spec.win_size,), 1.0 / spec.win_size, dtype=torch.float64)
    raise ValueError(f"SSIM window must be 'gaussian' or 'uniform', got {spec.window!r}")


def _filter_valid(x: torch.Tensor, window: torch.Tensor, kind: str, dim: int) -> torch.Tensor:
    """Correlate ``x`` with a 1-D window along ``dim``, keeping valid positions only.

    Shifted in-place sums (Gaussian) and a cumulative-sum box filter (uniform) are several times
    faster than a float64 ``conv2d`` on CPU; both agree with it to ~1e-12 on 8-bit data.
    """
    n = window.numel()
    length = x.shape[dim] - n + 1
    if kind == "uniform":
        c = torch.cumsum(x, dim)
        out = c.narrow(dim, n - 1, length).clone()
        out.narrow(dim, 1, length - 1).sub_(c.narrow(dim, 0, length - 1))
        return out.div_(n)
    out = x.narrow(dim, 0, length) * window[0]
    for k in range(1, n):
        out.add_(x.narrow(dim, k, length), alpha=float(window[k]))
    return out


def _check_pair(pred: torch.Tensor, target: torch.Tensor, name: str) -> None:
    if pred.ndim != 4 or pred.shape != target.shape:
        raise ValueError(
            f"{name} expects two (B, C, H, W) tensors of the same shape, got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )


def _data_range(pred: torch.Tensor, data_range: DataRange) -> torch.Tensor:
    """``(B, 1, 1, 1)`` float64 data range."""
    b = pred.shape[0]
    if isinstance(data_range, str):
        if data_range != "gen_range":
            raise ValueError(f"data_range must be a number or 'gen_range', got {data_range!r}")
        flat = pred.reshape(b, -1)
        rng = flat.amax(dim=1) - flat.amin(dim=1)
    elif isinstance(data_range, torch.Tensor):
        rng = data_range.to(torch.float64).reshape(-1)
        rng = rng.expand(b) if rng.numel() == 1 else rng
        if rng.shape != (b,):
            raise ValueError(f"data_range tensor must hold 1 or {b} values, got {rng.numel()}")
    else:
        if not float(data_range) > 0:
            raise ValueError(f"data_range must be positive, got {data_range}")
        rng = torch.full((b,), float(data_range), dtype=torch.float64)
    return rng.to(device=pred.device, dtype=torch.float64).view(b, 1, 1, 1)


def ssim_map(
    pred: torch.Tensor,
    target: torch.Tensor,
    spec: SSIMSpec = GAUSSIAN_GEN_RANGE,
    *,
    data_range: DataRange | None = None,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Per-pixel SSIM over valid windows.

    Args:
        pred: ``(B, C, H, W)`` generated images, any real dtype (computed in float64).
        target: ``(B, C, H, W)`` ground truth, same scale as ``pred``.
        spec: Window and covariance settings; its ``data_range`` unless overridden.
        data_range: Overrides ``spec.data_range``.
        k1: Luminance constant, ``C1 = (k1 * data_range)^2``.
        k2: Contrast constant, ``C2 = (k2 * data_range)^2``.

    Returns:
        ``(B, C, H - w + 1, W - w + 1)`` float64 map, ``w`` the window size.

    Raises:
        ValueError: On mismatched shapes, an image smaller than the window or a bad data range.
    """
    _check_pair(pred, target, "ssim")
    window = _window(spec).to(pred.device)
    w = window.numel()
    h, wd = pred.shape[-2:]
    if min(h, wd) < w:
        raise ValueError(f"SSIM window of {w} pixels does not fit in {h}x{wd} images")
    rng = _data_range(pred, spec.data_range if data_range is None else data_range)
    x = target.to(torch.float64)  # skimage's im1 is the reference; SSIM is symmetric anyway
    y = pred.to(torch.float64)
    stack = torch.stack([x, y, x * x, y * y, x * y], dim=1)  # (B, 5, C, H, W)
    filtered = _filter_valid(_filter_valid(stack, window, spec.window, -2), window, spec.window, -1)
    ux, uy, uxx, uyy, uxy = filtered.unbind(dim=1)
    n = w * w
    cov_norm = n / (n - 1) if spec.sample_covariance else 1.0
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1 = (k1 * rng) ** 2
    c2 = (k2 * rng) ** 2
    num = (2 * ux * uy + c1) * (2 * vxy + c2)
    den = (ux * ux + uy * uy + c1) * (vx + vy + c2)
    return num / den


def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    spec: SSIMSpec = GAUSSIAN_GEN_RANGE,
    *,
    data_range: DataRange | None = None,
) -> torch.Tensor:
    """Mean SSIM per image, equal to skimage's ``structural_similarity`` with ``channel_axis``.

    Args:
        pred: ``(B, C, H, W)`` generated images (the ``gen_range`` data range comes from these).
        target: ``(B, C, H, W)`` ground truth, same scale.
        spec: Window, covariance and data range (default: Def-GAN/PATN, Gaussian sigma 1.5 with
            the generated image's range).
        data_range: Overrides ``spec.data_range``: a number, a ``(B,)`` tensor or ``"gen_range"``.

    Returns:
        ``(B,)`` float64 SSIM values.

    Example:
        >>> x = torch.rand(2, 3, 32, 32) * 255
        >>> ssim(x, x, data_range=255.0)
        tensor([1., 1.], dtype=torch.float64)
    """
    return ssim_map(pred, target, spec, data_range=data_range).mean(dim=(1, 2, 3))


def masked_ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    spec: SSIMSpec = GAUSSIAN_GEN_RANGE,
    *,
    data_range: DataRange | None = None,
) -> torch.Tensor:
    """SSIM of the mask-multiplied images, as the pose-gan/PATN "mask-SSIM" scripts compute it.

    Both images are multiplied by the mask (pixels outside become 0, black on 8-bit values) and
    scored over the whole image; ``"gen_range"`` is taken from the *masked* generated image.

    Args:
        pred: ``(B, C, H, W)`` generated images.
        target: ``(B, C, H, W)`` ground truth.
        mask: ``(B, 1, H, W)`` or ``(B, H, W)`` mask (bool or 0/1).
        spec: As for :func:`ssim`.
        data_range: As for :func:`ssim`.

    Returns:
        ``(B,)`` float64 values.
    """
    _check_pair(pred, target, "masked_ssim")
    b, _, h, w = pred.shape
    if tuple(mask.shape) not in ((b, 1, h, w), (b, h, w)):
        raise ValueError(
            f"masked_ssim: mask must be ({b}, 1, {h}, {w}) or ({b}, {h}, {w}), "
            f"got {tuple(mask.shape)}"
        )
    m = mask.reshape(b, 1, h, w).to(torch.float64)
    x, y = pred.to(torch.float64) * m, target.to(torch.float64) * m
    return ssim(x, y, spec, data_range=data_range)
