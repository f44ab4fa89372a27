"""Tests for posetransfer.models.pixel_warp: the blend, blanking, inputs, presets, errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from posetransfer.config import ConfigError, from_dict
from posetransfer.conventions import Visibility
from posetransfer.models.flops import count_parameters
from posetransfer.models.generator import GeneratorOutput
from posetransfer.models.generator_inputs import StateDictMismatchError
from posetransfer.models.pixel_warp import (
    BLANK_VALUE,
    PixelWarpConfig,
    PixelWarpRefiner,
    build_refiner,
    pixel_warp_input_channels,
    warp_source_image,
)
from posetransfer.ops.warp import warp

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "generator"
TINY = PixelWarpConfig(channels=(4, 8, 8), num_res_blocks=1)


def _inputs(height: int = 32, width: int = 16, seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    x_src = torch.rand(2, 3, height, width, generator=gen) * 2 - 1
    coarse = torch.rand(2, 3, height, width, generator=gen) * 2 - 1
    flow = torch.randn(2, 2, height, width, generator=gen) * 2
    vis = torch.randint(0, 3, (2, height, width), generator=gen)
    return x_src, coarse, flow, vis


def _force_logits(refiner: PixelWarpRefiner, logits: torch.Tensor) -> None:
    """Make the mask head output ``logits`` whatever its input (zero weights, bias map)."""
    conv = refiner.head[-1]
    torch.nn.init.zeros_(conv.weight)
    refiner.head.register_forward_hook(lambda module, args, out: out * 0 + logits)


def test_warp_source_image_is_the_warp_blanked_on_background() -> None:
    x_src, _, flow, vis = _inputs()
    warped = warp_source_image(x_src, flow, vis)
    background = (vis == Visibility.BACKGROUND).unsqueeze(1).expand_as(warped)
    assert (warped[background] == BLANK_VALUE).all() and BLANK_VALUE == -1.0
    assert torch.equal(warped[~background], warp(x_src, flow)[~background])
    probs = torch.nn.functional.one_hot(vis, 3).permute(0, 3, 1, 2).float()
    assert torch.equal(warp_source_image(x_src, flow, probs), warped)


@pytest.mark.parametrize("flow_input", [False, True])
def test_mask_selects_warped_source_where_one_and_coarse_where_zero(flow_input: bool) -> None:
    refiner = PixelWarpRefiner(replace(TINY, flow_input=flow_input)).eval()
    x_src, coarse, flow, vis = _inputs()
    logits = torch.full((2, 1, 32, 16), -1e4)
    logits[..., :8] = 1e4  # m = 1 on the left half, exactly 0 on the right
    _force_logits(refiner, logits)
    out = refiner(x_src, GeneratorOutput(coarse, coarse), flow, vis)
    expected_warped = warp_source_image(x_src, flow, vis)
    assert torch.equal(out.warped_src, expected_warped)
    assert torch.equal(out.mask, (logits > 0).float())
    assert torch.equal(out.image[..., :8], expected_warped[..., :8])
    assert torch.equal(out.image[..., 8:], coarse[..., 8:])
    assert out.coarse is coarse


def test_soft_mask_blends_and_gradients_reach_the_refiner_and_the_coarse_image() -> None:
    refiner = PixelWarpRefiner(TINY)
    x_src, coarse, flow, vis = _inputs()
    coarse.requires_grad_(True)
    out = refiner(x_src, GeneratorOutput(coarse, coarse), flow, vis)
    m = out.mask
    assert m.shape == (2, 1, 32, 16) and m.min() > 0 and m.max() < 1
    torch.testing.assert_close(out.image, m * out.warped_src + (1 - m) * coarse)
    out.image.mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in refiner.parameters())
    assert coarse.grad is not None and coarse.grad.abs().sum() > 0


def test_input_channels_and_flow_requirement() -> None:
    assert pixel_warp_input_channels(TINY) == 9
    with_flow = replace(TINY, flow_input=True)
    assert pixel_warp_input_channels(with_flow) == 11
    refiner = PixelWarpRefiner(with_flow)
    assert refiner.encoder.stem[0].in_channels == 11
    x_src, coarse, flow, vis = _inputs()
    with pytest.raises(ValueError, match="flow is required"):
        refiner.mask_logits(x_src, coarse, vis)
    # The flow input matters: another flow changes the mask logits.
    a = refiner.mask_logits(x_src, coarse, vis, flow)
    assert not torch.equal(a, refiner.mask_logits(x_src, coarse, vis, flow + 20.0))


def test_bad_inputs_give_clear_errors() -> None:
    refiner = PixelWarpRefiner(TINY)
    x_src, coarse, flow, vis = _inputs()
    out = GeneratorOutput(coarse, coarse)
    with pytest.raises(ValueError, match=r"must be divisible by 2\*\*\(len\(channels\)-1\)=4"):
        refiner(
            x_src[..., :14],
            GeneratorOutput(coarse[..., :14], coarse[..., :14]),
            flow[..., :14],
            vis,
        )
    with pytest.raises(
        ValueError, match=r"coarse has size \(H, W\)=\(32, 8\), expected \(32, 16\)"
    ):
        refiner(x_src, GeneratorOutput(coarse, coarse[..., :8]), flow, vis)
    with pytest.raises(ValueError, match=r"flow must have 2 channels"):
        refiner(x_src, out, flow[:, :1], vis)
    with pytest.raises(ValueError, match=r"vis must be \(B, H, W\) integer codes"):
        refiner(x_src, out, flow, vis[:1])


def test_presets_configs_and_state_dicts() -> None:
    assert round(count_parameters(PixelWarpRefiner(PixelWarpConfig.paper())) / 1e6, 2) == 8.36
    market = PixelWarpRefiner(PixelWarpConfig.paper("market"))
    assert round(count_parameters(market) / 1e6, 2) == 5.04
    assert build_refiner(replace(TINY, enabled=False)) is None
    assert isinstance(build_refiner(TINY), PixelWarpRefiner)
    presets = {
        "default": PixelWarpConfig(),
        "paper": PixelWarpConfig.paper(),
        "market-paper": PixelWarpConfig.paper("market"),
    }
    for name, preset in presets.items():
        data = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
        assert from_dict(PixelWarpConfig, data["pixel_warp"], where=name) == preset
    with pytest.raises(ConfigError, match="head_kernel must be an odd int"):
        replace(TINY, head_kernel=2)
    with pytest.raises(ConfigError, match="at least 2 positive ints"):
        replace(TINY, channels=(4, 0))
    with pytest.raises(
        StateDictMismatchError, match=r"unexpected keys: decoder\.levels\.2\..*\(30 in all\)"
    ):
        PixelWarpRefiner(TINY).load_state_dict(
            PixelWarpRefiner(replace(TINY, channels=(4, 8, 8, 8))).state_dict()
        )
