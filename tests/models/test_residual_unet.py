"""Tests for posetransfer.models.residual_unet: skip shapes, mirror order, gradients."""

from __future__ import annotations

import pytest
import torch

from posetransfer.models.residual_unet import ResidualDecoder, ResidualEncoder


@pytest.mark.parametrize("num_res_blocks", [1, 2])
def test_encoder_skips_and_bottleneck_shapes(num_res_blocks: int) -> None:
    channels = (4, 8, 12)
    enc = ResidualEncoder(5, channels, num_res_blocks, "batch").eval()
    bottleneck, skips = enc(torch.randn(2, 5, 16, 24))
    assert bottleneck.shape == (2, 12, 4, 6)
    assert [len(level) for level in skips] == [num_res_blocks] * 2
    for lv, level in enumerate(skips):
        assert all(s.shape == (2, channels[lv], 16 >> lv, 24 >> lv) for s in level)


def test_decoder_mirrors_the_encoder_and_uses_every_skip() -> None:
    channels = (4, 8, 12)
    enc = ResidualEncoder(3, channels, 2, "none")
    dec = ResidualDecoder(channels, 2, side_factor=2, norm="none")
    x = torch.randn(1, 3, 8, 8)
    bottleneck, skips = enc(x)
    sides = [[torch.cat([s, s], dim=1).detach().requires_grad_() for s in level] for level in skips]
    out = dec(bottleneck, sides)
    assert out.shape == (1, 4, 8, 8)
    out.square().sum().backward()
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for level in sides for s in level)


def test_decoder_rejects_a_missing_skip() -> None:
    dec = ResidualDecoder((4, 8), 2, side_factor=1, norm="none")
    with pytest.raises(ValueError):
        dec(torch.randn(1, 8, 4, 4), [[torch.randn(1, 4, 8, 8)]])  # 1 skip for 2 blocks
