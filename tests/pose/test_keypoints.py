"""Tests for posetransfer.pose.keypoints: detector mappings, flips, transforms, file indices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posetransfer.conventions import FLIP_PERMUTATION, NUM_KEYPOINTS, Keypoint
from posetransfer.pose.keypoints import Pose, stack_poses

# Written out from the COCO and MediaPipe documentation, independently of the library's tables.
COCO_NAMES = [
    "nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow",
    "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle",
]  # fmt: skip
BLAZEPOSE_NAMES = {
    0: "nose", 2: "l_eye", 5: "r_eye", 7: "l_ear", 8: "r_ear", 11: "l_shoulder",
    12: "r_shoulder", 13: "l_elbow", 14: "r_elbow", 15: "l_wrist", 16: "r_wrist", 23: "l_hip",
    24: "r_hip", 25: "l_knee", 26: "r_knee", 27: "l_ankle", 28: "r_ankle",
}  # fmt: skip


def distinct_points(n: int) -> np.ndarray:
    """``(n, 2)`` points that differ in both coordinates."""
    i = np.arange(n, dtype=np.float64)
    return np.stack([3.0 * i + 1.25, 200.0 - 2.0 * i], axis=1)


def random_pose(rng: np.random.Generator, width: int = 64, height: int = 48) -> Pose:
    xy = rng.uniform(0, 1, (NUM_KEYPOINTS, 2)) * [width, height]
    return Pose(xy, rng.random(NUM_KEYPOINTS) < 0.7)


# ----------------------------------------------------------------------------- constructors


def test_missing_has_no_valid_point() -> None:
    pose = Pose.missing()
    assert pose.num_valid == 0
    assert pose == Pose.from_arrays(np.zeros((18, 2)), np.zeros(18, bool))


def test_from_coco17_maps_every_named_point() -> None:
    xy = distinct_points(17)
    pose = Pose.from_coco17(xy)
    for coco_index, name in enumerate(COCO_NAMES):
        np.testing.assert_allclose(pose.xy[Keypoint[name.upper()]], xy[coco_index], err_msg=name)
    assert pose.valid.all()
    np.testing.assert_allclose(pose.xy[Keypoint.R_SHOULDER], xy[6])  # right comes from right


def test_from_blazepose33_maps_every_named_point() -> None:
    xy = distinct_points(33)
    pose = Pose.from_blazepose33(xy)
    for index, name in BLAZEPOSE_NAMES.items():
        np.testing.assert_allclose(pose.xy[Keypoint[name.upper()]], xy[index], err_msg=name)
    assert pose.valid.all()


@pytest.mark.parametrize(
    ("build", "count", "l_sho", "r_sho"),
    [(Pose.from_coco17, 17, 5, 6), (Pose.from_blazepose33, 33, 11, 12)],
)
def test_neck_is_shoulder_midpoint_valid_only_with_both(build, count, l_sho, r_sho) -> None:
    xy = distinct_points(count)
    scores = np.ones(count)
    neck = build(xy, scores, 0.5).xy[Keypoint.NECK]
    np.testing.assert_allclose(neck, (xy[l_sho] + xy[r_sho]) / 2, rtol=1e-6)
    for shoulder in (l_sho, r_sho):
        low = scores.copy()
        low[shoulder] = 0.1
        pose = build(xy, low, 0.5)
        assert not pose.valid[Keypoint.NECK]
        assert pose.num_valid == NUM_KEYPOINTS - 2


def test_score_threshold_is_strict_and_nonfinite_points_are_invalid() -> None:
    xy = distinct_points(17)
    xy[0] = np.nan  # nose
    scores = np.full(17, 0.9)
    scores[9] = 0.3  # l_wrist exactly at the threshold
    scores[10] = 0.31  # r_wrist just above
    pose = Pose.from_coco17(xy, scores, threshold=0.3)
    assert not pose.valid[Keypoint.NOSE]
    assert not pose.valid[Keypoint.L_WRIST]
    assert pose.valid[Keypoint.R_WRIST]
    assert pose.num_valid == NUM_KEYPOINTS - 2
    # COCO visibility flags: 0 = unlabeled is invalid with the default threshold 0.
    flags = np.full(17, 2)
    flags[13] = 0  # l_knee
    assert Pose.from_coco17(distinct_points(17), flags).valid.sum() == NUM_KEYPOINTS - 1


def test_blazepose_default_threshold_is_half() -> None:
    scores = np.full(33, 0.9)
    scores[16] = 0.5  # r_wrist: not above 0.5
    pose = Pose.from_blazepose33(distinct_points(33), scores)
    assert not pose.valid[Keypoint.R_WRIST]
    assert pose.valid[Keypoint.L_WRIST]


def test_blazepose_normalised_coordinates_scale_by_width_and_height() -> None:
    xy = np.zeros((33, 2))
    xy[0] = (0.25, 0.5)  # nose
    pose = Pose.from_blazepose33(xy, image_size=(200, 100))  # H=200, W=100
    np.testing.assert_allclose(pose.xy[Keypoint.NOSE], (25.0, 100.0))


@pytest.mark.parametrize(
    "call",
    [
        lambda: Pose.from_coco17(np.zeros((18, 2))),
        lambda: Pose.from_coco17(np.zeros((17, 3))),
        lambda: Pose.from_coco17(np.zeros((17, 2)), np.ones(18)),
        lambda: Pose.from_blazepose33(np.zeros((17, 2))),
        lambda: Pose.from_blazepose33(np.zeros((33, 2)), np.ones(17)),
        lambda: Pose.from_blazepose33(np.zeros((33, 2)), image_size=(0, 10)),
        lambda: Pose.from_blazepose33(np.zeros((33, 2)), image_size=(10,)),
    ],
)
def test_detector_bad_shapes_raise(call) -> None:
    with pytest.raises(ValueError, match=r"shape|image_size"):
        call()


# ----------------------------------------------------------------------------- flip


def test_flip_mirrors_x_exactly_and_swaps_sides() -> None:
    width = 40
    indices = np.full((18, 2), -1)
    indices[Keypoint.R_WRIST] = (3, 7)
    indices[Keypoint.NOSE] = (20, 2)
    flipped = Pose.from_indices(indices).flip(width)
    assert flipped.valid.sum() == 2
    assert flipped.valid[Keypoint.L_WRIST] and not flipped.valid[Keypoint.R_WRIST]
    # Pixel centre j + 0.5 goes to (W - 1 - j) + 0.5; y is untouched.
    np.testing.assert_array_equal(flipped.xy[Keypoint.L_WRIST], [width - 1 - 3 + 0.5, 7.5])
    np.testing.assert_array_equal(flipped.xy[Keypoint.NOSE], [width - 1 - 20 + 0.5, 2.5])
    np.testing.assert_array_equal(flipped.to_indices()[Keypoint.L_WRIST], [width - 1 - 3, 7])


def test_flip_uses_flip_permutation_for_every_point(rng) -> None:
    pose = random_pose(rng)
    flipped = pose.flip(64)
    for k in range(NUM_KEYPOINTS):
        partner = FLIP_PERMUTATION[k]
        assert flipped.valid[k] == pose.valid[partner]
        if pose.valid[partner]:
            np.testing.assert_allclose(
                flipped.xy[k], [64 - pose.xy[partner, 0], pose.xy[partner, 1]]
            )


def test_flip_twice_is_identity(rng) -> None:
    indices = rng.integers(-1, 60, (18, 2))
    pose = Pose.from_indices(indices)
    assert pose.flip(64).flip(64) == pose  # exact on pixel centres
    pose = random_pose(rng)
    twice = pose.flip(64).flip(64)
    np.testing.assert_array_equal(twice.valid, pose.valid)
    np.testing.assert_allclose(twice.xy, pose.xy, atol=1e-5)


@pytest.mark.parametrize("width", [0, -3, 2.5, True])
def test_flip_rejects_bad_width(width) -> None:
    with pytest.raises(ValueError, match="width"):
        Pose.missing().flip(width)


# ----------------------------------------------------------------------------- transform, bounds


def test_transform_resize_maps_pixel_centres_and_offsets() -> None:
    indices = np.full((18, 2), -1)
    indices[0] = (3, 5)
    pose = Pose.from_indices(indices)
    # Pixel j covers [j, j + 1); after a 2x resize it covers [2j, 2j + 2), centre 2j + 1.
    np.testing.assert_allclose(pose.transform((2, 2), (0, 0)).xy[0], (7.0, 11.0))
    np.testing.assert_allclose(pose.transform((0.5, 3.0), (-1.0, 2.0)).xy[0], (0.75, 18.5))
    assert pose.transform((2, 2), (0, 0)).valid[0] and not pose.transform((2, 2), (0, 0)).valid[1]


def test_transform_with_size_invalidates_outside_points() -> None:
    xy = np.zeros((18, 2))
    xy[:5] = [(0.0, 0.0), (9.99, 4.99), (10.0, 1.0), (1.0, 5.0), (-0.01, 1.0)]
    pose = Pose(xy, np.arange(18) < 5)
    kept = pose.transform((1, 1), (0, 0), size=(5, 10))
    np.testing.assert_array_equal(kept.valid[:5], [True, True, False, False, False])
    assert not kept.valid[5:].any()
    np.testing.assert_array_equal(pose.out_of_bounds(5, 10)[:5], [False, False, True, True, True])
    assert not pose.out_of_bounds(5, 10)[5:].any()  # invalid points are never out of bounds
    # The offset moves points in or out before the bounds test.
    assert pose.transform((1, 1), (0.5, 0), size=(5, 10)).valid[:5].tolist() == [
        True, False, False, False, True,
    ]  # fmt: skip


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scale": (1.0,), "offset": (0, 0)},
        {"scale": (1, np.inf), "offset": (0, 0)},
        {"scale": (1, 1), "offset": (0, np.nan)},
        {"scale": (1, 1), "offset": (0, 0), "size": (10, -1)},
    ],
)
def test_transform_rejects_bad_arguments(kwargs) -> None:
    with pytest.raises(ValueError, match=r"scale|offset|size"):
        Pose.missing().transform(**kwargs)


# ----------------------------------------------------------------------------- file indices


def test_indices_round_trip(rng) -> None:
    indices = rng.integers(0, 100, (18, 2))
    indices[[3, 9]] = -1
    pose = Pose.from_indices(indices)
    np.testing.assert_array_equal(pose.valid, ~np.isin(np.arange(18), [3, 9]))
    np.testing.assert_array_equal(pose.xy[pose.valid], indices[pose.valid] + 0.5)
    back = pose.to_indices()
    assert back.dtype == np.int64
    np.testing.assert_array_equal(back, indices)


def test_half_missing_point_is_missing_and_floor_picks_the_pixel() -> None:
    indices = np.zeros((18, 2), dtype=np.int64)
    indices[4] = (7, -1)
    pose = Pose.from_indices(indices.astype(np.float64))  # integral floats are accepted
    assert not pose.valid[4] and pose.num_valid == 17
    np.testing.assert_array_equal(pose.to_indices()[4], [-1, -1])
    xy = np.full((18, 2), 3.999)
    xy[0] = (0.0, 12.5)
    np.testing.assert_array_equal(Pose(xy, np.ones(18, bool)).to_indices()[:2], [[0, 12], [3, 3]])


@pytest.mark.parametrize(
    ("value", "dtype"), [(-2, np.int64), (-0.5, np.float64), (np.nan, np.float64)]
)
def test_from_indices_rejects_non_indices(value, dtype) -> None:
    indices = np.zeros((18, 2), dtype=dtype)
    indices[Keypoint.L_KNEE, 1] = value
    with pytest.raises(ValueError, match=r"l_knee y="):
        Pose.from_indices(indices)


def test_from_indices_rejects_bad_shape_and_dtype() -> None:
    with pytest.raises(ValueError, match="shape"):
        Pose.from_indices(np.zeros((17, 2), np.int64))
    with pytest.raises(ValueError, match="dtype"):
        Pose.from_indices(np.full((18, 2), "1"))


def test_to_indices_refuses_points_left_of_the_image() -> None:
    xy = np.ones((18, 2))
    xy[Keypoint.R_ANKLE] = (-0.25, 4.0)
    with pytest.raises(ValueError, match="r_ankle"):
        Pose(xy, np.ones(18, bool)).to_indices()


# ----------------------------------------------------------------------------- batching


def test_stack_poses(rng) -> None:
    poses = [random_pose(rng) for _ in range(3)]
    xy, valid = stack_poses(poses)
    assert xy.shape == (3, 18, 2) and xy.dtype == torch.float32
    assert valid.shape == (3, 18) and valid.dtype == torch.bool
    for b, pose in enumerate(poses):
        np.testing.assert_array_equal(xy[b].numpy(), pose.xy)
        np.testing.assert_array_equal(valid[b].numpy(), pose.valid)
    xy, valid = stack_poses([])
    assert xy.shape == (0, 18, 2) and valid.shape == (0, 18)
    with pytest.raises(TypeError, match="ndarray"):
        stack_poses([poses[0], np.zeros((18, 2))])


def test_from_indices_reads_sub_pixel_values_as_continuous_indices() -> None:
    indices = np.zeros((18, 2))
    indices[Keypoint.NOSE] = (3.25, 7.5)
    pose = Pose.from_indices(indices)
    np.testing.assert_allclose(pose.xy[Keypoint.NOSE], [3.75, 8.0])
    np.testing.assert_array_equal(pose.to_indices()[Keypoint.NOSE], [3, 8])
