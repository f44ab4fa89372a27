"""Tests for posetransfer.models.pixel_warp: the blend, blanking, inputs, presets, errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from posetransfer.config import ConfigError, from_dict
from posetransfer.conventions import Visibility
from posetransfer.models import pixel_warp
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


@pytest.mark.parametrize("size", [(128, 88), (100, 70)])
def test_any_size_gives_outputs_of_that_size(size: tuple[int, int]) -> None:
    refiner = PixelWarpRefiner(replace(TINY, channels=(4, 8, 8, 8, 8)))  # stride 16
    x_src, coarse, flow, vis = _inputs(*size)
    out = refiner(x_src, GeneratorOutput(coarse, coarse), flow, vis)
    assert out.image.shape == (2, 3, *size) and out.mask.shape == (2, 1, *size)
    assert torch.equal(out.warped_src, warp_source_image(x_src, flow, vis))


@pytest.mark.parametrize("vis_kind", ["codes", "probabilities"])
def test_odd_sizes_run_padded_inputs(vis_kind: str) -> None:
    """At 30x14 (stride 4) the mask logits are those of hand-padded 32x16 inputs, cropped: the
    warped source blank, the coarse image replicated, visibility BACKGROUND, flow zero."""
    refiner = PixelWarpRefiner(replace(TINY, flow_input=True)).eval()
    x_src, coarse, flow, vis = _inputs(30, 14)
    if vis_kind == "probabilities":
        vis = torch.softmax(torch.randn(2, 3, 30, 14), dim=1)
    warped = warp_source_image(x_src, flow, vis)
    pads = (0, 2, 0, 2)
    if vis_kind == "codes":
        vis_padded = torch.full((2, 32, 16), int(Visibility.BACKGROUND))
    else:
        vis_padded = torch.zeros(2, 3, 32, 16)
        vis_padded[:, Visibility.BACKGROUND] = 1.0
    vis_padded[..., :30, :14] = vis
    by_hand = refiner.mask_logits(
        F.pad(warped, pads, value=BLANK_VALUE),
        F.pad(coarse, pads, mode="replicate"),
        vis_padded,
        F.pad(flow, pads),
    )
    assert torch.equal(refiner.mask_logits(warped, coarse, vis, flow), by_hand[..., :30, :14])


def test_multiples_of_the_stride_match_the_unpadded_path(monkeypatch: pytest.MonkeyPatch) -> None:
    refiner = PixelWarpRefiner(replace(TINY, flow_input=True)).eval()
    x_src, coarse, flow, vis = _inputs(32, 16)
    out = refiner(x_src, GeneratorOutput(coarse, coarse), flow, vis)
    for name in ("pad_image", "pad_constant", "pad_visibility"):  # the unpadded path
        monkeypatch.setattr(pixel_warp, name, lambda x, *args, **kwargs: x)
    monkeypatch.setattr(pixel_warp, "crop_to", lambda x, size: x)
    plain = refiner(x_src, GeneratorOutput(coarse, coarse), flow, vis)
    assert torch.equal(out.image, plain.image) and torch.equal(out.mask, plain.mask)
