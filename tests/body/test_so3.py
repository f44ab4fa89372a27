"""Tests for posetransfer.body.so3."""

from __future__ import annotations

import math

import roma
import torch

from posetransfer.body.so3 import left_jacobian, skew, wrap_rotvec


def test_skew_is_cross_product() -> None:
    a, b = torch.tensor([0.3, -1.0, 2.0]), torch.tensor([1.5, 0.2, -0.7])
    torch.testing.assert_close(skew(a) @ b, torch.linalg.cross(a, b))


def test_left_jacobian_matches_finite_differences() -> None:
    rotvec = torch.tensor([[0.4, -1.2, 2.0], [1e-5, 0.0, 2e-5]], dtype=torch.float64)
    jac = left_jacobian(rotvec)
    eps = 1e-6
    for j in range(3):
        d = torch.zeros(3, dtype=torch.float64)
        d[j] = eps
        moved = roma.rotvec_to_rotmat(rotvec + d) @ roma.rotvec_to_rotmat(rotvec).transpose(1, 2)
        fd = roma.rotmat_to_rotvec(moved) / eps
        torch.testing.assert_close(fd, jac[..., j], atol=1e-5, rtol=0)


def test_wrap_rotvec_keeps_the_rotation() -> None:
    rotvec = torch.tensor([[0.0, 0.0, 1.5 * math.pi], [0.3, 0.1, -0.2], [4.0, 0.0, 3.0]])
    wrapped = wrap_rotvec(rotvec)
    assert (wrapped.norm(dim=-1) <= math.pi + 1e-6).all()
    assert torch.equal(wrapped[1], rotvec[1])
    torch.testing.assert_close(
        roma.rotvec_to_rotmat(wrapped), roma.rotvec_to_rotmat(rotvec), atol=1e-5, rtol=0
    )
