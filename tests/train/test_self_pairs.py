"""Affine self-pairs of one person: exact flows, keypoints, background and the dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posetransfer.config import ConfigError
from posetransfer.conventions import Keypoint, Visibility
from posetransfer.ops.warp import warp
from posetransfer.pose.keypoints import Pose
from posetransfer.pose.maps import PoseMapConfig
from posetransfer.train.self_pairs import (
    PersonCrop,
    SelfPairConfig,
    SelfPairDataset,
    affine_pair,
    collate_self_pairs,
)

SIZE = (64, 48)


def _person(smooth: bool = False) -> PersonCrop:
    """A textured frame with a person-shaped mask (a box) and a grey plate."""
    h, w = SIZE
    rng = np.random.default_rng(0)
    if smooth:  # low frequencies only: bilinear resampling twice stays close
        yy, xx = np.mgrid[0:h, 0:w] / 8.0
        image = np.stack([np.sin(xx), np.cos(yy), np.sin(xx + yy)], -1) * 100 + 128
    else:
        image = rng.random((h, w, 3)) * 255
    mask = np.zeros(SIZE, np.float32)
    mask[10:56, 16:32] = 1.0
    xy = np.zeros((18, 2), np.float32)
    valid = np.zeros(18, bool)
    xy[Keypoint.NOSE], xy[Keypoint.R_WRIST], xy[Keypoint.L_WRIST] = (24, 14), (18.5, 30.5), (29, 33)
    valid[[Keypoint.NOSE, Keypoint.R_WRIST, Keypoint.L_WRIST]] = True
    plate = np.full((h, w, 3), 90, np.uint8)
    return PersonCrop(image.astype(np.uint8), Pose(xy, valid), mask, plate)


def _sample(person: PersonCrop, seed: int, **cfg: object):  # type: ignore[no-untyped-def]
    return affine_pair(person, np.random.default_rng(seed), SelfPairConfig(**cfg))  # type: ignore[arg-type]


def test_the_flow_warps_the_source_onto_the_target_person() -> None:
    person = _person(smooth=True)
    for seed in range(6):
        source, target, _, _, flow, vis, _, _ = _sample(person, seed, identity_prob=0.0)
        warped = warp(source[None], flow[None])[0]
        visible = vis == int(Visibility.VISIBLE)
        assert visible.sum() > 200
        # Exact up to the two bilinear resamplings (about 0.04 of the [-1, 1] range here).
        assert (warped - target)[:, visible].abs().mean() < 0.04
        background = vis == int(Visibility.BACKGROUND)
        assert torch.all(flow[:, background] == 0)


def test_a_pure_flip_is_exact_and_swaps_left_and_right() -> None:
    person = _person()
    source, target, pose_src, pose_tgt, flow, _vis, background, mask = _sample(
        person, 0, scale=(1.0, 1.0), shift=0.0, flip_prob=1.0, identity_prob=0.0
    )
    mirrored = torch.flip(torch.from_numpy(person.image).permute(2, 0, 1).float() / 127.5 - 1, [2])
    assert torch.allclose(source, mirrored, atol=1e-5)
    assert torch.allclose(target[:, mask[0] > 0.5], mirrored[:, mask[0] > 0.5], atol=1e-5)
    # Both sides are mirrored: the target is the source, the flow is zero on the person.
    assert torch.allclose(flow, torch.zeros_like(flow), atol=1e-5)
    w = SIZE[1]
    # The right wrist at x = 18.5 is the left wrist at w - 18.5 after the flip.
    assert pose_src.valid[Keypoint.L_WRIST] and pose_src.xy[Keypoint.L_WRIST, 0] == w - 18.5
    assert pose_src.xy[Keypoint.R_WRIST, 0] == pytest.approx(w - 29)
    assert np.array_equal(pose_src.xy, pose_tgt.xy)
    assert torch.allclose(background, torch.full_like(background, 90 / 127.5 - 1), atol=1e-6)


def test_keypoints_move_with_the_flow_and_the_background_stays_the_sources() -> None:
    person = _person()
    checked = 0
    for seed in range(8):
        source, target, pose_src, pose_tgt, flow, vis, background, mask = _sample(
            person, seed, identity_prob=0.0
        )
        # The target's keypoint + the flow there = the source's keypoint (same body point).
        k = Keypoint.NOSE
        if not (pose_src.valid[k] and pose_tgt.valid[k]):
            continue
        x, y = pose_tgt.xy[k]
        i, j = int(y), int(x)
        if vis[i, j] != int(Visibility.VISIBLE):
            continue
        # The flow is affine: at the pixel centre (j + 0.5, i + 0.5) plus its slope to (x, y).
        slope_x = 1 + float(flow[0, i, j + 1] - flow[0, i, j])
        slope_y = 1 + float(flow[1, i + 1, j] - flow[1, i, j])
        at_x = j + 0.5 + float(flow[0, i, j]) + slope_x * (x - j - 0.5)
        at_y = i + 0.5 + float(flow[1, i, j]) + slope_y * (y - i - 0.5)
        assert (at_x, at_y) == pytest.approx(tuple(pose_src.xy[k]), abs=1e-3)
        checked += 1
        # Off the person the target shows the source's (shifted) plate, the generator's input.
        off = mask[0] == 0
        assert torch.allclose(target[:, off], background[:, off])
    assert checked >= 4 and source.shape == (3, *SIZE)


def test_identity_pairs_reconstruct_the_crop() -> None:
    person = _person()
    source, target, pose_src, _pose_tgt, flow, _vis, _, _ = _sample(
        person, 0, identity_prob=1.0, flip_prob=0.0
    )
    assert torch.equal(flow, torch.zeros_like(flow))
    on = torch.from_numpy(person.mask) > 0.5
    assert torch.allclose(source[:, on], target[:, on], atol=1e-5)
    assert np.array_equal(pose_src.xy, person.pose.xy)


def test_the_dataset_is_deterministic_per_epoch_and_batches() -> None:
    person = _person()
    data = SelfPairDataset(person, SelfPairConfig(per_epoch=5), PoseMapConfig(), seed=3)
    assert len(data) == 5
    a, b = data[2], data[2]
    assert torch.equal(a.source_image, b.source_image) and torch.equal(a.flow, b.flow)
    data.set_epoch(1)
    assert not torch.equal(data[2].target_image, a.target_image)
    batch = collate_self_pairs([data[i] for i in range(3)])
    assert batch.background is not None and batch.background.shape == (3, 3, *SIZE)
    assert batch.person_mask is not None and batch.person_mask.shape == (3, 1, *SIZE)
    assert batch.flow is not None and batch.visibility is not None
    assert batch.to("cpu").background is not None
    assert batch.target_pose_map.shape[-2:] == SIZE


def test_bad_settings_are_named() -> None:
    with pytest.raises(ConfigError, match=r"pairs\.scale"):
        SelfPairConfig(scale=(1.2, 0.8))
    with pytest.raises(ValueError, match="mask must be"):
        PersonCrop(np.zeros((8, 8, 3), np.uint8), Pose.missing(), np.zeros((4, 4)),
                   np.zeros((8, 8, 3), np.uint8))  # fmt: skip
