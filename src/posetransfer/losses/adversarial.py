"""Adversarial objectives on discriminator logits, and the GAN warm-up schedule.

Three objectives, chosen by name (:data:`GAN_LOSSES`); ``r`` and ``f`` are the discriminator's
raw logits on real and generated images, means are over every patch and sample:

``"bce"``
    G: ``BCE(sigmoid(f), 1)``; D: ``(BCE(sigmoid(r), 1) + BCE(sigmoid(f), 0)) / 2``.
``"lsgan"``
    G: ``mean((f - 1)^2)``; D: ``(mean((r - 1)^2) + mean(f^2)) / 2``.
``"hinge"``
    G: ``-mean(f)``; D: ``(mean(relu(1 - r)) + mean(relu(1 + f))) / 2``.

``"bce"`` is the original's ``gan_type=dcgan`` (a sigmoid output layer followed by BCE), computed
stably from logits. The discriminator loss averages its real and fake halves, as the original.

The original switched the GAN terms on after 5 of 30 epochs (``epoch_add_gan=6``);
:func:`gan_weight` expresses that in steps, with an optional linear ramp.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F

__all__ = [
    "GAN_LOSSES",
    "GanLossKind",
    "discriminator_adversarial_loss",
    "discriminator_adversarial_terms",
    "gan_weight",
    "generator_adversarial_loss",
]

GanLossKind = Literal["bce", "lsgan", "hinge"]

_Loss = Callable[[torch.Tensor], torch.Tensor]


def _bce(target: float) -> _Loss:
    return lambda logits: F.binary_cross_entropy_with_logits(
        logits, torch.full_like(logits, target)
    )


#: ``kind -> (generator loss on fake logits, discriminator loss on real, on fake logits)``.
GAN_LOSSES: dict[str, tuple[_Loss, _Loss, _Loss]] = {
    "bce": (_bce(1.0), _bce(1.0), _bce(0.0)),
    "lsgan": (
        lambda f: (f - 1.0).square().mean(),
        lambda r: (r - 1.0).square().mean(),
        lambda f: f.square().mean(),
    ),
    "hinge": (
        lambda f: -f.mean(),
        lambda r: F.relu(1.0 - r).mean(),
        lambda f: F.relu(1.0 + f).mean(),
    ),
}


def _losses(kind: str) -> tuple[_Loss, _Loss, _Loss]:
    if kind not in GAN_LOSSES:
        raise ValueError(f"unknown GAN loss {kind!r}; valid: {', '.join(GAN_LOSSES)}")
    return GAN_LOSSES[kind]


def generator_adversarial_loss(fake_logits: torch.Tensor, kind: GanLossKind) -> torch.Tensor:
    """The generator's adversarial term.

    Args:
        fake_logits: ``(B, 1, h, w)`` (any shape) discriminator logits on generated images.
        kind: ``"bce"``, ``"lsgan"`` or ``"hinge"``.

    Returns:
        0-dim loss.

    Example:
        >>> float(generator_adversarial_loss(torch.tensor([0.0, 2.0]), "lsgan"))
        1.0
    """
    return _losses(kind)[0](fake_logits)


def discriminator_adversarial_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: GanLossKind
) -> torch.Tensor:
    """The discriminator's loss: the mean of its real and fake halves.

    Args:
        real_logits: Logits on real target images (any shape).
        fake_logits: Logits on generated images, detached from the generator.
        kind: ``"bce"``, ``"lsgan"`` or ``"hinge"``.

    Returns:
        0-dim loss.
    """
    terms = discriminator_adversarial_terms(real_logits, fake_logits, kind)
    return 0.5 * (terms["d_real"] + terms["d_fake"])


def discriminator_adversarial_terms(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: GanLossKind
) -> dict[str, torch.Tensor]:
    """The two halves of the discriminator's loss, for logging and weighting.

    Args:
        real_logits: Logits on real target images (any shape).
        fake_logits: Logits on generated images, detached from the generator.
        kind: ``"bce"``, ``"lsgan"`` or ``"hinge"``.

    Returns:
        ``{"d_real": ..., "d_fake": ...}`` 0-dim losses; the discriminator loss is their mean.
    """
    _, on_real, on_fake = _losses(kind)
    return {"d_real": on_real(real_logits), "d_fake": on_fake(fake_logits)}


def gan_weight(step: int, *, weight: float, start_step: int, ramp_steps: int = 0) -> float:
    """Weight of the generator's adversarial term at a training step (warm-up schedule).

    0 before ``start_step``; then rises linearly to ``weight`` over ``ramp_steps`` steps (at once
    when 0, as the original).

    Args:
        step: Training step, counted from 0.
        weight: Full weight.
        start_step: First step with a non-zero weight.
        ramp_steps: Length of the linear ramp.

    Returns:
        The weight.

    Example:
        >>> [gan_weight(s, weight=0.01, start_step=2, ramp_steps=2) for s in range(5)]
        [0.0, 0.0, 0.005, 0.01, 0.01]
    """
    if step < start_step:
        return 0.0
    if ramp_steps <= 0:
        return weight
    return weight * min(1.0, (step - start_step + 1) / ramp_steps)
