"""Tests for posetransfer.pose.maps: heatmaps, disks, limb strokes and the config wrapper."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from posetransfer.config import ConfigError
from posetransfer.conventions import FLIP_PERMUTATION, LIMBS, Keypoint
from posetransfer.pose.keypoints import Pose, stack_poses
from posetransfer.pose.maps import (
    PoseMapConfig,
    keypoint_disks,
    keypoint_heatmaps,
    limb_maps,
    num_pose_channels,
    pose_maps,
)

PERM = list(FLIP_PERMUTATION)
#: LIMB_PERM[l] is the limb that limb l becomes after a left/right flip.
LIMB_PERM = [
    next(
        m for m, (c, d) in enumerate(LIMBS) if {c, d} == {FLIP_PERMUTATION[a], FLIP_PERMUTATION[b]}
    )
    for a, b in LIMBS
]


def one_point(x: float, y: float, k: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of one pose with only keypoint ``k`` valid at ``(x, y)``."""
    xy = torch.zeros(1, 18, 2)
    xy[0, k] = torch.tensor([x, y])
    valid = torch.zeros(1, 18, dtype=torch.bool)
    valid[0, k] = True
    return xy, valid


def dyadic_poses(rng: np.random.Generator, batch: int, height: int, width: int) -> list[Pose]:
    """Random poses on a 1/8-pixel grid, so mirroring ``x -> W - x`` is exact in float32."""
    poses = []
    for _ in range(batch):
        xy = rng.integers(0, 8 * np.array([width, height]), (18, 2)) / 8.0
        poses.append(Pose(xy, rng.random(18) < 0.8))
    return poses


# ----------------------------------------------------------------------------- heatmaps


def test_heatmap_peaks_at_the_pixel_and_matches_a_hand_computed_value() -> None:
    xy, valid = one_point(13.5, 9.5, k=4)  # centre of pixel (row 9, col 13)
    maps = keypoint_heatmaps(xy, valid, (20, 30), sigma=3.0)
    assert maps.shape == (1, 18, 20, 30)
    channel = maps[0, 4]
    assert divmod(int(channel.argmax()), 30) == (9, 13)
    assert channel[9, 13] == pytest.approx(1.0)
    # Off-centre point, pixel (row 12, col 7) has centre (7.5, 12.5).
    xy, valid = one_point(10.2, 7.9)
    d2 = (7.5 - 10.2) ** 2 + (12.5 - 7.9) ** 2
    value = keypoint_heatmaps(xy, valid, (20, 30), sigma=3.0)[0, 0, 12, 7]
    assert value.item() == pytest.approx(math.exp(-0.5 * d2 / 3.0**2), rel=1e-5)


def test_invalid_keypoints_give_zero_channels_even_with_nan_coordinates() -> None:
    xy, valid = one_point(5.0, 5.0, k=2)
    xy[0, 7] = float("nan")  # an invalid placeholder must not leak
    for maps in (
        keypoint_heatmaps(xy, valid, (16, 16)),
        keypoint_disks(xy, valid, (16, 16), radius=3.0),
    ):
        assert maps[0, 2].sum() > 0
        others = torch.cat([maps[0, :2], maps[0, 3:]])
        assert not others.isnan().any()
        assert (others == 0).all()


def test_heatmap_of_flipped_pose_is_flipped_heatmap(rng) -> None:
    height, width = 24, 20
    poses = [
        Pose(rng.uniform(0, 1, (18, 2)) * [width, height], rng.random(18) < 0.8) for _ in range(3)
    ]
    xy, valid = stack_poses(poses)
    xy_f, valid_f = stack_poses([p.flip(width) for p in poses])
    maps = keypoint_heatmaps(xy, valid, (height, width), sigma=2.5)
    flipped = keypoint_heatmaps(xy_f, valid_f, (height, width), sigma=2.5)
    torch.testing.assert_close(flipped, torch.flip(maps, dims=[-1])[:, PERM], atol=1e-5, rtol=0)


