"""Robust losses on squared residual norms, for iteratively reweighted least squares."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = ["RobustLoss", "robust_rho"]

RobustLoss = Literal["geman_mcclure", "cauchy", "l2"]


def robust_rho(sq: Tensor, scale: float, kind: RobustLoss) -> tuple[Tensor, Tensor]:
    """Robust loss ``rho(s)`` of squared residual norms ``s`` and its derivative ``rho'(s)``.

    All three behave like ``rho(s) = s`` for ``s << scale^2``; Geman-McClure saturates at
    ``scale^2`` (an outlier costs at most that), Cauchy grows logarithmically. In IRLS a residual
    is weighted by ``sqrt(rho'(s))``.

    Args:
        sq: Squared residual norms (any shape).
        scale: Robust scale, in the unit of the residuals.
        kind: ``"geman_mcclure"``: ``c s / (s + c)``; ``"cauchy"``: ``c log(1 + s / c)``;
            ``"l2"``: ``s``; with ``c = scale^2``.

    Returns:
        ``(rho, rho_prime)``, each with the shape of ``sq``.
    """
    c = scale * scale
    if kind == "geman_mcclure":
        return c * sq / (sq + c), (c / (sq + c)) ** 2
    if kind == "cauchy":
        return c * torch.log1p(sq / c), 1.0 / (1.0 + sq / c)
    if kind == "l2":
        return sq, torch.ones_like(sq)
    raise ValueError(f"unknown robust loss {kind!r}; use 'geman_mcclure', 'cauchy' or 'l2'")
