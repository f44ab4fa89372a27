"""Per-pair scores of real test pairs, their means and paired-bootstrap intervals.

Metrics (the ``native`` protocol of :mod:`posetransfer.eval`, on 8-bit values): ``ssim``
(Gaussian window, sigma 1.5, range 255), ``psnr``, ``l1`` (mean absolute difference / 255), and
inside the **target's person mask** (the ``make-dataset`` segmentation mask thresholded at 0.5):
``mask_ssim`` (both images multiplied by the mask, as the pose-gan/PATN scripts do),
``mask_psnr`` and ``mask_l1`` (over the mask's pixels only). ``lpips`` (AlexNet, v0.1) is added
when its weights are found (:func:`lpips_model`); it is never downloaded.

:func:`paired_interval` is the paired bootstrap of a mean per-pair difference (pairs resampled
with replacement, the 2.5 and 97.5 percentiles of the resampled means), as
``benchmarks/generator_evidence.py`` uses. Pairs that share a source or a target are not
independent, so the intervals are somewhat narrower than a resampling of people would give.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from posetransfer.eval.metrics import l1, masked_l1, psnr
from posetransfer.eval.protocols import get_eval_protocol
from posetransfer.eval.ssim import masked_ssim, ssim

__all__ = [
    "HIGHER_IS_BETTER",
    "METRICS",
    "lpips_model",
    "mean_scores",
    "pair_scores",
    "paired_interval",
]

logger = logging.getLogger(__name__)

#: The metrics :func:`pair_scores` always gives, in table order.
METRICS = ("ssim", "psnr", "l1", "mask_ssim", "mask_psnr", "mask_l1")
#: Whether a larger value is better, per metric.
HIGHER_IS_BETTER = {"ssim": True, "psnr": True, "l1": False, "mask_ssim": True,
                    "mask_psnr": True, "mask_l1": False, "lpips": False}  # fmt: skip


def lpips_model() -> torch.nn.Module | None:
    """LPIPS with its AlexNet weights, or None (logged) when the weights are not found."""
    from posetransfer.eval.lpips import LPIPS

    try:
        return LPIPS()
    except (FileNotFoundError, OSError) as err:
        logger.info("LPIPS left out: %s", str(err).split(". ")[0])
        return None


def _batch(images: Sequence[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).to(torch.float64)


def pair_scores(
    outputs: Sequence[np.ndarray],
    truth: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    lpips: torch.nn.Module | None = None,
) -> dict[str, np.ndarray]:
    """Every metric per pair.

    Args:
        outputs: ``N`` generated ``(H, W, 3)`` uint8 images.
        truth: ``N`` real target images.
        masks: ``N`` ``(H, W)`` target person masks in ``[0, 1]`` (thresholded at 0.5).
        lpips: An LPIPS module (:func:`lpips_model`), or None.

    Returns:
        Metric -> ``(N,)`` float64 (NaN where a mask is empty).
    """
    x, y = _batch(outputs), _batch(truth)
    m = torch.from_numpy(np.stack([np.asarray(k) > 0.5 for k in masks]))
    spec = get_eval_protocol("native").ssim[0][1]
    m4 = m[:, None].to(torch.float64)
    count = m4.flatten(1).sum(1) * 3
    mse = ((x - y) ** 2 * m4).flatten(1).sum(1) / count
    scores = {
        "ssim": ssim(x, y, spec),
        "psnr": psnr(x, y, data_range=255.0),
        "l1": l1(x, y, data_range=255.0),
        "mask_ssim": masked_ssim(x, y, m, spec),
        "mask_psnr": 10 * torch.log10(255.0**2 / mse),
        "mask_l1": masked_l1(x, y, m, data_range=255.0),
    }
    if lpips is not None:
        with torch.no_grad():
            scores["lpips"] = lpips((x / 127.5 - 1).float(), (y / 127.5 - 1).float()).double()
    return {k: v.numpy().astype(np.float64) for k, v in scores.items()}


def mean_scores(
    scores: Mapping[str, np.ndarray], keep: np.ndarray | None = None
) -> dict[str, float | None]:
    """Means over pairs (finite values; ``keep`` selects pairs); None when nothing is left."""
    out: dict[str, float | None] = {}
    for key, values in scores.items():
        v = values if keep is None else values[keep]
        v = v[np.isfinite(v)]
        out[key] = float(v.mean()) if len(v) else None
    return out


def paired_interval(
    a: np.ndarray, b: np.ndarray, draws: int = 4000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of ``a - b`` per pair and its 95% paired-bootstrap interval ``(mean, lo, hi)``."""
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    diff = diff[np.isfinite(diff)]
    if len(diff) == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (draws, len(diff)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), float(lo), float(hi)
