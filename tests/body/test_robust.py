"""Tests for posetransfer.body.robust."""

from __future__ import annotations

import pytest
import torch

from posetransfer.body.robust import robust_rho


@pytest.mark.parametrize("kind", ["geman_mcclure", "cauchy", "l2"])
def test_quadratic_near_zero_and_derivative(kind: str) -> None:
    sq = torch.tensor([1e-6, 0.01, 0.5, 4.0], dtype=torch.float64)
    rho, rho_prime = robust_rho(sq, 0.3, kind)
    assert torch.isclose(rho[0], sq[0], rtol=1e-3)
    eps = 1e-7
    fd = (robust_rho(sq + eps, 0.3, kind)[0] - rho) / eps
    torch.testing.assert_close(fd, rho_prime, atol=1e-5, rtol=1e-5)


def test_robust_losses_bound_outliers() -> None:
    big = torch.tensor([1e4])
    assert robust_rho(big, 0.5, "geman_mcclure")[0] <= 0.25  # saturates at scale^2
    assert robust_rho(big, 0.5, "cauchy")[0] < robust_rho(big, 0.5, "l2")[0] / 100
    with pytest.raises(ValueError, match="huber"):
        robust_rho(big, 0.5, "huber")  # type: ignore[arg-type]
