"""Tests for person removal, inpainting and compositing (posetransfer.infer.background)."""

from __future__ import annotations

import numpy as np
import pytest

from posetransfer.infer.background import (
    composite,
    dilate_mask,
    feather_mask,
    inpaint,
    solid_background,
)


def _gradient(h: int = 40, w: int = 60) -> np.ndarray:
    x = np.linspace(0, 255, w, dtype=np.float32)
    return (
        np.repeat(np.stack([x, 255 - x, np.full_like(x, 90)], -1)[None], h, 0)
        .round()
        .astype(np.uint8)
    )


def test_inpaint_keeps_known_pixels_and_fills_a_constant_image_exactly() -> None:
    image = np.full((33, 47, 3), (10, 200, 77), np.uint8)
    hole = np.zeros((33, 47), bool)
    hole[5:25, 10:30] = True
    damaged = image.copy()
    damaged[hole] = 255
    out = inpaint(damaged, hole)
    np.testing.assert_array_equal(out, image)


def test_inpaint_interpolates_a_gradient_across_a_hole() -> None:
    image = _gradient()
    hole = np.zeros(image.shape[:2], bool)
    hole[:, 25:35] = True  # a stripe through the whole height
    damaged = image.copy()
    damaged[hole] = 0
    out = inpaint(damaged, hole)
    np.testing.assert_array_equal(out[~hole], image[~hole])
    # inside the stripe the red channel lies between its neighbours, close to the true ramp
    red = out[:, 25:35, 0].astype(int)
    left, right = int(image[0, 24, 0]), int(image[0, 35, 0])
    assert (red >= left - 5).all() and (red <= right + 5).all()
    assert (np.diff(red, axis=1) >= 0).all()  # no ringing: the ramp stays monotonic
    assert np.abs(red - image[:, 25:35, 0].astype(int)).mean() < 12


def test_inpaint_refuses_a_full_hole_and_wrong_shapes() -> None:
    image = _gradient(8, 8)
    with pytest.raises(ValueError, match="whole image"):
        inpaint(image, np.ones((8, 8), bool))
    with pytest.raises(ValueError, match="hole must be an"):
        inpaint(image, np.zeros((8, 9), bool))
    with pytest.raises(ValueError, match="image must be an"):
        inpaint(image[..., 0], np.zeros((8, 8), bool))


def test_dilate_mask_grows_a_pixel_to_a_square() -> None:
    mask = np.zeros((7, 7), np.float32)
    mask[3, 3] = 1
    grown = dilate_mask(mask, 1)
    assert grown.sum() == 9 and grown[2:5, 2:5].all()
    assert dilate_mask(mask, 0).sum() == 1
    with pytest.raises(ValueError, match="radius"):
        dilate_mask(mask, -1)


def test_composite_hard_and_feathered() -> None:
    fg = np.full((20, 20, 3), 200, np.uint8)
    bg = np.full((20, 20, 3), 0, np.uint8)
    mask = np.zeros((20, 20), np.float32)
    mask[:, 10:] = 1
    hard = composite(fg, bg, mask, feather=0)
    assert (hard[:, 10:] == 200).all() and (hard[:, :10] == 0).all()
    soft = composite(fg, bg, mask, feather=2.0)
    assert (soft[:, 0] == 0).all() and (soft[:, -1] == 200).all()
    edge = soft[0, 8:12, 0]
    assert edge.min() > 0 and edge.max() < 200 and (np.diff(edge.astype(int)) > 0).all()


def test_feather_mask_keeps_range_and_sum() -> None:
    mask = np.zeros((30, 30), np.float32)
    mask[10:20, 10:20] = 1
    soft = feather_mask(mask, 1.5)
    assert soft.min() >= 0 and soft.max() <= 1
    assert abs(soft.sum() - mask.sum()) < 1e-3 * mask.size


def test_solid_background() -> None:
    bg = solid_background((4, 5), (255, 255, 255))
    assert bg.shape == (4, 5, 3) and (bg == 255).all() and bg.flags.writeable
    with pytest.raises(ValueError, match="color"):
        solid_background((4, 5), (300, 0, 0))
