"""Pose augmentation for the flow regressor: a geometric map of the whole pair, detector-like noise.

Two kinds, applied in this order by :func:`augment_pair` (``PairDataset(augment=...)``):

1. **Geometric** (``scale``, ``shift``): each image of the pair is zoomed about its centre by a
   factor drawn log-uniformly from ``scale`` and shifted by up to ``shift`` of its width and
   height (source and target drawn independently when ``independent``, as ``make-dataset`` frames
   every crop on its own). This moves the *targets* too, so the whole sample goes through the
   maps: both images, both poses (points that leave the frame become missing), and the flow and
   visibility by :func:`~posetransfer.data.transforms.apply_flow` with the target's map on the
   flow's grid and the source's map on its values (``F'(u') = A_s(u + F(u)) - u'``; a VISIBLE
   pixel whose source point left the source frame becomes INVISIBLE). Target pixels whose
   preimage lies outside the original frame (zooming out) are BACKGROUND with zero flow: the
   frame showed the whole person, so nothing of the body was there. Images are resampled
   bilinearly with the border pixels repeated.
2. **Detector noise** (``offset``, ``jitter``, ``drop_prob``) on the *input* keypoints only:
   a systematic per-joint offset shared by the pair's two poses (a detector's bias for that joint,
   e.g. BlazePose's hips against the body model's), an independent jitter per point, and points
   dropped as a detector misses them (never below ``min_keypoints`` valid points). The flow and
   visibility stay those of the true poses, which is what the regressor should learn to predict
   from a detector's keypoints; the pose maps and ``*_xy``/``*_valid`` of the sample are the
   noisy ones. Missing points (``-1`` on disk, ``valid`` False) stay missing.

Lengths are fractions of the image height (``jitter: 0.01`` is 1.28 px at 128x96). Draws come
from the generator the caller passes (``PairDataset`` seeds it with ``(seed, epoch, index, 1)``),
so a sample is the same in every run with the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from posetransfer.config import ConfigError
from posetransfer.conventions import NUM_KEYPOINTS, Visibility
from posetransfer.data.image_protocols import Affine
from posetransfer.data.transforms import PairArrays, apply_flow
from posetransfer.pose.keypoints import Pose

__all__ = [
    "PoseAugmentConfig",
    "augment_pair",
    "detector_noise",
    "random_affine",
    "transform_sample",
]


@dataclass(frozen=True)
class PoseAugmentConfig:
    """Pose augmentation of the flow stage's training pairs (``data.augment``); all off by default.

    Attributes:
        scale: ``[min, max]`` zoom factor per image, drawn log-uniformly (``[1, 1]``: none).
        shift: Largest shift per image as a fraction of its width (x) and height (y), uniform.
        independent: Draw the source's and the target's maps separately (True), or one map for
            both (False).
        offset: Standard deviation of the per-pair, per-joint offset added to both poses'
            keypoints, a fraction of the image height.
        jitter: Standard deviation of the independent per-point noise, a fraction of the height.
        drop_prob: Probability that a detector misses each valid keypoint (each pose apart).
        min_keypoints: Dropping never leaves a pose with fewer valid points than this (a pose
            that has fewer to begin with loses none).
    """

    scale: tuple[float, float] = (1.0, 1.0)
    shift: float = 0.0
    independent: bool = True
    offset: float = 0.0
    jitter: float = 0.0
    drop_prob: float = 0.0
    min_keypoints: int = 4

    def __post_init__(self) -> None:
        lo, hi = self.scale
        if not (np.isfinite(lo) and np.isfinite(hi) and 0.0 < lo <= hi):
            raise ConfigError(
                f"data.augment.scale must be [min, max] with 0 < min <= max, got {list(self.scale)}"
            )
        if not 0.0 <= self.shift < 0.5:
            raise ConfigError(f"data.augment.shift must be in [0, 0.5), got {self.shift!r}")
        for name in ("offset", "jitter"):
            value = getattr(self, name)
            if not (np.isfinite(value) and 0.0 <= value < 0.5):
                raise ConfigError(f"data.augment.{name} must be in [0, 0.5), got {value!r}")
        if not 0.0 <= self.drop_prob <= 1.0:
            raise ConfigError(f"data.augment.drop_prob must be in [0, 1], got {self.drop_prob!r}")
        if not 0 <= self.min_keypoints <= NUM_KEYPOINTS:
            raise ConfigError(
                f"data.augment.min_keypoints must be in [0, {NUM_KEYPOINTS}], "
                f"got {self.min_keypoints!r}"
            )

    @property
    def geometric(self) -> bool:
        """Whether the geometric map can differ from the identity."""
        return self.scale != (1.0, 1.0) or self.shift > 0.0

    @property
    def noisy(self) -> bool:
        """Whether the detector noise does anything."""
        return self.offset > 0.0 or self.jitter > 0.0 or self.drop_prob > 0.0

    @property
    def active(self) -> bool:
        """Whether :func:`augment_pair` can change a sample."""
        return self.geometric or self.noisy


def random_affine(
    size: tuple[int, int], cfg: PoseAugmentConfig, rng: np.random.Generator
) -> Affine:
    """A zoom about the frame's centre and a shift, on an ``(H, W)`` frame onto itself.

    ``x' = s (x - c) + c + t``, with ``s`` log-uniform in ``cfg.scale`` and ``t`` uniform in
    ``±cfg.shift * (W, H)``. Always draws three numbers, so later draws do not depend on the
    settings' values.
    """
    height, width = int(size[0]), int(size[1])
    lo, hi = cfg.scale
    s = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    tx, ty = (float(v) for v in rng.uniform(-cfg.shift, cfg.shift, size=2) * (width, height))
    ox = width / 2.0 * (1.0 - s) + tx
    oy = height / 2.0 * (1.0 - s) + ty
    return Affine((s, s), (ox, oy), (height, width), (height, width))


def transform_sample(pair: PairArrays, affine_src: Affine, affine_tgt: Affine) -> PairArrays:
    """Carry a whole pair through one map per image (see the module docstring).

    Args:
        pair: The pair; each map's ``in_size`` is its image's ``(H, W)``.
        affine_src: The source image's map.
        affine_tgt: The target image's map (the flow's grid).

    Returns:
        The mapped pair: images resampled, poses moved (points that leave a frame become
        missing), flow and visibility carried through both maps.
    """
    flow, visibility = pair.flow, pair.visibility
    if flow is not None and visibility is not None:
        flow, visibility = apply_flow(flow, visibility, affine_tgt, affine_src)
        outside = _outside_input(affine_tgt)
        visibility = np.where(outside, np.uint8(Visibility.BACKGROUND), visibility)
        flow = np.where(outside[..., None], np.float32(0.0), flow).astype(np.float32)
    return replace(
        pair,
        source_image=_resample_image(pair.source_image, affine_src),
        target_image=_resample_image(pair.target_image, affine_tgt),
        source_pose=pair.source_pose.transform(
            affine_src.scale, affine_src.offset, affine_src.out_size
        ),
        target_pose=pair.target_pose.transform(
            affine_tgt.scale, affine_tgt.offset, affine_tgt.out_size
        ),
        flow=flow,
        visibility=visibility,
    )


def detector_noise(
    source: Pose,
    target: Pose,
    size: tuple[int, int],
    cfg: PoseAugmentConfig,
    rng: np.random.Generator,
) -> tuple[Pose, Pose]:
    """Detector-like errors on a pair's keypoints: shared offsets, jitter, missed points.

    Args:
        source: Source keypoints.
        target: Target keypoints (same frame size ``size``).
        size: ``(H, W)`` of the frame; points moved outside it become missing.
        cfg: The amounts.
        rng: Random draws (a fixed number per call, whatever the settings).

    Returns:
        The noisy ``(source, target)``; missing points stay missing.
    """
    height, width = int(size[0]), int(size[1])
    offset = rng.normal(0.0, 1.0, size=(NUM_KEYPOINTS, 2)) * cfg.offset * height
    noisy = []
    for pose in (source, target):
        jitter = rng.normal(0.0, 1.0, size=(NUM_KEYPOINTS, 2)) * cfg.jitter * height
        missed = rng.random(NUM_KEYPOINTS) < cfg.drop_prob
        order = rng.permutation(NUM_KEYPOINTS)
        xy = pose.xy.astype(np.float64) + offset + jitter
        valid = pose.valid.copy()
        for k in order:  # drop in a random order while enough points are left
            if missed[k] and valid[k] and int(valid.sum()) > cfg.min_keypoints:
                valid[k] = False
        inside = (xy[:, 0] >= 0) & (xy[:, 0] < width) & (xy[:, 1] >= 0) & (xy[:, 1] < height)
        noisy.append(Pose(xy.astype(np.float32), valid & inside))
    return noisy[0], noisy[1]


def augment_pair(pair: PairArrays, cfg: PoseAugmentConfig, rng: np.random.Generator) -> PairArrays:
    """The geometric map of the whole pair, then detector noise on its keypoints.

    Args:
        pair: A pair with images of one size (after the image protocol).
        cfg: What to do.
        rng: Random draws; the same generator state gives the same sample.

    Returns:
        The augmented pair (``pair`` itself when ``cfg`` is not active).
    """
    if not cfg.active:
        return pair
    size_src = pair.source_image.shape[:2]
    size_tgt = pair.target_image.shape[:2]
    affine_tgt = random_affine(size_tgt, cfg, rng)
    affine_src = random_affine(size_src, cfg, rng)
    if not cfg.independent and size_src == size_tgt:
        affine_src = affine_tgt
    if cfg.geometric:
        pair = transform_sample(pair, affine_src, affine_tgt)
    if cfg.noisy:
        source, target = detector_noise(pair.source_pose, pair.target_pose, size_tgt, cfg, rng)
        pair = replace(pair, source_pose=source, target_pose=target)
    return pair


# --------------------------------------------------------------------------------- helpers


def _outside_input(affine: Affine) -> np.ndarray:
    """``(H', W')`` bool: output pixels whose centre's preimage lies outside the input frame."""
    (sx, sy), (ox, oy), (height, width) = affine.scale, affine.offset, affine.out_size
    in_h, in_w = affine.in_size
    x = (np.arange(width, dtype=np.float64) + 0.5 - ox) / sx
    y = (np.arange(height, dtype=np.float64) + 0.5 - oy) / sy
    return ((y < 0) | (y > in_h))[:, None] | ((x < 0) | (x > in_w))[None, :]


def _resample_image(image: np.ndarray, affine: Affine) -> np.ndarray:
    """``(H, W, 3)`` uint8 through ``affine`` (bilinear at the output pixels' preimages, border
    pixels repeated outside the input), ``(H', W', 3)`` uint8."""
    if affine.is_identity:
        return image
    (sx, sy), (ox, oy), (height, width) = affine.scale, affine.offset, affine.out_size
    in_h, in_w = image.shape[:2]
    x = (torch.arange(width, dtype=torch.float64) + 0.5 - ox) / sx
    y = (torch.arange(height, dtype=torch.float64) + 0.5 - oy) / sy
    gx, gy = (2.0 * x / in_w - 1.0).float(), (2.0 * y / in_h - 1.0).float()
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1)[None]
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    out = F.grid_sample(tensor, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
