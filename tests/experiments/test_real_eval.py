"""Real test pairs: pair choice, scores, bootstrap intervals, the two renderings."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from posetransfer.conventions import Visibility
from posetransfer.experiments.real_data import RealImage, choose_pairs
from posetransfer.experiments.real_render import copy_source, warp_3d
from posetransfer.experiments.real_scores import mean_scores, pair_scores, paired_interval
from posetransfer.pose.keypoints import Pose
from posetransfer.train.person_crop import PersonCrop

SIZE = (32, 24)


def _pose(spread: float) -> Pose:
    """18 points on a circle; ``spread`` moves the odd points outwards (a pose change)."""
    angle = np.linspace(0, 2 * np.pi, 18, endpoint=False)
    radius = 6.0 + spread * (np.arange(18) % 2)
    xy = np.stack([12 + radius * np.cos(angle), 16 + radius * np.sin(angle)], 1)
    return Pose(xy.astype(np.float32), np.ones(18, bool))


def _image(name: str, origin: str, frame: int, spread: float) -> RealImage:
    blank = np.zeros((*SIZE, 3), np.uint8)
    return RealImage(
        name, "single", origin, frame, blank, _pose(spread), np.zeros(SIZE, np.float32)
    )


@pytest.fixture
def images() -> dict[str, RealImage]:
    # camera a: frames 0, 2, 4 (poses 0, 0, 4: frame 2 is the same pose as 0); camera b: 0, 2.
    items = [("a0", "a", 0, 0.0), ("a2", "a", 2, 0.0), ("a4", "a", 4, 4.0),
             ("b0", "b", 0, 2.0), ("b2", "b", 2, 6.0)]  # fmt: skip
    return {n: _image(n, o, f, s) for n, o, f, s in items}


def test_pairs_keep_pose_changes_and_label_kinds(images: dict[str, RealImage]) -> None:
    pairs = choose_pairs(images, min_change=0.5)
    assert [(p.source, p.target, p.kind) for p in pairs] == [
        ("a0", "a4", "pose"), ("a0", "b0", "view"), ("a0", "b2", "view"),  # a2: no change
        ("b0", "b2", "pose"), ("b0", "a0", "view"), ("b0", "a2", "view"), ("b0", "a4", "view"),
    ]  # fmt: skip


def test_sources_spread_limited_and_excluded(images: dict[str, RealImage]) -> None:
    two = choose_pairs(images, sources_per_origin=2, min_change=0.5)
    assert list(dict.fromkeys(p.source for p in two)) == ["a0", "a2", "b0", "b2"]
    one = choose_pairs(images, max_sources=1, min_change=0.5)
    assert {p.source for p in one} == {"a0"}
    without = choose_pairs(images, min_change=0.5, exclude=["a0", "b2"])
    assert [(p.source, p.target) for p in without] == [
        ("a2", "a4"), ("a2", "b0"), ("b0", "a2"), ("b0", "a4")
    ]  # fmt: skip
    assert choose_pairs(images, min_change=100.0) == []


def test_pairs_per_source_alternates_kinds(images: dict[str, RealImage]) -> None:
    pairs = choose_pairs(images, max_sources=1, pairs_per_source=2, min_change=0.5)
    assert [(p.target, p.kind) for p in pairs] == [("a4", "pose"), ("b0", "view")]
    pairs = choose_pairs(images, max_sources=1, pairs_per_source=3, min_change=0.5)
    assert [p.kind for p in pairs] == ["pose", "view", "view"]  # only one pose pair exists


def test_scores_by_hand() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 256, (2, *SIZE, 3), dtype=np.uint8)
    out = truth.copy()
    out[1] = np.clip(out[1].astype(int) + 10, 0, 255).astype(np.uint8)  # off by 10 (clipped)
    mask = np.zeros(SIZE, np.float32)
    mask[8:24, 6:18] = 1.0
    scores = pair_scores(list(out), list(truth), [mask, mask])
    assert scores["ssim"][0] == pytest.approx(1.0) and scores["l1"][0] == 0.0
    assert math.isinf(scores["psnr"][0]) and math.isinf(scores["mask_psnr"][0])
    inside = np.abs(out[1].astype(float) - truth[1])[8:24, 6:18]
    assert scores["mask_l1"][1] == pytest.approx(inside.mean() / 255)
    mse = (inside**2).mean()
    assert scores["mask_psnr"][1] == pytest.approx(10 * np.log10(255**2 / mse))
    means = mean_scores(scores)
    assert means["l1"] == pytest.approx(scores["l1"].mean())
    assert means["psnr"] == pytest.approx(scores["psnr"][1])  # the infinite value is left out


def test_paired_interval() -> None:
    a, b = np.full(50, 0.7), np.full(50, 0.5)
    mean, lo, hi = paired_interval(a, b)
    assert mean == pytest.approx(0.2) and lo == pytest.approx(0.2) and hi == pytest.approx(0.2)
    rng = np.random.default_rng(1)
    noisy = b + 0.1 + rng.normal(0, 0.05, 50)
    mean, lo, hi = paired_interval(noisy, b)
    assert lo < mean < hi and lo > 0.05 and hi < 0.15
    assert all(math.isnan(v) for v in paired_interval(np.array([np.nan]), np.array([0.0])))


def test_warp_3d_composites_over_the_plate() -> None:
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8)
    plate = np.full_like(image, 50)
    person = PersonCrop(image, _pose(0.0), np.zeros(SIZE, np.float32), plate)
    flow = torch.zeros(2, 2, *SIZE)
    flow[1, 0] = 1.0  # one pixel to the right in the second pair
    vis = torch.full((2, *SIZE), int(Visibility.BACKGROUND), dtype=torch.long)
    vis[:, 4:28, 4:20] = int(Visibility.VISIBLE)
    out = warp_3d(person, (flow, vis), feather=0.0)
    np.testing.assert_array_equal(out.raw[0], image)  # zero flow: the source itself
    np.testing.assert_array_equal(out.raw[1][:, :-1], image[:, 1:])
    for composited in out.composited:
        np.testing.assert_array_equal(composited[:3], plate[:3])  # background: the plate
    np.testing.assert_array_equal(out.composited[0][8:24, 8:16], image[8:24, 8:16])
    same = copy_source(person, 3)
    assert len(same.raw) == len(same.composited) == 3 and same.raw[0] is image


def test_render_run_composites_and_matches_the_pipeline() -> None:
    from posetransfer.experiments.real_render import regressor_flows, render_run
    from posetransfer.infer.background import dilate_mask
    from posetransfer.infer.pipeline import PoseTransferPipeline
    from posetransfer.io import tensor_to_uint8, uint8_to_tensor

    run = Path(__file__).resolve().parents[1] / "fixtures" / "old_run" / "gen_run"
    pipeline = PoseTransferPipeline.from_run(run)  # 32x32, with a pixel-warp refiner
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    plate = np.full_like(image, 90)
    person = PersonCrop(image, _pose(0.0), np.zeros((32, 32), np.float32), plate)
    targets = [_pose(2.0), _pose(4.0)]
    vis = torch.full((2, 32, 32), int(Visibility.BACKGROUND), dtype=torch.long)
    vis[:, 8:24, 10:22] = int(Visibility.VISIBLE)
    flows = (torch.zeros(2, 2, 32, 32), vis)
    out = render_run(pipeline, person, targets, flows)
    predicted = regressor_flows(pipeline, person, targets)
    assert predicted[0].shape == (2, 2, 32, 32) and predicted[1].shape == (2, 32, 32)
    x = uint8_to_tensor(image)[None].expand(2, -1, -1, -1)
    expected = pipeline(x, [person.pose] * 2, targets, flows).image
    for k in range(2):
        np.testing.assert_array_equal(out.raw[k], tensor_to_uint8(expected[k]))
        person_px = (flows[1][k] != int(Visibility.BACKGROUND)).numpy()
        outside = ~dilate_mask(person_px, 5)  # beyond the feathered edge (sigma 1.5)
        assert outside.any()
        np.testing.assert_array_equal(out.composited[k][outside], plate[outside])
    assert len(out.warp_share) == 2 and all(0.0 <= s <= 1.0 for s in out.warp_share)


def test_lpips_is_scored_when_a_model_is_given() -> None:
    from posetransfer.eval.lpips import LPIPS

    torch.manual_seed(0)
    lpips = LPIPS(random_backbone=True)  # plumbing only: random weights
    rng = np.random.default_rng(4)
    truth = rng.integers(0, 256, (2, 64, 48, 3), dtype=np.uint8)
    out = truth.copy()
    out[1] = 255 - out[1]
    scores = pair_scores(list(out), list(truth), [np.ones((64, 48))] * 2, lpips)
    assert scores["lpips"][0] == pytest.approx(0.0, abs=1e-6) and scores["lpips"][1] > 0
    assert "lpips" not in pair_scores(list(out), list(truth), [np.ones((64, 48))] * 2)
