"""Tests for posetransfer.losses.flow: hand-computable loss values, masks, weights, metrics."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from posetransfer.config import ConfigError, from_dict
from posetransfer.conventions import Visibility
from posetransfer.losses.flow import (
    FlowLossConfig,
    NonFiniteError,
    flow_loss_terms,
    flow_metrics,
    per_sample_epe,
    total_loss,
)
from posetransfer.models.flow_regressor import FlowPrediction, FlowRegressor, FlowRegressorConfig
from posetransfer.ops.warp import flow_pyramid, visibility_pyramid
from posetransfer.pose.maps import keypoint_disks

VIS, INV, BG = int(Visibility.VISIBLE), int(Visibility.INVISIBLE), int(Visibility.BACKGROUND)
CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "flow"


def _logits(vis: torch.Tensor, confidence: float = 10.0) -> torch.Tensor:
    """``(B, 3, H, W)`` logits whose argmax is ``vis``."""
    return F.one_hot(vis, 3).permute(0, 3, 1, 2).float() * confidence


def _prediction(flows: list[torch.Tensor], vis_full: torch.Tensor) -> FlowPrediction:
    return FlowPrediction(list(flows), [vis_full, F.avg_pool2d(vis_full, 2)])


def _example(batch: int = 2, size: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random flow (zero on background) and a body rectangle with an invisible patch."""
    gen = torch.Generator().manual_seed(seed)
    vis = torch.full((batch, size, size), BG, dtype=torch.int64)
    vis[:, :, 2:] = VIS  # columns 4..7 hold whole 4x4 blocks, columns 2..3 whole 2x2 blocks
    vis[:, 4:6, 2:4] = INV
    vis[:, 7, 7] = BG
    flow = torch.randn(batch, 2, size, size, generator=gen) * 5 * (vis != BG).unsqueeze(1)
    return flow, vis


def test_zero_loss_when_the_prediction_is_the_ground_truth_pyramid() -> None:
    flow, vis = _example()
    flows = [f.clone().requires_grad_() for f in flow_pyramid(flow, 4)]
    pred = _prediction(flows, _logits(vis, confidence=1e4))
    terms = flow_loss_terms(pred, flow, vis)
    assert sorted(terms) == ["epe_l0", "epe_l1", "epe_l2", "epe_l3", "vis_ce"]
    for name, value in terms.items():
        assert value.item() == 0.0, name
    loss = total_loss(terms, FlowLossConfig())
    assert loss.item() == 0.0
    loss.backward()  # the EPE gradient at zero error is 0, not NaN
    assert all(torch.equal(f.grad, torch.zeros_like(f)) for f in flows[1:])


@pytest.mark.parametrize("coarse_mask", ["interior", "any"])
def test_constant_offset_gives_its_length_at_every_level(coarse_mask: str) -> None:
    flow, vis = _example()
    offset = torch.tensor([3.0, -4.0]).view(1, 2, 1, 1)  # |c| = 5 full-resolution pixels
    # A uniform offset of c full-resolution pixels is c / 2**k pixels of level k.
    flows = [f + offset / 2**k for k, f in enumerate(flow_pyramid(flow, 3))]
    cfg = FlowLossConfig(level_weights=(0.5, 0.32, 0.16), vis_weight=2.0, coarse_mask=coarse_mask)
    terms = flow_loss_terms(_prediction(flows, _logits(vis)), flow, vis, cfg)
    for k in range(3):
        assert terms[f"epe_l{k}"].item() == pytest.approx(5.0, rel=1e-6)
    expected = 2.0 * terms["vis_ce"] + 0.05 * (0.5 + 0.32 + 0.16) * 5.0
    assert total_loss(terms, cfg).item() == pytest.approx(expected.item(), rel=1e-6)


def test_low_precision_predictions_are_measured_in_float32() -> None:
    flow, vis = _example()
    offset = torch.tensor([0.375, 0.0]).view(1, 2, 1, 1)
    flows = [(f + offset / 2**k).bfloat16() for k, f in enumerate(flow_pyramid(flow, 2))]
    pred = _prediction(flows, _logits(vis).bfloat16())
    terms = flow_loss_terms(pred, flow, vis)
    assert all(t.dtype == torch.float32 for t in terms.values())
    # bf16 keeps 8 bits of mantissa: the error is right to bf16 rounding of |flow| <~ 20 px.
    assert terms["epe_l0"].item() == pytest.approx(0.375, abs=0.1)


