"""Tests for posetransfer.losses.adversarial: hand-computed values, stability, schedule."""

from __future__ import annotations

import math

import pytest
import torch

from posetransfer.losses.adversarial import (
    GAN_LOSSES,
    discriminator_adversarial_loss,
    discriminator_adversarial_terms,
    gan_weight,
    generator_adversarial_loss,
)


def _softplus(x: float) -> float:
    """``-log(sigmoid(-x)) = log(1 + e^x)``: BCE of logit ``-x`` against 1."""
    return math.log1p(math.exp(x))


def test_bce_matches_sigmoid_cross_entropy_by_hand() -> None:
    fake = torch.tensor([[0.0, 2.0]])
    # BCE(sigmoid(f), 1) = log(1 + e^-f)
    expected_g = (_softplus(-0.0) + _softplus(-2.0)) / 2
    assert generator_adversarial_loss(fake, "bce").item() == pytest.approx(expected_g, rel=1e-6)
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 0.5])
    d_real = (_softplus(-1.0) + _softplus(-3.0)) / 2
    d_fake = (_softplus(-1.0) + _softplus(0.5)) / 2  # BCE(sigmoid(f), 0) = log(1 + e^f)
    terms = discriminator_adversarial_terms(real, fake, "bce")
    assert terms["d_real"].item() == pytest.approx(d_real, rel=1e-6)
    assert terms["d_fake"].item() == pytest.approx(d_fake, rel=1e-6)
    got = discriminator_adversarial_loss(real, fake, "bce").item()
    assert got == pytest.approx((d_real + d_fake) / 2, rel=1e-6)


def test_lsgan_and_hinge_by_hand() -> None:
    fake = torch.tensor([0.0, 2.0])
    assert generator_adversarial_loss(fake, "lsgan").item() == 1.0  # ((0-1)^2 + (2-1)^2) / 2
    real = torch.tensor([1.0, 3.0])
    # real: (0 + 4) / 2 = 2; fake: (0 + 4) / 2 = 2
    assert discriminator_adversarial_loss(real, fake, "lsgan").item() == 2.0
    fake = torch.tensor([0.5, -2.0])
    assert generator_adversarial_loss(fake, "hinge").item() == 0.75
    real = torch.tensor([2.0, 0.5])
    # real: (relu(-1) + relu(0.5)) / 2 = 0.25; fake: (relu(1.5) + relu(-1)) / 2 = 0.75
    terms = discriminator_adversarial_terms(real, fake, "hinge")
    assert (terms["d_real"].item(), terms["d_fake"].item()) == (0.25, 0.75)
    assert discriminator_adversarial_loss(real, fake, "hinge").item() == 0.5


@pytest.mark.parametrize("kind", list(GAN_LOSSES))
def test_losses_are_finite_with_gradients_for_extreme_logits(kind: str) -> None:
    fake = torch.tensor([-1e4, 1e4], requires_grad=True)
    loss = generator_adversarial_loss(fake, kind) + discriminator_adversarial_loss(
        torch.tensor([1e4, -1e4]), fake, kind
    )
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(fake.grad).all()


def test_unknown_kind_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown GAN loss 'wgan'; valid: bce, lsgan, hinge"):
        generator_adversarial_loss(torch.zeros(1), "wgan")  # type: ignore[arg-type]


def test_gan_weight_schedule() -> None:
    hard = [gan_weight(s, weight=0.01, start_step=3) for s in range(5)]
    assert hard == [0.0, 0.0, 0.0, 0.01, 0.01]
    ramp = [gan_weight(s, weight=1.0, start_step=1, ramp_steps=4) for s in range(7)]
    assert ramp == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
