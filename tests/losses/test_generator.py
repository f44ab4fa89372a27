"""Tests for posetransfer.losses.generator: term selection, weighting once, warm-up, configs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from posetransfer.config import ConfigError, from_dict
from posetransfer.losses.adversarial import generator_adversarial_loss
from posetransfer.losses.generator import (
    GeneratorLossConfig,
    discriminator_loss_terms,
    generator_loss_terms,
    weighted_discriminator_total,
    weighted_total,
)
from posetransfer.models.vgg import PERCEPTUAL_LAYERS, VGG19Features, load_vgg19

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "generator"


@pytest.fixture(scope="module")
def vgg() -> VGG19Features:
    torch.manual_seed(0)
    return load_vgg19(random_weights=True)


def _images() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return tuple(torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1 for _ in range(2))


def test_terms_follow_the_non_zero_weights(vgg: VGG19Features) -> None:
    output, target = _images()
    cfg = GeneratorLossConfig()
    terms = generator_loss_terms(output, target, cfg, vgg=vgg)
    assert list(terms) == ["l1", *(f"vgg_{k}" for k in PERCEPTUAL_LAYERS)]
    assert terms["l1"].item() == pytest.approx((output - target).abs().mean().item())
    sparse = replace(
        cfg, perceptual_layer_weights=(1.0, 0.0, 0.5, 0.0, 0.0), style_weight=2.0,
        style_layer_weights=(0.0, 1.0, 0.0, 0.0, 0.0),
    )  # fmt: skip
    logits = torch.randn(2, 1, 2, 2)
    terms = generator_loss_terms(output, target, sparse, vgg=vgg, fake_logits=logits)
    assert list(terms) == ["l1", "vgg_relu1_1", "vgg_relu3_1", "style_relu2_1", "gan"]
    assert torch.equal(terms["gan"], generator_adversarial_loss(logits, "bce"))
    only_l1 = generator_loss_terms(output, target, replace(cfg, perceptual_weight=0.0))
    assert list(only_l1) == ["l1"]
    with pytest.raises(ValueError, match=r"needs the VGG19 network \(vgg=...\)"):
        generator_loss_terms(output, target, cfg)


def test_weighted_total_is_the_configured_sum_with_the_gan_after_warm_up() -> None:
    cfg = replace(
        GeneratorLossConfig(), l1_weight=2.0, perceptual_layer_weights=(1.0, 0.5, 0.0, 0.0, 0.25),
        style_weight=3.0, style_layer_weights=(0.0, 0.0, 1.0, 0.0, 0.0), gan_weight=0.1,
        gan_start_step=10,
    )  # fmt: skip
    values = {"l1": 1.0, "vgg_relu1_1": 2.0, "vgg_relu2_1": 4.0, "vgg_relu5_1": 8.0}
    values |= {"style_relu3_1": 5.0, "gan": 7.0}
    terms = {k: torch.tensor(v) for k, v in values.items()}
    before = 2.0 * 1 + (1.0 * 2 + 0.5 * 4 + 0.25 * 8) + 3.0 * 5
    assert weighted_total(terms, cfg, step=9).item() == before
    assert weighted_total(terms, cfg, step=10).item() == pytest.approx(before + 0.1 * 7)
    del terms["gan"]
    assert weighted_total(terms, cfg, step=0).item() == before
    with pytest.raises(ValueError, match=r"'gan' has weight 0.1 at step 10 .*pass fake_logits"):
        weighted_total(terms, cfg, step=10)
    with pytest.raises(ValueError, match=r"'vgg_relu2_1' has weight 0.5"):
        weighted_total({k: v for k, v in terms.items() if k != "vgg_relu2_1"}, cfg, step=0)
    with pytest.raises(ValueError, match=r"unknown loss term\(s\) \['tv'\]"):
        weighted_total(terms | {"tv": torch.tensor(1.0)}, cfg, step=0)


def test_gradient_scale_follows_the_weights() -> None:
    output = torch.zeros(1, 3, 4, 4, requires_grad=True)
    target = torch.ones(1, 3, 4, 4)
    cfg = GeneratorLossConfig(l1_weight=3.0, perceptual_weight=0.0, gan_weight=0.0)
    weighted_total(generator_loss_terms(output, target, cfg), cfg, step=0).backward()
    # d/dx 3 * mean|x - 1| = -3 / N
    torch.testing.assert_close(output.grad, torch.full_like(output, -3.0 / 48))


def test_discriminator_total() -> None:
    cfg = GeneratorLossConfig(gan_kind="lsgan", discriminator_weight=0.01)
    terms = discriminator_loss_terms(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 2.0]), cfg)
    assert (terms["d_real"].item(), terms["d_fake"].item()) == (2.0, 2.0)
    assert weighted_discriminator_total(terms, cfg).item() == pytest.approx(0.01 * 2.0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"perceptual_layer_weights": (1.0,)}, "needs one weight per perceptual layer"),
        ({"perceptual_layers": ("relu9_9",) * 5}, r"unknown VGG19 tap\(s\)"),
        ({"l1_weight": -1.0}, "l1_weight must be a finite number >= 0"),
        ({"gan_kind": "wgan"}, "gan_kind must be one of bce, lsgan, hinge"),
        ({"gan_start_step": -1}, "gan_start_step must be an int >= 0"),
    ],
)
def test_config_errors(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        replace(GeneratorLossConfig(), **changes)


def test_yaml_loss_sections() -> None:
    default = from_dict(
        GeneratorLossConfig, yaml.safe_load((CONFIGS / "default.yaml").read_text())["loss"]
    )
    paper = from_dict(
        GeneratorLossConfig, yaml.safe_load((CONFIGS / "paper.yaml").read_text())["loss"]
    )
    for cfg in (default, paper):
        assert cfg.perceptual_layers == PERCEPTUAL_LAYERS and cfg.gan_kind == "bce"
        assert cfg.content_weights == [(k, 0.125) for k in PERCEPTUAL_LAYERS]
        assert cfg.style_weights == [] and cfg.gan_weight == 0.01
    assert paper.discriminator_weight == 0.01 and default.gan_start_step > 0
