"""Pose priors and joint limits for the fitted bones, as least-squares residuals.

Each ball bone has an independent Gaussian prior per rotation-vector component (axes of
``posetransfer.body.params``: X left, Y back, Z up, at the A-pose), the elbows and knees a
Gaussian prior plus hard-ish range limits (one-sided quadratic penalties), and the whole body a
weak "upright" prior that keeps its up axis near world +Z. Right-side bones use the mirror image
of the left-side values. The residual functions return their Jacobians so the Levenberg-Marquardt
fit can use them directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import roma
import torch
from torch import Tensor

from posetransfer.body.params import BALL_BONES, HINGE_BONES, BodyParams, mirror_rotvec
from posetransfer.body.so3 import skew

__all__ = [
    "BALL_PRIOR",
    "HINGE_LIMITS",
    "HINGE_PRIOR",
    "PosePrior",
    "default_pose_prior",
    "hinge_residuals",
    "pose_prior_residuals",
    "prior_deviation",
    "upright_residuals",
]

#: (mean, std) rotation vector per bone, left side / centre, radians. The upper-arm mean lowers
#: the A-pose arms (42 degrees from vertical) to a relaxed ~10 degrees.
BALL_PRIOR: Final[dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]]] = {
    "spine05": ((0.0, 0.0, 0.0), (0.08, 0.05, 0.08)),
    "spine04": ((0.0, 0.0, 0.0), (0.08, 0.05, 0.08)),
    "spine03": ((0.0, 0.0, 0.0), (0.08, 0.05, 0.08)),
    "spine02": ((0.0, 0.0, 0.0), (0.08, 0.05, 0.08)),
    "spine01": ((0.0, 0.0, 0.0), (0.08, 0.05, 0.08)),
    "neck01": ((0.0, 0.0, 0.0), (0.12, 0.08, 0.15)),
    "neck02": ((0.0, 0.0, 0.0), (0.12, 0.08, 0.15)),
    "head": ((0.0, 0.0, 0.0), (0.2, 0.12, 0.25)),
    "clavicle.L": ((0.0, 0.0, 0.0), (0.05, 0.08, 0.08)),
    "shoulder01.L": ((0.0, 0.0, 0.0), (0.05, 0.08, 0.08)),
    "upperarm01.L": ((0.0, 0.55, 0.0), (0.5, 0.5, 0.5)),
    "wrist.L": ((0.0, 0.0, 0.0), (0.3, 0.3, 0.3)),
    "upperleg01.L": ((0.0, 0.0, 0.0), (0.35, 0.15, 0.15)),
    "foot.L": ((0.0, 0.0, 0.0), (0.15, 0.1, 0.1)),
}

#: Hinge angle at which the limb is straight: the A-pose elbow is bent by 42 degrees, the knee by 9.
ELBOW_STRAIGHT: Final[float] = -0.73
KNEE_STRAIGHT: Final[float] = -0.15

#: (lower, upper) hinge limits in radians (elbow: straight to ~150 degrees; knee: straight to ~140).
HINGE_LIMITS: Final[dict[str, tuple[float, float]]] = {
    "lowerarm01": (ELBOW_STRAIGHT, 1.9),
    "lowerleg01": (KNEE_STRAIGHT, 2.3),
}
#: (mean, std) of the hinge angles.
HINGE_PRIOR: Final[dict[str, tuple[float, float]]] = {
    "lowerarm01": (0.0, 0.8),
    "lowerleg01": (0.1, 0.6),
}


@dataclass(frozen=True)
class PosePrior:
    """Prior tables as tensors.

    Attributes:
        ball_mean: ``(20, 3)`` mean rotation vectors of :data:`BALL_BONES`.
        ball_std: ``(20, 3)`` standard deviations.
        hinge_mean: ``(4,)`` mean hinge angles of :data:`HINGE_BONES`.
        hinge_std: ``(4,)`` standard deviations.
        hinge_lower: ``(4,)`` lower limits.
        hinge_upper: ``(4,)`` upper limits.
    """

    ball_mean: Tensor
    ball_std: Tensor
    hinge_mean: Tensor
    hinge_std: Tensor
    hinge_lower: Tensor
    hinge_upper: Tensor


def _ball_entry(bone: str) -> tuple[Tensor, Tensor]:
    if bone.endswith(".R"):
        mean, std = BALL_PRIOR[bone[:-2] + ".L"]
        return mirror_rotvec(torch.tensor(mean)), torch.tensor(std)
    mean, std = BALL_PRIOR[bone]
    return torch.tensor(mean), torch.tensor(std)


def default_pose_prior(dtype: torch.dtype = torch.float32) -> PosePrior:
    """The prior tables of this module as a :class:`PosePrior`."""
    ball = [_ball_entry(b) for b in BALL_BONES]
    hinge_names = [b.split(".")[0] for b in HINGE_BONES]

    def vec(values: list[float]) -> Tensor:
        return torch.tensor(values, dtype=dtype)

    return PosePrior(
        ball_mean=torch.stack([m for m, _ in ball]).to(dtype),
        ball_std=torch.stack([s for _, s in ball]).to(dtype),
        hinge_mean=vec([HINGE_PRIOR[h][0] for h in hinge_names]),
        hinge_std=vec([HINGE_PRIOR[h][1] for h in hinge_names]),
        hinge_lower=vec([HINGE_LIMITS[h][0] for h in hinge_names]),
        hinge_upper=vec([HINGE_LIMITS[h][1] for h in hinge_names]),
    )


def pose_prior_residuals(body_pose: Tensor, prior: PosePrior) -> tuple[Tensor, Tensor]:
    """Gaussian prior on the ball bones: ``r = (pose - mean) / std``.

    Args:
        body_pose: ``(B, 20, 3)`` rotation vectors.
        prior: Prior tables.

    Returns:
        residuals ``(B, 60)`` and their (diagonal) derivative ``(60,)`` w.r.t. ``body_pose``.
    """
    residual = (body_pose - prior.ball_mean) / prior.ball_std
    return residual.flatten(1), (1.0 / prior.ball_std).flatten()


def hinge_residuals(hinge: Tensor, prior: PosePrior) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gaussian prior and range limits on the hinge angles.

    Args:
        hinge: ``(B, 4)`` angles.
        prior: Prior tables.

    Returns:
        ``(prior_res, prior_jac, limit_res, limit_jac)``: the prior residual ``(B, 4)`` with its
        diagonal derivative ``(4,)``, and the limit violation ``(B, 4)`` (0 inside the range,
        the distance to the range outside) with its diagonal derivative ``(B, 4)`` (-1, 0 or 1).
    """
    prior_res = (hinge - prior.hinge_mean) / prior.hinge_std
    below = (prior.hinge_lower - hinge).clamp(min=0)
    above = (hinge - prior.hinge_upper).clamp(min=0)
    limit_jac = (above > 0).to(hinge.dtype) - (below > 0).to(hinge.dtype)
    return prior_res, 1.0 / prior.hinge_std, below + above, limit_jac