def test_background_errors_are_ignored() -> None:
    flow, vis = _example()
    noise = torch.randn(flow.shape) * 100 * (vis == BG).unsqueeze(1)
    pyramid = flow_pyramid(flow + noise, 3)
    terms = flow_loss_terms(_prediction(pyramid, _logits(vis)), flow, vis)
    # Interior coarse pixels average body pixels only, so they are untouched by the noise.
    for k in range(3):
        assert terms[f"epe_l{k}"].item() == pytest.approx(0.0, abs=1e-5)
    noisy_body = flow + torch.randn(flow.shape) * (vis != BG).unsqueeze(1)
    assert flow_loss_terms(_prediction([noisy_body], _logits(vis)), flow, vis)["epe_l0"] > 0.1


def test_per_sample_mean_then_batch_mean() -> None:
    vis = torch.full((2, 2, 2), BG, dtype=torch.int64)
    vis[0, 0, 0] = VIS  # sample 0: one body pixel with error 4
    vis[1, :, 1] = INV  # sample 1: two body pixels (invisible still counts) with error 1
    vis[1, 0, 0] = VIS  # ... and a third one with error 1
    flow = torch.zeros(2, 2, 2, 2)
    pred = torch.zeros(2, 2, 2, 2)
    pred[0, 0, 0, 0] = 4.0
    pred[1, 1] = 1.0
    terms = flow_loss_terms(_prediction([pred], _logits(vis)), flow, vis)
    assert terms["epe_l0"].item() == pytest.approx((4.0 + 1.0) / 2)  # not the pooled 7 / 4
    empty = torch.full_like(vis, BG)
    empty[0] = vis[0]  # sample 1 has no body: it counts as 0 in the batch mean
    terms = flow_loss_terms(_prediction([pred], _logits(vis)), flow, empty)
    assert terms["epe_l0"].item() == pytest.approx(4.0 / 2)


def test_coarse_mask_rules_on_a_hand_example() -> None:
    """A 2x2 block with a background pixel: kept by "any" (shrunk target), not by "interior"."""
    vis = torch.full((1, 2, 4), VIS, dtype=torch.int64)
    vis[0, 1, 3] = BG
    flow = torch.zeros(1, 2, 2, 4)
    flow[:, 0] = 8.0 * (vis != BG)  # dx = 8 on the body
    pred_l1 = torch.zeros(1, 2, 1, 2)
    pred_l1[:, 0] = 4.0  # 8 full-resolution pixels = 4 level-1 pixels: exact on full blocks
    pred = _prediction([flow, pred_l1], _logits(vis))
    interior = flow_loss_terms(pred, flow, vis, FlowLossConfig(coarse_mask="interior"))
    any_body = flow_loss_terms(pred, flow, vis, FlowLossConfig(coarse_mask="any"))
    assert interior["epe_l1"].item() == 0.0  # only the all-body block counts
    # "any": the mixed block's target is (3 * 8 / 4) / 2 = 3 level pixels, error 1 -> 2 full px,
    # averaged with the exact block.
    assert any_body["epe_l1"].item() == pytest.approx((0.0 + 2.0) / 2)
    assert visibility_pyramid(vis, 2)[1].tolist() == [[[VIS, BG]]]


def test_paper_config_reproduces_the_original_flow_loss() -> None:
    """The original (spec §3.4): targets 0.05 * flow average-pooled by 2**(i+1) (full-res units),
    max-pooled body mask, weights 0.32 / 2**i, prediction in units of 20 px."""
    flow, vis = _example(batch=3, size=16, seed=3)
    gen = torch.Generator().manual_seed(4)
    raw = [torch.randn(3, 2, 16 >> (i + 1), 16 >> (i + 1), generator=gen) for i in range(3)]
    mask = (vis != BG).float().unsqueeze(1)
    expected = 0.0
    for i, r in enumerate(raw):
        target = F.avg_pool2d(0.05 * flow, 2 ** (i + 1))
        mask_i = F.max_pool2d(mask, 2 ** (i + 1))
        err = torch.linalg.vector_norm(r - target, dim=1, keepdim=True) * mask_i
        count = mask_i.flatten(1).sum(1, keepdim=True)
        expected += 0.32 / 2**i * (err.flatten(1) / (count * 3 + 1e-8)).sum()
    flows = [torch.zeros(3, 2, 16, 16)] + [r * 20 / 2 ** (i + 1) for i, r in enumerate(raw)]
    cfg = FlowLossConfig.paper(num_levels=3)
    assert cfg.level_weights == pytest.approx((0.0, 0.32, 0.16, 0.08))
    terms = flow_loss_terms(_prediction(flows, _logits(vis)), flow, vis, cfg)
    flow_part = total_loss(terms, cfg) - cfg.vis_weight * terms["vis_ce"]
    assert flow_part.item() == pytest.approx(float(expected), rel=1e-5)


