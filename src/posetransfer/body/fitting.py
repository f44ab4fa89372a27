"""Batched Levenberg-Marquardt fit of Anny's pose (and optionally shape) to 18 2D keypoints.

The problem (settings, the 70 unknowns per image, the cost and its normal equations) is
:mod:`posetransfer.body.fit_problem`'s. Cost::

    sum_k c_k rho(|x_k(theta) - x_k|^2 / s0^2)  +  priors (pose, hinges, limits, upright)

with ``c_k`` the keypoint confidence (0 for missing points), ``s0`` the person's scale in pixels
per metre estimated from the keypoints (so residuals and the robust scale are in metres and the
prior weights mean the same at every resolution), and ``rho`` Geman-McClure, Cauchy or plain
squares. The robust scale starts ``robust_anneal`` times larger and shrinks to
``robust_scale`` over the first half of the iterations (graduated non-convexity), so a poor start
is not mistaken for outliers. The robust loss enters LM by iteratively reweighting.

Every image is fitted from ``num_yaw_starts`` initial orientations (0, 90, 180, 270 degrees
for 4); the start with the lowest final cost wins. Keypoints come from the exact bone-only
shortcut of ``posetransfer.body.keypoint_basis`` with analytic Jacobians, so no mesh is skinned.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from posetransfer.body.anny_model import BodyModel
from posetransfer.body.fit_problem import (
    BALL,
    CAM,
    HINGE,
    NUM_PARAMS,
    ROOT,
    YAW,
    FitConfig,
    Problem,
    active_rotations,
    normal_equations,
    params_from_x,
    project_with_jacobian,
    total_cost,
)
from posetransfer.body.fit_result import FitResult
from posetransfer.body.keypoint_basis import basis_keypoints
from posetransfer.body.params import NUM_PHENOTYPES
from posetransfer.body.priors import PosePrior, default_pose_prior
from posetransfer.body.shape_fit import fit_phenotype
from posetransfer.body.so3 import wrap_rotvec
from posetransfer.conventions import NUM_KEYPOINTS

__all__ = ["FitConfig", "FitResult", "fit_keypoints"]


def _levenberg_marquardt(
    x: Tensor, problem: Problem, iterations: int, anneal: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Run LM from ``x (N, 70)``.

    Returns:
        Final ``x (N, 70)``, cost ``(N,)`` and keypoints ``(N, 18, 2)``.
    """
    cfg = problem.cfg
    n_anneal = max(1, iterations // 2)
    uv, jac = project_with_jacobian(x, problem)
    damping = torch.full((x.shape[0],), cfg.initial_damping, dtype=torch.float64)
    for it in range(iterations):
        scale = cfg.robust_scale * anneal ** max(0.0, 1 - it / n_anneal)
        cost, JtJ, g = normal_equations(x, uv, jac, problem, scale)
        JtJ, g = JtJ.double(), g.double()
        diag = torch.diagonal(JtJ, dim1=1, dim2=2).clamp(min=1e-9)
        chol, info = torch.linalg.cholesky_ex(JtJ + torch.diag_embed(damping[:, None] * diag))
        step = torch.cholesky_solve(-g[..., None], chol)[..., 0]
        step = torch.where((info == 0)[:, None], step, torch.zeros_like(step)).to(x.dtype)
        x_new = x + step
        x_new[:, ROOT] = wrap_rotvec(x_new[:, ROOT])
        uv_new, jac_new = project_with_jacobian(x_new, problem)
        cost_new = total_cost(x_new, uv_new, problem, scale)
        better = (cost_new < cost) & cost_new.isfinite()
        x = torch.where(better[:, None], x_new, x)
        uv = torch.where(better[:, None, None], uv_new, uv)
        jac = torch.where(better[:, None, None, None], jac_new, jac)
        damping = torch.where(better, damping * 0.3, damping * 10).clamp(1e-7, 1e7)
    return x, total_cost(x, uv, problem, cfg.robust_scale), uv


def _initial_camera(points: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """Least-squares scale and translation aligning model keypoints' ``(X, -Z)`` to the targets."""
    plane = torch.stack([points[..., 0], -points[..., 2]], -1)
    w = weight[..., None]
    total = w.sum(1).clamp(min=1e-9)
    c_img, c_mod = (target * w).sum(1) / total, (plane * w).sum(1) / total
    var_img = (((target - c_img[:, None]) ** 2) * w).sum((1, 2))
    var_mod = (((plane - c_mod[:, None]) ** 2) * w).sum((1, 2)).clamp(min=1e-9)
    s = (var_img / var_mod).sqrt().clamp(min=1e-3)
    return torch.cat([s.log()[:, None], c_img - s[:, None] * c_mod], 1)


def _initial_state(prior: PosePrior, yaws: Tensor, n: int) -> Tensor:
    """``(n * H, 70)`` start vectors (camera left at 0), item-major, yaw-minor."""
    starts = yaws.shape[0]
    x = torch.zeros(n * starts, NUM_PARAMS)
    x[:, YAW] = yaws.repeat(n)
    x[:, BALL] = prior.ball_mean.flatten()
    x[:, HINGE] = prior.hinge_mean
    return x


def _solve(
    model: BodyModel, target: Tensor, weight: Tensor, cfg: FitConfig
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Fit ``N`` valid items; returns ``x (N, 70)``, keypoints ``(N, 18, 2)``, phenotype or None."""
    n, starts = target.shape[0], cfg.num_yaw_starts
    prior = default_pose_prior()
    basis = model.keypoint_basis(None)
    yaws = torch.arange(starts, dtype=torch.float32) * (2 * math.pi / starts)
    x = _initial_state(prior, yaws, n)
    target_h, weight_h = target.repeat_interleave(starts, 0), weight.repeat_interleave(starts, 0)
    points = basis_keypoints(basis, active_rotations(x, model.hinge_axes)[1])
    x[:, CAM] = _initial_camera(points, target_h, weight_h)
    s_norm = x[::starts, 0].exp().repeat_interleave(starts)  # frontal start's scale, per item
    problem = Problem(target_h, weight_h, s_norm, basis, model.hinge_axes, prior, cfg)
    x, cost, uv = _levenberg_marquardt(x, problem, cfg.iterations, cfg.robust_anneal)
    best = cost.view(n, starts).argmin(1) + torch.arange(n) * starts
    x, uv = x[best], uv[best]
    if not cfg.fit_shape:
        return x, uv, None
    problem = Problem(target, weight, s_norm[best], basis, model.hinge_axes, prior, cfg)
    phenotype = torch.full((n, NUM_PHENOTYPES), 0.5)
    for _ in range(cfg.shape_rounds):
        phenotype = fit_phenotype(
            model,
            phenotype,
            params_from_x(x, None),
            x[:, CAM],
            problem.target,
            problem.weight,
            problem.s_norm,
            cfg.robust_scale,
            cfg.robust_loss,
            cfg.shape_prior_weight,
        )
        basis = model.keypoint_basis(phenotype)
        problem = Problem(target, weight, problem.s_norm, basis, model.hinge_axes, prior, cfg)
        x, _, uv = _levenberg_marquardt(x, problem, max(1, cfg.iterations // 2), 1.0)
    return x, uv, phenotype


def _check_inputs(keypoints_xy: Tensor, confidence: Tensor | None) -> Tensor:
    if keypoints_xy.ndim != 3 or keypoints_xy.shape[1:] != (NUM_KEYPOINTS, 2):
        raise ValueError(
            f"keypoints_xy must have shape (B, 18, 2), got {tuple(keypoints_xy.shape)}"
        )
    batch = keypoints_xy.shape[0]
    if confidence is None:
        return torch.ones(batch, NUM_KEYPOINTS)
    if tuple(confidence.shape) != (batch, NUM_KEYPOINTS):
        raise ValueError(f"confidence must have shape ({batch}, 18), got {tuple(confidence.shape)}")
    confidence = confidence.to(torch.float32)
    if (confidence < 0).any():
        bad = (confidence < 0).nonzero()[0].tolist()
        raise ValueError(
            f"confidence must be >= 0, got {confidence[bad[0], bad[1]].item()} at {bad}"
        )
    return confidence


@torch.no_grad()
def fit_keypoints(
    model: BodyModel,
    keypoints_xy: Tensor,
    confidence: Tensor | None,
    image_size: tuple[int, int],
    cfg: FitConfig | None = None,
) -> FitResult:
    """Fit a body and a weak-perspective camera to each image's 18 keypoints.

    Args:
        model: The body model (:func:`posetransfer.body.anny_model.load_body_model`).
        keypoints_xy: ``(B, 18, 2)`` pixel coordinates ``(x, y)`` (``conventions.Keypoint``
            order); entries of missing points are ignored (any value, NaN included).
        confidence: ``(B, 18)`` weights ``>= 0`` (a bool mask works); a point is valid when its
            confidence exceeds ``cfg.min_confidence``. None: every point is valid.
        image_size: ``(H, W)`` of the images (stored with the result; the fit itself does not
            depend on it).
        cfg: Settings (default :class:`FitConfig`).

    Returns:
        A :class:`FitResult`. Items with a NaN/inf valid keypoint or fewer than
        ``cfg.min_valid_keypoints`` valid keypoints are not fitted: NaN parameters, a reason.
    """
    cfg = cfg or FitConfig()
    confidence = _check_inputs(keypoints_xy, confidence)
    batch = keypoints_xy.shape[0]
    xy = keypoints_xy.to(torch.float32)
    valid = confidence > cfg.min_confidence
    has_nan = (valid & ~xy.isfinite().all(-1)).any(1) | ~confidence.isfinite().all(1)
    num_valid = valid.sum(1)
    attempt = ~has_nan & (num_valid >= cfg.min_valid_keypoints)

    x = torch.full((batch, NUM_PARAMS), math.nan)
    uv = torch.full((batch, NUM_KEYPOINTS, 2), math.nan)
    phenotype = torch.full((batch, NUM_PHENOTYPES), math.nan) if cfg.fit_shape else None
    if attempt.any():
        weight = torch.where(valid, confidence, 0.0)[attempt]
        target = torch.where(valid[..., None], xy, 0.0)[attempt]
        x[attempt], uv[attempt], shape = _solve(model, target, weight, cfg)
        if phenotype is not None and shape is not None:
            phenotype[attempt] = shape
    dist = (uv - xy).norm(dim=-1)
    error = torch.where(valid, dist, 0.0).sum(1) / num_valid.clamp(min=1)
    error = torch.where(attempt, error, math.nan)
    converged = attempt & (error < cfg.max_error_px)
    reason: list[str | None] = []
    for i in range(batch):
        if has_nan[i]:
            reason.append("NaN in keypoints")
        elif not attempt[i]:
            reason.append(f"fewer than {cfg.min_valid_keypoints} valid keypoints")
        elif not converged[i]:
            reason.append(f"did not converge: error {error[i].item():.2f} px")
        else:
            reason.append(None)
    return FitResult(
        params=params_from_x(x, phenotype),
        camera=x[:, CAM].contiguous(),
        reprojection_error=error,
        converged=converged,
        reason=reason,
        image_size=(int(image_size[0]), int(image_size[1])),
        keypoints_xy=uv,
        num_valid=num_valid.long(),
    )
