"""posetransfer.infer.detect on real frames (skipped, with the reason, without the pose extra)."""

from __future__ import annotations

import builtins
import logging
import socket
from collections.abc import Iterator

import numpy as np
import pytest

pytest.importorskip(
    "mediapipe", reason="the 'pose' extra is not installed: pip install 'posetransfer[pose]'"
)

from posetransfer.infer import pose_backend
from posetransfer.infer.detect import (
    DetectorConfig,
    NoPersonError,
    PoseBackendMissingError,
    PoseDetector,
    detect_sequence,
)
from posetransfer.infer.images import load_image
from tests.infer.real_frames import FIXTURES, REFERENCES, assert_close_to_reference

SINGLE = sorted(name for name, index in REFERENCES if name.startswith("single"))
MULTI = sorted({name for name, index in REFERENCES if index == 1})


@pytest.fixture(scope="module")
def detector() -> Iterator[PoseDetector]:
    with PoseDetector() as det:
        yield det


@pytest.fixture(scope="module")
def found(detector: PoseDetector) -> dict[str, list]:
    """Every person found in every committed frame, largest first."""
    return {
        path.name: detector.detect_all(load_image(path), path.name)
        for path in sorted(FIXTURES.glob("*.jpg"))
    }


@pytest.mark.parametrize("key", sorted(REFERENCES), ids=lambda k: f"{k[0]}#{k[1]}")
def test_keypoints_match_the_references(found: dict[str, list], key: tuple[str, int]) -> None:
    name, index = key
    assert len(found[name]) > index
    assert_close_to_reference(found[name][index].pose, key)


@pytest.mark.parametrize("name", MULTI)
def test_two_people_are_found_and_ordered_by_size(found: dict[str, list], name: str) -> None:
    people = found[name]
    assert len(people) == 2
    assert people[0].size > people[1].size
    # Two different people: their tight boxes' centres are far apart.
    centres = [np.add(d.bounds[:2], d.bounds[2:]) / 2 for d in people]
    assert np.hypot(*(centres[0] - centres[1])) > 20


def test_detect_picks_a_person_by_size_and_warns(
    detector: PoseDetector, caplog: pytest.LogCaptureFixture
) -> None:
    image = load_image(FIXTURES / MULTI[0])
    with caplog.at_level(logging.WARNING, logger="posetransfer.infer.detect"):
        second = detector.detect(image, MULTI[0], person=1)
    assert f"{MULTI[0]}: found 2 people" in caplog.text
    assert_close_to_reference(second.pose, (MULTI[0], 1))
    with pytest.raises(
        NoPersonError, match=rf"{MULTI[0]}: found 2 people, so there is no person 2"
    ):
        detector.detect(image, MULTI[0], person=2)


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.jpg")))
def test_box_has_the_aspect_and_holds_keypoints_and_mask(found: dict[str, list], name: str) -> None:
    image_size = load_image(FIXTURES / name).shape[:2]
    for det in found[name]:
        left, top, right, bottom = det.box
        assert (right - left) / (bottom - top) == pytest.approx(176 / 256)
        b_left, b_top, b_right, b_bottom = det.bounds
        assert left < b_left and top < b_top and right > b_right and bottom > b_bottom  # margin
        xy = det.pose.xy[det.pose.valid]
        assert (xy >= [b_left, b_top]).all() and (xy <= [b_right, b_bottom]).all()
        assert det.mask.shape == image_size and det.mask.dtype == np.float32
        assert det.mask.min() >= 0.0 and det.mask.max() <= 1.0
        if len(found[name]) == 1:  # the whole mask of a lone person lies in the box
            rows, cols = np.nonzero(det.mask > 0.5)
            assert cols.min() >= left and cols.max() + 1 <= right
            assert rows.min() >= top and rows.max() + 1 <= bottom


@pytest.mark.parametrize("name", SINGLE)
def test_mask_covers_the_torso_and_not_the_corners(found: dict[str, list], name: str) -> None:
    (det,) = found[name]
    for k in (1, 8, 11):  # neck, hips: inside the body, so the mask is aligned with the image
        x, y = np.floor(det.pose.xy[k]).astype(int)
        assert det.mask[y, x] > 0.5, k
    assert det.mask[:5, :5].max() < 0.5 and det.mask[-5:, -5:].max() < 0.5
    assert det.scores.shape == (18,) and (det.scores[det.pose.valid] > 0.5).all()


def test_blank_image_raises_no_person_error_naming_the_file(detector: PoseDetector) -> None:
    blank = np.full((256, 176, 3), 128, np.uint8)
    assert detector.detect_all(blank, "blank.png") == []
    with pytest.raises(NoPersonError, match=r"blank\.png: no person found"):
        detector.detect(blank, "blank.png")


def test_a_person_with_nothing_to_box_is_left_out(detector: PoseDetector) -> None:
    class Landmark:
        x, y, visibility = 0.5, 0.5, 0.1  # every point below the visibility threshold

    assert detector._detection([Landmark()] * 33, None, (64, 48)) is None


