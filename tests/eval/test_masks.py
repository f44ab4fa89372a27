"""The pose-gan keypoint mask: limb list, orientation (no x/y transposition), rasterisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posetransfer.conventions import Keypoint
from posetransfer.eval.masks import MASK_LIMBS, pose_mask, pose_masks
from posetransfer.pose.keypoints import Pose

# produce_ma_mask's list, 1-based, as written in pose-gan / PATN tool/pose_utils.py / GFLA
POSE_GAN_LIMBS_1_BASED = [
    [2, 3], [2, 6], [3, 4], [4, 5], [6, 7], [7, 8], [2, 9], [9, 10], [10, 11], [2, 12], [12, 13],
    [13, 14], [2, 1], [1, 15], [15, 17], [1, 16], [16, 18], [2, 17], [2, 18], [9, 12], [12, 6],
    [9, 3], [17, 18],
]  # fmt: skip
SIZE = (128, 64)


def pose_from_rows_cols(points: dict[int, tuple[int, int]]) -> Pose:
    """Pose with the given keypoints at pixel (row, col); the others missing."""
    indices = np.full((18, 2), -1)
    for k, (row, col) in points.items():
        indices[k] = (col, row)  # files and Pose.from_indices take (col, row)
    return Pose.from_indices(indices)


def reference_mask(pose: Pose, size: tuple[int, int], radius: float = 4.0) -> np.ndarray:
    """Slow transcription of produce_ma_mask with the skimage (<= 0.18) rasterisers it called."""
    ndi = pytest.importorskip("scipy.ndimage")
    kp = np.stack([pose.xy[:, 1], pose.xy[:, 0]], 1).astype(np.float64) - 0.5  # (row, col)
    mask = np.zeros(size, bool)

    def inside(rr: np.ndarray, cc: np.ndarray, r: int, c: int) -> bool:  # old pnpoly, x=col
        result, j = False, len(rr) - 1
        for i in range(len(rr)):
            if ((rr[i] <= r < rr[j]) or (rr[j] <= r < rr[i])) and (
                c < (cc[j] - cc[i]) * (r - rr[i]) / (rr[j] - rr[i]) + cc[i]
            ):
                result = not result
            j = i
        return result

    for f, t in MASK_LIMBS:
        if not (pose.valid[f] and pose.valid[t]) or (kp[f] == kp[t]).all():
            continue
        n = kp[f] - kp[t]
        n = radius * np.array([-n[1], n[0]]) / np.linalg.norm(n)
        v = np.array([kp[f] + n, kp[f] - n, kp[t] - n, kp[t] + n])
        # the old _polygon's loop bounds: the vertices' box, clipped to the image
        r_lo, r_hi = int(max(0, v[:, 0].min())), min(size[0] - 1, int(np.ceil(v[:, 0].max())))
        c_lo, c_hi = int(max(0, v[:, 1].min())), min(size[1] - 1, int(np.ceil(v[:, 1].max())))
        for r in range(r_lo, r_hi + 1):
            for c in range(c_lo, c_hi + 1):
                mask[r, c] |= inside(v[:, 0], v[:, 1], r, c)
    for (r0, c0), ok in zip(kp, pose.valid, strict=True):
        if ok:
            rows, cols = np.ogrid[: size[0], : size[1]]
            mask |= ((rows - r0) / radius) ** 2 + ((cols - c0) / radius) ** 2 < 1
    square = np.ones((5, 5), bool)  # old skimage dilation/erosion: ndimage, mode "reflect"
    closed = ndi.grey_erosion(ndi.grey_dilation(mask, footprint=square), footprint=square)
    return closed.astype(bool)


def random_pose(rng: np.random.Generator, size: tuple[int, int]) -> Pose:
    indices = np.stack([rng.integers(0, size[1], 18), rng.integers(0, size[0], 18)], 1)
    indices[rng.random(18) < 0.25] = -1
    return Pose.from_indices(indices)


def test_limbs_are_pose_gans() -> None:
    assert tuple((a - 1, b - 1) for a, b in POSE_GAN_LIMBS_1_BASED) == MASK_LIMBS
    assert len(MASK_LIMBS) == 23


def test_orientation_rows_are_y_not_x() -> None:
    # A nose at x = col 10, y = row 40. The original helper took (row, col); Intr-Flow fed it
    # (x, y), which would light up row 10, col 40 instead.
    mask = pose_mask(pose_from_rows_cols({Keypoint.NOSE: (40, 10)}), SIZE)
    assert mask[40, 10] and not mask[10, 40]
    rows, cols = np.nonzero(mask)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (37, 43, 7, 13)


def test_vertical_limb_half_width_four() -> None:
    neck, hip = (30, 20), (80, 20)  # (row, col): a vertical neck -> right-hip limb
    mask = pose_mask(pose_from_rows_cols({Keypoint.NECK: neck, Keypoint.R_HIP: hip}), SIZE)
    assert mask[55, 16:24].all()  # cols 16..23: the half-open quad [c - 4, c + 4)
    assert not mask[55, 15] and not mask[55, 24]
    assert not mask[20, 30:60].any()  # where the transposed limb would be


def test_matches_slow_reference(rng: np.random.Generator) -> None:
    for size in ((128, 64), (40, 30)):
        for _ in range(3):
            pose = random_pose(rng, size)
            np.testing.assert_array_equal(pose_mask(pose, size), reference_mask(pose, size))


def test_within_current_skimage_mask(rng: np.random.Generator) -> None:
    # scikit-image >= 0.19 also fills pixels lying exactly on a polygon edge, so its mask
    # contains ours and differs only along limb borders.
    draw = pytest.importorskip("skimage.draw")
    morphology = pytest.importorskip("skimage.morphology")
    square = np.ones((5, 5), bool)
    for _ in range(5):
        pose = random_pose(rng, SIZE)
        kp = np.stack([pose.xy[:, 1], pose.xy[:, 0]], 1).astype(np.float64) - 0.5
        mask = np.zeros(SIZE, bool)
        for f, t in MASK_LIMBS:
            if pose.valid[f] and pose.valid[t] and not (kp[f] == kp[t]).all():
                n = kp[f] - kp[t]
                n = 4 * np.array([-n[1], n[0]]) / np.linalg.norm(n)
                v = np.array([kp[f] + n, kp[f] - n, kp[t] - n, kp[t] + n])
                mask[draw.polygon(v[:, 0], v[:, 1], shape=SIZE)] = True
        for point in kp[pose.valid]:
            mask[draw.disk(tuple(point), 4, shape=SIZE)] = True
        current = morphology.erosion(morphology.dilation(mask, square), square)
        ours = pose_mask(pose, SIZE)
        assert not (ours & ~current).any()
        assert (current & ~ours).sum() <= 0.1 * current.sum()


def test_missing_points_draw_nothing() -> None:
    assert not pose_mask(Pose.missing(), SIZE).any()
    # a limb with one missing end is skipped; the present joint still gets its disc
    only_neck = pose_mask(pose_from_rows_cols({Keypoint.NECK: (30, 20)}), SIZE)
    assert only_neck.sum() < 60 and only_neck[30, 20]


def test_coincident_points_do_not_crash() -> None:
    mask = pose_mask(pose_from_rows_cols({Keypoint.NECK: (30, 20), Keypoint.R_HIP: (30, 20)}), SIZE)
    assert mask[30, 20]


def test_batch_and_errors(rng: np.random.Generator) -> None:
    poses = [random_pose(rng, SIZE), Pose.missing()]
    batch = pose_masks(poses, SIZE)
    assert batch.shape == (2, 1, 128, 64) and batch.dtype == torch.bool
    assert torch.equal(batch[0, 0], torch.from_numpy(pose_mask(poses[0], SIZE)))
    assert pose_masks([], SIZE).shape == (0, 1, 128, 64)
    with pytest.raises(ValueError, match="size"):
        pose_mask(poses[0], (0, 64))
    with pytest.raises(ValueError, match="odd closing"):
        pose_mask(poses[0], SIZE, closing=4)
