"""Tests for posetransfer.models.flow_regressor: shapes, units, skips, sizes, configs, presets."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from posetransfer.config import ConfigError, from_dict, to_dict
from posetransfer.losses.flow import FlowLossConfig, flow_loss_terms, total_loss
from posetransfer.models import flow_regressor
from posetransfer.models.flops import count_flops, count_parameters
from posetransfer.models.flow_regressor import (
    FlowPrediction,
    FlowRegressor,
    FlowRegressorConfig,
    flow_input_channels,
    level_channels,
)
from posetransfer.ops.warp import resize_flow
from posetransfer.pose.maps import PoseMapConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "flow"

TINY = {
    "unet": FlowRegressorConfig(
        variant="unet", base_channels=4, max_channels=8, num_levels=2, num_res_blocks=0
    ),
    "unet_v2": FlowRegressorConfig(
        variant="unet_v2", base_channels=4, max_channels=8, num_levels=2, num_res_blocks=1
    ),
}


def _poses(batch: int, height: int, width: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    return tuple((torch.rand(batch, 18, height, width, generator=gen) > 0.9).float() for _ in "st")


@pytest.mark.parametrize("variant", ["unet", "unet_v2"])
@pytest.mark.parametrize("size", [(32, 32), (16, 40)])
def test_output_shapes_at_every_level(variant: str, size: tuple[int, int]) -> None:
    net = FlowRegressor(TINY[variant])
    out = net(*_poses(3, *size))
    height, width = size
    assert [tuple(f.shape) for f in out.flows] == [
        (3, 2, height >> k, width >> k) for k in range(3)
    ]
    assert [tuple(v.shape) for v in out.vis_logits] == [
        (3, 3, height, width),
        (3, 3, height // 2, width // 2),
    ]
    assert out.flow is out.flows[0] and out.vis_logits_full is out.vis_logits[0]
    assert out.visibility.shape == (3, height, width) and out.visibility.dtype == torch.int64


@pytest.mark.parametrize("variant", ["unet", "unet_v2"])
def test_full_resolution_outputs_are_upsampled_from_stride_two(variant: str) -> None:
    out = FlowRegressor(TINY[variant]).eval()(*_poses(2, 32, 16))
    torch.testing.assert_close(out.flows[0], resize_flow(out.flows[1], (32, 16)))
    vis_up = F.interpolate(out.vis_logits[1], size=(32, 16), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out.vis_logits[0], vis_up)


@pytest.mark.parametrize("variant", ["unet", "unet_v2"])
def test_flow_is_in_pixels_of_each_level(variant: str) -> None:
    """A head whose raw output is 1 means flow_scale full-resolution pixels at every level."""
    net = FlowRegressor(TINY[variant])
    for head in net.flow_heads:
        torch.nn.init.zeros_(head[1].weight)
        torch.nn.init.ones_(head[1].bias)
    out = net(*_poses(1, 32, 32))
    for k, flow in enumerate(out.flows):
        expected = 20.0 / 2**k if k else 20.0  # level 0 is level 1 upsampled (x2)
        torch.testing.assert_close(flow, torch.full_like(flow, expected))


@pytest.mark.parametrize("variant", ["unet", "unet_v2"])
def test_backward_gives_finite_gradients_everywhere(variant: str) -> None:
    net = FlowRegressor(TINY[variant]).train()
    out = net(*_poses(2, 32, 32))
    loss = sum(f.square().mean() for f in out.flows) + out.vis_logits_full.logsumexp(1).mean()
    loss.backward()
    for name, param in net.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
    assert any(p.grad.abs().sum() > 0 for p in net.stem.parameters())


@pytest.mark.parametrize("variant", ["unet", "unet_v2"])
def test_eval_mode_is_deterministic_and_per_sample(variant: str) -> None:
    torch.manual_seed(0)
    net = FlowRegressor(TINY[variant])
    net.train()
    net(*_poses(4, 32, 32, seed=1))  # move the BatchNorm running statistics off their init
    net.eval()
    src, tgt = _poses(3, 32, 32, seed=2)
    first, second = net(src, tgt), net(src, tgt)
    for a, b in zip(first.flows + first.vis_logits, second.flows + second.vis_logits, strict=True):
        assert torch.equal(a, b)
    alone = net(src[1:2], tgt[1:2])  # eval BatchNorm: a sample does not depend on its batch
    torch.testing.assert_close(alone.flow, first.flow[1:2], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("variant", ["unet", "unet_v2"])
def test_state_dict_and_config_round_trip(variant: str) -> None:
    torch.manual_seed(0)
    net = FlowRegressor(TINY[variant]).eval()
    cfg = from_dict(FlowRegressorConfig, to_dict(net.cfg))
    assert cfg == net.cfg
    torch.manual_seed(1)
    clone = FlowRegressor(cfg).eval()
    poses = _poses(2, 32, 32)
    assert not torch.equal(clone(*poses).flow, net(*poses).flow)
    clone.load_state_dict(net.state_dict())
    assert torch.equal(clone(*poses).flow, net(*poses).flow)


def test_unet_skips_are_the_activated_encoder_tensors() -> None:
    """The original's in-place LeakyReLU(0.2) made the skip features the activated ones."""
    net = FlowRegressor(TINY["unet"]).eval()
    seen: dict[str, torch.Tensor] = {}
    net.encoder[0].register_forward_hook(lambda m, a, out: seen.__setitem__("enc0", out[0]))
    net.decoder[1].register_forward_hook(lambda m, a, out: seen.__setitem__("up1", out[0]))
    net.decoder[0].up.register_forward_hook(lambda m, a, out: seen.__setitem__("dec0_in", a[0]))
    net(*_poses(1, 32, 32))
    expected = torch.cat((F.leaky_relu(seen["enc0"], 0.2), seen["up1"]), dim=1)
    torch.testing.assert_close(seen["dec0_in"], expected)


