"""Tests for posetransfer.body.keypoint_basis (exact bone-only keypoints and their Jacobian)."""

from __future__ import annotations

import pytest
import roma
import torch

from posetransfer.body import BodyModel
from posetransfer.body.keypoint_basis import basis_keypoints, basis_keypoints_and_jacobian
from posetransfer.body.poses import sample_phenotype, sample_pose


def test_basis_matches_model_keypoints(body_model: BodyModel) -> None:
    gen = torch.Generator().manual_seed(3)
    params = sample_pose(gen, 4, "walking").with_phenotype(sample_phenotype(gen, 4))
    basis = body_model.keypoint_basis(params.phenotype)
    assert basis.weights.shape[:3] == (4, 25, 18)
    fast = basis_keypoints(basis, body_model.active_rotations(params))
    full = body_model.keypoints18(body_model(params))
    assert (fast - full).abs().max() < 5e-6  # metres


def test_jacobian_matches_finite_differences(body_model: BodyModel) -> None:
    params = sample_pose(torch.Generator().manual_seed(4), 2, "fashion")
    rotations = body_model.active_rotations(params)
    basis = body_model.keypoint_basis()
    points, jac = basis_keypoints_and_jacobian(basis, rotations)
    assert jac.shape == (2, 18, 3, 25, 3)
    torch.testing.assert_close(points, basis_keypoints(basis, rotations))
    eps = 1e-2
    for bone in (0, 3, 13, 17, 21, 24):  # root, spine, arm, leg, elbow, knee
        for axis in range(3):
            delta = torch.zeros(3)
            delta[axis] = eps
            plus, minus = rotations.clone(), rotations.clone()
            plus[:, bone] = roma.rotvec_to_rotmat(delta) @ rotations[:, bone]
            minus[:, bone] = roma.rotvec_to_rotmat(-delta) @ rotations[:, bone]
            fd = (basis_keypoints(basis, plus) - basis_keypoints(basis, minus)) / (2 * eps)
            torch.testing.assert_close(fd, jac[:, :, :, bone, axis], atol=2e-4, rtol=0)


def test_bad_rotation_shapes(body_model: BodyModel) -> None:
    basis = body_model.keypoint_basis()
    with pytest.raises(ValueError, match="rotations"):
        basis_keypoints(basis, torch.eye(3).expand(2, 24, 3, 3))
    shaped = body_model.keypoint_basis(torch.full((3, 6), 0.5))
    with pytest.raises(ValueError, match="3 body shapes"):
        basis_keypoints(shaped, torch.eye(3).expand(2, 25, 3, 3))