def test_bad_inputs_are_refused(detector: PoseDetector) -> None:
    with pytest.raises(ValueError, match=r"photo\.png must be uint8"):
        detector.detect(np.zeros((64, 64, 3), np.float32), "photo.png")
    with pytest.raises(ValueError, match=r"photo\.png must be an \(H, W, 3\)"):
        detector.detect(np.zeros((64, 64), np.uint8), "photo.png")
    with pytest.raises(ValueError, match="person must be a non-negative index"):
        detector.detect(np.zeros((64, 64, 3), np.uint8), person=-1)
    with pytest.raises(RuntimeError, match="not open"):
        PoseDetector().detect_all(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="num_poses"):
        DetectorConfig(num_poses=0)
    with pytest.raises(ValueError, match="aspect"):
        DetectorConfig(aspect=(256, 0))


def test_aspect_and_margin_shape_the_box(detector: PoseDetector, found: dict[str, list]) -> None:
    name = SINGLE[0]
    image = load_image(FIXTURES / name)
    with PoseDetector(DetectorConfig(num_poses=1, aspect=(128, 128), margin=0.0)) as square:
        det = square.detect(image, name)
    left, top, right, bottom = det.box
    assert right - left == pytest.approx(bottom - top)
    b_left, b_top, b_right, b_bottom = det.bounds
    side = max(b_right - b_left, b_bottom - b_top)  # no margin: the box just holds the bounds
    assert right - left == pytest.approx(side)
    assert_close_to_reference(det.pose, (name, 0))


def test_without_masks_the_keypoints_are_the_same_and_boxes_hold_them(
    found: dict[str, list],
) -> None:
    with PoseDetector(DetectorConfig(masks=False)) as unmasked:
        for name in SINGLE + MULTI:
            people = unmasked.detect_all(load_image(FIXTURES / name), name)
            assert len(people) == len(found[name])
            for plain, masked in zip(people, found[name], strict=True):
                np.testing.assert_array_equal(plain.pose.xy, masked.pose.xy)
                np.testing.assert_array_equal(plain.pose.valid, masked.pose.valid)
                assert plain.mask.shape == masked.mask.shape and not plain.mask.any()
                xy = plain.pose.xy[plain.pose.valid]
                assert plain.bounds == pytest.approx((*xy.min(0), *xy.max(0)))
    with pytest.raises(ValueError, match="masks must be true or false"):
        DetectorConfig(masks="no")  # type: ignore[arg-type]


def test_sequence_tracks_frames_and_gives_none_without_a_person() -> None:
    image = load_image(FIXTURES / SINGLE[0])
    blank = np.full_like(image, 90)
    frames = [image, image, blank, image]
    out = list(detect_sequence(iter(frames), fps=10.0, name="clip"))
    assert [d is None for d in out] == [False, False, True, False]
    for det in (out[0], out[1], out[3]):
        assert_close_to_reference(det.pose, (SINGLE[0], 0))


def test_sequence_on_two_landmarkers_gives_the_frames_in_order_and_the_same_people() -> None:
    images = [load_image(FIXTURES / name) for name in SINGLE]
    blank = np.full_like(images[0], 90)
    frames = [images[0], images[0], blank, *images, images[-1]]
    one = list(detect_sequence(iter(frames), fps=10.0, name="clip"))
    two = list(detect_sequence(iter(frames), fps=10.0, name="clip", workers=2))
    assert [d is None for d in two] == [d is None for d in one] == [
        False, False, True, *([False] * (len(images) + 1))
    ]  # fmt: skip
    for a, b in zip(one, two, strict=True):
        if a is not None and b is not None:
            np.testing.assert_allclose(b.pose.xy, a.pose.xy, atol=0.5)
            np.testing.assert_array_equal(b.pose.valid, a.pose.valid)
    for index, name in enumerate(SINGLE):  # each frame's own person, in order
        assert_close_to_reference(two[3 + index].pose, (name, 0))
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        list(detect_sequence(frames, workers=0))


def test_sequence_person_index_beyond_those_found_gives_none() -> None:
    image = load_image(FIXTURES / SINGLE[0])
    assert list(detect_sequence([image], person=1)) == [None]
    with pytest.raises(ValueError, match="fps must be positive"):
        list(detect_sequence([image], fps=0))


def test_no_network_is_touched(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pose detection tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    pose_backend.model_bundle.cache_clear()  # rebuild the bundle from the wheel's files
    image = load_image(FIXTURES / SINGLE[1])
    with PoseDetector() as det:
        assert_close_to_reference(det.detect(image, SINGLE[1]).pose, (SINGLE[1], 0))


def test_missing_mediapipe_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_mediapipe(name: str, *args: object, **kwargs: object) -> object:
        if name.split(".")[0] == "mediapipe":
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mediapipe)
    with pytest.raises(PoseBackendMissingError, match=r"pip install 'posetransfer\[pose\]'"):
        PoseDetector()
