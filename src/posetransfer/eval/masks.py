"""Person masks drawn from keypoints, for the Market-1501 mask-SSIM / mask-LPIPS metrics.

Port of ``produce_ma_mask`` from Deformable-GAN (``AliaksandrSiarohin/pose-gan``,
``pose_utils.py``), copied unchanged into PATN's ``tool/pose_utils.py`` and GFLA's
``script/metrics.py``: for each of 23 limbs whose two end points are both detected, fill the
quadrilateral of half-width ``radius`` (4 px) around the segment; add a disc of radius 4 at every
detected joint; then a 5x5 dilation followed by a 5x5 erosion (a closing). The scripts draw it
from the **target** keypoints and multiply both the generated and the real image by it.

Coordinates. The original code reads the annotation CSV into ``(row, col)`` = ``(y, x)`` arrays
(``keypoints_y`` first) and passes them to ``skimage.draw.polygon(rows, cols)`` and
``circle(row, col)``; its pixel ``(i, j)`` is the point ``(row, col) = (i, j)``. Our
:class:`~posetransfer.pose.keypoints.Pose` holds ``(x, y)`` with pixel centres at
``index + 0.5``, so here ``row = y - 0.5`` and ``col = x - 0.5``; for keypoints read from an
annotation file these are exactly the stored integers. The Intr-Flow evaluation code fed its
``(x, y)`` keypoints to the same helper without swapping them, which draws a *transposed* mask;
this module does not (``tests/eval/test_masks.py`` pins the orientation).

Rasterisation matches the scikit-image of the time (<= 0.18): a pixel is inside a polygon by
the even-odd crossing test on its integer ``(row, col)`` (skimage's ``point_in_polygon`` with
``x = col``, ``y = row``; newer skimage also fills pixels lying exactly on an edge), inside a
disc when ``(i - r)^2 + (j - c)^2 < radius^2``. The closing treats pixels outside the image
as absent, which is what ``reflect`` padding gives for a 5x5 square. A limb whose two end
points coincide is skipped (the original divides by zero there); its joint disc still covers it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import torch

from posetransfer.pose.keypoints import Pose

__all__ = ["MASK_LIMBS", "pose_mask", "pose_masks"]

#: The 23 limbs of ``produce_ma_mask`` (0-based keypoint indices). Its 1-based source list is
#: ``[2,3], [2,6], [3,4], [4,5], [6,7], [7,8], [2,9], [9,10], [10,11], [2,12], [12,13], [13,14],
#: [2,1], [1,15], [15,17], [1,16], [16,18], [2,17], [2,18], [9,12], [12,6], [9,3], [17,18]``:
#: the drawing skeleton (``conventions.LIMBS``) with the ears tied to the neck instead of the
#: shoulders, plus the torso quadrilateral (hips, shoulders) and the ear-to-ear segment.
MASK_LIMBS: Final[tuple[tuple[int, int], ...]] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
    (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (1, 16), (1, 17),
    (8, 11), (11, 5), (8, 2), (16, 17),
)  # fmt: skip


def _inside_polygon(rows: np.ndarray, cols: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Even-odd crossing test of every pixel ``(i, j)`` against the polygon (vertex arrays)."""
    height, width = size
    y = np.arange(height, dtype=np.float64)[:, None]  # rows
    x = np.arange(width, dtype=np.float64)[None, :]  # cols
    inside = np.zeros(size, dtype=bool)
    j = len(rows) - 1
    for i in range(len(rows)):
        yi, yj, xi, xj = rows[i], rows[j], cols[i], cols[j]
        spans = ((yi <= y) & (y < yj)) | ((yj <= y) & (y < yi))  # (H, 1); False when yi == yj
        if spans.any():
            with np.errstate(divide="ignore", invalid="ignore"):
                crossing = (xj - xi) * (y - yi) / (yj - yi) + xi  # (H, 1)
            inside ^= spans & (x < crossing)
        j = i
    return inside


def _close(mask: np.ndarray, size: int) -> np.ndarray:
    """Binary closing with a ``size x size`` square; pixels outside the image are absent."""
    half = size // 2

    def window(m: np.ndarray, fill: bool) -> np.ndarray:
        padded = np.pad(m, half, constant_values=fill)
        return np.lib.stride_tricks.sliding_window_view(padded, (size, size))

    dilated = np.asarray(window(mask, False).any(axis=(-2, -1)))
    return np.asarray(window(dilated, True).all(axis=(-2, -1)))


def pose_mask(
    pose: Pose, size: tuple[int, int], *, radius: float = 4.0, closing: int = 5
) -> np.ndarray:
    """The pose-gan keypoint mask of one person.

    Args:
        pose: Keypoints in the image's frame (``(x, y)``, pixel centres at ``index + 0.5``);
            for the metric, the **target** pose.
        size: ``(H, W)`` of the image.
        radius: Limb half-width and joint-disc radius in pixels (4 in the original).
        closing: Side of the square used for the closing (5 in the original; 1 disables it).

    Returns:
        ``(H, W)`` bool mask; all False when no keypoint is valid.

    Example:
        >>> xy = np.zeros((18, 2), np.float32)
        >>> xy[0] = (10.5, 40.5)  # x = column 10, y = row 40
        >>> valid = np.zeros(18, bool)
        >>> valid[0] = True
        >>> m = pose_mask(Pose(xy, valid), (128, 64))
        >>> bool(m[40, 10]), bool(m[10, 40])
        (True, False)
    """
    height, width = int(size[0]), int(size[1])
    if height <= 0 or width <= 0:
        raise ValueError(f"mask size must be positive (H, W), got {size!r}")
    if not radius > 0 or closing < 1 or closing % 2 == 0:
        raise ValueError(f"need radius > 0 and an odd closing >= 1, got {radius}, {closing}")
    rc = np.stack([pose.xy[:, 1], pose.xy[:, 0]], axis=1).astype(np.float64) - 0.5  # (row, col)
    mask = np.zeros((height, width), dtype=bool)
    for f, t in MASK_LIMBS:
        if not (pose.valid[f] and pose.valid[t]):
            continue
        d = rc[f] - rc[t]
        length = float(np.hypot(d[0], d[1]))
        if length == 0.0:
            continue
        normal = radius * np.array([-d[1], d[0]]) / length
        quad = np.stack([rc[f] + normal, rc[f] - normal, rc[t] - normal, rc[t] + normal])
        mask |= _inside_polygon(quad[:, 0], quad[:, 1], (height, width))
    rows = np.arange(height, dtype=np.float64)[:, None]
    cols = np.arange(width, dtype=np.float64)[None, :]
    for r, c in rc[pose.valid]:
        mask |= ((rows - r) / radius) ** 2 + ((cols - c) / radius) ** 2 < 1.0
    return _close(mask, closing) if closing > 1 else mask


def pose_masks(
    poses: Sequence[Pose], size: tuple[int, int], *, radius: float = 4.0, closing: int = 5
) -> torch.Tensor:
    """Batch of :func:`pose_mask`.

    Args:
        poses: ``B`` target poses.
        size: ``(H, W)``.
        radius: As for :func:`pose_mask`.
        closing: As for :func:`pose_mask`.

    Returns:
        ``(B, 1, H, W)`` bool tensor.
    """
    masks = [pose_mask(p, size, radius=radius, closing=closing) for p in poses]
    if not masks:
        return torch.zeros((0, 1, *size), dtype=torch.bool)
    return torch.from_numpy(np.stack(masks)[:, None])
