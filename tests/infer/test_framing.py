"""Tests of ``infer.framing``: photo <-> model frame for images, poses and pasted results."""

from __future__ import annotations

import numpy as np
import pytest

from posetransfer.infer.framing import Frame, box_from_pose
from posetransfer.pose.keypoints import Pose

IMAGE_SIZE = (300, 200)


@pytest.fixture
def smooth() -> np.ndarray:
    """A 300x200 image of slow sinusoids, so resampling errors stay small."""
    yy, xx = np.mgrid[0 : IMAGE_SIZE[0], 0 : IMAGE_SIZE[1]].astype(np.float64)
    channels = [128 + 90 * np.sin(xx / 17.0), 128 + 90 * np.cos(yy / 23.0), 60 + 0.5 * xx]
    return np.stack(channels, axis=-1).round().astype(np.uint8)


def _random_pose(rng: np.random.Generator, height: float, width: float) -> Pose:
    xy = rng.uniform([-20, -20], [width + 20, height + 20], size=(18, 2))
    return Pose(xy, rng.random(18) < 0.8)


def test_from_box_grows_to_the_model_aspect_about_the_centre() -> None:
    # A tall 80x200 box into a 96/128 = 0.75 frame: the width grows to 150, centred on x=80.
    frame = Frame.from_box((40, 50, 120, 250), IMAGE_SIZE, (128, 96))
    assert frame.box == pytest.approx((5.0, 50.0, 155.0, 250.0))
    # A wide box grows in height instead.
    wide = Frame.from_box((0, 100, 150, 120), IMAGE_SIZE, (128, 96))
    assert wide.box == pytest.approx((0.0, 10.0, 150.0, 210.0))
    margin = Frame.from_box((40, 50, 120, 250), IMAGE_SIZE, (128, 96), margin=0.1)
    assert margin.box == pytest.approx((-10.0, 30.0, 170.0, 270.0))  # 200 + 2 * 20 tall


def test_letterbox_fits_the_whole_image_with_padding(smooth: np.ndarray) -> None:
    frame = Frame.from_box(None, IMAGE_SIZE, (128, 128), mode="letterbox")
    assert frame.box == pytest.approx((-50.0, 0.0, 250.0, 300.0))
    crop = frame.crop(smooth, fill=(255, 0, 255))
    # 300 px -> 128 px: 50 px of padding each side become ~21 columns of the fill colour.
    assert (crop[:, :20] == [255, 0, 255]).all() and (crop[:, -20:] == [255, 0, 255]).all()
    assert not (crop[:, 30:98] == [255, 0, 255]).all(axis=-1).any()
    tall = Frame.from_box(None, (100, 400), (256, 176), mode="letterbox")
    assert tall.box[0] == 0 and tall.box[2] == 400 and tall.box[1] < 0 < 100 < tall.box[3]


@pytest.mark.parametrize(
    "box", [(40, 50, 120, 250), (150, -30, 260, 100), (-40, 200, 60, 330), (10.3, 20.7, 90, 200)]
)
def test_crop_paste_round_trip(smooth: np.ndarray, box: tuple[float, ...]) -> None:
    frame = Frame.from_box(box, IMAGE_SIZE, (128, 96))
    crop = frame.crop(smooth)
    assert crop.shape == (128, 96, 3) and crop.dtype == np.uint8
    pasted = frame.paste(smooth, crop)
    rows, cols = frame.image_region
    assert rows.stop > rows.start and cols.stop > cols.start
    diff = np.abs(pasted.astype(int) - smooth)
    assert diff[rows, cols].max() <= 3 and diff[rows, cols].mean() < 0.5
    outside = np.ones(IMAGE_SIZE, bool)
    outside[rows, cols] = False
    assert (diff[outside] == 0).all()  # nothing outside the box is touched


