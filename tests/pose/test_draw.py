"""Tests for posetransfer.pose.draw."""

from __future__ import annotations

import numpy as np
import pytest

from posetransfer.conventions import LIMBS, Keypoint
from posetransfer.pose.draw import JOINT_COLORS, LIMB_COLORS, draw_pose
from posetransfer.pose.keypoints import Pose


def pose_with(points: dict[Keypoint, tuple[int, int]]) -> Pose:
    """A pose whose listed keypoints sit at the centres of the given (col, row) pixels."""
    indices = np.full((18, 2), -1)
    for k, ij in points.items():
        indices[k] = ij
    return Pose.from_indices(indices)


@pytest.fixture
def image() -> np.ndarray:
    return np.full((40, 50, 3), 90, dtype=np.uint8)


def test_joints_are_drawn_in_their_colour_and_far_pixels_are_untouched(image) -> None:
    pose = pose_with({Keypoint.NOSE: (10, 8), Keypoint.L_ANKLE: (40, 30)})
    out = draw_pose(image, pose, radius=2)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert tuple(out[8, 10]) == JOINT_COLORS[Keypoint.NOSE]  # (row, col) of the joint pixel
    assert tuple(out[30, 40]) == JOINT_COLORS[Keypoint.L_ANKLE]
    changed = (out != image).any(axis=2)
    rows, cols = np.nonzero(changed)
    # Every changed pixel is within the joint radius (plus rasterisation slack) of a joint.
    near = np.minimum(np.hypot(rows - 8, cols - 10), np.hypot(rows - 30, cols - 40))
    assert near.max() <= 3
    assert (image == 90).all()  # input untouched


@pytest.mark.parametrize("frac", [0.1, 0.5, 0.9])
def test_joint_is_centred_on_the_pixel_holding_the_point(image, frac) -> None:
    xy = np.zeros((18, 2))
    xy[Keypoint.R_HIP] = (10 + frac, 8 + frac)  # inside pixel (row 8, col 10)
    out = draw_pose(image, Pose(xy, np.arange(18) == Keypoint.R_HIP), radius=1)
    rows, cols = np.nonzero((out != image).any(axis=2))
    assert len(rows) > 1
    assert (rows.mean(), cols.mean()) == (8.0, 10.0)


def test_limbs_need_both_ends(image) -> None:
    a, b = LIMBS[0]
    pose = pose_with({Keypoint(a): (5, 20), Keypoint(b): (45, 20)})
    out = draw_pose(image, pose, radius=0, thickness=1)
    assert tuple(out[20, 25]) == LIMB_COLORS[0]  # midpoint of the limb
    assert (out[:15] == image[:15]).all() and (out[26:] == image[26:]).all()
    alone = pose_with({Keypoint(a): (5, 20)})
    assert (draw_pose(image, alone, radius=0, thickness=3) == image).all()


def test_missing_pose_returns_an_equal_copy(image) -> None:
    out = draw_pose(image, Pose.missing())
    np.testing.assert_array_equal(out, image)
    out[0, 0] = 0
    assert image[0, 0, 0] == 90


def test_palette_has_distinct_colours() -> None:
    assert len(set(LIMB_COLORS)) == len(LIMBS)
    assert len(set(JOINT_COLORS)) == 18


@pytest.mark.parametrize(
    ("img", "kwargs", "match"),
    [
        (np.zeros((10, 10), np.uint8), {}, "H, W, 3"),
        (np.zeros((10, 10, 4), np.uint8), {}, "H, W, 3"),
        (np.zeros((10, 10, 3), np.float32), {}, "uint8"),
        (np.zeros((10, 10, 3), np.uint8), {"radius": -1}, "radius"),
        (np.zeros((10, 10, 3), np.uint8), {"thickness": 1.5}, "thickness"),
    ],
)
def test_bad_arguments_raise(img, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        draw_pose(img, Pose.missing(), **kwargs)
