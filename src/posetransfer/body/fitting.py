"""Batched Levenberg-Marquardt fit of Anny's pose (and optionally shape) to 18 2D keypoints.

Unknowns per image (70): the weak-perspective camera ``(log s, tx, ty)``, the global rotation
vector, 20 ball-bone rotation vectors and 4 hinge angles (see ``posetransfer.body.params``).

Cost::

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
from dataclasses import dataclass, fields

import roma
import torch
from torch import Tensor

from posetransfer.body.anny_model import BodyModel
from posetransfer.body.fit_result import FitResult
from posetransfer.body.keypoint_basis import (
    KeypointBasis,
    basis_keypoints,
    basis_keypoints_and_jacobian,
)
from posetransfer.body.params import NUM_BALL, NUM_HINGE, NUM_PHENOTYPES, BodyParams
from posetransfer.body.priors import (
    PosePrior,
    default_pose_prior,
    hinge_residuals,
    pose_prior_residuals,
    upright_residuals,
)
from posetransfer.body.robust import RobustLoss, robust_rho
from posetransfer.body.shape_fit import fit_phenotype
from posetransfer.body.so3 import left_jacobian, wrap_rotvec
from posetransfer.conventions import NUM_KEYPOINTS

__all__ = ["FitConfig", "FitResult", "fit_keypoints"]

# Layout of the parameter vector: camera (log s, tx, ty), root, ball bones, hinges.
_CAM, _ROOT = slice(0, 3), slice(3, 6)
_BALL = slice(6, 6 + 3 * NUM_BALL)
_HINGE = slice(_BALL.stop, _BALL.stop + NUM_HINGE)
_YAW = _ROOT.start + 2
NUM_PARAMS = _HINGE.stop


_POSITIVE_FIELDS = (
    "iterations", "num_yaw_starts", "robust_scale", "robust_anneal", "min_valid_keypoints",
    "max_error_px", "initial_damping",
)  # fmt: skip


@dataclass(frozen=True)
class FitConfig:
    """Settings of :func:`fit_keypoints`.

    Attributes:
        iterations: Levenberg-Marquardt iterations per start.
        num_yaw_starts: Initial body yaws, evenly spaced from 0 (facing the camera).
        robust_loss: ``"geman_mcclure"``, ``"cauchy"`` or ``"l2"``.
        robust_scale: Scale of the robust loss in metres at the person's scale (0.05 m is about
            6 px for a 200 px tall person).
        robust_anneal: The robust scale starts this many times larger (1 = no annealing).
        pose_prior_weight: Weight of the ball-bone prior residuals ``(pose - mean) / std``.
        hinge_prior_weight: Weight of the hinge prior residuals.
        limit_weight: Weight of hinge-limit violations (radians).
        upright_weight: Weight of the upright prior (horizontal part of the body's up axis).
        initial_damping: Initial Marquardt damping (relative to the diagonal).
        fit_shape: Also fit the 6 phenotype parameters (slower; weakly constrained by 2D).
        shape_rounds: Phenotype updates, each followed by ``iterations // 2`` pose iterations.
        shape_prior_weight: Weight pulling the phenotype towards 0.5.
        min_valid_keypoints: Fewer valid keypoints than this: no fit is attempted.
        min_confidence: A keypoint is valid when its confidence exceeds this.
        max_error_px: A fit converged when its mean reprojection error is below this.
    """

    iterations: int = 20
    num_yaw_starts: int = 4
    robust_loss: RobustLoss = "geman_mcclure"
    robust_scale: float = 0.05
    robust_anneal: float = 10.0
    pose_prior_weight: float = 0.01
    hinge_prior_weight: float = 0.005
    limit_weight: float = 1.0
    upright_weight: float = 0.01
    initial_damping: float = 1e-2
    fit_shape: bool = False
    shape_rounds: int = 2
    shape_prior_weight: float = 0.02
    min_valid_keypoints: int = 4
    min_confidence: float = 0.0
    max_error_px: float = 4.0

    def __post_init__(self) -> None:
        if self.robust_loss not in ("geman_mcclure", "cauchy", "l2"):
            raise ValueError(f"FitConfig.robust_loss: unknown loss {self.robust_loss!r}")
        for name in _POSITIVE_FIELDS:
            if not getattr(self, name) > 0:
                raise ValueError(f"FitConfig.{name} must be > 0, got {getattr(self, name)}")
        for f in fields(self):
            if f.name.endswith("_weight") and getattr(self, f.name) < 0:
                raise ValueError(f"FitConfig.{f.name} must be >= 0, got {getattr(self, f.name)}")
        if self.robust_anneal < 1:
            raise ValueError(f"FitConfig.robust_anneal must be >= 1, got {self.robust_anneal}")


@dataclass(frozen=True)
class _Problem:
    """Everything fixed during one LM solve of ``N`` problems."""

    target: Tensor  # (N, 18, 2) pixels
    weight: Tensor  # (N, 18) confidence, 0 = missing
    s_norm: Tensor  # (N,) pixels per metre used to normalise residuals
    basis: KeypointBasis
    hinge_axes: Tensor  # (4, 3)
    prior: PosePrior
    cfg: FitConfig


def _rotations(x: Tensor, hinge_axes: Tensor) -> tuple[Tensor, Tensor]:
    """Root and ball rotation vectors ``(N, 21, 3)`` and all active rotations ``(N, 25, 3, 3)``."""
    root_ball = torch.cat([x[:, _ROOT], x[:, _BALL]], 1).view(x.shape[0], 1 + NUM_BALL, 3)
    hinge_rv = x[:, _HINGE, None] * hinge_axes
    return root_ball, roma.rotvec_to_rotmat(torch.cat([root_ball, hinge_rv], 1))


def _project_with_jacobian(x: Tensor, problem: _Problem) -> tuple[Tensor, Tensor]:
    """Projected keypoints ``(N, 18, 2)`` and their Jacobian ``(N, 18, 2, 70)``."""
    n = x.shape[0]
    root_ball, rotations = _rotations(x, problem.hinge_axes)
    points, dpoints = basis_keypoints_and_jacobian(problem.basis, rotations)
    s = x[:, 0].exp()[:, None, None]
    plane = torch.stack([points[..., 0], -points[..., 2]], -1) * s  # (N, K, 2)
    uv = plane + x[:, None, 1:3]
    d_uv = torch.stack([dpoints[:, :, 0], -dpoints[:, :, 2]], 2) * s[..., None, None]
    j_rot = torch.einsum(
        "nkiaj,najl->nkial", d_uv[:, :, :, : 1 + NUM_BALL], left_jacobian(root_ball)
    )
    j_hinge = torch.einsum("nkiaj,aj->nkia", d_uv[:, :, :, 1 + NUM_BALL :], problem.hinge_axes)
    eye = torch.eye(2, dtype=x.dtype).expand(n, NUM_KEYPOINTS, 2, 2)
    j_cam = torch.cat([plane[..., None], eye], -1)
    jac = torch.cat([j_cam, j_rot.flatten(3), j_hinge], -1)
    return uv, jac


def _data_terms(uv: Tensor, problem: _Problem, scale: float) -> tuple[Tensor, Tensor, Tensor]:
    """Robust data cost ``(N,)``, normalised differences ``(N, 18, 2)``, IRLS weights ``(N, 18)``.

    Differences are divided by ``s_norm`` (pixels per metre), so they are in metres.
    """
    diff = (uv - problem.target) / problem.s_norm[:, None, None]
    rho, rho_prime = robust_rho((diff * diff).sum(-1), scale, problem.cfg.robust_loss)
    return (problem.weight * rho).sum(1), diff, (problem.weight * rho_prime).sqrt()


def _prior_terms(x: Tensor, problem: _Problem) -> list[tuple[slice, Tensor, Tensor]]:
    """Prior residuals as ``(columns, residual (N, R), d residual / d columns)``.

    The derivative is ``(R,)`` or ``(N, R)`` (diagonal) or ``(N, R, C)`` (dense).
    """
    cfg, prior = problem.cfg, problem.prior
    pose_res, pose_d = pose_prior_residuals(x[:, _BALL].view(-1, NUM_BALL, 3), prior)
    hp_res, hp_d, lim_res, lim_d = hinge_residuals(x[:, _HINGE], prior)
    up_res, up_d = upright_residuals(x[:, _ROOT])
    up_d = up_d @ left_jacobian(x[:, _ROOT])
    terms = [
        (_BALL, pose_res, pose_d, cfg.pose_prior_weight),
        (_HINGE, hp_res, hp_d, cfg.hinge_prior_weight),
        (_HINGE, lim_res, lim_d, cfg.limit_weight),
        (_ROOT, up_res, up_d, cfg.upright_weight),
    ]
    return [(cols, w * res, w * d) for cols, res, d, w in terms]


def _cost(x: Tensor, uv: Tensor, problem: _Problem, scale: float) -> Tensor:
    """Total robust cost ``(N,)``."""
    cost = _data_terms(uv, problem, scale)[0]
    for _, res, _ in _prior_terms(x, problem):
        cost = cost + (res * res).sum(1)
    return cost


def _normal_equations(
    x: Tensor, uv: Tensor, jac: Tensor, problem: _Problem, scale: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Robust cost ``(N,)`` and the reweighted normal equations ``JtJ (N,P,P)``, ``Jtr (N,P)``."""
    cost, diff, w = _data_terms(uv, problem, scale)
    r = (diff * w[..., None]).flatten(1)
    J = (jac * (w / problem.s_norm[:, None])[..., None, None]).flatten(1, 2)
    JtJ = J.transpose(1, 2) @ J
    g = (J.transpose(1, 2) @ r[..., None])[..., 0]
    for cols, res, d in _prior_terms(x, problem):
        cost = cost + (res * res).sum(1)
        if d.ndim == 3:  # dense block
            JtJ[:, cols, cols] += d.transpose(1, 2) @ d
            g[:, cols] += (d.transpose(1, 2) @ res[..., None])[..., 0]
        else:  # diagonal
            idx = torch.arange(cols.start, cols.stop)
            JtJ[:, idx, idx] += (d * d).expand_as(res)
            g[:, cols] += d * res
    return cost, JtJ, g


def _levenberg_marquardt(
    x: Tensor, problem: _Problem, iterations: int, anneal: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Run LM from ``x (N, 70)``.

    Returns:
        Final ``x (N, 70)``, cost ``(N,)`` and keypoints ``(N, 18, 2)``.
    """
    cfg = problem.cfg
    n_anneal = max(1, iterations // 2)
    uv, jac = _project_with_jacobian(x, problem)
    damping = torch.full((x.shape[0],), cfg.initial_damping, dtype=torch.float64)
    for it in range(iterations):
        scale = cfg.robust_scale * anneal ** max(0.0, 1 - it / n_anneal)
        cost, JtJ, g = _normal_equations(x, uv, jac, problem, scale)
        JtJ, g = JtJ.double(), g.double()
        diag = torch.diagonal(JtJ, dim1=1, dim2=2).clamp(min=1e-9)
        chol, info = torch.linalg.cholesky_ex(JtJ + torch.diag_embed(damping[:, None] * diag))
        step = torch.cholesky_solve(-g[..., None], chol)[..., 0]
        step = torch.where((info == 0)[:, None], step, torch.zeros_like(step)).to(x.dtype)
        x_new = x + step
        x_new[:, _ROOT] = wrap_rotvec(x_new[:, _ROOT])
        uv_new, jac_new = _project_with_jacobian(x_new, problem)
        cost_new = _cost(x_new, uv_new, problem, scale)
        better = (cost_new < cost) & cost_new.isfinite()
        x = torch.where(better[:, None], x_new, x)
        uv = torch.where(better[:, None, None], uv_new, uv)
        jac = torch.where(better[:, None, None, None], jac_new, jac)
        damping = torch.where(better, damping * 0.3, damping * 10).clamp(1e-7, 1e7)
    return x, _cost(x, uv, problem, cfg.robust_scale), uv


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
    x[:, _YAW] = yaws.repeat(n)
    x[:, _BALL] = prior.ball_mean.flatten()
    x[:, _HINGE] = prior.hinge_mean
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
    points = basis_keypoints(basis, _rotations(x, model.hinge_axes)[1])
    x[:, _CAM] = _initial_camera(points, target_h, weight_h)
    s_norm = x[::starts, 0].exp().repeat_interleave(starts)  # frontal start's scale, per item
    problem = _Problem(target_h, weight_h, s_norm, basis, model.hinge_axes, prior, cfg)
    x, cost, uv = _levenberg_marquardt(x, problem, cfg.iterations, cfg.robust_anneal)
    best = cost.view(n, starts).argmin(1) + torch.arange(n) * starts
    x, uv = x[best], uv[best]
    if not cfg.fit_shape:
        return x, uv, None
    problem = _Problem(target, weight, s_norm[best], basis, model.hinge_axes, prior, cfg)
    phenotype = torch.full((n, NUM_PHENOTYPES), 0.5)
    for _ in range(cfg.shape_rounds):
        phenotype = fit_phenotype(
            model,
            phenotype,
            _params_from_x(x, None),
            x[:, _CAM],
            problem.target,
            problem.weight,
            problem.s_norm,
            cfg.robust_scale,
            cfg.robust_loss,
            cfg.shape_prior_weight,
        )
        basis = model.keypoint_basis(phenotype)
        problem = _Problem(target, weight, problem.s_norm, basis, model.hinge_axes, prior, cfg)
        x, _, uv = _levenberg_marquardt(x, problem, max(1, cfg.iterations // 2), 1.0)
    return x, uv, phenotype


def _params_from_x(x: Tensor, phenotype: Tensor | None) -> BodyParams:
    return BodyParams(
        global_orient=x[:, _ROOT].contiguous(),
        body_pose=x[:, _BALL].reshape(-1, NUM_BALL, 3).contiguous(),
        hinge=x[:, _HINGE].contiguous(),
        phenotype=phenotype,
    )


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
        params=_params_from_x(x, phenotype),
        camera=x[:, _CAM].contiguous(),
        reprojection_error=error,
        converged=converged,
        reason=reason,
        image_size=(int(image_size[0]), int(image_size[1])),
        keypoints_xy=uv,
        num_valid=num_valid.long(),
    )