def test_crop_matches_a_slow_reference(smooth: np.ndarray) -> None:
    # An integer box at scale 1 (96x128 box into a 96x128 frame) is a plain copy.
    frame = Frame.from_box((50, 40, 146, 168), IMAGE_SIZE, (128, 96))
    assert frame.scale == (1.0, 1.0)
    np.testing.assert_array_equal(frame.crop(smooth), smooth[40:168, 50:146])


def test_crop_outside_the_image_edge_and_constant_fill(smooth: np.ndarray) -> None:
    frame = Frame.from_box((-96, -128, 0, 0), IMAGE_SIZE, (128, 96))  # entirely above-left
    assert (frame.crop(smooth) == smooth[0, 0]).all()  # edge replication of the corner pixel
    assert (frame.crop(smooth, fill=(1, 2, 3)) == [1, 2, 3]).all()
    half = Frame.from_box((-48, 0, 48, 128), IMAGE_SIZE, (128, 96))  # left half outside
    crop = half.crop(smooth)
    np.testing.assert_array_equal(crop[:, 48:], smooth[:128, :48])
    np.testing.assert_array_equal(crop[:, :48], np.repeat(smooth[:128, :1], 48, axis=1))
    assert half.paste(smooth, crop).shape == smooth.shape


def test_pose_round_trip_is_exact(rng: np.random.Generator) -> None:
    frame = Frame.from_box((13.7, -22.1, 180.2, 260.9), IMAGE_SIZE, (256, 176))
    pose = _random_pose(rng, *IMAGE_SIZE)
    back = frame.to_image(frame.to_frame(pose))
    np.testing.assert_array_equal(back.valid, pose.valid)
    np.testing.assert_allclose(back.xy, pose.xy, rtol=0, atol=1e-4)


def test_pose_follows_the_pixels(smooth: np.ndarray) -> None:
    # A keypoint at the centre of image pixel (row 100, col 60) lands on the frame pixel that
    # crop() filled from it (scale 1 box, so exactly one frame pixel).
    frame = Frame.from_box((50, 40, 146, 168), IMAGE_SIZE, (128, 96))
    xy = np.zeros((18, 2))
    xy[0] = (60.5, 100.5)
    in_frame = frame.to_frame(Pose(xy, np.eye(18, dtype=bool)[0]))
    col, row = np.floor(in_frame.xy[0]).astype(int)
    assert in_frame.xy[0] == pytest.approx((10.5, 60.5))
    np.testing.assert_array_equal(frame.crop(smooth)[row, col], smooth[100, 60])
    # Scaled frame: pixel centres map to pixel centres through x' = (x - left) * s.
    scaled = Frame.from_box((0, 0, 200, 300), IMAGE_SIZE, (150, 100))  # s = 0.5
    assert scaled.to_frame(Pose(xy, np.eye(18, dtype=bool)[0])).xy[0] == pytest.approx(
        (30.25, 50.25)
    )


def test_drop_outside() -> None:
    frame = Frame.from_box((0, 0, 96, 128), IMAGE_SIZE, (128, 96))
    xy = np.zeros((18, 2))
    xy[0], xy[1] = (10, 10), (150, 10)  # the second is right of the box
    pose = Pose(xy, np.eye(18, dtype=bool)[0] | np.eye(18, dtype=bool)[1])
    assert frame.to_frame(pose).valid[:2].tolist() == [True, True]
    assert frame.to_frame(pose, drop_outside=True).valid[:2].tolist() == [True, False]


