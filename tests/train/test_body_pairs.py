"""Body self-pairs: the person 3D-warped into perturbed poses of the fitted body."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from posetransfer.conventions import Visibility
from posetransfer.ops.warp import warp
from posetransfer.pose.keypoints import Pose
from posetransfer.train.body_pairs import BodyPairConfig, BodyPairs, make_body_pairs
from posetransfer.train.self_pairs import PersonCrop

SIZE = (128, 96)
#: A person standing in a 128x96 frame (x, y), OpenPose-18 order.
STANDING = [
    (48, 18), (48, 30), (38, 31), (34, 47), (32, 62), (58, 31), (62, 47), (64, 62), (42, 64),
    (42, 86), (42, 108), (54, 64), (54, 86), (54, 108), (46, 16), (50, 16), (44, 17), (52, 17),
]  # fmt: skip


def _person() -> PersonCrop:
    yy, xx = np.mgrid[0 : SIZE[0], 0 : SIZE[1]] / 6.0
    image = (np.stack([np.sin(xx), np.cos(yy), np.sin(xx + yy)], -1) * 100 + 128).astype(np.uint8)
    mask = np.zeros(SIZE, np.float32)
    mask[12:112, 30:66] = 1.0
    pose = Pose(np.asarray(STANDING, np.float32), np.ones(18, bool))
    return PersonCrop(image, pose, mask, np.full((*SIZE, 3), 60, np.uint8))


def test_body_pairs_warp_back_to_the_real_crop(body_model, tmp_path: Path) -> None:
    person = _person()
    pairs = make_body_pairs(body_model, person, BodyPairConfig(count=3, seed=1))
    assert len(pairs) == 3
    assert pairs.sources.shape == (3, *SIZE, 3) and pairs.flow.shape == (3, 2, *SIZE)
    crop = torch.from_numpy(person.image).permute(2, 0, 1).float() / 127.5 - 1
    for k in range(3):
        source, pose, flow, vis = pairs.sample(k)
        assert pose.num_valid >= 14  # the perturbed body's keypoints, inside the frame
        visible = vis == int(Visibility.VISIBLE)
        assert visible.sum() > 500
        assert torch.all(flow[:, vis == int(Visibility.BACKGROUND)] == 0)
        # The source was warped out of the crop, so warping it back gives the crop on the body
        # (up to resampling and the two renders' edges).
        back = warp(source[None], flow[None])[0]
        assert (back - crop)[:, visible].abs().median() < 0.05
        # Off the perturbed body the source is the person-free plate.
        assert (pairs.sources[k] == 60).all(-1).mean() > 0.5
    # The perturbations move the body: the sources differ from each other and from the crop.
    assert np.abs(pairs.sources[0].astype(int) - pairs.sources[1]).mean() > 1
    assert not np.allclose(pairs.source_xy[0], person.pose.xy)
    pairs.save(tmp_path / "pairs.npz")
    again = BodyPairs.load(tmp_path / "pairs.npz")
    assert all(np.array_equal(getattr(pairs, f), getattr(again, f))
               for f in BodyPairs.__dataclass_fields__)  # fmt: skip
    # Deterministic for a seed.
    same = make_body_pairs(body_model, person, BodyPairConfig(count=3, seed=1))
    assert np.array_equal(same.sources, pairs.sources)


def test_no_body_pairs_needs_no_body_model() -> None:
    pairs = make_body_pairs(None, _person(), BodyPairConfig(count=0))  # type: ignore[arg-type]
    assert len(pairs) == 0 and pairs.flow.shape == (0, 2, *SIZE)


def test_an_unfittable_pose_is_a_clear_error(body_model) -> None:
    person = _person()
    valid = np.zeros(18, bool)
    valid[:2] = True
    few = PersonCrop(person.image, Pose(person.pose.xy, valid), person.mask, person.plate)
    with pytest.raises(ValueError, match="could not be fitted"):
        make_body_pairs(body_model, few, BodyPairConfig(count=2))
