"""Tests for posetransfer.models.generator: ablations, warping exactness, visibility, errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from posetransfer.config import ConfigError, from_dict
from posetransfer.conventions import Visibility
from posetransfer.models import generator
from posetransfer.models.flops import count_parameters
from posetransfer.models.generator import GeneratorConfig, GeneratorOutput, PoseTransferGenerator
from posetransfer.models.generator_inputs import (
    StateDictMismatchError,
)
from posetransfer.models.pixel_warp import PixelWarpConfig, PixelWarpRefiner, transfer

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "generator"

TINY = GeneratorConfig(image_size=(32, 32), channels=(4, 8, 8), num_res_blocks=1, warp_levels=2)

#: Every valid combination of the ablation flags (paper Table 2 plus the "mask" mode).
ABLATIONS = {
    "full": {},
    "mask": {"visibility": "mask"},
    "no_vis": {"visibility": "none"},
    "no_flow": {"use_flow": False, "visibility": "none"},
    "no_dual": {"dual_encoder": False, "use_flow": False, "visibility": "none"},
    "shared_down": {"share_encoder_downsampling": True},
}


def _inputs(cfg: GeneratorConfig, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    height, width = cfg.image_size
    x_src = torch.rand(batch, 3, height, width, generator=gen) * 2 - 1
    pose = (torch.rand(batch, cfg.pose_channels, height, width, generator=gen) > 0.9).float()
    flow = torch.randn(batch, 2, height, width, generator=gen) * 3
    vis = torch.randint(0, 3, (batch, height, width), generator=gen)
    return x_src, pose, flow, vis


@pytest.mark.parametrize("name", list(ABLATIONS))
@pytest.mark.parametrize("size", [(32, 32), (16, 24)])
def test_every_ablation_gives_images_and_finite_gradients(name: str, size: tuple) -> None:
    cfg = replace(TINY, image_size=size, **ABLATIONS[name])
    net = PoseTransferGenerator(cfg)
    x_src, pose, flow, vis = _inputs(cfg)
    out = net(x_src, pose, flow, vis)
    assert isinstance(out, GeneratorOutput) and out.coarse is out.image
    assert out.image.shape == (2, 3, *size) and out.warped_src is None and out.mask is None
    assert out.image.abs().max() <= 1.0
    out.image.square().mean().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_ablation_flags_build_the_expected_parts() -> None:
    nets = {k: PoseTransferGenerator(replace(TINY, **v)) for k, v in ABLATIONS.items()}
    assert hasattr(nets["full"], "vis_blocks") and len(nets["full"].vis_blocks) == 2
    for name in ("mask", "no_vis", "no_flow", "no_dual"):
        assert not hasattr(nets[name], "vis_blocks")
    assert not hasattr(nets["no_dual"], "app_encoder")
    assert nets["no_dual"].encoder.stem[0].in_channels == 3 + 18
    # Decoder side inputs: pose and appearance skips, or the single encoder's.
    assert nets["full"].decoder.levels[0].res[0].side[1].in_channels == 2 * 4
    assert nets["no_dual"].decoder.levels[0].res[0].side[1].in_channels == 4
    shared = nets["shared_down"]
    for pose_level, app_level in zip(
        shared.pose_encoder.levels, shared.app_encoder.levels, strict=True
    ):
        assert app_level.down is pose_level.down
    full = nets["full"]
    assert full.app_encoder.levels[0].down is not full.pose_encoder.levels[0].down


def test_paper_parameter_counts_match_the_original() -> None:
    """Counts of the released classes (reference §4.11): 11.88 M with the shared down layers."""
    paper = GeneratorConfig.paper()
    counts = {
        "residual": replace(paper, share_encoder_downsampling=True),
        "none": replace(paper, share_encoder_downsampling=True, visibility="none"),
        "unet": replace(paper, dual_encoder=False, use_flow=False, visibility="none"),
        "market": replace(GeneratorConfig.paper("market"), share_encoder_downsampling=True),
    }
    got = {k: round(count_parameters(PoseTransferGenerator(c)) / 1e6, 2) for k, c in counts.items()}
    assert got == {"residual": 11.88, "none": 9.99, "unet": 8.36, "market": 7.26}
    # Separate down layers: the size of the released checkpoints, which hold the shared twice.
    assert round(count_parameters(PoseTransferGenerator(paper)) / 1e6, 2) == 12.66


def test_zero_flow_warping_is_exact() -> None:
    """With a zero flow and no visibility step, warped skips equal the un-warped ones bit for bit,
    so the output equals that of the same weights without warping."""
    warping = PoseTransferGenerator(replace(TINY, visibility="none")).eval()
    plain = PoseTransferGenerator(replace(TINY, use_flow=False, visibility="none")).eval()
    plain.load_state_dict(warping.state_dict())
    x_src, pose, _, vis = _inputs(TINY)
    zero = torch.zeros(2, 2, 32, 32)
    _, skips = warping.encode_appearance(x_src, zero, vis)
    _, raw = plain.encode_appearance(x_src, None, None)
    assert all(
        torch.equal(a, b) for lv in range(2) for a, b in zip(skips[lv], raw[lv], strict=True)
    )
    assert torch.equal(warping(x_src, pose, zero, vis).image, plain(x_src, pose).image)
    assert not torch.equal(warping(x_src, pose, zero + 1.0, vis).image, plain(x_src, pose).image)


def _shifted(t: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """``out[..., i, j] = t[..., i + dy, j + dx]``, 0 outside ``t``."""
    pad = max(abs(dx), abs(dy))
    height, width = t.shape[-2:]
    padded = F.pad(t, (pad, pad, pad, pad))
    return padded[..., pad + dy : pad + dy + height, pad + dx : pad + dx + width]


def test_integer_shift_moves_every_warped_level_by_its_scaled_shift() -> None:
    """Flow (4, -2) px at full resolution is (2, -1) px at level 1: exact integer shifts."""
    net = PoseTransferGenerator(replace(TINY, visibility="none")).eval()
    x_src, _, _, _ = _inputs(TINY)
    flow = torch.tensor([4.0, -2.0]).view(1, 2, 1, 1).expand(2, 2, 32, 32)
    _, warped = net.encode_appearance(x_src, flow, None)
    _, raw = net.app_encoder(x_src)
    for lv, (dx, dy) in enumerate([(4, -2), (2, -1)]):
        torch.testing.assert_close(warped[lv][0], _shifted(raw[lv][0], dx, dy), rtol=0, atol=1e-6)


def test_mask_mode_zeroes_background_features() -> None:
    net = PoseTransferGenerator(replace(TINY, visibility="mask")).eval()
    x_src, _, _, _ = _inputs(TINY)
    vis = torch.full((2, 32, 32), int(Visibility.VISIBLE))
    vis[:, :, :16] = Visibility.BACKGROUND
    vis[:, :8, 16:] = Visibility.INVISIBLE
    _, skips = net.encode_appearance(x_src, torch.zeros(2, 2, 32, 32), vis)
    _, raw = net.app_encoder(x_src)
    for lv in range(2):
        half = 16 >> lv
        assert skips[lv][0][..., :half].abs().max() == 0
        assert torch.equal(skips[lv][0][..., half:], raw[lv][0][..., half:])


def test_residual_mode_splits_features_into_visible_and_invisible() -> None:
    net = PoseTransferGenerator(TINY).eval()
    block = net.vis_blocks[0][0].block
    seen = {}

    def keep_input(module: torch.nn.Module, args: tuple, out: torch.Tensor) -> None:
        seen["e"] = args[0]

    block.side.register_forward_hook(keep_input)
    x_src, _, _, _ = _inputs(TINY)
    vis = torch.full((2, 32, 32), int(Visibility.VISIBLE))
    vis[:, 16:] = Visibility.INVISIBLE
    vis[:, :4] = Visibility.BACKGROUND
    net.encode_appearance(x_src, torch.zeros(2, 2, 32, 32), vis)
    _, raw = net.app_encoder(x_src)
    feat, side = raw[0][0], seen["e"]
    assert side.shape[1] == 2 * feat.shape[1]
    visible, invisible = side[:, :4], side[:, 4:]
    assert torch.equal(visible[:, :, 4:16], feat[:, :, 4:16])
    assert torch.equal(invisible[:, :, 16:], feat[:, :, 16:])
    assert visible[:, :, 16:].abs().max() == 0 and invisible[:, :, :16].abs().max() == 0


def test_generator_accepts_visibility_probabilities() -> None:
    net = PoseTransferGenerator(TINY).eval()
    x_src, pose, flow, codes = _inputs(TINY)
    one_hot = F.one_hot(codes, 3).permute(0, 3, 1, 2).float()
    image = net(x_src, pose, flow, one_hot).image  # coarse levels average-pool probabilities
    assert image.shape == (2, 3, 32, 32) and image.isfinite().all()


def test_bad_inputs_give_clear_errors() -> None:
    net = PoseTransferGenerator(TINY)
    x_src, pose, flow, vis = _inputs(TINY)
    with pytest.raises(ValueError, match=r"x_src has size \(H, W\)=\(32, 16\) but GeneratorConfig"):
        net(x_src[..., :16], pose[..., :16], flow[..., :16], vis[..., :16])
    with pytest.raises(
        ValueError, match=r"pose_tgt must have 18 channels, got .*\(2, 17, 32, 32\)"
    ):
        net(x_src, pose[:, :17], flow, vis)
    with pytest.raises(ValueError, match="flow is required"):
        net(x_src, pose)
    with pytest.raises(ValueError, match="vis is required"):
        net(x_src, pose, flow)
    with pytest.raises(ValueError, match=r"pose_tgt has batch size 1, x_src has 2"):
        net(x_src, pose[:1], flow, vis)
    with pytest.raises(ValueError, match=r"vis must be \(B, H, W\) integer codes"):
        net(x_src, pose, flow, vis[:, :16])
    with pytest.raises(ValueError, match=r"vis must be \(B, H, W\) integer codes"):
        net(x_src, pose, flow, vis.float())
    with pytest.raises(ValueError, match=r"summing to 1 .* not logits"):
        net(x_src, pose, flow, torch.randn(2, 3, 32, 32))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"warp_levels": 3}, "warp_levels=3 exceeds the 2 encoder scales"),
        ({"use_flow": False}, "with use_flow=False set visibility='none'"),
        ({"dual_encoder": False, "visibility": "none"}, "dual_encoder=False"),
        ({"channels": (4,)}, "at least 2 positive ints"),
        ({"head_kernel": 4}, "head_kernel must be an odd int"),
        ({"visibility": "soft"}, "visibility must be one of"),
        ({"norm": "group"}, "norm must be one of"),
    ],
)
def test_config_errors(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        replace(TINY, **changes)


def test_state_dict_round_trip_and_mismatch_listing() -> None:
    net = PoseTransferGenerator(TINY).eval()
    copy = PoseTransferGenerator(TINY).eval()
    copy.load_state_dict(net.state_dict())
    inputs = _inputs(TINY)
    assert torch.equal(copy(*inputs).image, net(*inputs).image)
    wider = PoseTransferGenerator(replace(TINY, channels=(4, 8, 16))).state_dict()
    with pytest.raises(StateDictMismatchError, match=r"shape mismatches: .*checkpoint \(16"):
        net.load_state_dict(wider)
    no_vis = PoseTransferGenerator(replace(TINY, visibility="none")).state_dict()
    with pytest.raises(StateDictMismatchError, match=r"missing keys: vis_blocks\.0\.0\.block"):
        net.load_state_dict(no_vis)
    with pytest.raises(ValueError, match="GeneratorConfig"):
        PoseTransferGenerator(replace(TINY, visibility="none")).load_state_dict(net.state_dict())


@pytest.mark.parametrize(
    ("name", "preset"),
    [
        ("default", GeneratorConfig()),
        ("paper", GeneratorConfig.paper()),
        ("market-paper", GeneratorConfig.paper("market")),
    ],
)
def test_yaml_presets_match_the_dataclass_presets(name: str, preset: GeneratorConfig) -> None:
    data = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    assert from_dict(GeneratorConfig, data["generator"], where=name) == preset


def test_output_to_device() -> None:
    out = GeneratorOutput(torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2))
    moved = out.to("cpu")
    assert moved.mask is None and torch.equal(moved.coarse, out.coarse)


#: Stride 16 (4 down-samplings) at a tiny width.
STRIDE16 = GeneratorConfig(image_size=(128, 96), channels=(4, 8, 8, 8, 8), warp_levels=3)


@pytest.mark.parametrize("size", [(128, 88), (100, 70)])
def test_any_size_gives_an_image_of_that_size(size: tuple[int, int]) -> None:
    cfg = replace(STRIDE16, image_size=size)
    out = PoseTransferGenerator(cfg)(*_inputs(cfg))
    assert out.image.shape == (2, 3, *size) and out.image.abs().max() <= 1.0


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_odd_sizes_run_padded_inputs(name: str) -> None:
    """At 30x22 (stride 4) the image is the 32x24 image of hand-padded inputs, cropped: the
    source replicated, pose maps and flow zero, visibility BACKGROUND."""
    cfg = replace(TINY, image_size=(30, 22), **ABLATIONS[name])
    net = PoseTransferGenerator(cfg).eval()
    padded_net = PoseTransferGenerator(replace(cfg, image_size=(32, 24))).eval()
    padded_net.load_state_dict(net.state_dict())
    x_src, pose, flow, vis = _inputs(cfg)
    pads = (0, 2, 0, 2)
    by_hand = padded_net(
        F.pad(x_src, pads, mode="replicate"),
        F.pad(pose, pads),
        F.pad(flow, pads),
        F.pad(vis, pads, value=int(Visibility.BACKGROUND)),
    )
    assert torch.equal(net(x_src, pose, flow, vis).image, by_hand.image[..., :30, :22])
    if cfg.visibility != "none":  # the padding's visibility matters: VISIBLE would differ
        visible = padded_net(
            F.pad(x_src, pads, mode="replicate"), F.pad(pose, pads), F.pad(flow, pads),
            F.pad(vis, pads, value=int(Visibility.VISIBLE)),
        )  # fmt: skip
        assert not torch.equal(visible.image, by_hand.image)


def test_multiples_of_the_stride_match_the_unpadded_path(monkeypatch: pytest.MonkeyPatch) -> None:
    net = PoseTransferGenerator(STRIDE16).eval()
    inputs = _inputs(STRIDE16)
    image = net(*inputs).image
    for name in ("pad_image", "pad_constant", "pad_visibility"):  # the unpadded path
        monkeypatch.setattr(generator, name, lambda x, *args, **kwargs: x)
    monkeypatch.setattr(generator, "crop_to", lambda x, size: x)
    assert torch.equal(image, net(*inputs).image)


def test_training_at_an_odd_size_reaches_every_parameter() -> None:
    cfg = replace(TINY, image_size=(30, 22))
    gen = PoseTransferGenerator(cfg).train()
    refiner = PixelWarpRefiner(PixelWarpConfig(channels=(4, 8, 8), flow_input=True)).train()
    x_src, pose, flow, vis = _inputs(cfg)
    out = transfer(gen, refiner, x_src, pose, flow, vis)
    assert out.image.shape == (2, 3, 30, 22) and out.mask.shape == (2, 1, 30, 22)
    (out.image - x_src).abs().mean().backward()
    for net in (gen, refiner):
        grads = [p.grad for p in net.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)


# ------------------------------------------------------------------ person-free background


@torch.no_grad()
def test_background_replaces_the_skips_where_the_target_is_background() -> None:
    net = PoseTransferGenerator(TINY).eval()
    x_src, pose, flow, vis = _inputs(TINY, seed=3)
    plain = net(x_src, pose, flow, vis).image
    # the source itself as the background changes nothing, bit for bit
    assert torch.equal(net(x_src, pose, flow, vis, background=x_src).image, plain)
    other = torch.rand_like(x_src) * 2 - 1
    # no background pixel in the target: the background image is not used
    visible = torch.full_like(vis, int(Visibility.VISIBLE))
    assert torch.equal(
        net(x_src, pose, flow, visible, background=other).image,
        net(x_src, pose, flow, visible).image,
    )
    # an all-background target takes its skips from the background image
    empty = torch.full_like(vis, int(Visibility.BACKGROUND))
    with_bg = net(x_src, pose, flow, empty, background=other).image
    assert not torch.allclose(with_bg, net(x_src, pose, flow, empty).image)


def test_background_needs_flow_visibility_and_a_matching_shape() -> None:
    x_src, pose, flow, vis = _inputs(TINY)
    with pytest.raises(ValueError, match="background has shape"):
        PoseTransferGenerator(TINY)(x_src, pose, flow, vis, background=x_src[:1])
    cfg = replace(TINY, visibility="none")
    with pytest.raises(ValueError, match="background needs"):
        PoseTransferGenerator(cfg)(x_src, pose, flow, vis, background=x_src)