def test_heatmaps_follow_dtype_and_are_differentiable() -> None:
    xy, valid = one_point(3.3, 4.1)
    xy = xy.double().requires_grad_()
    maps = keypoint_heatmaps(xy, valid, (6, 5), sigma=1.5)
    assert maps.dtype == torch.float64
    assert torch.autograd.gradcheck(lambda p: keypoint_heatmaps(p, valid, (6, 5), sigma=1.5), (xy,))


# ----------------------------------------------------------------------------- disks


def test_unit_disk_at_a_pixel_centre_is_a_plus_sign() -> None:
    xy, valid = one_point(4.5, 3.5)  # centre of pixel (3, 4)
    disk = keypoint_disks(xy, valid, (8, 9), radius=1.0)[0, 0]
    expected = torch.zeros(8, 9)
    expected[3, 3:6] = 1
    expected[2:5, 4] = 1
    torch.testing.assert_close(disk, expected)


@pytest.mark.parametrize("radius", [4.0, 8.0])
def test_disk_area_is_close_to_pi_r_squared(rng, radius) -> None:
    for x, y in rng.uniform(20, 30, (5, 2)):
        xy, valid = one_point(float(x), float(y))
        disk = keypoint_disks(xy, valid, (50, 50), radius=radius)
        assert set(disk.unique().tolist()) <= {0.0, 1.0}
        assert disk.sum().item() == pytest.approx(math.pi * radius**2, rel=0.08)


def test_disks_of_flipped_pose_are_flipped_disks(rng) -> None:
    height, width = 32, 24
    poses = dyadic_poses(rng, 4, height, width)
    xy, valid = stack_poses(poses)
    xy_f, valid_f = stack_poses([p.flip(width) for p in poses])
    maps = keypoint_disks(xy, valid, (height, width), radius=4.0)
    flipped = keypoint_disks(xy_f, valid_f, (height, width), radius=4.0)
    torch.testing.assert_close(flipped, torch.flip(maps, dims=[-1])[:, PERM], atol=0, rtol=0)


# ----------------------------------------------------------------------------- limbs


def limb_batch(points: dict[Keypoint, tuple[float, float]]) -> tuple[torch.Tensor, torch.Tensor]:
    xy = torch.zeros(1, 18, 2)
    valid = torch.zeros(1, 18, dtype=torch.bool)
    for k, p in points.items():
        xy[0, k], valid[0, k] = torch.tensor(p), True
    return xy, valid


def test_limb_covers_the_segment_with_half_width_and_round_caps() -> None:
    xy, valid = limb_batch({Keypoint.NECK: (10.5, 10.5), Keypoint.R_SHOULDER: (30.5, 10.5)})
    maps = limb_maps(xy, valid, (40, 40), width=4.0)
    assert maps.shape == (1, len(LIMBS), 40, 40)
    channel = LIMBS.index((Keypoint.NECK, Keypoint.R_SHOULDER))
    stroke = maps[0, channel]
    assert stroke[10, 20] == 1  # segment midpoint
    assert stroke[12, 20] == 1 and stroke[13, 20] == 0  # distance 2 is in, 3 is out
    assert stroke[10, 32] == 1 and stroke[10, 33] == 0  # round cap past the end point
    assert stroke[30, 20] == 0  # far pixel
    # Rows 8..12 over columns 10..30, plus the two half-disk caps.
    assert stroke[8:13, 10:31].sum() == 5 * 21
    other = torch.cat([maps[0, :channel], maps[0, channel + 1 :]])
    assert (other == 0).all()


def test_limb_with_an_invalid_end_is_zero() -> None:
    xy, valid = limb_batch({Keypoint.NECK: (10.5, 10.5), Keypoint.R_SHOULDER: (30.5, 10.5)})
    valid[0, Keypoint.R_SHOULDER] = False
    assert (limb_maps(xy, valid, (40, 40)) == 0).all()


def test_zero_length_limb_is_a_disk() -> None:
    xy, valid = limb_batch({Keypoint.NECK: (8.5, 8.5), Keypoint.R_SHOULDER: (8.5, 8.5)})
    stroke = limb_maps(xy, valid, (17, 17), width=2.0)[0, LIMBS.index((1, 2))]
    disk = keypoint_disks(*limb_batch({Keypoint.NECK: (8.5, 8.5)}), (17, 17), radius=1.0)[0, 1]
    torch.testing.assert_close(stroke, disk)