def test_unet_v2_first_decoder_block_takes_the_last_encoder_skip() -> None:
    cfg = FlowRegressorConfig(
        variant="unet_v2", base_channels=4, max_channels=8, num_levels=1, num_res_blocks=2
    )
    net = FlowRegressor(cfg).eval()
    seen: dict[str, torch.Tensor] = {}
    enc_res, dec_res = net.encoder[0].res, net.decoder[0].res
    enc_res[1].register_forward_hook(lambda m, a, out: seen.__setitem__("enc_last", out))
    enc_res[0].register_forward_hook(lambda m, a, out: seen.__setitem__("enc_first", out))
    dec_res[0].register_forward_hook(lambda m, a, out: seen.__setitem__("dec_first", a[1]))
    dec_res[1].register_forward_hook(lambda m, a, out: seen.__setitem__("dec_second", a[1]))
    net(*_poses(1, 8, 8))
    assert torch.equal(seen["dec_first"], seen["enc_last"])
    assert torch.equal(seen["dec_second"], seen["enc_first"])


def _paper_unet_parameters(in_ch: int, nf: int, ch: tuple[int, ...]) -> int:
    """Closed form from the spec (§3.2): conv weights + BatchNorm (2 per channel) + head biases."""
    n = len(ch) - 1
    total = 49 * in_ch * nf + 2 * nf + 9 * nf * ch[0] + 2 * ch[0]  # stem
    for lv in range(n):
        total += 16 * ch[lv] * ch[lv + 1] + (2 * ch[lv + 1] if lv < n - 1 else 0)  # down
        up_in = ch[n] if lv == n - 1 else 2 * ch[lv + 1]
        total += 16 * up_in * ch[lv] + 2 * ch[lv]  # up (convT + BN)
        total += 9 * ch[lv] * 2 + 2  # flow head
    return total + 9 * ch[0] * 3 + 3  # visibility head


