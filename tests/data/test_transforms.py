"""Tests for posetransfer.data.transforms: one map for images, poses and flow."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posetransfer.conventions import Keypoint, Visibility
from posetransfer.data.transforms import (
    Affine,
    PairArrays,
    apply_flow,
    apply_image,
    apply_pose,
    hflip_flow,
    hflip_sample,
    plan_transform,
    transform_pair,
)
from posetransfer.ops.warp import warp
from posetransfer.pose.keypoints import Pose

VIS, INV, BG = int(Visibility.VISIBLE), int(Visibility.INVISIBLE), int(Visibility.BACKGROUND)


def _pose(rng: np.random.Generator, height: int, width: int, n_missing: int = 3) -> Pose:
    idx = np.stack([rng.integers(0, width, 18), rng.integers(0, height, 18)], axis=1)
    idx[rng.choice(18, n_missing, replace=False)] = -1
    return Pose.from_indices(idx)


def _blob(height: int, width: int, cx: float, cy: float, sigma: float) -> np.ndarray:
    """Gaussian blob centred at continuous ``(cx, cy)`` (pixel centres at index + 0.5)."""
    y, x = np.mgrid[0:height, 0:width] + 0.5
    g = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma**2))
    return np.repeat((g * 250).round().astype(np.uint8)[..., None], 3, axis=2)


def _centroid(image: np.ndarray) -> np.ndarray:
    w = image[..., 0].astype(np.float64)
    y, x = np.mgrid[0 : w.shape[0], 0 : w.shape[1]] + 0.5
    return np.array([(w * x).sum(), (w * y).sum()]) / w.sum()


# ------------------------------------------------------------------------------- images, poses


def test_apply_image_crop_is_exact_slice(rng: np.random.Generator) -> None:
    image = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    out = apply_image(image, plan_transform("deepfashion-256x176", (256, 256)))
    np.testing.assert_array_equal(out, image[:, 40:216])


@pytest.mark.parametrize(("in_size", "out_size"), [((48, 40), (96, 56)), ((60, 44), (30, 33))])
def test_apply_image_resize_moves_content_like_the_affine(
    in_size: tuple[int, int], out_size: tuple[int, int]
) -> None:
    cx, cy = 17.3, 21.6
    image = _blob(*in_size, cx, cy, sigma=4.0)
    affine = Affine.from_box((0, 0, in_size[1], in_size[0]), in_size, out_size)
    out = apply_image(image, affine)
    assert out.shape == (*out_size, 3)
    expected = np.array([cx, cy]) * affine.scale + affine.offset
    np.testing.assert_allclose(_centroid(out), expected, atol=0.1)


def test_apply_image_checks_size(rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match="10x12 but the map expects 8x8"):
        apply_image(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8), Affine.identity((8, 8)))


def test_apply_pose_crop_shifts_x_by_minus_40_and_drops_points_outside() -> None:
    idx = np.full((18, 2), -1)
    idx[Keypoint.NOSE] = (100, 30)
    idx[Keypoint.R_WRIST] = (20, 120)  # in the left margin: cropped away
    idx[Keypoint.L_WRIST] = (230, 120)  # in the right margin
    pose = apply_pose(Pose.from_indices(idx), plan_transform("deepfashion-256x176", (256, 256)))
    np.testing.assert_array_equal(pose.xy[Keypoint.NOSE], [60.5, 30.5])
    assert pose.valid.sum() == 1 and pose.valid[Keypoint.NOSE]


def test_apply_pose_reads_keypoints_in_their_own_frame() -> None:
    # GFLA: keypoints in a 256x176 frame, image 512x352, output 256x256.
    idx = np.full((18, 2), -1)
    idx[Keypoint.NECK] = (88, 100)
    affine = plan_transform("deepfashion-256x256", (512, 352))
    pose = apply_pose(Pose.from_indices(idx), affine, keypoint_frame=(256, 176))
    np.testing.assert_allclose(pose.xy[Keypoint.NECK], [88.5 * 256 / 176, 100.5], rtol=1e-6)


# ------------------------------------------------------------------------------- flow


def _linear_flow(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width] + 0.5
    return np.stack([1.5 + 0.1 * x - 0.05 * y, -2.0 + 0.02 * x + 0.03 * y], axis=-1)


@pytest.mark.parametrize("same_map", [True, False])
def test_apply_flow_matches_mapping_the_correspondences(same_map: bool) -> None:
    """F'(u') == A_s(u + F(u)) - u' with u = A_t^-1(u'), checked point by point."""
    height, width = 24, 20
    flow = _linear_flow(height, width)
    vis = np.full((height, width), VIS, np.uint8)
    tgt = Affine((1.6, 1.25), (-3.2, -1.25), (height, width), (26, 25))
    src = tgt if same_map else Affine((1.3, 1.25), (2.0, 0.5), (height, width), (30, 25))
    out, out_vis = apply_flow(flow, vis, tgt, src)
    assert out.shape == (26, 25, 2) and out.dtype == np.float32
    assert (out_vis != BG).all()

    y, x = np.mgrid[0:26, 0:25] + 0.5
    u = np.stack([(x - tgt.offset[0]) / tgt.scale[0], (y - tgt.offset[1]) / tgt.scale[1]], -1)
    inside = (u[..., 0] > 0.5) & (u[..., 0] < width - 0.5) & (u[..., 1] > 0.5)
    inside &= u[..., 1] < height - 0.5  # bilinear is exact for a linear field away from borders
    fx = 1.5 + 0.1 * u[..., 0] - 0.05 * u[..., 1]
    fy = -2.0 + 0.02 * u[..., 0] + 0.03 * u[..., 1]
    src_pt = np.stack([(u[..., 0] + fx), (u[..., 1] + fy)], -1) * src.scale + src.offset
    expected = src_pt - np.stack([x, y], -1)
    np.testing.assert_allclose(out[inside], expected[inside], atol=1e-4)


def test_apply_flow_scales_values_and_keeps_silhouette_values() -> None:
    height, width = 16, 12
    flow = np.zeros((height, width, 2), np.float32)
    vis = np.full((height, width), BG, np.uint8)
    flow[:, :5] = (3.0, -1.0)
    vis[:, :5] = VIS
    vis[:2, :5] = INV  # invisible body pixels keep their flow
    affine = Affine.from_box((0, 0, width, height), (height, width), (40, 21))  # sx=1.75, sy=2.5
    out, out_vis = apply_flow(flow, vis, affine)
    body = out_vis != BG
    # Output column j' comes from input floor((j' + 0.5) / 1.75); rows likewise with 2.5.
    cols = np.floor((np.arange(21) + 0.5) / 1.75).astype(int)
    rows = np.floor((np.arange(40) + 0.5) / 2.5).astype(int)
    np.testing.assert_array_equal(out_vis, vis[rows[:, None], cols[None, :]])
    # Body pixels next to the background keep the full value (no blending with background 0):
    # output column 8 samples x = 4.86, between body column 4 and background column 5.
    assert out_vis[0, 8] == INV and out_vis[-1, 8] == VIS
    np.testing.assert_allclose(out[body], np.broadcast_to([5.25, -2.5], out[body].shape), atol=1e-5)
    assert (out[~body] == 0).all()


def test_apply_flow_identity_and_shape_errors() -> None:
    flow = np.ones((4, 6, 2), np.float32)
    vis = np.zeros((4, 6), np.uint8)
    out, _ = apply_flow(flow, vis, Affine.identity((4, 6)))
    np.testing.assert_array_equal(out, flow)
    with pytest.raises(ValueError, match="4x6 but the map expects 6x4"):
        apply_flow(flow, vis, Affine.identity((6, 4)))
    with pytest.raises(ValueError, match=r"\(H, W, 2\)"):
        apply_flow(flow[..., :1], vis, Affine.identity((4, 6)))


# ------------------------------------------------------------------------------- flips


def _shifted_pair(rng: np.random.Generator, height: int, width: int, dx: int, dy: int):
    """Target = source shifted so that target(i, j) = source(i + dy, j + dx), with exact flow."""
    source = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    target = np.zeros_like(source)
    vis = np.full((height, width), BG, np.uint8)
    flow = np.zeros((height, width, 2), np.float32)
    for i in range(height):
        for j in range(width):
            if 0 <= i + dy < height and 0 <= j + dx < width:
                target[i, j] = source[i + dy, j + dx]
                vis[i, j] = VIS
                flow[i, j] = (dx, dy)
    return source, target, flow, vis


def _warp_error(pair: PairArrays) -> float:
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float()  # noqa: E731
    warped = warp(to_t(pair.source_image), to_t(pair.flow))[0].permute(1, 2, 0).numpy()
    visible = pair.visibility == VIS
    assert visible.sum() > 0
    return float(np.abs(warped[visible] - pair.target_image[visible].astype(np.float32)).max())


def test_hflip_sample_keeps_warp_consistency(rng: np.random.Generator) -> None:
    source, target, flow, vis = _shifted_pair(rng, 12, 10, dx=3, dy=-2)
    pair = PairArrays(source, target, _pose(rng, 12, 10), _pose(rng, 12, 10), flow, vis)
    assert _warp_error(pair) < 0.01
    flipped = hflip_sample(pair)
    assert _warp_error(flipped) < 0.01
    np.testing.assert_array_equal(flipped.flow[..., 0][flipped.visibility == VIS], -3)
    np.testing.assert_array_equal(flipped.source_image, source[:, ::-1])
    np.testing.assert_array_equal(flipped.visibility, vis[:, ::-1])


def test_hflip_sample_swaps_left_and_right_keypoints(rng: np.random.Generator) -> None:
    image = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    pose = _pose(rng, 12, 10, n_missing=0)
    flipped = hflip_sample(PairArrays(image, image, pose, pose))
    for right, left in [(Keypoint.R_WRIST, Keypoint.L_WRIST), (Keypoint.R_EAR, Keypoint.L_EAR)]:
        np.testing.assert_allclose(
            flipped.target_pose.xy[left], [10 - pose.xy[right, 0], pose.xy[right, 1]]
        )
    assert hflip_sample(flipped).target_pose == pose


def test_hflip_flow_with_a_wider_source() -> None:
    # target 1 px wide at x=0.5 maps to source x=2.5 (dx=2) in a source 4 px wide;
    # mirrored: target x=0.5 maps to source 4-2.5=1.5, so dx'=1 = (4-1) - 2.
    flow, _ = hflip_flow(np.array([[[2.0, 0.0]]]), np.array([[VIS]], np.uint8), source_width=4)
    assert flow[0, 0, 0] == 1.0


def test_transform_pair_crop_keeps_warp_consistency(rng: np.random.Generator) -> None:
    source, target, flow, vis = _shifted_pair(rng, 256, 256, dx=-5, dy=4)
    pair = PairArrays(source, target, _pose(rng, 256, 256), _pose(rng, 256, 256), flow, vis)
    out = transform_pair(pair, "deepfashion-256x176")
    assert out.source_image.shape == (256, 176, 3) and out.flow.shape == (256, 176, 2)
    np.testing.assert_array_equal(out.target_image, target[:, 40:216])
    # Columns 0-4 now point left of the cropped source (x + 0.5 - 5 < 0): no longer VISIBLE.
    expected_vis = vis[:, 40:216].copy()
    expected_vis[:, :5][expected_vis[:, :5] == VIS] = INV
    np.testing.assert_array_equal(out.visibility, expected_vis)
    np.testing.assert_array_equal(out.flow[out.visibility != BG], [[-5, 4]] * 252 * 176)
    assert _warp_error(out) < 0.01


def test_transform_pair_refuses_flow_of_another_size(rng: np.random.Generator) -> None:
    image = rng.integers(0, 256, (8, 6, 3), dtype=np.uint8)
    pose = _pose(rng, 8, 6)
    pair = PairArrays(image, image, pose, pose, np.zeros((4, 3, 2)), np.zeros((4, 3), np.uint8))
    with pytest.raises(ValueError, match="flow is 4x3, expected the target image's 8x6"):
        transform_pair(pair, "native")
