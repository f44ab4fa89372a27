"""Small SO(3) helpers for rotation-vector parameterisations."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["left_jacobian", "skew", "wrap_rotvec"]


def skew(v: Tensor) -> Tensor:
    """``(..., 3, 3)`` cross-product matrices ``[v]x`` of ``(..., 3)`` vectors."""
    zero = torch.zeros_like(v[..., 0])
    x, y, z = v.unbind(-1)
    rows = [(zero, -z, y), (z, zero, -x), (-y, x, zero)]
    return torch.stack([torch.stack(r, -1) for r in rows], -2)


def left_jacobian(rotvec: Tensor) -> Tensor:
    """``(..., 3, 3)`` left Jacobian of SO(3) at rotation vectors ``(..., 3)``.

    To first order, ``exp(w + dw) = exp([J dw]x) exp(w)``: a change ``dw`` of the rotation vector
    rotates the result by ``J dw`` in world axes.
    """
    theta2 = (rotvec * rotvec).sum(-1, keepdim=True)[..., None]
    theta = theta2.sqrt()
    small = theta < 1e-3
    safe = torch.where(small, torch.ones_like(theta), theta)
    a = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(safe)) / safe**2)
    b = torch.where(small, 1 / 6 - theta2 / 120, (safe - torch.sin(safe)) / safe**3)
    K = skew(rotvec)
    return torch.eye(3, dtype=rotvec.dtype, device=rotvec.device) + a * K + b * (K @ K)


def wrap_rotvec(rotvec: Tensor) -> Tensor:
    """Equivalent ``(..., 3)`` rotation vectors with an angle in ``[0, pi]``."""
    angle = rotvec.norm(dim=-1, keepdim=True)
    wrapped = rotvec * (1 - 2 * math.pi / angle.clamp(min=1e-12))
    return torch.where(angle > math.pi, wrapped, rotvec)