def _paper_v2_parameters(in_ch: int, nf: int, ch: tuple[int, ...], blocks: int) -> int:
    """Closed form from the spec (§3.3, §4.2)."""

    def res(c: int) -> int:
        return 9 * c * c + 2 * c

    def side_res(c: int) -> int:
        return c * c + 2 * c + 9 * 2 * c * c + 2 * c

    total = in_ch * nf + 2 * nf + res(nf) + 9 * nf * ch[0] + 2 * ch[0]  # stem
    for lv in range(len(ch) - 1):
        total += blocks * res(ch[lv]) + 9 * ch[lv] * ch[lv + 1] + 2 * ch[lv + 1]  # encoder
        total += 9 * ch[lv + 1] * 4 * ch[lv] + 2 * ch[lv] + blocks * side_res(ch[lv])  # decoder
        total += 9 * ch[lv] * 2 + 2  # flow head
    return total + 9 * ch[0] * 3 + 3


@pytest.mark.parametrize(
    ("dataset", "variant", "original_millions"),
    [
        ("deepfashion", "unet", 29.34),
        ("market", "unet", 16.74),
        ("deepfashion", "unet_v2", 6.59),
        ("market", "unet_v2", 4.93),
    ],
)
def test_paper_parameter_counts(dataset: str, variant: str, original_millions: float) -> None:
    cfg = FlowRegressorConfig.paper(dataset, variant)  # type: ignore[arg-type]
    ch = level_channels(cfg)
    if variant == "unet":
        expected = _paper_unet_parameters(36, 32, ch)
    else:
        expected = _paper_v2_parameters(36, 32, ch, 2)
    count = count_parameters(FlowRegressor(cfg))
    assert count == expected
    assert abs(count / 1e6 - original_millions) < 0.005  # the original's count, 2 decimals


def test_paper_unet_flops_at_256() -> None:
    net = FlowRegressor(FlowRegressorConfig.paper("deepfashion")).eval()
    x = torch.zeros(1, 18, 256, 256)
    assert abs(count_flops(net, x, x) / 1e9 - 19.7) < 0.05  # the spec's 19.7 GFLOP/img


def test_level_channels_follow_each_variant_rule() -> None:
    assert level_channels(FlowRegressorConfig.paper("market")) == (64, 128, 256, 512, 512)
    assert level_channels(FlowRegressorConfig.paper("deepfashion", "unet_v2")) == (
        64, 96, 128, 128, 128, 128,
    )  # fmt: skip
    assert FlowRegressorConfig.paper("deepfashion").stride == 64


def test_input_channels_from_pose_map_config() -> None:
    assert flow_input_channels(PoseMapConfig()) == 36
    assert flow_input_channels(PoseMapConfig(limbs=True)) == 2 * (18 + 19)


def test_bad_inputs_are_refused_with_clear_messages() -> None:
    net = FlowRegressor(TINY["unet_v2"])  # stride 8
    src, tgt = _poses(1, 32, 32)
    with pytest.raises(ValueError, match=r"expects 2 x 18 pose channels .* got 17"):
        net(src[:, :17], tgt[:, :17])
    with pytest.raises(ValueError, match=r"differs from pose_tgt\.shape"):
        net(src, tgt[:, :, :16])
    with pytest.raises(ValueError, match="pose_src must be a float"):
        net(src.long(), tgt)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"variant": "resnet"}, "variant must be 'unet' or 'unet_v2'"),
        ({"norm": "group"}, "norm must be one of"),
        ({"num_levels": 0}, "num_levels must be an int >= 1"),
        ({"base_channels": 2.5}, "base_channels must be an int"),
        ({"variant": "unet", "num_res_blocks": 2}, "num_res_blocks must be 0 for variant='unet'"),
        ({"variant": "unet_v2"}, "num_res_blocks must be >= 1 for variant='unet_v2'"),
        ({"flow_scale": 0.0}, "flow_scale must be a positive number"),
    ],
)
def test_config_errors(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        FlowRegressorConfig(**changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("deepfashion", (256, 176)),
        ("deepfashion-paper", (256, 256)),
        ("market", (128, 64)),
        ("market-paper", (128, 64)),
        ("synthetic", (128, 64)),
    ],
)
def test_yaml_presets_fit_their_protocol_size(name: str, size: tuple[int, int]) -> None:
    data = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    assert set(data) == {"data", "model", "loss", "train"}
    from posetransfer.train.flow_stage import FlowStageConfig

    from_dict(FlowStageConfig, data, where=f"{name}.yaml")  # the whole stage config is valid
    cfg = from_dict(FlowRegressorConfig, data["model"], where=f"{name}.yaml:model")
    assert size[0] % cfg.stride == 0 and size[1] % cfg.stride == 0
    if name.endswith("-paper"):
        assert cfg == FlowRegressorConfig.paper(name.removesuffix("-paper"))  # type: ignore[arg-type]


