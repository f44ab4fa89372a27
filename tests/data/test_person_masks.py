"""posetransfer.data.person_masks: where masks live and their 8-bit PNG round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posetransfer.data.formats import FormatError
from posetransfer.data.person_masks import mask_path, mask_to_uint8, read_mask, write_mask


def test_round_trip_within_half_a_level(tmp_path: Path) -> None:
    probs = np.random.default_rng(0).random((7, 5)).astype(np.float32)
    path = mask_path(tmp_path, "train", "a_f000001.jpg")
    assert path == tmp_path / "masks" / "train" / "a_f000001.png"
    write_mask(path, mask_to_uint8(probs))
    with Image.open(path) as image:
        assert image.mode == "L" and image.size == (5, 7)
    back = read_mask(path)
    assert back.dtype == np.float32 and back.shape == (7, 5)
    assert np.abs(back - probs).max() <= 0.5 / 255 + 1e-6
    assert mask_to_uint8(np.array([[0.0, 1.0]])).tolist() == [[0, 255]]


def test_bad_masks_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mask_to_uint8(np.array([[1.5]]))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        mask_to_uint8(np.zeros((2, 2, 1)))
    with pytest.raises(ValueError, match="uint8"):
        write_mask(tmp_path / "m.png", np.zeros((2, 2), np.float32))
    with pytest.raises(FormatError, match="not found"):
        read_mask(tmp_path / "missing.png")
    Image.new("RGB", (2, 2)).save(tmp_path / "rgb.png")
    with pytest.raises(FormatError, match="grayscale"):
        read_mask(tmp_path / "rgb.png")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(FormatError, match=r"junk\.png"):
        read_mask(tmp_path / "junk.png")
