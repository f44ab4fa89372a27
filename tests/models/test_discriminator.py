"""Tests for posetransfer.models.discriminator: layout, conditioning, patch grid, presets."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from posetransfer.config import ConfigError, from_dict
from posetransfer.models.discriminator import (
    DiscriminatorConfig,
    PatchDiscriminator,
    discriminator_input_channels,
)
from posetransfer.models.flops import count_parameters
from posetransfer.models.generator_inputs import StateDictMismatchError

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "generator"
TINY = DiscriminatorConfig(base_channels=4, num_layers=3)


def _triple(cfg: DiscriminatorConfig, height: int, width: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(0)
    return (
        torch.rand(2, 3, height, width, generator=gen) * 2 - 1,
        torch.rand(2, 3, height, width, generator=gen) * 2 - 1,
        (torch.rand(2, cfg.pose_channels, height, width, generator=gen) > 0.9).float(),
    )


@pytest.mark.parametrize(
    ("num_layers", "size", "grid"), [(3, (64, 64), (6, 6)), (2, (64, 32), (14, 6))]
)
def test_patch_grid_and_conditioning_channels(num_layers: int, size: tuple, grid: tuple) -> None:
    """Strided 4x4 convs halve, the two stride-1 4x4 convs remove one pixel each."""
    cfg = replace(TINY, num_layers=num_layers, pose_channels=37)
    net = PatchDiscriminator(cfg)
    assert discriminator_input_channels(cfg) == 3 + 3 + 37
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].in_channels == 43 and len(convs) == num_layers + 2
    assert [c.stride[0] for c in convs] == [2] * num_layers + [1, 1]
    assert convs[-1].out_channels == 1 and convs[-1].bias is not None
    out = net(*_triple(cfg, *size))
    assert out.shape == (2, 1, *grid)


def test_output_depends_on_source_image_and_pose() -> None:
    net = PatchDiscriminator(TINY).eval()
    x_src, image, pose = _triple(TINY, 32, 32)
    base = net(x_src, image, pose)
    assert not torch.allclose(net(-x_src, image, pose), base)
    assert not torch.allclose(net(x_src, image, 1.0 - pose), base)
    assert torch.equal(net(x_src, image, pose), base)


def test_paper_preset_matches_pix2pix_parameter_count() -> None:
    """24 -> 64 (bias, no norm), 64 -> 128 -> 256 (s2), 256 -> 512 (s1), 512 -> 1 (bias)."""
    expected = (24 * 64 * 16 + 64) + (64 * 128 * 16 + 2 * 128) + (128 * 256 * 16 + 2 * 256)
    expected += (256 * 512 * 16 + 2 * 512) + (512 * 16 + 1)
    net = PatchDiscriminator(DiscriminatorConfig.paper())
    assert count_parameters(net) == expected == 2_787_137


def test_backward_and_bad_inputs() -> None:
    net = PatchDiscriminator(TINY)
    x_src, image, pose = _triple(TINY, 32, 32)
    image.requires_grad_(True)
    net(x_src, image, pose).mean().backward()
    assert image.grad is not None and torch.isfinite(image.grad).all()
    with pytest.raises(ValueError, match=r"pose_tgt must have 18 channels"):
        net(x_src, image, pose[:, :17])
    with pytest.raises(
        ValueError, match=r"image has size \(H, W\)=\(32, 16\), expected \(32, 32\)"
    ):
        net(x_src, image[..., :16], pose)
    with pytest.raises(ConfigError, match="num_layers must be an int >= 1"):
        replace(TINY, num_layers=0)
    with pytest.raises(StateDictMismatchError, match="shape mismatches"):
        net.load_state_dict(PatchDiscriminator(replace(TINY, base_channels=8)).state_dict())


@pytest.mark.parametrize(
    ("name", "preset"),
    [
        ("default", DiscriminatorConfig()),
        ("paper", DiscriminatorConfig.paper()),
        ("market-paper", DiscriminatorConfig.paper()),
    ],
)
def test_yaml_presets(name: str, preset: DiscriminatorConfig) -> None:
    data = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    assert from_dict(DiscriminatorConfig, data["discriminator"], where=name) == preset
