"""Fréchet and kernel Inception distances from feature arrays (FID, KID), in float64.

FID (Heusel et al. 2017): with ``mu, Sigma`` the mean and sample covariance (``N - 1``) of each
feature set, ``|mu_1 - mu_2|^2 + tr(Sigma_1 + Sigma_2 - 2 (Sigma_1 Sigma_2)^{1/2})``. The trace
of the matrix square root is computed as ``sum_i sqrt(lambda_i)`` over the eigenvalues of the
symmetric PSD matrix ``Sigma_1^{1/2} Sigma_2 Sigma_1^{1/2}``, which has the same spectrum as
``Sigma_1 Sigma_2``. This agrees with ``scipy.linalg.sqrtm`` (pytorch-fid) on well-conditioned
covariances and stays real and finite on the rank-deficient ones of small sets (fewer images than
feature dimensions), where ``sqrtm`` needs an ``eps`` on the diagonal.

KID (Bińkowski et al. 2018): the unbiased MMD^2 with the cubic polynomial kernel
``k(x, y) = (x . y / d + 1)^3``, averaged over random subsets (torch-fidelity's defaults: 100
subsets of 1000), reported as mean and standard deviation. Subsets are drawn without
replacement from a seeded generator; when a set is smaller than ``subset_size`` the subset size
shrinks to the smaller set's size (the result says which size was used).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "KIDResult",
    "feature_statistics",
    "frechet_distance",
    "kernel_inception_distance",
    "mmd2_unbiased",
    "polynomial_kernel",
]

ArrayLike = np.ndarray | torch.Tensor


def _as_features(x: ArrayLike, name: str) -> np.ndarray:
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    arr = arr.astype(np.float64)
    if arr.ndim != 2 or arr.shape[0] < 2:
        raise ValueError(f"{name} must be (N, D) features with N >= 2, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or inf")
    return arr


def feature_statistics(features: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample covariance of a feature set.

    Args:
        features: ``(N, D)`` with ``N >= 2``.

    Returns:
        ``mu`` ``(D,)`` and ``sigma`` ``(D, D)``, float64 (``np.cov(rowvar=False)``).
    """
    f = _as_features(features, "features")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (negative round-off eigenvalues -> 0)."""
    sym = (matrix + matrix.T) / 2
    values, vectors = np.linalg.eigh(sym)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Fréchet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``.

    Args:
        mu1: ``(D,)`` mean.
        sigma1: ``(D, D)`` symmetric PSD covariance.
        mu2: ``(D,)`` mean.
        sigma2: ``(D, D)`` symmetric PSD covariance.

    Returns:
        The distance (float64), ``>= 0`` up to round-off.

    Example:
        >>> frechet_distance(np.zeros(2), np.eye(2), np.ones(2), 4 * np.eye(2))
        4.0
    """
    mu1, mu2 = (np.atleast_1d(np.asarray(m, np.float64)) for m in (mu1, mu2))
    s1, s2 = (np.atleast_2d(np.asarray(s, np.float64)) for s in (sigma1, sigma2))
    d = mu1.shape[0]
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(
            f"frechet_distance: shapes do not match: mu {mu1.shape} / {mu2.shape}, "
            f"sigma {s1.shape} / {s2.shape}"
        )
    root1 = _psd_sqrt(s1)
    inner = root1 @ s2 @ root1
    eigen = np.linalg.eigvalsh((inner + inner.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(eigen, 0.0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def polynomial_kernel(
    x: np.ndarray, y: np.ndarray, *, degree: int = 3, gamma: float | None = None, coef0: float = 1.0
) -> np.ndarray:
    """``(gamma x . y + coef0)^degree`` for all pairs; ``gamma`` defaults to ``1 / D``.

    Returns:
        ``(N_x, N_y)`` float64 kernel matrix.
    """
    g = 1.0 / x.shape[1] if gamma is None else gamma
    return (g * (x @ y.T) + coef0) ** degree


def mmd2_unbiased(x: ArrayLike, y: ArrayLike, **kernel: float) -> float:
    """Unbiased MMD^2 between two samples with the polynomial kernel.

    ``sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1))
    - 2 sum_{i, j} k(x_i, y_j) / (m n)``.

    Args:
        x: ``(m, D)`` features, ``m >= 2``.
        y: ``(n, D)`` features, ``n >= 2``.
        **kernel: ``degree``, ``gamma``, ``coef0`` for :func:`polynomial_kernel`.

    Returns:
        The estimate (float64; may be slightly negative).
    """
    fx, fy = _as_features(x, "x"), _as_features(y, "y")
    m, n = len(fx), len(fy)
    k_xx = polynomial_kernel(fx, fx, **kernel)  # type: ignore[arg-type]
    k_yy = polynomial_kernel(fy, fy, **kernel)  # type: ignore[arg-type]
    k_xy = polynomial_kernel(fx, fy, **kernel)  # type: ignore[arg-type]
    sum_xx = k_xx.sum() - np.trace(k_xx)
    sum_yy = k_yy.sum() - np.trace(k_yy)
    return float(sum_xx / (m * (m - 1)) + sum_yy / (n * (n - 1)) - 2.0 * k_xy.sum() / (m * n))


@dataclass(frozen=True)
class KIDResult:
    """KID over random subsets.

    Attributes:
        mean: Mean MMD^2 over subsets.
        std: Standard deviation over subsets (``ddof=0``, as torch-fidelity).
        num_subsets: Number of subsets drawn.
        subset_size: Images per subset actually used.
    """

    mean: float
    std: float
    num_subsets: int
    subset_size: int


def kernel_inception_distance(
    features_x: ArrayLike,
    features_y: ArrayLike,
    *,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> KIDResult:
    """KID between two feature sets (cubic polynomial kernel, unbiased MMD^2 per subset).

    Args:
        features_x: ``(N_x, D)`` features (generated images).
        features_y: ``(N_y, D)`` features (real images).
        num_subsets: Subsets to average over.
        subset_size: Images per subset; capped at ``min(N_x, N_y)``.
        seed: Seed of the subset sampler.

    Returns:
        A :class:`KIDResult`.
    """
    fx, fy = _as_features(features_x, "features_x"), _as_features(features_y, "features_y")
    if fx.shape[1] != fy.shape[1]:
        raise ValueError(f"feature sizes differ: {fx.shape[1]} vs {fy.shape[1]}")
    if num_subsets < 1 or subset_size < 2:
        raise ValueError(
            f"need num_subsets >= 1 and subset_size >= 2, got {num_subsets}, {subset_size}"
        )
    size = min(subset_size, len(fx), len(fy))
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets)
    for s in range(num_subsets):
        ix = rng.choice(len(fx), size, replace=False)
        iy = rng.choice(len(fy), size, replace=False)
        values[s] = mmd2_unbiased(fx[ix], fy[iy])
    return KIDResult(float(values.mean()), float(values.std()), num_subsets, size)