def test_limb_maps_of_flipped_pose_are_flipped_limb_maps(rng) -> None:
    height, width = 28, 20
    poses = dyadic_poses(rng, 3, height, width)
    xy, valid = stack_poses(poses)
    xy_f, valid_f = stack_poses([p.flip(width) for p in poses])
    maps = limb_maps(xy, valid, (height, width), width=3.0)
    flipped = limb_maps(xy_f, valid_f, (height, width), width=3.0)
    torch.testing.assert_close(flipped, torch.flip(maps, dims=[-1])[:, LIMB_PERM], atol=0, rtol=0)


# ----------------------------------------------------------------------------- config, errors


def test_pose_maps_follow_the_config(rng) -> None:
    xy, valid = stack_poses(dyadic_poses(rng, 2, 16, 12))
    disk_cfg = PoseMapConfig(radius=3.0)
    out = pose_maps(xy, valid, (16, 12), disk_cfg)
    assert out.shape == (2, num_pose_channels(disk_cfg), 16, 12) == (2, 18, 16, 12)
    torch.testing.assert_close(out, keypoint_disks(xy, valid, (16, 12), radius=3.0))
    cfg = PoseMapConfig(kind="gaussian", sigma=2.0, limbs=True, limb_width=3.0)
    out = pose_maps(xy, valid, (16, 12), cfg)
    assert out.shape == (2, num_pose_channels(cfg), 16, 12) == (2, 18 + len(LIMBS), 16, 12)
    torch.testing.assert_close(out[:, :18], keypoint_heatmaps(xy, valid, (16, 12), sigma=2.0))
    torch.testing.assert_close(out[:, 18:], limb_maps(xy, valid, (16, 12), width=3.0))


@pytest.mark.parametrize(
    "kwargs", [{"kind": "box"}, {"sigma": 0.0}, {"radius": -1.0}, {"limb_width": float("inf")}]
)
def test_pose_map_config_rejects_bad_values(kwargs) -> None:
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        PoseMapConfig(**kwargs)


@pytest.mark.parametrize("fn", [keypoint_heatmaps, keypoint_disks, limb_maps])
@pytest.mark.parametrize(
    ("xy", "valid", "size", "match"),
    [
        (torch.zeros(18, 2), torch.zeros(18, dtype=torch.bool), (8, 8), "xy must be"),
        (torch.zeros(2, 17, 2), torch.zeros(2, 17, dtype=torch.bool), (8, 8), "xy must be"),
        (torch.zeros(2, 18, 2, dtype=torch.int64), torch.zeros(2, 18, dtype=torch.bool), (8, 8),
         "floating"),
        (torch.zeros(2, 18, 2), torch.zeros(3, 18, dtype=torch.bool), (8, 8), "valid must be"),
        (torch.zeros(2, 18, 2), torch.zeros(2, 18), (8, 8), "bool"),
        (torch.zeros(2, 18, 2), torch.zeros(2, 18, dtype=torch.bool), (8,), "size"),
        (torch.zeros(2, 18, 2), torch.zeros(2, 18, dtype=torch.bool), (8, 0), "size"),
        (torch.zeros(2, 18, 2), torch.zeros(2, 18, dtype=torch.bool), (8.0, 8), "size"),
    ],
)  # fmt: skip
def test_bad_shapes_raise(fn, xy, valid, size, match) -> None:
    with pytest.raises(ValueError, match=match):
        fn(xy, valid, size)


@pytest.mark.parametrize(
    ("fn", "name"), [(keypoint_heatmaps, "sigma"), (keypoint_disks, "radius"), (limb_maps, "width")]
)
def test_non_positive_sizes_raise(fn, name) -> None:
    xy, valid = one_point(1.0, 1.0)
    with pytest.raises(ValueError, match=name):
        fn(xy, valid, (4, 4), **{name: 0.0})
