"""Tests for the app's target poses (posetransfer.app.poses): the built-in library, the canvas,
the pose as JSON text and as a table, editing and drawing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from posetransfer.app.config import AppInputError
from posetransfer.app.poses import (
    CANVAS,
    JOINT_NAMES,
    MARGIN,
    draw_canvas,
    load_library,
    move_joint,
    pose_from_rows,
    pose_from_text,
    pose_to_rows,
    pose_to_text,
    to_canvas,
)
from posetransfer.infer.framing import box_from_pose
from posetransfer.pose.draw import JOINT_COLORS
from posetransfer.pose.keypoints import Pose
from tests.infer.real_frames import REFERENCES


def _reference(file: str, person: int) -> Pose:
    points = REFERENCES[(file, person)]
    xy = np.array([p if p is not None else (0.0, 0.0) for p in points], np.float32)
    return Pose(xy, np.array([p is not None for p in points]))


def test_library_has_real_and_synthetic_poses_inside_the_canvas() -> None:
    library = load_library()
    assert len(library) >= 8
    assert len({p.name for p in library}) == len(library)
    kinds = {p.origin.split(":")[0] for p in library}
    assert kinds == {"real", "synthetic"}
    height, width = CANVAS
    for entry in library:
        pose = entry.pose
        assert pose.num_valid >= 12, entry.name
        xy = pose.xy[pose.valid]
        assert (xy >= 0).all() and (xy[:, 0] <= width).all() and (xy[:, 1] <= height).all()
        # framed by its own box: the box touches the margin on its longer relative side
        left, top, right, bottom = box_from_pose(pose)
        assert min(left, top, width - right, height - bottom) < max(width, height) * MARGIN


def test_real_library_poses_are_the_detected_keypoints_framed() -> None:
    """Each real entry is the reference detection of its fixture frame, framed into the canvas."""
    real = [p for p in load_library() if p.origin.startswith("real")]
    assert len(real) >= 4
    for entry in real:
        path, person = entry.origin.removeprefix("real: ").split(", person ")
        expected = to_canvas(_reference(path.rsplit("/", 1)[1], int(person)))
        np.testing.assert_array_equal(entry.pose.valid, expected.valid)
        np.testing.assert_allclose(entry.pose.xy, expected.xy, atol=0.051)  # one decimal kept


def test_to_canvas_is_invariant_to_where_and_how_big_the_person_is() -> None:
    pose = _reference("single_cam02_f030.jpg", 0)
    moved = pose.transform((3.0, 3.0), (500.0, 40.0))
    np.testing.assert_allclose(to_canvas(moved).xy, to_canvas(pose).xy, atol=1e-3)
    with pytest.raises(AppInputError, match="3 keypoints; at least 4"):
        to_canvas(Pose(pose.xy, np.arange(18) < 3))


def test_text_round_trip_and_missing_points() -> None:
    pose = move_joint(load_library()[0].pose, JOINT_NAMES.index("l_ear"), None)
    text = pose_to_text(pose)
    points = json.loads(text)
    assert len(points) == 18 and points[17] is None
    back = pose_from_text(text)
    np.testing.assert_array_equal(back.valid, pose.valid)
    np.testing.assert_allclose(back.xy, pose.xy, atol=0.051)
    assert pose_from_text(json.dumps({"keypoints": points})) == back


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no target pose"),
        ("[1, 2", "not valid JSON"),
        ("[[1, 2]]", "list of 18"),
        (json.dumps([[1, 2]] * 17 + [[1]]), "keypoint l_ear is \\[1\\], not"),
        (json.dumps([[1, 2]] * 17 + [["a", 2]]), "keypoint l_ear is"),
        (json.dumps([[1, 2]] * 17 + [[True, 2]]), "keypoint l_ear is"),
        (json.dumps([[1, 2]] * 17 + [[500, 2]]), "outside the 176x256 canvas"),
        (json.dumps([[1, 2]] * 3 + [None] * 15), "3 keypoints; at least 4"),
        ("[NaN, 1]", "list of 18"),
    ],
)
def test_bad_pose_text_is_a_message(text: str, message: str) -> None:
    with pytest.raises(AppInputError, match=message):
        pose_from_text(text)


def test_nan_point_is_refused() -> None:
    with pytest.raises(AppInputError, match="keypoint nose"):
        pose_from_text("[[NaN, 1]" + ", [1, 2]" * 17 + "]")


def test_rows_round_trip_and_edits() -> None:
    pose = load_library()[1].pose
    rows = pose_to_rows(pose)
    assert [r[0] for r in rows] == list(JOINT_NAMES)
    for k in range(18):
        expected = [f"{pose.xy[k, 0]:.1f}", f"{pose.xy[k, 1]:.1f}"] if pose.valid[k] else ["", ""]
        assert rows[k][1:] == expected
    assert pose_to_rows(move_joint(pose, 4, None))[4] == ["r_wrist", "", ""]
    assert pose_from_rows(rows) == pose_from_text(pose_to_text(pose))
    rows[4] = ["r_wrist", "10", " 20 "]  # strings from the table are fine
    rows[17] = ["l_ear", None, None]
    rows[16] = ["r_ear", float("nan"), 3.0]  # pandas shows an emptied cell as NaN
    edited = pose_from_rows(rows)
    np.testing.assert_allclose(edited.xy[4], [10, 20])
    assert not edited.valid[16] and not edited.valid[17]
    with pytest.raises(AppInputError, match="keypoint nose: 'left'"):
        pose_from_rows([["nose", "left", 3], *rows[1:]])
    with pytest.raises(AppInputError, match="needs 18 rows, got 17"):
        pose_from_rows(rows[:17])


def test_move_joint_clips_to_the_canvas() -> None:
    pose = load_library()[0].pose
    moved = move_joint(pose, 4, (-10.0, 1000.0))
    np.testing.assert_allclose(moved.xy[4], [0.0, CANVAS[0]])
    assert moved.valid[4]
    np.testing.assert_array_equal(np.delete(moved.xy, 4, 0), np.delete(pose.xy, 4, 0))
    with pytest.raises(AppInputError, match="joint index 18"):
        move_joint(pose, 18, (1.0, 1.0))


def test_draw_canvas_puts_joints_where_the_pose_says() -> None:
    pose = load_library()[0].pose
    image = draw_canvas(pose)
    assert image.shape == (*CANVAS, 3) and image.dtype == np.uint8
    for k in np.flatnonzero(pose.valid):
        x, y = np.floor(pose.xy[k]).astype(int)
        if k not in (14, 15, 16, 17):  # face points overlap each other
            assert tuple(image[y, x]) == JOINT_COLORS[k], JOINT_NAMES[k]
    ringed = draw_canvas(pose, selected=0)
    assert (ringed != image).any() and (ringed == 0).all(axis=2).any()  # a black ring
    small = draw_canvas(pose, size=(128, 88))
    assert small.shape == (128, 88, 3)
    assert (draw_canvas(None) == 255).all()
