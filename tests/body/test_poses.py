"""Tests for posetransfer.body.poses (plausible pose and shape sampling)."""

from __future__ import annotations

import pytest
import roma
import torch

from posetransfer.body import BodyModel
from posetransfer.body.params import BodyParams
from posetransfer.body.poses import POSE_KINDS, sample_phenotype, sample_pose
from posetransfer.body.priors import prior_deviation
from posetransfer.conventions import Keypoint as K


def _upright_keypoints(model: BodyModel, params: BodyParams) -> torch.Tensor:
    """Keypoints with the global rotation removed (body frame: Z up, facing -Y)."""
    local = BodyParams(torch.zeros_like(params.global_orient), params.body_pose, params.hinge)
    return model.fast_keypoints18(local)


def test_reproducible_and_kinds_differ() -> None:
    a = sample_pose(torch.Generator().manual_seed(0), 5, "walking")
    b = sample_pose(torch.Generator().manual_seed(0), 5, "walking")
    c = sample_pose(torch.Generator().manual_seed(0), 5, "standing")
    assert torch.equal(a.body_pose, b.body_pose) and torch.equal(a.hinge, b.hinge)
    assert not torch.equal(a.body_pose, c.body_pose)
    with pytest.raises(ValueError, match="kind"):
        sample_pose(torch.Generator(), 2, "yoga")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", POSE_KINDS)
def test_poses_are_plausible(body_model: BodyModel, kind: str) -> None:
    params = sample_pose(torch.Generator().manual_seed(7), 48, kind)
    sigma, violation = prior_deviation(params)
    assert (sigma <= 3.0 + 1e-4).all() and (violation == 0).all()
    z = _upright_keypoints(body_model, params)[..., 2]
    for side in ("R", "L"):
        hip, knee, ankle = (K[f"{side}_{j}"] for j in ("HIP", "KNEE", "ANKLE"))
        assert (z[:, ankle] < z[:, knee] - 0.2).all() and (z[:, knee] < z[:, hip] - 0.2).all()
        wrist, shoulder = K[f"{side}_WRIST"], K[f"{side}_SHOULDER"]
        assert (z[:, wrist] < z[:, shoulder]).all()  # no arm raised above the shoulders
    assert (z[:, K.NOSE] > z[:, K.NECK]).all() and (z[:, K.NECK] > z[:, K.R_HIP] + 0.3).all()
    # Both feet near the floor: nobody stands on one leg.
    assert ((z[:, K.R_ANKLE] - z[:, K.L_ANKLE]).abs() < 0.15).all()


def test_walking_strides_and_yaw_range(body_model: BodyModel) -> None:
    gen = torch.Generator().manual_seed(8)
    walk, stand = sample_pose(gen, 32, "walking"), sample_pose(gen, 32, "standing")

    def stride(p: BodyParams) -> torch.Tensor:
        kp = _upright_keypoints(body_model, p)
        return (kp[:, K.R_ANKLE, 1] - kp[:, K.L_ANKLE, 1]).abs().mean()

    assert stride(walk) > 2 * stride(stand)
    turned = sample_pose(gen, 32, "standing", yaw=(0.5, 1.0))
    forward = roma.rotvec_to_rotmat(turned.global_orient) @ torch.tensor([0.0, -1.0, 0.0])
    yaw = torch.atan2(forward[:, 0], -forward[:, 1])
    assert (yaw > 0.5 - 0.1).all() and (yaw < 1.0 + 0.1).all()


def test_sample_phenotype_range() -> None:
    phen = sample_phenotype(torch.Generator().manual_seed(0), 200)
    assert phen.shape == (200, 6)
    assert (phen >= 0.1).all() and (phen <= 0.9).all() and (phen[:, 1] >= 0.5).all()
