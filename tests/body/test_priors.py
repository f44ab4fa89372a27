"""Tests for posetransfer.body.priors."""

from __future__ import annotations

import math

import roma
import torch

from posetransfer.body.params import BALL_BONES, HINGE_BONES, BodyParams, mirror_rotvec
from posetransfer.body.priors import (
    default_pose_prior,
    hinge_residuals,
    pose_prior_residuals,
    prior_deviation,
    upright_residuals,
)


def test_right_side_mirrors_left() -> None:
    prior = default_pose_prior()
    for i, bone in enumerate(BALL_BONES):
        if bone.endswith(".R"):
            j = BALL_BONES.index(bone[:-1] + "L")
            assert torch.equal(prior.ball_mean[i], mirror_rotvec(prior.ball_mean[j]))
            assert torch.equal(prior.ball_std[i], prior.ball_std[j])
    assert (prior.ball_std > 0).all() and (prior.hinge_lower < prior.hinge_upper).all()
    # Elbows before knees, each pair identical.
    assert HINGE_BONES[0].startswith("lowerarm") and HINGE_BONES[2].startswith("lowerleg")
    assert prior.hinge_lower[0] == prior.hinge_lower[1] != prior.hinge_lower[2]


def test_pose_prior_residuals() -> None:
    prior = default_pose_prior()
    pose = prior.ball_mean.clone()[None]
    pose[0, 3, 1] += 2 * prior.ball_std[3, 1]
    res, d = pose_prior_residuals(pose, prior)
    assert res.shape == (1, 60) and d.shape == (60,)
    assert torch.isclose(res[0, 3 * 3 + 1], torch.tensor(2.0))
    assert res.abs().sum() == res[0, 3 * 3 + 1].abs()


def test_hinge_residuals_limits() -> None:
    prior = default_pose_prior()
    middle = (prior.hinge_lower + prior.hinge_upper) / 2
    hinge = torch.stack([prior.hinge_lower - 0.2, middle, prior.hinge_upper + 0.3])
    _, _, violation, jac = hinge_residuals(hinge, prior)
    torch.testing.assert_close(violation[0], torch.full((4,), 0.2), atol=1e-6, rtol=0)
    assert (violation[1] == 0).all() and (jac[1] == 0).all()
    torch.testing.assert_close(violation[2], torch.full((4,), 0.3), atol=1e-6, rtol=0)
    assert (jac[0] == -1).all() and (jac[2] == 1).all()


def test_upright_residuals_and_jacobian() -> None:
    yaw_only = torch.tensor([[0.0, 0.0, 2.5]])
    res, _ = upright_residuals(yaw_only)
    assert res.abs().max() < 1e-6
    rotvec = torch.tensor([[0.2, -0.1, 1.0]], dtype=torch.float64)
    res, jac = upright_residuals(rotvec)
    eps = 1e-6
    for j in range(3):
        delta = torch.zeros(3, dtype=torch.float64)
        delta[j] = eps
        moved = roma.rotmat_to_rotvec(roma.rotvec_to_rotmat(delta) @ roma.rotvec_to_rotmat(rotvec))
        fd = (upright_residuals(moved)[0] - res) / eps
        torch.testing.assert_close(fd, jac[..., j], atol=1e-5, rtol=0)


def test_prior_deviation() -> None:
    prior = default_pose_prior()
    params = BodyParams.identity(2)
    params.body_pose[:] = prior.ball_mean
    params.body_pose[1, 0, 2] += 4 * prior.ball_std[0, 2]
    params.hinge[1, 3] = prior.hinge_upper[3] + 0.5
    sigma, violation = prior_deviation(params)
    assert sigma[0] < 1e-6 and math.isclose(sigma[1].item(), 4.0, rel_tol=1e-5)
    assert violation[0] == 0 and math.isclose(violation[1].item(), 0.5, rel_tol=1e-5)