def test_paste_with_mask_and_feather(smooth: np.ndarray) -> None:
    frame = Frame.from_box((50, 40, 146, 168), IMAGE_SIZE, (128, 96))  # scale 1
    generated = np.zeros((128, 96, 3), np.uint8)
    mask = np.zeros((128, 96), bool)
    mask[30:100, 20:70] = True
    hard = frame.paste(smooth, generated, mask=mask)
    assert (hard[40 + 30 : 40 + 100, 50 + 20 : 50 + 70] == 0).all()
    unmasked = np.ones(IMAGE_SIZE, bool)
    unmasked[40 + 30 : 40 + 100, 50 + 20 : 50 + 70] = False
    np.testing.assert_array_equal(hard[unmasked], smooth[unmasked])

    soft = frame.paste(smooth, generated, mask=mask, feather=8)
    assert (soft[40 + 40 : 40 + 90, 50 + 30 : 50 + 60] == 0).all()  # deep inside: generated
    assert (soft[:30] == smooth[:30]).all()  # far outside: original
    row = 40 + 65  # across the mask's left edge the weight ramps: neither value at the edge
    weight = 1 - soft[row, 40:80, 0].astype(float) / np.maximum(smooth[row, 40:80, 0], 1)
    assert 0.2 < weight[50 + 20 - 40] < 0.8 and np.all(np.diff(weight[5:35]) >= -1e-6)

    floats = frame.paste(smooth, generated, mask=mask.astype(np.float32) * 0.5)
    inside = smooth[40 + 50, 50 + 40].astype(int)
    assert np.abs(floats[40 + 50, 50 + 40].astype(int) - np.rint(inside * 0.5)).max() <= 1


def test_feather_without_mask_fades_at_box_edges_inside_the_image(smooth: np.ndarray) -> None:
    frame = Frame.from_box((50, 40, 146, 168), IMAGE_SIZE, (128, 96))
    white = np.full((128, 96, 3), 255, np.uint8)
    out = frame.paste(np.zeros_like(smooth), white, feather=10)[:, :, 0].astype(int)
    assert out[100, 50] < 40 and out[100, 55] > 100 and out[100, 70] == 255
    # A box edge outside the image gets no ramp: the image border stays fully generated.
    edge = Frame.from_box((-20, 40, 76, 168), IMAGE_SIZE, (128, 96))
    assert edge.paste(np.zeros_like(smooth), white, feather=10)[100, 0, 0] == 255


def test_box_from_pose() -> None:
    xy = np.array([[10, 20], [30, 5], [99, 99]] + [[0, 0]] * 15, float)
    valid = np.zeros(18, bool)
    valid[:2] = True
    assert box_from_pose(Pose(xy, valid)) == (10.0, 5.0, 30.0, 20.0)
    with pytest.raises(ValueError, match="no valid keypoint"):
        box_from_pose(Pose.missing())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"box": (10, 10, 5, 20)}, "right >= left"),
        ({"box": (10, 10, 10, 10)}, "single point"),
        ({"box": (0, 0, float("nan"), 5)}, "finite"),
        ({"box": None}, "needs a box"),
        ({"box": (0, 0, 5, 5), "mode": "stretch"}, "'crop' or 'letterbox'"),
        ({"box": (0, 0, 5, 5), "margin": -0.1}, "margin"),
        ({"box": (0, 0, 5, 5), "model_size": (0, 96)}, "model_size"),
    ],
)
def test_from_box_errors(kwargs: dict, message: str) -> None:
    args = {"image_size": IMAGE_SIZE, "model_size": (128, 96), **kwargs}
    with pytest.raises(ValueError, match=message):
        Frame.from_box(**args)


def test_frame_errors(smooth: np.ndarray) -> None:
    with pytest.raises(ValueError, match="aspect"):
        Frame((0, 0, 100, 100), IMAGE_SIZE, (128, 96))
    frame = Frame.from_box((40, 50, 120, 250), IMAGE_SIZE, (128, 96))
    with pytest.raises(ValueError, match="image is 300x199"):
        frame.crop(smooth[:, :199])
    with pytest.raises(ValueError, match="fill"):
        frame.crop(smooth, fill=(0, 0, 300))
    crop = frame.crop(smooth)
    with pytest.raises(ValueError, match="generated is 127x96"):
        frame.paste(smooth, crop[:127])
    with pytest.raises(ValueError, match="mask must be an array of shape"):
        frame.paste(smooth, crop, mask=np.ones((10, 10), bool))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        frame.paste(smooth, crop, mask=np.full((128, 96), 2.0))
    with pytest.raises(ValueError, match="feather"):
        frame.paste(smooth, crop, feather=-1)
