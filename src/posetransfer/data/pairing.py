"""Pairs of one person's images whose poses differ enough: the pose-change measure and the rule.

A dataset made from video (``posetransfer make-dataset``) holds many near-identical neighbouring
frames; pairing them teaches nothing. :func:`pose_change` measures how far two poses are apart
once position and size are taken out, and :func:`select_pairs` keeps the pairs of each
identity that change at least ``min_change``.

Pose change (in the pixels of the frame the poses are in, e.g. the ``H x W`` person crops):

1. keep the keypoints valid in both poses (fewer than ``min_common``: the pair is refused);
2. move each pose's centroid (of those points) to the origin;
3. scale each to the mean of the two RMS radii (RMS distance of the points from the centroid),
   so a person filmed nearer or farther does not count as a pose change;
4. the change is the mean distance between corresponding points.

Rotation is not removed: leaning over is a pose change. The measure is symmetric, 0 for a pose
and a shifted or scaled copy of it, and for ``b = a + d`` (``d`` a displacement with zero mean
and no change of radius) exactly ``mean |d|``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from posetransfer.pose.keypoints import Pose

__all__ = ["PairRule", "pose_change", "pose_changes", "select_pairs"]


@dataclass(frozen=True)
class PairRule:
    """Which pairs of one identity's images :func:`select_pairs` keeps.

    Attributes:
        min_change: Least :func:`pose_change` of a pair, in pixels of the images' frame.
        min_common: Least number of keypoints valid in both images.
        per_image: Most pairs with the same target image: when more sources qualify, this many
            are drawn (seeded by ``seed`` and the target's name); None keeps every pair.
        seed: Seed of those draws.
    """

    min_change: float = 8.0
    min_common: int = 4
    per_image: int | None = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.min_change) and self.min_change >= 0):
            raise ValueError(f"min_change must be >= 0 pixels, got {self.min_change!r}")
        if self.min_common < 2:
            raise ValueError(f"min_common must be >= 2 keypoints, got {self.min_common!r}")
        if self.per_image is not None and self.per_image < 1:
            raise ValueError(f"per_image must be >= 1 or None (all), got {self.per_image!r}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed!r}")


def pose_change(src: Pose, tgt: Pose, *, min_common: int = 4) -> float:
    """Mean keypoint displacement between two poses after removing position and scale.

    Args:
        src: One pose, in the pixels of some frame.
        tgt: The other, in the same frame's pixels.
        min_common: Least number of keypoints valid in both.

    Returns:
        The change in pixels (module docstring); NaN when fewer than ``min_common`` keypoints
        are valid in both or either pose's common points all coincide.
    """
    xy = np.stack([src.xy, tgt.xy])[None]  # (1, 2, 18, 2)
    valid = np.stack([src.valid, tgt.valid])[None]
    return float(_changes(xy[:, 0], valid[:, 0], xy[0, 1], valid[0, 1], min_common)[0])


def pose_changes(poses: Sequence[Pose], target: Pose, *, min_common: int = 4) -> np.ndarray:
    """:func:`pose_change` of every pose in ``poses`` against ``target``, vectorised.

    Args:
        poses: ``N`` poses.
        target: The pose they are compared with.
        min_common: As in :func:`pose_change`.

    Returns:
        ``(N,)`` float64 changes in pixels, NaN where undefined.
    """
    if not poses:
        return np.zeros(0)
    xy = np.stack([p.xy for p in poses])
    valid = np.stack([p.valid for p in poses])
    return _changes(xy, valid, target.xy, target.valid, min_common)


def _changes(
    xy: np.ndarray, valid: np.ndarray, txy: np.ndarray, tvalid: np.ndarray, min_common: int
) -> np.ndarray:
    """``(N, 18, 2)``/``(N, 18)`` poses against one ``(18, 2)``/``(18,)`` pose -> ``(N,)``."""
    common = valid & tvalid[None]  # (N, 18)
    count = common.sum(axis=1)
    weight = common[..., None].astype(np.float64)
    denom = np.maximum(count, 1)[:, None]
    a = xy.astype(np.float64)
    b = np.broadcast_to(txy.astype(np.float64), a.shape)
    a = (a - ((a * weight).sum(axis=1) / denom)[:, None]) * weight
    b = (b - ((b * weight).sum(axis=1) / denom)[:, None]) * weight
    radius_a = np.sqrt((a**2).sum(axis=(1, 2)) / denom[:, 0])
    radius_b = np.sqrt((b**2).sum(axis=(1, 2)) / denom[:, 0])
    ok = (count >= min_common) & (radius_a > 0) & (radius_b > 0)
    radius_a, radius_b = np.where(ok, radius_a, 1.0), np.where(ok, radius_b, 1.0)
    mean_radius = (radius_a + radius_b) / 2
    diff = a * (mean_radius / radius_a)[:, None, None] - b * (mean_radius / radius_b)[:, None, None]
    change = np.sqrt((diff**2).sum(axis=2)).sum(axis=1) / denom[:, 0]
    return np.where(ok, change, np.nan)


def select_pairs(
    poses: Mapping[str, Pose],
    groups: Mapping[str, Sequence[str]],
    rule: PairRule,
    tracks: Mapping[str, tuple[str, int]] | None = None,
) -> list[tuple[str, str]]:
    """Ordered ``(source, target)`` pairs within each group whose pose change is large enough.

    Args:
        poses: Image name -> pose; every name in ``groups`` must be here.
        groups: Identity -> its image names (one split's); pairs never cross groups.
        rule: Least change, least common keypoints, most pairs per target, seed.
        tracks: Image name -> ``(sequence, track)``: two images of one sequence (a video) pair
            only when they are in the same track; images of different sequences pair freely.
            None: no restriction.

    Returns:
        The pairs, sorted; a pair's source and target differ and both come from one group.
        Which sources a capped target keeps depends only on the rule, the target's name and the
        names and poses of its group, never on the order of ``groups``.

    Raises:
        KeyError: A name in ``groups`` without a pose.
    """
    pairs: list[tuple[str, str]] = []
    for names in groups.values():
        ordered = sorted(set(names))
        group_poses = [poses[n] for n in ordered]
        labels = [tracks[n] if tracks is not None else ("", k) for k, n in enumerate(ordered)]
        sequence = np.array([label[0] for label in labels])
        track = np.array([label[1] for label in labels])
        for k, target in enumerate(ordered):
            change = pose_changes(group_poses, group_poses[k], min_common=rule.min_common)
            change[k] = np.nan
            if tracks is not None:
                change[(sequence == sequence[k]) & (track != track[k])] = np.nan
            keep = np.flatnonzero(np.nan_to_num(change, nan=-1.0) >= rule.min_change)
            if rule.per_image is not None and keep.size > rule.per_image:
                rng = np.random.default_rng([rule.seed, zlib.crc32(target.encode("utf-8"))])
                keep = np.sort(rng.choice(keep, size=rule.per_image, replace=False))
            pairs += [(ordered[s], target) for s in keep]
    return sorted(pairs)