def test_prediction_to_moves_every_tensor() -> None:
    pred = FlowPrediction([torch.zeros(1, 2, 4, 4)], [torch.zeros(1, 3, 4, 4)])
    moved = pred.to("meta")
    assert moved.flow.device.type == "meta" and moved.vis_logits_full.device.type == "meta"
    assert pred.flow.device.type == "cpu"


#: Stride 16 (num_levels 3, the default depth) at a tiny width.
STRIDE16 = {
    variant: FlowRegressorConfig(
        variant=variant, base_channels=4, max_channels=8, num_levels=3, num_res_blocks=blocks
    )
    for variant, blocks in (("unet", 0), ("unet_v2", 1))
}


@pytest.mark.parametrize("variant", ["unet", "unet_v2"])
@pytest.mark.parametrize("size", [(128, 88), (100, 70)])
def test_any_size_gives_outputs_of_that_size(variant: str, size: tuple[int, int]) -> None:
    net = FlowRegressor(STRIDE16[variant])
    out = net(*_poses(2, *size))
    height, width = size
    ceil = [(-(-height // 2**k), -(-width // 2**k)) for k in range(4)]
    assert [tuple(f.shape[-2:]) for f in out.flows] == ceil
    assert [tuple(v.shape[-2:]) for v in out.vis_logits] == ceil[:2]
    assert out.visibility.shape == (2, *size)


@pytest.mark.parametrize("variant", ["unet", "unet_v2"])
def test_odd_sizes_run_zero_padded_pose_maps(variant: str) -> None:
    """The output at 100x70 is the 112x80 output on zero-padded pose maps, cropped."""
    net = FlowRegressor(STRIDE16[variant]).eval()
    src, tgt = _poses(2, 100, 70)
    out = net(src, tgt)
    padded = net(*(F.pad(t, (0, 10, 0, 12)) for t in (src, tgt)))
    for k, (flow, ref) in enumerate(zip(out.flows, padded.flows, strict=True)):
        h, w = flow.shape[-2:]
        assert torch.equal(flow, ref[..., :h, :w]), f"level {k}"
    assert torch.equal(out.vis_logits[0], padded.vis_logits[0][..., :100, :70])


@pytest.mark.parametrize("variant", ["unet", "unet_v2"])
def test_multiples_of_the_stride_match_the_unpadded_path(
    variant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = FlowRegressor(STRIDE16[variant]).eval()
    poses = _poses(2, 128, 96)
    out = net(*poses)
    # The unpadded path: the same forward with padding and cropping switched off.
    monkeypatch.setattr(flow_regressor, "pad_constant", lambda x, *args, **kwargs: x)
    monkeypatch.setattr(flow_regressor, "crop_to", lambda x, size: x)
    plain = net(*poses)
    for a, b in zip(out.flows + out.vis_logits, plain.flows + plain.vis_logits, strict=True):
        assert torch.equal(a, b)


def test_training_on_a_non_multiple_size() -> None:
    """128x88 with stride 16: the loss pyramid (coarsest stride 8) fits, gradients reach all."""
    net = FlowRegressor(STRIDE16["unet"]).train()
    src, tgt = _poses(2, 128, 88)
    gen = torch.Generator().manual_seed(1)
    flow_gt = torch.randn(2, 2, 128, 88, generator=gen)
    vis_gt = torch.randint(0, 3, (2, 128, 88), generator=gen)
    cfg = FlowLossConfig(level_weights=(0.0, 0.32, 0.16, 0.08))
    loss = total_loss(flow_loss_terms(net(src, tgt), flow_gt, vis_gt, cfg), cfg)
    loss.backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
