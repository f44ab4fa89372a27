"""Fréchet distance against closed forms and scipy; KID against the direct U-statistic."""

from __future__ import annotations

import numpy as np
import pytest

from posetransfer.eval.fid import (
    feature_statistics,
    frechet_distance,
    kernel_inception_distance,
    mmd2_unbiased,
    polynomial_kernel,
)


def random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


def test_diagonal_gaussians_closed_form(rng: np.random.Generator) -> None:
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    s1, s2 = rng.uniform(0.5, 3, 5), rng.uniform(0.5, 3, 5)
    expected = ((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2 * np.sqrt(s1 * s2)).sum()
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected)
    # the distance is invariant under a common rotation of both Gaussians
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    rotated = frechet_distance(q @ mu1, q @ np.diag(s1) @ q.T, q @ mu2, q @ np.diag(s2) @ q.T)
    assert rotated == pytest.approx(expected)


def test_scalar_case_and_identity(rng: np.random.Generator) -> None:
    # 1-D: (m1 - m2)^2 + (sd1 - sd2)^2
    one_d = frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]]))
    assert one_d == pytest.approx(4.0 + 1.0)
    s = random_spd(rng, 6)
    mu = rng.normal(size=6)
    assert frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-9)


def test_non_commuting_covariances_match_scipy_sqrtm(rng: np.random.Generator) -> None:
    linalg = pytest.importorskip("scipy.linalg")
    s1, s2 = random_spd(rng, 8), random_spd(rng, 8)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    covmean = linalg.sqrtm(s1 @ s2).real
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_rank_deficient_statistics_stay_finite(rng: np.random.Generator) -> None:
    a, b = rng.normal(size=(10, 64)), rng.normal(size=(12, 64)) + 0.5
    value = frechet_distance(*feature_statistics(a), *feature_statistics(b))
    assert np.isfinite(value) and value > 0


def test_feature_statistics(rng: np.random.Generator) -> None:
    f = rng.normal(size=(20, 4))
    mu, sigma = feature_statistics(f)
    np.testing.assert_allclose(mu, f.mean(0))
    np.testing.assert_allclose(sigma, np.cov(f, rowvar=False))
    with pytest.raises(ValueError, match="N >= 2"):
        feature_statistics(f[:1])
    with pytest.raises(ValueError, match="shapes"):
        frechet_distance(mu, sigma, mu[:3], sigma)


def direct_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a . b / d + 1)^3, written as explicit sums."""
    d = x.shape[1]

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return (a @ b / d + 1) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_mmd2_matches_direct_formula(rng: np.random.Generator) -> None:
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(7, 3)) + 0.3
    assert mmd2_unbiased(x, y) == pytest.approx(direct_mmd2(x, y), rel=1e-12)
    assert polynomial_kernel(x, y).shape == (5, 7)


def test_kid_subsets(rng: np.random.Generator) -> None:
    x, y = rng.normal(size=(8, 4)), rng.normal(size=(8, 4)) + 1.0
    whole = kernel_inception_distance(x, y, num_subsets=3, subset_size=100)
    assert whole.subset_size == 8 and whole.num_subsets == 3
    assert whole.mean == pytest.approx(direct_mmd2(x, y), rel=1e-12)
    assert whole.std == pytest.approx(0.0, abs=1e-12)  # every subset is the whole set
    sub = kernel_inception_distance(x, y, num_subsets=20, subset_size=4, seed=1)
    assert sub.subset_size == 4 and sub.std > 0
    assert kernel_inception_distance(x, y, num_subsets=20, subset_size=4, seed=1) == sub
    with pytest.raises(ValueError, match="feature sizes"):
        kernel_inception_distance(x, y[:, :3])
