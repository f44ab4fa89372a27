"""Tests for posetransfer.data.pose_augment: whole-sample maps and detector-like keypoint noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from posetransfer.config import ConfigError, from_dict
from posetransfer.conventions import Visibility
from posetransfer.data.datasets import PairDataset
from posetransfer.data.image_protocols import Affine
from posetransfer.data.pose_augment import (
    PoseAugmentConfig,
    augment_pair,
    detector_noise,
    random_affine,
    transform_sample,
)
from posetransfer.data.toy import make_toy_dataset
from posetransfer.data.transforms import PairArrays
from posetransfer.pose.keypoints import Pose
from posetransfer.train.flow_config import FlowStageConfig

VIS, INV, BG = int(Visibility.VISIBLE), int(Visibility.INVISIBLE), int(Visibility.BACKGROUND)
H, W = 64, 48
FLOW = (3.0, -2.0)  # the target->source flow of the hand-made pair, constant on the body
FULL = PoseAugmentConfig(scale=(0.8, 1.25), shift=0.1, offset=0.02, jitter=0.01, drop_prob=0.2)


def _ramp(height: int, width: int) -> np.ndarray:
    """An image linear in x and y (bilinear resampling reproduces it exactly inside)."""
    y, x = np.mgrid[0:height, 0:width] + 0.5
    return np.stack([3 * x + 40, 2 * y + 60, x + y], axis=-1).round().astype(np.uint8)


def _pair(missing: tuple[int, ...] = (14, 15)) -> PairArrays:
    """A body filling rows 12-52, cols 10-38 of the target; the source is the target moved by
    ``FLOW``, so the flow is exactly ``FLOW`` on the body; keypoints lie on the body."""
    rng = np.random.default_rng(5)
    tgt_xy = np.stack([rng.uniform(12, 36, 18), rng.uniform(14, 50, 18)], axis=1)
    valid = np.ones(18, bool)
    valid[list(missing)] = False
    vis = np.full((H, W), BG, np.uint8)
    vis[12:52, 10:38] = VIS
    vis[30:34, 20:24] = INV
    flow = np.zeros((H, W, 2), np.float32)
    flow[vis != BG] = FLOW
    return PairArrays(
        source_image=_ramp(H, W),
        target_image=_ramp(H, W),
        source_pose=Pose(tgt_xy + FLOW, valid),
        target_pose=Pose(tgt_xy, valid),
        flow=flow,
        visibility=vis,
    )


def _zoom(s: float, ox: float, oy: float) -> Affine:
    return Affine((s, s), (ox, oy), (H, W), (H, W))


# ------------------------------------------------------------------------------ geometry


@pytest.mark.parametrize(
    ("src", "tgt"),
    [((1.0, 0.0, 0.0), (1.2, -4.0, -6.0)), ((0.85, 5.0, 3.0), (1.1, -2.0, 1.5)),
     ((1.15, -3.0, -4.0), (1.15, -3.0, -4.0))],
)  # fmt: skip
def test_flow_follows_the_keypoints(src: tuple, tgt: tuple) -> None:
    """At every moved target keypoint the new flow points at the moved source keypoint."""
    pair = _pair()
    a_src, a_tgt = _zoom(*src), _zoom(*tgt)
    out = transform_sample(pair, a_src, a_tgt)
    assert out.flow is not None and out.visibility is not None
    both = out.source_pose.valid & out.target_pose.valid
    assert both.sum() >= 10
    for k in np.flatnonzero(both):
        x, y = out.target_pose.xy[k]
        i, j = int(y), int(x)
        if out.visibility[i, j] == BG:
            continue
        # The flow is sampled at pixel centres; it is affine in u, so correct for the offset.
        centre = np.array([j + 0.5, i + 0.5])
        expected = out.source_pose.xy[k] - out.target_pose.xy[k]
        expected = expected + (a_src.scale[0] / a_tgt.scale[0] - 1.0) * (centre - [x, y])
        np.testing.assert_allclose(out.flow[i, j], expected, atol=1e-3)
    # Analytically: F'(u') = s_s (u + F) + o_s - u' with u = (u' - o_t) / s_t, on the body.
    u = np.stack(np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5), axis=-1)
    pre = (u - [a_tgt.offset[0], a_tgt.offset[1]]) / a_tgt.scale[0]
    want = a_src.scale[0] * (pre + FLOW) + np.asarray(a_src.offset) - u
    inner = out.visibility != BG
    inner[:, [0, -1]] = False
    np.testing.assert_allclose(out.flow[inner], want[inner], atol=1e-3)
    assert (out.flow[out.visibility == BG] == 0).all()


def test_warp_by_the_new_flow_still_gives_the_target() -> None:
    """The source image warped by the mapped flow is the mapped target on visible pixels."""
    from posetransfer.ops.warp import warp

    base = _pair()
    # A source that is the target moved by FLOW: target(u) = source(u + F).
    y, x = np.mgrid[0:H, 0:W] + 0.5
    src = np.stack([3 * x + 40, 2 * y + 60, x + y], axis=-1)
    tgt = np.stack([3 * (x + FLOW[0]) + 40, 2 * (y + FLOW[1]) + 60, x + y + sum(FLOW)], axis=-1)
    pair = PairArrays(src.round().astype(np.uint8), tgt.round().astype(np.uint8),
                      base.source_pose, base.target_pose, base.flow, base.visibility)  # fmt: skip
    out = transform_sample(pair, _zoom(0.9, 4.0, 2.0), _zoom(1.1, -3.0, -5.0))
    assert out.flow is not None and out.visibility is not None
    to_t = lambda a: torch.from_numpy(a.astype(np.float32)).permute(2, 0, 1)[None]  # noqa: E731
    warped = warp(to_t(out.source_image), to_t(out.flow))[0].permute(1, 2, 0).numpy()
    vis = out.visibility == VIS
    vis[:2], vis[-2:], vis[:, :2], vis[:, -2:] = False, False, False, False
    assert vis.sum() > 300
    assert np.abs(warped[vis] - out.target_image[vis]).max() <= 2.0


def test_zoom_out_is_background_and_cropped_source_is_invisible() -> None:
    pair = _pair()
    # Target zoomed out around the centre and moved right: the new left margin was never seen.
    out = transform_sample(pair, _zoom(1.0, 0.0, 0.0), _zoom(0.5, 30.0, 16.0))
    assert out.visibility is not None and out.flow is not None
    assert (out.visibility[:, :30] == BG).all() and (out.flow[:, :30] == 0).all()
    # Source zoomed in 2x about its top-left: body points beyond the source frame are INVISIBLE.
    out = transform_sample(pair, _zoom(2.0, 0.0, 0.0), _zoom(1.0, 0.0, 0.0))
    assert out.visibility is not None
    assert np.array_equal(out.visibility == BG, pair.visibility == BG)
    lost = (pair.visibility == VIS) & (out.visibility == INV)
    assert lost[50, 36] and not lost[13, 11]  # bottom-right of the body left the source frame
    assert not out.source_pose.valid[out.source_pose.xy[:, 0] >= W].any()


def test_random_affine_ranges_and_shared_map() -> None:
    cfg = PoseAugmentConfig(scale=(0.8, 1.25), shift=0.1)
    rng = np.random.default_rng(0)
    maps = [random_affine((H, W), cfg, rng) for _ in range(200)]
    scales = np.array([a.scale[0] for a in maps])
    assert 0.8 <= scales.min() < 0.85 and 1.2 < scales.max() <= 1.25
    assert np.median(np.log(scales)) == pytest.approx(0.0, abs=0.06)  # log-uniform
    centre = np.array([[a.scale[0] * W / 2 + a.offset[0], a.scale[1] * H / 2 + a.offset[1]]
                       for a in maps])  # fmt: skip
    assert (np.abs(centre - [W / 2, H / 2]) <= [0.1 * W + 1e-9, 0.1 * H + 1e-9]).all()
    shared = augment_pair(_pair(missing=()), PoseAugmentConfig(scale=(1.2, 1.2), independent=False),
                          np.random.default_rng(1))  # fmt: skip
    moved = shared.source_pose.xy - shared.target_pose.xy
    both = shared.source_pose.valid & shared.target_pose.valid
    np.testing.assert_allclose(moved[both], np.multiply(FLOW, 1.2)[None].repeat(both.sum(), 0),
                               atol=1e-4)  # fmt: skip


# ------------------------------------------------------------------------------ noise


def test_missing_points_stay_missing_and_drops_keep_the_minimum() -> None:
    pair = _pair(missing=(3, 14, 15))
    for seed in range(20):
        out = augment_pair(pair, FULL, np.random.default_rng(seed))
        for before, after in ((pair.source_pose, out.source_pose),
                              (pair.target_pose, out.target_pose)):  # fmt: skip
            assert not after.valid[~before.valid].any()
            assert (after.xy[~after.valid] == 0).all()
    drop_all = PoseAugmentConfig(drop_prob=1.0, min_keypoints=5)
    out = augment_pair(pair, drop_all, np.random.default_rng(0))
    assert out.source_pose.num_valid == 5 and out.target_pose.num_valid == 5
    few = Pose(pair.source_pose.xy, np.arange(18) < 3)
    src, _ = detector_noise(few, few, (H, W), drop_all, np.random.default_rng(0))
    assert src == few  # fewer than min_keypoints: nothing dropped
    # The flow is the true pose's: detector noise never touches the targets.
    noise_only = PoseAugmentConfig(offset=0.05, jitter=0.02, drop_prob=0.3)
    out = augment_pair(pair, noise_only, np.random.default_rng(0))
    assert out.flow is pair.flow and out.visibility is pair.visibility
    assert out.source_image is pair.source_image


def test_offsets_are_shared_by_the_pair_and_jitter_is_not() -> None:
    pair = _pair(missing=())
    cfg = PoseAugmentConfig(offset=0.03)
    src, tgt = detector_noise(pair.source_pose, pair.target_pose, (H, W), cfg,
                              np.random.default_rng(2))  # fmt: skip
    both = src.valid & tgt.valid
    d_src = src.xy - pair.source_pose.xy
    d_tgt = tgt.xy - pair.target_pose.xy
    np.testing.assert_allclose(d_src[both], d_tgt[both], atol=1e-4)
    assert np.abs(d_src[both]).max() > 0.1
    jitter = PoseAugmentConfig(jitter=0.02)
    moves = []
    for seed in range(200):
        src, tgt = detector_noise(pair.source_pose, pair.target_pose, (H, W), jitter,
                                  np.random.default_rng(seed))  # fmt: skip
        moves.append((src.xy - pair.source_pose.xy)[src.valid])
        assert not np.allclose(src.xy - pair.source_pose.xy, tgt.xy - pair.target_pose.xy)
    assert np.std(np.concatenate(moves)) == pytest.approx(0.02 * H, rel=0.1)


# ------------------------------------------------------------------------------ dataset, config


def test_dataset_augmentation_is_deterministic_per_seed_and_epoch(tmp_path: Path) -> None:
    root = make_toy_dataset(tmp_path / "toy", size=(64, 48), with_flows=True)

    def item(seed: int, epoch: int = 0):
        ds = PairDataset(root, require_flow=True, augment=FULL, seed=seed)
        ds.set_epoch(epoch)
        return ds[1]

    a, b = item(0), item(0)
    for name in ("source_xy", "source_valid", "target_pose_map", "flow", "visibility",
                 "source_image"):  # fmt: skip
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert not torch.equal(a.flow, item(1).flow)
    assert not torch.equal(a.target_xy, item(0, epoch=1).target_xy)
    plain = PairDataset(root, require_flow=True)[1]
    off = PairDataset(root, require_flow=True, augment=PoseAugmentConfig())[1]
    assert torch.equal(plain.flow, off.flow) and torch.equal(plain.source_xy, off.source_xy)
    # Pose maps are drawn from the augmented (noisy) keypoints; missing points give empty maps.
    for k in np.flatnonzero(~a.source_valid.numpy()):
        assert a.source_pose_map[k].abs().sum() == 0


@pytest.mark.parametrize(
    ("augment", "field"),
    [({"scale": [1.2, 0.8]}, "data.augment.scale"), ({"scale": [0.0, 1.0]}, "data.augment.scale"),
     ({"shift": 0.6}, "data.augment.shift"), ({"jitter": -0.1}, "data.augment.jitter"),
     ({"offset": float("nan")}, "data.augment.offset"),
     ({"drop_prob": 1.5}, "data.augment.drop_prob"),
     ({"min_keypoints": 19}, "data.augment.min_keypoints")],
)  # fmt: skip
def test_config_errors_name_the_field(augment: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        from_dict(FlowStageConfig, {"data": {"augment": augment}})


def test_unknown_augment_key_is_named() -> None:
    with pytest.raises(ConfigError, match=r"data\.augment.*unknown key.*sigma"):
        from_dict(FlowStageConfig, {"data": {"augment": {"sigma": 1.0}}})


def test_flow_stage_config_reads_augment_and_defaults_off() -> None:
    cfg = from_dict(FlowStageConfig, {"data": {"augment": {"scale": [0.9, 1.1], "jitter": 0.01}}})
    assert cfg.data.augment.scale == (0.9, 1.1) and cfg.data.augment.active
    assert not FlowStageConfig().data.augment.active
