"""posetransfer.infer.person_box: the person box from keypoints and mask (no detector needed)."""

from __future__ import annotations

import numpy as np
import pytest

from posetransfer.infer.person_box import box_area, person_bounds, person_box
from posetransfer.pose.keypoints import Pose


def _pose(points: dict[int, tuple[float, float]]) -> Pose:
    xy = np.zeros((18, 2), np.float32)
    valid = np.zeros(18, bool)
    for k, point in points.items():
        xy[k], valid[k] = point, True
    return Pose(xy, valid)


def test_bounds_of_keypoints_ignore_invalid_points() -> None:
    pose = _pose({0: (10.0, 20.0), 4: (30.0, 60.0), 9: (12.5, 41.0)})
    assert person_bounds(pose) == (10.0, 20.0, 30.0, 60.0)


def test_mask_pixels_count_by_their_extent() -> None:
    mask = np.zeros((40, 30), np.float32)
    mask[10:20, 5:10] = 0.9
    mask[30, 25] = 0.5  # not above the threshold
    assert person_bounds(Pose.missing(), mask) == (5.0, 10.0, 10.0, 20.0)
    assert person_bounds(Pose.missing(), mask, mask_threshold=0.4) == (5.0, 10.0, 26.0, 31.0)


def test_mask_unites_with_keypoints_within_reach_only() -> None:
    pose = _pose({0: (20.0, 20.0), 1: (30.0, 40.0)})  # box 10 x 20: reach 0.25 -> 5 px
    mask = np.zeros((100, 100), np.float32)
    mask[16:18, 22:24] = 1.0  # hair above the top point, within reach
    mask[90:95, 90:95] = 1.0  # someone else, far away
    assert person_bounds(pose, mask) == (20.0, 16.0, 30.0, 40.0)
    assert person_bounds(pose, mask, reach=4.0) == (20.0, 16.0, 95.0, 95.0)
    assert person_bounds(pose, mask, reach=3.0)[2] == 30.0  # window ends at 90 < centre 90.5
    assert person_bounds(pose, mask, reach=0.0) == (20.0, 20.0, 30.0, 40.0)


def test_person_box_adds_the_margin_and_takes_the_aspect() -> None:
    pose = _pose({0: (10.0, 20.0), 1: (30.0, 60.0)})  # 20 x 40; margin 0.1 of 40 -> 4 px
    box = person_box(pose, None, (100, 100), (256, 176), margin=0.1)
    # 28 x 48 grows to the aspect 176 / 256: width 48 * 0.6875 = 33, about the centre (20, 40).
    assert box == pytest.approx((3.5, 16.0, 36.5, 64.0))
    wide = person_box(
        _pose({0: (0.0, 0.0), 1: (100.0, 10.0)}), None, (50, 200), (64, 128), margin=0
    )
    assert wide == pytest.approx((0.0, -20.0, 100.0, 30.0))  # wider than 2:1 grows in height


def test_person_box_holds_the_mask_and_may_leave_the_image() -> None:
    mask = np.zeros((60, 40), np.float32)
    mask[0:60, 0:4] = 1.0  # a person cut by the left and top edges
    box = person_box(_pose({0: (2.0, 10.0), 1: (3.0, 50.0)}), mask, (60, 40), margin=0.1)
    left, top, right, bottom = box
    assert left < 0 and top < 0 and right > 4 and bottom > 60
    assert (right - left) / (bottom - top) == pytest.approx(176 / 256)


def test_box_area() -> None:
    assert box_area((1.0, 2.0, 4.0, 6.0)) == 12.0
    assert box_area((4.0, 2.0, 1.0, 6.0)) == 0.0


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="nothing to put a box around"):
        person_bounds(Pose.missing(), np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match=r"mask must be an \(H, W\) array"):
        person_bounds(Pose.missing(), np.zeros((4, 4, 1), np.float32))
    with pytest.raises(ValueError, match="does not match image_size"):
        person_box(_pose({0: (1.0, 1.0), 1: (2.0, 3.0)}), np.zeros((4, 5)), (5, 4))
    with pytest.raises(ValueError, match="reach"):
        person_bounds(_pose({0: (1.0, 1.0)}), reach=-1.0)
    with pytest.raises(ValueError, match="single point"):
        person_box(_pose({0: (1.0, 1.0)}), None, (10, 10))
