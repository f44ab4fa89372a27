"""Tests for posetransfer.models.blocks: layouts, shapes, bias rule, residual maths, init."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from posetransfer.models.blocks import (
    ResidualBlock,
    conv_unit,
    down_block,
    init_weights,
    leaky_relu,
    norm_layer,
    up_block,
)


def test_norm_layer_kinds() -> None:
    assert isinstance(norm_layer("batch", 4), nn.BatchNorm2d)
    inorm = norm_layer("instance", 4)
    assert isinstance(inorm, nn.InstanceNorm2d) and inorm.affine
    assert isinstance(norm_layer("none", 4), nn.Identity)
    with pytest.raises(ValueError, match=r"norm must be one of .* got norm='group'"):
        norm_layer("group", 4)  # type: ignore[arg-type]


@pytest.mark.parametrize("norm", ["batch", "instance", "none", None])
def test_conv_unit_has_a_bias_only_without_norm(norm: str | None) -> None:
    unit = conv_unit(3, 5, 3, norm=norm)  # type: ignore[arg-type]
    conv = unit[0]
    assert isinstance(conv, nn.Conv2d)
    assert (conv.bias is not None) == (norm in ("none", None))
    assert len(unit) == (1 if norm in ("none", None) else 2)
    assert conv_unit(3, 5, 3, norm=norm, bias=False)[0].bias is None  # type: ignore[arg-type]


def test_conv_unit_order_of_activations() -> None:
    unit = conv_unit(3, 5, 7, pre_act=leaky_relu(0.2), post_act=nn.ReLU)
    kinds = [type(m) for m in unit]
    assert kinds == [nn.LeakyReLU, nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    assert unit[0].negative_slope == 0.2
    assert unit[1].padding == (3, 3)  # "same" padding for odd kernels
    assert unit(torch.randn(2, 3, 6, 10)).shape == (2, 5, 6, 10)


@pytest.mark.parametrize("kernel_size", [3, 4])
def test_down_block_halves_the_size(kernel_size: int) -> None:
    block = down_block(4, 6, kernel_size=kernel_size)
    assert isinstance(block[0], nn.ReLU)
    assert block(torch.randn(1, 4, 8, 12)).shape == (1, 6, 4, 6)


@pytest.mark.parametrize("mode", ["transposed", "pixel_shuffle"])
def test_up_block_doubles_the_size(mode: str) -> None:
    block = up_block(6, 4, mode=mode)  # type: ignore[arg-type]
    assert block(torch.randn(2, 6, 3, 5)).shape == (2, 4, 6, 10)
    assert isinstance(block[-1], nn.BatchNorm2d)


def test_up_block_pixel_shuffle_layout() -> None:
    block = up_block(6, 4, mode="pixel_shuffle", norm="none")
    conv = block[1]
    assert isinstance(conv, nn.Conv2d) and conv.out_channels == 16 and conv.bias is not None
    assert isinstance(block[2], nn.PixelShuffle)
    with pytest.raises(ValueError, match="mode must be"):
        up_block(6, 4, mode="nearest")  # type: ignore[arg-type]


def test_residual_block_is_identity_when_its_last_conv_is_zero() -> None:
    block = ResidualBlock(4, norm="none")
    nn.init.zeros_(block.body[1].weight)
    nn.init.zeros_(block.body[1].bias)
    x = torch.randn(2, 4, 5, 5)
    torch.testing.assert_close(block(x), x)


def test_residual_block_adds_conv_of_activated_input() -> None:
    block = ResidualBlock(3, norm="none")
    x = torch.randn(1, 3, 6, 6)
    conv = block.body[1]
    expected = x + conv(torch.relu(x))  # pre-activation: x + conv(relu(x))
    torch.testing.assert_close(block(x), expected)


def test_residual_block_with_side_input() -> None:
    block = ResidualBlock(3, side_channels=5, norm="none")
    x, side = torch.randn(2, 3, 4, 4), torch.randn(2, 5, 4, 4)
    side_mapped = block.side[1](torch.relu(side))  # 1x1 conv of the activated side input
    expected = x + block.body[1](torch.relu(torch.cat((x, side_mapped), dim=1)))
    torch.testing.assert_close(block(x, side), expected)
    with pytest.raises(ValueError, match="takes a side input"):
        block(x)
    with pytest.raises(ValueError, match="takes no side input"):
        ResidualBlock(3)(x, side)


def test_init_weights_follows_the_original() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(conv_unit(64, 128, 3), conv_unit(8, 4, 3, norm="none"))
    init_weights(net)
    weight = net[0][0].weight
    fan_in = 64 * 3 * 3
    assert abs(weight.std().item() - (2.0 / fan_in) ** 0.5) < 0.02 * (2.0 / fan_in) ** 0.5
    bn = net[0][1]
    assert abs(bn.weight.mean().item() - 1.0) < 0.01 and 0.01 < bn.weight.std().item() < 0.03
    assert torch.all(bn.bias == 0) and torch.all(net[1][0].bias == 0)
