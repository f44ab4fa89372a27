"""Tests of posetransfer.synth.flow_fits.check_image: what makes an image unfittable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from posetransfer.pose.keypoints import Pose
from posetransfer.synth.flow_fits import check_image
from posetransfer.synth.flow_plan import ImageItem


def _item(tmp_path: Path, cols: int = 10, path: Path | None = None, **kw) -> ImageItem:
    indices = np.stack([np.full(18, cols), np.arange(18)], axis=1)
    indices[17] = -1  # a missing point is never outside
    pose = kw.pop("pose", Pose.from_indices(indices))
    return ImageItem("a", "a.png", tmp_path, path, pose, **kw)


def test_a_good_image_gives_its_size(tmp_path: Path) -> None:
    Image.new("RGB", (12, 20)).save(tmp_path / "a.png")
    assert check_image(_item(tmp_path, path=tmp_path / "a.png")) == ((20, 12), None)


def test_reasons_from_the_plan_missing_file_and_unreadable_header(tmp_path: Path) -> None:
    assert check_image(_item(tmp_path, problem="NaN in keypoints")) == (None, "NaN in keypoints")
    assert check_image(_item(tmp_path, pose=None)) == (None, "no keypoints")
    size, reason = check_image(_item(tmp_path))
    assert size is None and reason is not None and reason.startswith("image file not found")
    (tmp_path / "a.png").write_bytes(b"not a png")
    size, reason = check_image(_item(tmp_path, path=tmp_path / "a.png"))
    assert size is None and reason is not None and reason.startswith("unreadable image")


def test_keypoints_outside_the_image_are_named(tmp_path: Path) -> None:
    Image.new("RGB", (10, 20)).save(tmp_path / "a.png")
    size, reason = check_image(_item(tmp_path, cols=10, path=tmp_path / "a.png"))
    assert size == (20, 10)
    assert reason is not None and reason.startswith("keypoints outside the image: nose at (10.5")
    assert "and 16 more" in reason and "10x20 (WxH)" in reason
