"""What :func:`~posetransfer.body.fitting.fit_keypoints` solves: settings, unknowns and cost.

:class:`FitConfig` holds the fit's settings. Unknowns per image (70, :data:`NUM_PARAMS`): the
weak-perspective camera ``(log s, tx, ty)``, the global rotation vector, 20 ball-bone rotation
vectors and 4 hinge angles (see ``posetransfer.body.params``), laid out as the slices
:data:`CAM`, :data:`ROOT`, :data:`BALL` and :data:`HINGE`. A :class:`Problem` fixes the targets
of ``N`` solves; :func:`project_with_jacobian` gives the projected keypoints and their analytic
Jacobian, :func:`total_cost` the robust cost and :func:`normal_equations` its reweighted
Gauss-Newton system, which the Levenberg-Marquardt loop of :mod:`posetransfer.body.fitting` solves.

Cost::

    sum_k c_k rho(|x_k(theta) - x_k|^2 / s0^2)  +  priors (pose, hinges, limits, upright)

with ``c_k`` the keypoint confidence (0 for missing points), ``s0`` the person's scale in pixels
per metre (so residuals and the robust scale are in metres), and ``rho`` Geman-McClure, Cauchy
or plain squares.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import roma
import torch
from torch import Tensor

from posetransfer.body.keypoint_basis import KeypointBasis, basis_keypoints_and_jacobian
from posetransfer.body.params import NUM_BALL, NUM_HINGE, BodyParams
from posetransfer.body.priors import (
    PosePrior,
    hinge_residuals,
    pose_prior_residuals,
    upright_residuals,
)
from posetransfer.body.robust import RobustLoss, robust_rho
from posetransfer.body.so3 import left_jacobian
from posetransfer.conventions import NUM_KEYPOINTS

__all__ = [
    "BALL",
    "CAM",
    "HINGE",
    "NUM_PARAMS",
    "ROOT",
    "YAW",
    "FitConfig",
    "Problem",
    "active_rotations",
    "normal_equations",
    "params_from_x",
    "project_with_jacobian",
    "total_cost",
]

# Layout of the parameter vector: camera (log s, tx, ty), root, ball bones, hinges.
CAM, ROOT = slice(0, 3), slice(3, 6)
BALL = slice(6, 6 + 3 * NUM_BALL)
HINGE = slice(BALL.stop, BALL.stop + NUM_HINGE)
YAW = ROOT.start + 2
NUM_PARAMS = HINGE.stop


_POSITIVE_FIELDS = (
    "iterations", "num_yaw_starts", "robust_scale", "robust_anneal", "min_valid_keypoints",
    "max_error_px", "initial_damping",
)  # fmt: skip


@dataclass(frozen=True)
class FitConfig:
    """Settings of :func:`~posetransfer.body.fitting.fit_keypoints`.

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
class Problem:
    """Everything fixed during one LM solve of ``N`` problems."""

    target: Tensor  # (N, 18, 2) pixels
    weight: Tensor  # (N, 18) confidence, 0 = missing
    s_norm: Tensor  # (N,) pixels per metre used to normalise residuals
    basis: KeypointBasis
    hinge_axes: Tensor  # (4, 3)
    prior: PosePrior
    cfg: FitConfig


def active_rotations(x: Tensor, hinge_axes: Tensor) -> tuple[Tensor, Tensor]:
    """Root and ball rotation vectors ``(N, 21, 3)`` and all active rotations ``(N, 25, 3, 3)``."""
    root_ball = torch.cat([x[:, ROOT], x[:, BALL]], 1).view(x.shape[0], 1 + NUM_BALL, 3)
    hinge_rv = x[:, HINGE, None] * hinge_axes
    return root_ball, roma.rotvec_to_rotmat(torch.cat([root_ball, hinge_rv], 1))


def project_with_jacobian(x: Tensor, problem: Problem) -> tuple[Tensor, Tensor]:
    """Projected keypoints ``(N, 18, 2)`` and their Jacobian ``(N, 18, 2, 70)``."""
    n = x.shape[0]
    root_ball, rotations = active_rotations(x, problem.hinge_axes)
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


def _data_terms(uv: Tensor, problem: Problem, scale: float) -> tuple[Tensor, Tensor, Tensor]:
    """Robust data cost ``(N,)``, normalised differences ``(N, 18, 2)``, IRLS weights ``(N, 18)``.

    Differences are divided by ``s_norm`` (pixels per metre), so they are in metres.
    """
    diff = (uv - problem.target) / problem.s_norm[:, None, None]
    rho, rho_prime = robust_rho((diff * diff).sum(-1), scale, problem.cfg.robust_loss)
    return (problem.weight * rho).sum(1), diff, (problem.weight * rho_prime).sqrt()


def _prior_terms(x: Tensor, problem: Problem) -> list[tuple[slice, Tensor, Tensor]]:
    """Prior residuals as ``(columns, residual (N, R), d residual / d columns)``.

    The derivative is ``(R,)`` or ``(N, R)`` (diagonal) or ``(N, R, C)`` (dense).
    """
    cfg, prior = problem.cfg, problem.prior
    pose_res, pose_d = pose_prior_residuals(x[:, BALL].view(-1, NUM_BALL, 3), prior)
    hp_res, hp_d, lim_res, lim_d = hinge_residuals(x[:, HINGE], prior)
    up_res, up_d = upright_residuals(x[:, ROOT])
    up_d = up_d @ left_jacobian(x[:, ROOT])
    terms = [
        (BALL, pose_res, pose_d, cfg.pose_prior_weight),
        (HINGE, hp_res, hp_d, cfg.hinge_prior_weight),
        (HINGE, lim_res, lim_d, cfg.limit_weight),
        (ROOT, up_res, up_d, cfg.upright_weight),
    ]
    return [(cols, w * res, w * d) for cols, res, d, w in terms]


def total_cost(x: Tensor, uv: Tensor, problem: Problem, scale: float) -> Tensor:
    """Total robust cost ``(N,)``."""
    cost = _data_terms(uv, problem, scale)[0]
    for _, res, _ in _prior_terms(x, problem):
        cost = cost + (res * res).sum(1)
    return cost


def normal_equations(
    x: Tensor, uv: Tensor, jac: Tensor, problem: Problem, scale: float
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


def params_from_x(x: Tensor, phenotype: Tensor | None) -> BodyParams:
    """The body parameters held in ``x (N, 70)``, with ``phenotype`` (or None)."""
    return BodyParams(
        global_orient=x[:, ROOT].contiguous(),
        body_pose=x[:, BALL].reshape(-1, NUM_BALL, 3).contiguous(),
        hinge=x[:, HINGE].contiguous(),
        phenotype=phenotype,
    )