def test_visibility_cross_entropy_class_weights() -> None:
    gen = torch.Generator().manual_seed(5)
    vis = torch.randint(0, 3, (2, 4, 4), generator=gen)
    logits = torch.randn(2, 3, 4, 4, generator=gen)
    pred = _prediction([torch.zeros(2, 2, 4, 4)], logits)
    flow = torch.zeros(2, 2, 4, 4)
    nll = -torch.log_softmax(logits, 1).gather(1, vis.unsqueeze(1))[:, 0]
    plain = flow_loss_terms(pred, flow, vis)["vis_ce"]
    assert plain.item() == pytest.approx(nll.mean().item(), rel=1e-6)
    weights = (1.0, 3.0, 0.5)
    w = torch.tensor(weights)[vis]
    weighted = flow_loss_terms(pred, flow, vis, FlowLossConfig(vis_class_weights=weights))
    assert weighted["vis_ce"].item() == pytest.approx(((w * nll).sum() / w.sum()).item(), rel=1e-6)
    no_bg = flow_loss_terms(pred, flow, vis, FlowLossConfig(vis_class_weights=(1.0, 1.0, 0.0)))
    assert no_bg["vis_ce"].item() == pytest.approx(nll[vis != BG].mean().item(), rel=1e-6)


def test_non_finite_inputs_raise_a_value_error_subclass() -> None:
    flow, vis = _example()
    pred = _prediction(flow_pyramid(flow, 2), _logits(vis))
    bad = flow.clone()
    bad[0, 0, 3, 3] = float("nan")
    with pytest.raises(NonFiniteError, match="flow_gt has 1 non-finite"):
        flow_loss_terms(pred, bad, vis)
    pred.flows[1][1, 1, 0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"pred.flows\[1\] has 1 non-finite"):
        flow_loss_terms(pred, flow, vis)
    with pytest.raises(NonFiniteError):
        flow_metrics(pred, flow, vis)


def test_bad_ground_truth_is_refused() -> None:
    flow, vis = _example()
    pred = _prediction([flow], _logits(vis))
    with pytest.raises(ValueError, match=r"codes must be in 0\.\.2, got range"):
        flow_loss_terms(pred, flow, vis + 1)
    with pytest.raises(ValueError, match="integer Visibility codes"):
        flow_loss_terms(pred, flow, vis.float())
    with pytest.raises(ValueError, match=r"vis_gt must have shape \(B, H, W\)"):
        flow_loss_terms(pred, flow, vis[:, :4])
    with pytest.raises(ValueError, match="flow_gt must have the prediction's shape"):
        flow_loss_terms(pred, flow[:1], vis)