def upright_residuals(global_orient: Tensor) -> tuple[Tensor, Tensor]:
    """Horizontal components of the body's rotated up axis (0 when upright, any yaw).

    Args:
        global_orient: ``(B, 3)`` rotation vectors.

    Returns:
        residuals ``(B, 2)`` and their derivative ``(B, 2, 3)`` w.r.t. a left perturbation of the
        global rotation (``R <- exp([d]x) R``).
    """
    up = roma.rotvec_to_rotmat(global_orient)[..., :, 2]  # R e_z, (B, 3)
    # d(R e_z) = d x (R e_z) = -[R e_z]x d
    return up[:, :2], -skew(up)[:, :2]


def prior_deviation(params: BodyParams, prior: PosePrior | None = None) -> tuple[Tensor, Tensor]:
    """How far each body is from the prior.

    Args:
        params: ``B`` bodies.
        prior: Prior tables (default: :func:`default_pose_prior`).

    Returns:
        ``(max_ball_sigma, hinge_violation)``, both ``(B,)``: the largest ``|pose - mean| / std``
        over the ball bones' components, and the largest hinge-limit violation (rad, 0 inside).
    """
    prior = prior or default_pose_prior(params.dtype)
    ball = ((params.body_pose - prior.ball_mean) / prior.ball_std).abs().flatten(1).amax(1)
    _, _, violation, _ = hinge_residuals(params.hinge, prior)
    return ball, violation.amax(1)
