"""Tests for posetransfer.infer.retarget: global pose normalisation and bone-length retargeting."""

from __future__ import annotations

import numpy as np
import pytest

from posetransfer.conventions import LIMBS, NUM_KEYPOINTS, Keypoint
from posetransfer.infer.retarget import (
    KINEMATIC_TREE,
    GlobalNormalisation,
    bone_lengths,
    fit_global_normalisation,
    retarget_bones,
    retarget_sequence,
)
from posetransfer.pose.keypoints import Pose

K = Keypoint
#: A person standing facing the camera: neck at (100, 50), ankles at y=190 (140 px neck-feet).
STANDING = {
    K.NOSE: (100, 30), K.NECK: (100, 50), K.R_SHOULDER: (85, 52), K.R_ELBOW: (80, 80),
    K.R_WRIST: (78, 105), K.L_SHOULDER: (115, 52), K.L_ELBOW: (120, 80), K.L_WRIST: (122, 105),
    K.R_HIP: (92, 110), K.R_KNEE: (91, 150), K.R_ANKLE: (90, 190), K.L_HIP: (108, 110),
    K.L_KNEE: (109, 150), K.L_ANKLE: (110, 190), K.R_EYE: (95, 26), K.L_EYE: (105, 26),
    K.R_EAR: (90, 28), K.L_EAR: (110, 28),
}  # fmt: skip
ALL = np.ones(NUM_KEYPOINTS, bool)


def _pose(points=STANDING, drop=()) -> Pose:
    xy = np.zeros((NUM_KEYPOINTS, 2))
    for k, p in points.items():
        xy[k] = p
    valid = ALL.copy()
    valid[list(drop)] = False
    return Pose(xy, valid)


def _directions(pose: Pose) -> np.ndarray:
    parent, child = np.asarray(KINEMATIC_TREE).T
    bones = pose.xy[child].astype(np.float64) - pose.xy[parent]
    return bones / np.linalg.norm(bones, axis=1, keepdims=True)


def _other_person(rng: np.random.Generator) -> Pose:
    """A differently proportioned, differently posed person: every bone turned and resized."""
    xy = np.zeros((NUM_KEYPOINTS, 2))
    xy[K.NECK] = (300, 80)
    source_xy = _pose().xy.astype(np.float64)
    for parent, child in KINEMATIC_TREE:
        bone = source_xy[child] - source_xy[parent]
        angle = rng.uniform(-0.6, 0.6)
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        xy[child] = xy[parent] + rng.uniform(0.6, 1.8) * rot @ bone
    return Pose(xy, ALL)


def test_kinematic_tree_spans_the_skeleton_from_the_neck() -> None:
    limbs = {frozenset(limb) for limb in LIMBS}
    assert all(frozenset(bone) in limbs for bone in KINEMATIC_TREE)
    reached = {int(K.NECK)}
    for parent, child in KINEMATIC_TREE:  # parents come before their children
        assert parent in reached and child not in reached
        reached.add(int(child))
    assert reached == set(range(NUM_KEYPOINTS))


def test_bone_lengths_by_hand() -> None:
    lengths = bone_lengths(_pose(drop=[K.L_EAR]))
    bones = list(KINEMATIC_TREE)
    assert lengths[bones.index((K.NECK, K.NOSE))] == pytest.approx(20.0)
    assert lengths[bones.index((K.R_HIP, K.R_KNEE))] == pytest.approx(np.hypot(1, 40))
    assert np.isnan(lengths[bones.index((K.L_EYE, K.L_EAR))])


def test_retargeted_bones_have_source_lengths_and_driving_directions(rng) -> None:
    source = _pose()
    for _ in range(5):
        driving = _other_person(rng)
        out = retarget_bones(driving, source, anchor="neck")
        np.testing.assert_allclose(bone_lengths(out), bone_lengths(source), rtol=1e-5)
        np.testing.assert_allclose(_directions(out), _directions(driving), atol=1e-5)
        np.testing.assert_array_equal(out.xy[K.NECK], driving.xy[K.NECK])
        assert np.array_equal(out.valid, driving.valid)


def test_feet_anchor_keeps_the_ground_contact(rng) -> None:
    driving = _other_person(rng)
    out = retarget_bones(driving, _pose(), anchor="feet")
    feet = [K.R_ANKLE, K.L_ANKLE]
    np.testing.assert_allclose(out.xy[feet].mean(0), driving.xy[feet].mean(0), atol=1e-3)
    np.testing.assert_allclose(bone_lengths(out), bone_lengths(_pose()), rtol=1e-5)


def test_missing_source_bone_uses_its_mirror_then_the_driving_length(rng) -> None:
    driving = _other_person(rng)
    bones = list(KINEMATIC_TREE)
    left_ear, right_ear = bones.index((K.L_EYE, K.L_EAR)), bones.index((K.R_EYE, K.R_EAR))
    out = retarget_bones(driving, _pose(drop=[K.L_EAR]))
    assert bone_lengths(out)[left_ear] == pytest.approx(bone_lengths(_pose())[right_ear], 1e-5)
    out = retarget_bones(driving, _pose(drop=[K.L_EAR, K.R_EAR]))
    assert bone_lengths(out)[left_ear] == pytest.approx(bone_lengths(driving)[left_ear], 1e-5)


