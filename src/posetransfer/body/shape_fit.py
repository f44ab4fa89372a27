"""One Gauss-Newton update of the body shape (phenotype) for fixed poses and cameras.

2D keypoints constrain the shape only through limb-length ratios, and the phenotype enters the
keypoints through Anny's blendshapes, rest skeleton and skinning, so the Jacobian is taken by
forward finite differences: one keypoint basis per perturbed phenotype, all in one batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

from posetransfer.body.anny_model import BodyModel
from posetransfer.body.camera import project
from posetransfer.body.keypoint_basis import basis_keypoints
from posetransfer.body.params import NUM_PHENOTYPES, BodyParams
from posetransfer.body.robust import RobustLoss, robust_rho

__all__ = ["fit_phenotype"]


def _data_terms(
    model: BodyModel,
    phenotype: Tensor,
    rotations: Tensor,
    camera: Tensor,
    target: Tensor,
    s_norm: Tensor,
) -> Tensor:
    """``(M, 18, 2)`` normalised keypoint differences (metres) for ``M`` phenotypes."""
    points = basis_keypoints(model.keypoint_basis(phenotype), rotations)
    uv = project(points, camera)[..., :2]
    return (uv - target) / s_norm[:, None, None]


@torch.no_grad()
def fit_phenotype(
    model: BodyModel,
    phenotype: Tensor,
    params: BodyParams,
    camera: Tensor,
    target: Tensor,
    weight: Tensor,
    s_norm: Tensor,
    robust_scale: float,
    robust_loss: RobustLoss,
    prior_weight: float,
    step: float = 0.02,
) -> Tensor:
    """Improve each item's phenotype by one damped Gauss-Newton step (kept only if it helps).

    Args:
        model: Body model.
        phenotype: ``(N, 6)`` current phenotypes in ``[0, 1]``.
        params: ``N`` fixed poses (their phenotype is ignored).
        camera: ``(N, 3)`` fixed cameras.
        target: ``(N, 18, 2)`` keypoints (pixels).
        weight: ``(N, 18)`` confidences (0 = missing).
        s_norm: ``(N,)`` pixels per metre normalising the residuals.
        robust_scale: Robust scale in metres.
        robust_loss: Robust loss kind.
        prior_weight: Weight of ``(phenotype - 0.5)``.
        step: Finite-difference step.

    Returns:
        ``(N, 6)`` updated phenotypes in ``[0, 1]``.
    """
    n = phenotype.shape[0]
    eye = torch.eye(NUM_PHENOTYPES, dtype=phenotype.dtype)
    # Step away from the upper bound so the perturbed value stays inside [0, 1].
    h = torch.where(phenotype + step > 1, -step, step)  # (N, 6)
    perturbed = phenotype[:, None, :] + h[:, :, None] * eye  # (N, 6, 6)
    batch = torch.cat([phenotype, perturbed.reshape(-1, NUM_PHENOTYPES)])
    index = torch.cat([torch.arange(n), torch.arange(n).repeat_interleave(NUM_PHENOTYPES)])
    rotations = model.active_rotations(params)[index]
    diff = _data_terms(model, batch, rotations, camera[index], target[index], s_norm[index])
    base, moved = diff[:n], diff[n:].view(n, NUM_PHENOTYPES, -1, 2)
    sq = (base * base).sum(-1)
    _, rho_prime = robust_rho(sq, robust_scale, robust_loss)
    w = (weight * rho_prime).sqrt()
    r = (base * w[..., None]).flatten(1)  # (N, 36)
    J = ((moved - base[:, None]) * w[:, None, :, None]).flatten(2) / h[..., None]  # (N, 6, 36)
    J = J.transpose(1, 2)
    JtJ = J.transpose(1, 2) @ J + prior_weight**2 * eye
    g = (J.transpose(1, 2) @ r[..., None])[..., 0] + prior_weight**2 * (phenotype - 0.5)
    JtJ = JtJ + 1e-3 * torch.diag_embed(torch.diagonal(JtJ, dim1=1, dim2=2)) + 1e-9 * eye
    delta = torch.linalg.solve(JtJ.double(), -g.double()[..., None])[..., 0].to(phenotype.dtype)
    candidate = (phenotype + delta).clamp(0.0, 1.0)

    def cost(phen: Tensor, d: Tensor) -> Tensor:
        rho_d, _ = robust_rho((d * d).sum(-1), robust_scale, robust_loss)
        return (weight * rho_d).sum(1) + prior_weight**2 * ((phen - 0.5) ** 2).sum(1)

    new_diff = _data_terms(model, candidate, rotations[:n], camera, target, s_norm)
    better = cost(candidate, new_diff) < cost(phenotype, base)
    return torch.where(better[:, None], candidate, phenotype)
