"""Tests for posetransfer.body.fitting: sample poses, project them, refit from keypoints alone."""

from __future__ import annotations

import math

import pytest
import roma
import torch

from posetransfer.body import BodyModel, BodyParams, FitConfig, fit_keypoints, make_camera, project
from posetransfer.body.poses import sample_phenotype, sample_pose

IMAGE_SIZE = (256, 176)


def _synthetic(model: BodyModel, seed: int, batch: int = 8) -> tuple[BodyParams, torch.Tensor]:
    """Poses at random yaws seen by a camera framing a ~200 px tall person in 256x176."""
    gen = torch.Generator().manual_seed(seed)
    kinds = ("standing", "walking", "fashion")
    params = BodyParams.cat([sample_pose(gen, 1, kinds[i % 3]) for i in range(batch)])
    scale = 110.0 + 20.0 * torch.rand(batch, generator=gen)
    camera = make_camera(scale, 88.0 + 4 * torch.randn(batch, generator=gen), 125.0)
    return params, project(model.fast_keypoints18(params), camera)[..., :2]


def test_fit_recovers_synthetic_keypoints(body_model: BodyModel) -> None:
    params, keypoints = _synthetic(body_model, seed=0)
    fit = fit_keypoints(body_model, keypoints, None, IMAGE_SIZE)
    assert fit.converged.all() and all(r is None for r in fit.reason)
    assert fit.reprojection_error.median() < 1.0
    assert (fit.keypoints_xy - keypoints).norm(dim=-1).median() < 1.0
    assert (fit.num_valid == 18).all() and fit.params.phenotype is None
    # The stored keypoints are those of the full mesh seen through the stored camera.
    mesh_kp = project(body_model.keypoints18(body_model(fit.params)), fit.camera)[..., :2]
    assert (mesh_kp - fit.keypoints_xy).abs().max() < 0.01
    # The facing direction is recovered (the left/right labels disambiguate front and back).
    forward = torch.tensor([0.0, -1.0, 0.0])
    true_fwd = roma.rotvec_to_rotmat(params.global_orient) @ forward
    fit_fwd = roma.rotvec_to_rotmat(fit.params.global_orient) @ forward
    angle = torch.rad2deg(torch.acos((true_fwd * fit_fwd).sum(-1).clamp(-1, 1)))
    assert angle.median() < 20.0 and (angle < 60.0).all()
    # Rescaling the camera reproduces the keypoints at another resolution.
    double = fit.rescaled(2.0)
    mesh_kp2 = project(body_model.fast_keypoints18(fit.params), double.camera)[..., :2]
    torch.testing.assert_close(mesh_kp2, 2 * fit.keypoints_xy, atol=0.02, rtol=0)
    assert double.image_size == (512, 352)


def test_missing_keypoints_are_ignored(body_model: BodyModel) -> None:
    _, keypoints = _synthetic(body_model, seed=1)
    gen = torch.Generator().manual_seed(1)
    confidence = torch.ones(8, 18)
    for i in range(8):
        confidence[i, torch.randperm(18, generator=gen)[:4]] = 0.0
    holey = torch.where(confidence[..., None] > 0, keypoints, math.nan)
    fit = fit_keypoints(body_model, holey, confidence, IMAGE_SIZE)
    assert fit.converged.all() and (fit.num_valid == 14).all()
    assert fit.reprojection_error.median() < 1.5
    # Coordinates of zero-confidence points do not matter at all.
    moved = torch.where(confidence[..., None] > 0, keypoints, 1e4)
    again = fit_keypoints(body_model, moved, confidence, IMAGE_SIZE)
    assert torch.equal(again.camera, fit.camera)
    assert torch.equal(again.params.body_pose, fit.params.body_pose)


def test_unfittable_items_are_reported_not_replaced(body_model: BodyModel) -> None:
    _, keypoints = _synthetic(body_model, seed=2, batch=3)
    confidence = torch.ones(3, 18)
    confidence[0, 3:] = 0.0  # 3 valid keypoints
    keypoints[1, 5, 0] = math.nan  # a NaN at a valid keypoint
    fit = fit_keypoints(body_model, keypoints, confidence, IMAGE_SIZE)
    assert fit.reason[0] == "fewer than 4 valid keypoints"
    assert fit.reason[1] == "NaN in keypoints"
    assert fit.reason[2] is None and fit.converged.tolist() == [False, False, True]
    assert fit.attempted.tolist() == [False, False, True]
    assert fit.params.body_pose[:2].isnan().all() and fit.camera[:2].isnan().all()
    assert fit.params.body_pose[2].isfinite().all()
    strict = fit_keypoints(
        body_model, keypoints[2:], None, IMAGE_SIZE, FitConfig(max_error_px=1e-6)
    )
    assert not strict.converged[0]
    assert strict.reason[0].startswith("did not converge: error ")


def test_robust_loss_resists_outliers(body_model: BodyModel) -> None:
    _, keypoints = _synthetic(body_model, seed=3, batch=6)
    corrupted = keypoints.clone()
    corrupted[:, 4] += torch.tensor([45.0, -30.0])  # right wrist detections far off
    corrupted[:, 13] += torch.tensor([-35.0, 20.0])  # left ankle too
    clean = [i for i in range(18) if i not in (4, 13)]

    def inlier_error(loss: str) -> float:
        fit = fit_keypoints(body_model, corrupted, None, IMAGE_SIZE, FitConfig(robust_loss=loss))
        return float((fit.keypoints_xy - keypoints)[:, clean].norm(dim=-1).mean())

    assert inlier_error("geman_mcclure") < 0.7 * inlier_error("l2")


def test_fit_shape(body_model: BodyModel) -> None:
    gen = torch.Generator().manual_seed(4)
    params = sample_pose(gen, 4, "standing").with_phenotype(sample_phenotype(gen, 4))
    camera = make_camera(120.0, 88.0, 125.0).expand(4, 3)
    keypoints = project(body_model.fast_keypoints18(params), camera)[..., :2]
    plain = fit_keypoints(body_model, keypoints, None, IMAGE_SIZE)
    shaped = fit_keypoints(body_model, keypoints, None, IMAGE_SIZE, FitConfig(fit_shape=True))
    phen = shaped.params.phenotype
    assert phen is not None and phen.shape == (4, 6)
    assert (phen >= 0).all() and (phen <= 1).all()
    assert (phen - 0.5).abs().max() > 0.01  # the shape moved
    assert shaped.reprojection_error.mean() < 1.05 * plain.reprojection_error.mean()
    mesh_kp = project(body_model.keypoints18(body_model(shaped.params)), shaped.camera)[..., :2]
    assert (mesh_kp - shaped.keypoints_xy).abs().max() < 0.01


def test_input_validation(body_model: BodyModel) -> None:
    with pytest.raises(ValueError, match=r"keypoints_xy must have shape \(B, 18, 2\)"):
        fit_keypoints(body_model, torch.zeros(2, 17, 2), None, IMAGE_SIZE)
    with pytest.raises(ValueError, match="confidence must have shape"):
        fit_keypoints(body_model, torch.zeros(2, 18, 2), torch.ones(2, 17), IMAGE_SIZE)
    with pytest.raises(ValueError, match=r"confidence must be >= 0, got -0.5 at \[1, 3\]"):
        conf = torch.ones(2, 18)
        conf[1, 3] = -0.5
        fit_keypoints(body_model, torch.zeros(2, 18, 2), conf, IMAGE_SIZE)