def test_point_with_missing_parent_keeps_its_position_and_roots_its_subtree(rng) -> None:
    full = _other_person(rng)
    driving = Pose(full.xy, ~np.isin(np.arange(NUM_KEYPOINTS), [K.R_ELBOW, K.NECK]))
    out = retarget_bones(driving, _pose(), anchor="neck")
    for root in (K.R_WRIST, K.R_SHOULDER, K.R_HIP, K.NOSE):  # their parents are missing
        np.testing.assert_array_equal(out.xy[root], driving.xy[root])
    bones = list(KINEMATIC_TREE)
    knee = bones.index((K.R_HIP, K.R_KNEE))
    assert bone_lengths(out)[knee] == pytest.approx(bone_lengths(_pose())[knee])
    assert not out.valid[K.R_ELBOW] and not out.valid[K.NECK]


@pytest.mark.parametrize("bones", [True, False])
def test_scaled_shifted_copy_maps_back_onto_the_source(bones: bool) -> None:
    source = _pose()
    scale, shift = 2.5, np.array([40.0, -30.0])
    sway = [0.0, 6.0, -4.0, 10.0, 0.0]  # the driving person also moves sideways
    driving: list[Pose | None] = [Pose(source.xy * scale + shift + [dx, 0.0], ALL) for dx in sway]
    driving.insert(2, None)
    out, norm = retarget_sequence(source, driving, bones=bones)
    assert norm.measure == "feet"
    assert norm.scale == pytest.approx(1 / scale)
    assert out[2] is None
    moved = [p for p in out if p is not None]
    expected_x = np.median(sway) / scale  # the median position lands on the source
    for pose, dx in zip(moved, sway, strict=True):
        np.testing.assert_allclose(
            pose.xy, source.xy + np.array([dx / scale - expected_x, 0]), atol=2e-3
        )


def test_depth_interpolates_height_between_farthest_and_closest_frames() -> None:
    # Walking towards the camera: feet from y=100 to y=300, height 0.5 * (y - 20) (perspective);
    # the median frame (feet at y=200) is 90 px tall, the source 140 px.
    source = _pose()
    driving = []
    for y in np.linspace(100, 300, 21):
        height = 0.5 * (y - 20)
        xy = (source.xy - [100, 190]) * (height / 140) + [250, y]
        driving.append(Pose(xy, ALL))
    norm = fit_global_normalisation(source, driving, quantile=0.1)
    assert norm.scale == pytest.approx(140 / 90, rel=1e-3)
    np.testing.assert_allclose(norm.offset, [100, 190] - norm.scale * np.array([250, 200]))
    out = norm.apply(driving[10])
    np.testing.assert_allclose(out.xy, source.xy, atol=1e-3)  # median frame -> source
    assert norm.apply(driving[-1]).xy[K.R_ANKLE, 1] > 190  # closer frames stay lower and larger


def test_crouching_frames_do_not_shrink_the_reference_height() -> None:
    source = _pose()
    squat = source.xy.copy()
    squat[[K.NOSE, K.NECK, K.R_SHOULDER, K.L_SHOULDER, K.R_EYE, K.L_EYE, K.R_EAR, K.L_EAR]] += [
        0,
        50,
    ]
    driving = [Pose(source.xy, ALL)] * 18 + [Pose(squat, ALL)] * 2
    assert fit_global_normalisation(source, driving).scale == pytest.approx(1.0)


def test_falls_back_to_the_torso_without_ankles() -> None:
    upper_body = _pose(drop=[K.R_ANKLE, K.L_ANKLE, K.R_KNEE, K.L_KNEE])
    driving = [Pose(_pose().xy * 2.0, ALL)] * 3
    norm = fit_global_normalisation(upper_body, driving)
    assert norm.measure == "hips"
    assert norm.scale == pytest.approx(0.5)
    np.testing.assert_allclose(norm.apply(driving[0]).xy, _pose().xy, atol=1e-3)


def test_errors() -> None:
    head_only = _pose(drop=[k for k in K if k not in (K.NOSE, K.R_EYE, K.L_EYE)])
    with pytest.raises(ValueError, match="neck plus an ankle or a hip"):
        fit_global_normalisation(head_only, [_pose()])
    with pytest.raises(ValueError, match="0 driving frames"):
        fit_global_normalisation(_pose(), [None, None])
    with pytest.raises(ValueError, match="quantile"):
        fit_global_normalisation(_pose(), [_pose()], quantile=0.0)
    with pytest.raises(ValueError, match="anchor"):
        retarget_bones(_pose(), _pose(), anchor="hips")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="source must be a Pose"):
        fit_global_normalisation(None, [_pose()])  # type: ignore[arg-type]


def test_normalisation_apply_is_the_affine_map() -> None:
    norm = GlobalNormalisation(2.0, np.array([3.0, -1.0]))
    np.testing.assert_allclose(norm.apply(_pose()).xy, _pose().xy * 2 + [3, -1], atol=1e-4)
