"""posetransfer.data.pairing: the pose-change measure and the pair rule."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from posetransfer.data.pairing import PairRule, pose_change, pose_changes, select_pairs
from posetransfer.pose.keypoints import Pose


def _pose(xy: list[tuple[float, float]] | np.ndarray, valid: np.ndarray | None = None) -> Pose:
    arr = np.zeros((18, 2), np.float32)
    arr[: len(xy)] = xy
    mask = np.zeros(18, bool)
    mask[: len(xy)] = True
    return Pose(arr, mask if valid is None else valid)


SQUARE = [(10.0, 10.0), (30.0, 10.0), (30.0, 30.0), (10.0, 30.0)]


def _random_pose(rng: np.random.Generator) -> Pose:
    return Pose(rng.uniform(0, 100, (18, 2)), rng.random(18) < 0.8)


def test_shift_and_scale_are_no_pose_change() -> None:
    a = _pose([*SQUARE, (17.0, 40.0), (25.0, 3.0)])
    moved = _pose(np.asarray(a.xy[:6]) * 1.7 + (40.0, -5.0))
    assert pose_change(a, moved) == pytest.approx(0.0, abs=1e-6)
    assert pose_change(a, a) == 0.0


def test_hand_computed_change() -> None:
    # Each corner of the square moves to the next one: same centroid and radius, every point
    # moves by the side length, 20 px.
    turned = _pose(SQUARE[1:] + SQUARE[:1])
    assert pose_change(_pose(SQUARE), turned, min_common=4) == pytest.approx(20.0)
    # The same seen twice as large and elsewhere: still 20 px at the mean of the two scales
    # (radius 14.14 and 28.28 -> 21.21, so 20 * 21.21 / 14.14 = 30 px).
    bigger = _pose(np.asarray(SQUARE[1:] + SQUARE[:1]) * 2.0 + 7.0)
    assert pose_change(_pose(SQUARE), bigger, min_common=4) == pytest.approx(30.0)


def test_symmetric_and_only_common_points_count() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = _random_pose(rng), _random_pose(rng)
        assert pose_change(a, b) == pytest.approx(pose_change(b, a))
    a = _pose([*SQUARE, (0.0, 0.0)])
    b_valid = np.zeros(18, bool)
    b_valid[:4] = True
    b = Pose(np.asarray(a.xy), b_valid)  # the fifth point is missing in b
    assert pose_change(a, b, min_common=4) == pytest.approx(0.0, abs=1e-6)


def test_too_few_common_points_or_a_single_spot_is_nan() -> None:
    assert np.isnan(pose_change(_pose(SQUARE), _pose(SQUARE), min_common=5))
    spot = _pose([(5.0, 5.0)] * 6)
    assert np.isnan(pose_change(spot, _pose([*SQUARE, (1.0, 2.0), (3.0, 1.0)])))


def test_vectorised_matches_one_by_one() -> None:
    rng = np.random.default_rng(1)
    poses = [_random_pose(rng) for _ in range(12)]
    target = _random_pose(rng)
    one_by_one = [pose_change(p, target, min_common=6) for p in poses]
    np.testing.assert_allclose(pose_changes(poses, target, min_common=6), one_by_one)
    assert pose_changes([], target).shape == (0,)


def _dataset(rng: np.random.Generator) -> tuple[dict[str, Pose], dict[str, list[str]]]:
    poses, groups = {}, {}
    for person in ("ann", "bob"):
        groups[person] = [f"{person}_{k}.png" for k in range(8)]
        poses.update({name: _random_pose(rng) for name in groups[person]})
    return poses, groups


def test_select_pairs_is_the_brute_force_rule() -> None:
    poses, groups = _dataset(np.random.default_rng(2))
    within = [(a, b) for names in groups.values() for a, b in itertools.permutations(names, 2)]
    change = {pair: pose_change(poses[pair[0]], poses[pair[1]], min_common=6) for pair in within}
    threshold = float(np.nanmedian(list(change.values())))
    rule = PairRule(min_change=threshold, min_common=6, per_image=None)
    expected = sorted(pair for pair in within if change[pair] >= threshold)
    got = select_pairs(poses, groups, rule)
    assert got == expected and 0 < len(got) < 2 * 8 * 7


def test_per_image_cap_is_seeded_and_independent_of_group_order() -> None:
    poses, groups = _dataset(np.random.default_rng(3))
    rule = PairRule(min_change=0.0, min_common=2, per_image=3, seed=5)
    pairs = select_pairs(poses, groups, rule)
    per_target = {t: sum(1 for _, b in pairs if b == t) for _, t in pairs}
    assert set(per_target.values()) == {3}
    reordered = {k: list(reversed(v)) for k, v in reversed(groups.items())}
    assert select_pairs(poses, reordered, rule) == pairs
    other_seed = select_pairs(poses, groups, PairRule(0.0, 2, 3, seed=6))
    assert other_seed != pairs and len(other_seed) == len(pairs)


def test_tracks_keep_pairs_of_one_sequence_within_a_track() -> None:
    poses, groups = _dataset(np.random.default_rng(4))
    names = groups["ann"]
    # ann_0..3: video v, tracks 0 and 1; ann_4..7: video w, one track.
    tracks = {n: ("v", k // 2) for k, n in enumerate(names[:4])}
    tracks.update({n: ("w", 0) for n in names[4:]})
    tracks.update({n: ("b", 0) for n in groups["bob"]})
    rule = PairRule(min_change=0.0, min_common=2, per_image=None)
    pairs = set(select_pairs(poses, {"ann": names}, rule, tracks))
    assert ("ann_0.png", "ann_1.png") in pairs and ("ann_0.png", "ann_2.png") not in pairs
    assert ("ann_0.png", "ann_5.png") in pairs  # other video of the same identity: allowed
    assert len(pairs) == 2 * 2 * 1 + 4 * 3 + 2 * 4 * 4


def test_bad_rules_are_refused() -> None:
    for kwargs in ({"min_change": -1.0}, {"min_common": 1}, {"per_image": 0}, {"seed": -1}):
        with pytest.raises(ValueError):
            PairRule(**kwargs)