def test_total_loss_refuses_weights_for_missing_levels() -> None:
    flow, vis = _example()
    terms = flow_loss_terms(_prediction(flow_pyramid(flow, 2), _logits(vis)), flow, vis)
    with pytest.raises(ValueError, match=r"level_weights\[2\]=0.16 but the prediction has no"):
        total_loss(terms, FlowLossConfig(level_weights=(0.0, 0.32, 0.16)))
    ok = total_loss(terms, FlowLossConfig(level_weights=(1.0, 0.32, 0.0)))  # zero weight: fine
    expected = terms["vis_ce"] + 0.05 * (terms["epe_l0"] + 0.32 * terms["epe_l1"])
    assert ok.item() == pytest.approx(expected.item())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"flow_weight": -1.0}, "flow_weight must be a number >= 0"),
        ({"level_weights": (0.1, float("nan"))}, r"level_weights\[1\] must be"),
        ({"vis_class_weights": (1.0, 1.0)}, "needs 3 values"),
        ({"vis_class_weights": (0.0, 0.0, 0.0)}, "must not all be 0"),
        ({"coarse_mask": "all"}, "coarse_mask must be 'interior' or 'any'"),
    ],
)
def test_config_errors(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        FlowLossConfig(**changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name", ["deepfashion", "deepfashion-paper", "market", "market-paper", "synthetic"]
)
def test_yaml_loss_weights_cover_exactly_the_model_levels(name: str) -> None:
    data = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    model = from_dict(FlowRegressorConfig, data["model"])
    loss = from_dict(FlowLossConfig, data["loss"], where=f"{name}.yaml:loss")
    assert len(loss.level_weights) == model.num_levels + 1
    if name.endswith("-paper"):
        assert loss == FlowLossConfig.paper(model.num_levels)


def test_per_sample_epe_marks_empty_samples() -> None:
    pred, gt = torch.ones(2, 2, 1, 2), torch.zeros(2, 2, 1, 2)
    mask = torch.tensor([[[True, False]], [[False, False]]])
    out = per_sample_epe(pred, gt, mask, empty=float("nan"))
    assert out[0].item() == pytest.approx(math.sqrt(2)) and math.isnan(out[1].item())


def test_flow_metrics_on_a_hand_example() -> None:
    vis = torch.tensor([[[VIS, VIS, INV, BG]]])  # (1, 1, 4)
    vis_pred = torch.tensor([[[VIS, INV, INV, BG]]])
    flow = torch.zeros(1, 2, 1, 4)
    pred_flow = torch.zeros(1, 2, 1, 4)
    pred_flow[0, 0] = torch.tensor([3.0, 0.0, 6.0, 50.0])  # errors 3, 0, 6 on the body
    pred = FlowPrediction([pred_flow], [_logits(vis_pred)])
    m = flow_metrics(pred, flow, vis)
    assert m["epe_fg"].item() == pytest.approx(3.0)  # (3 + 0 + 6) / 3
    assert m["epe_visible"].item() == pytest.approx(1.5)  # (3 + 0) / 2
    assert m["vis_acc"].item() == pytest.approx(0.75)
    assert m["iou_visible"].item() == pytest.approx(1 / 2)
    assert m["iou_invisible"].item() == pytest.approx(1 / 2)
    assert m["iou_background"].item() == pytest.approx(1.0)


def test_flow_metrics_per_sample_and_nan_handling() -> None:
    vis = torch.tensor([[[VIS, BG]], [[BG, BG]]])
    pred = FlowPrediction([torch.ones(2, 2, 1, 2)], [_logits(vis)])
    m = flow_metrics(pred, torch.zeros(2, 2, 1, 2), vis, per_sample=True)
    assert m["epe_fg"].shape == (2,) and math.isnan(m["epe_fg"][1].item())
    assert math.isnan(m["iou_invisible"][0].item())  # absent from both maps
    mean = flow_metrics(pred, torch.zeros(2, 2, 1, 2), vis)
    assert mean["epe_fg"].item() == pytest.approx(math.sqrt(2))  # the NaN sample is left out
    assert math.isnan(mean["iou_invisible"].item())


def _synthetic_batch(batch: int, size: int) -> tuple[torch.Tensor, ...]:
    """Pose maps of random keypoint pairs; flow = displacement of the nearest target keypoint."""
    gen = torch.Generator().manual_seed(0)
    tgt = 4 + torch.rand(batch, 18, 2, generator=gen) * (size - 8)
    src = tgt + (torch.rand(batch, 1, 2, generator=gen) - 0.5) * 8  # per-sample shift
    src = src + torch.randn(batch, 18, 2, generator=gen)
    valid = torch.ones(batch, 18, dtype=torch.bool)
    maps = [keypoint_disks(xy, valid, (size, size), radius=2.0) for xy in (src, tgt)]
    centres = torch.stack(torch.meshgrid(torch.arange(size), torch.arange(size), indexing="xy"))
    d2 = ((centres.reshape(1, 1, 2, -1) + 0.5 - tgt.unsqueeze(-1)) ** 2).sum(2)  # (B, 18, HW)
    weights = torch.softmax(-d2 / 8.0, dim=1)
    flow = torch.einsum("bjp,bjc->bcp", weights, src - tgt).reshape(batch, 2, size, size)
    body = d2.min(1).values.reshape(batch, size, size) < 16.0
    vis = torch.where(body, VIS, BG)
    return maps[0], maps[1], flow * body.unsqueeze(1), vis


def test_loss_falls_on_a_fixed_batch() -> None:
    start = time.perf_counter()
    torch.manual_seed(0)
    cfg = FlowRegressorConfig(
        variant="unet_v2", base_channels=8, max_channels=8, num_levels=2, num_res_blocks=1
    )
    net = FlowRegressor(cfg)
    loss_cfg = FlowLossConfig(level_weights=(0.0, 0.32, 0.16))
    src, tgt, flow, vis = _synthetic_batch(4, 32)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = total_loss(flow_loss_terms(net(src, tgt), flow, vis, loss_cfg), loss_cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
    assert time.perf_counter() - start < 10.0
