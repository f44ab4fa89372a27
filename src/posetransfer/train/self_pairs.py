"""Training pairs made from one framed person, for personalisation (test-time fine-tuning).

The person comes as a :class:`PersonCrop`: the model-sized frame around them (what
``posetransfer.infer.repose.RePoser.source`` makes from a photo), their keypoints, their mask and
the frame with them removed (the *plate*). :class:`SelfPairDataset` turns it into an endless
supply of source/target pairs whose target is known exactly:

*Affine self-pairs* (:func:`affine_pair`). The crop under two random similarity transforms,
``A`` for the source and ``B`` for the target (scale, shift; both mirrored together with
``flip_prob``, which keeps the flow a plausible body motion). A transform ``T`` maps an output
pixel centre ``u`` to the crop point ``T(u) = c + t + s * F (u - c)`` (``c`` the frame's centre,
``F = diag(+-1, 1)``), so the image it makes is ``crop(T(u))``. The target is the person as
``B`` places them composited over the *source's* plate: the background stays where the source
has it, as for a still camera and as the photo pipeline composites at inference. A target person
pixel ``v`` shows crop point ``B(v)``, which the source shows at ``A^-1(B(v))``, so the flow is
exact: ``F(v) = A^-1(B(v)) - v`` where the target mask is > 0.5 (VISIBLE; INVISIBLE where that
point falls outside the source), 0 and BACKGROUND elsewhere. Keypoints move by ``A^-1`` and
``B^-1`` (left and right swapped when mirrored).

*Body self-pairs* (:mod:`.body_pairs`): the real person (over the plate, as above) as the
target, a copy 3D-warped into a perturbed pose of the fitted body as the source, with the fitted
body's flow; a share ``body_fraction`` of the samples.

Every sample also carries the generator's background (the source's plate) and the target's
person mask (for a loss weighted towards the person). Draws depend only on ``(seed, epoch,
index)``, so a resumed run sees the same pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch.utils.data import Dataset

from posetransfer.config import ConfigError
from posetransfer.conventions import FLIP_PERMUTATION, Visibility
from posetransfer.data.samples import PairBatch, PairSample, collate_pairs
from posetransfer.io import uint8_to_tensor
from posetransfer.ops.warp import pixel_grid, warp
from posetransfer.pose.keypoints import Pose, stack_poses
from posetransfer.pose.maps import PoseMapConfig, pose_maps
from posetransfer.train.body_pairs import BodyPairs
from posetransfer.train.person_crop import PersonCrop

__all__ = [
    "PersonCrop",  # re-exported from .person_crop
    "SelfPairBatch",
    "SelfPairConfig",
    "SelfPairDataset",
    "SelfPairSample",
    "affine_pair",
    "collate_self_pairs",
]


@dataclass(frozen=True)
class SelfPairConfig:
    """How self-pairs are drawn.

    Attributes:
        scale: Range of the person's size factor per side (``1`` = as in the crop).
        shift: Largest shift per side, as a fraction of the frame's width and height.
        flip_prob: Probability of mirroring a pair (both sides).
        identity_prob: Probability of the plain pair (source = target = the crop).
        body_fraction: Share of body self-pairs (when any were made, see ``BodyPairConfig``).
        per_epoch: Pairs per epoch (each epoch draws new ones).
        val_pairs: Fixed pairs that validate the run (``best/``); 0 for none.
    """

    scale: tuple[float, float] = (0.85, 1.15)
    shift: float = 0.08
    flip_prob: float = 0.5
    identity_prob: float = 0.1
    body_fraction: float = 0.5
    per_epoch: int = 60
    val_pairs: int = 6

    def __post_init__(self) -> None:
        lo, hi = self.scale
        checks = [
            ("scale", 0 < lo <= hi, "a range 0 < low <= high"),
            ("shift", 0 <= self.shift < 0.5, "in [0, 0.5)"),
            ("flip_prob", 0 <= self.flip_prob <= 1, "in [0, 1]"),
            ("identity_prob", 0 <= self.identity_prob <= 1, "in [0, 1]"),
            ("body_fraction", 0 <= self.body_fraction <= 1, "in [0, 1]"),
            ("per_epoch", self.per_epoch >= 1, ">= 1"),
            ("val_pairs", self.val_pairs >= 0, ">= 0"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ConfigError(f"pairs.{name} must be {rule}, got {getattr(self, name)!r}")


@dataclass
class SelfPairSample(PairSample):
    """A :class:`PairSample` with the generator's ``background`` ``(3, H, W)`` (the source's
    plate) and the target's ``person_mask`` ``(1, H, W)`` float32."""

    background: torch.Tensor | None = None
    person_mask: torch.Tensor | None = None


@dataclass
class SelfPairBatch(PairBatch):
    """A :class:`PairBatch` with ``background`` ``(B, 3, H, W)`` and ``person_mask``
    ``(B, 1, H, W)``."""

    background: torch.Tensor | None = None
    person_mask: torch.Tensor | None = None


def collate_self_pairs(samples: list[SelfPairSample]) -> SelfPairBatch:
    """Stack :class:`SelfPairSample` objects (every one has flow, background and mask)."""
    base = collate_pairs(list(samples))
    values = {f.name: getattr(base, f.name) for f in fields(base)}
    background = torch.stack([s.background for s in samples if s.background is not None])
    mask = torch.stack([s.person_mask for s in samples if s.person_mask is not None])
    if len(background) != len(samples) or len(mask) != len(samples):
        raise ValueError("every self-pair sample needs its background and person mask")
    return SelfPairBatch(**values, background=background, person_mask=mask)


# ------------------------------------------------------------------------------------------------
# Affine self-pairs.


@dataclass(frozen=True)
class _Similarity:
    """``T(u) = c + t + s * F (u - c)``, ``F = diag(flip, 1)``: output pixel -> crop point."""

    scale: float
    shift: tuple[float, float]
    flip: bool

    def coefficients(self, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """``(a, b)`` with ``T(u) = a * u + b`` per axis (``x``, ``y``)."""
        h, w = size
        centre = np.array([w / 2.0, h / 2.0])
        a = np.array([-self.scale if self.flip else self.scale, self.scale])
        return a, centre + np.asarray(self.shift) - a * centre


def _draw_similarity(rng: np.random.Generator, cfg: SelfPairConfig, size: tuple[int, int],
                     flip: bool) -> _Similarity:  # fmt: skip
    zoom = math.exp(rng.uniform(math.log(cfg.scale[0]), math.log(cfg.scale[1])))
    shift = rng.uniform(-cfg.shift, cfg.shift, 2) * np.array([size[1], size[0]])
    return _Similarity(1.0 / zoom, (float(shift[0]), float(shift[1])), flip)


def _apply_grid(size: tuple[int, int], a: np.ndarray, b: np.ndarray) -> torch.Tensor:
    """``(1, 2, h, w)`` of ``a * u + b - u``: the backward flow of an axis-aligned map."""
    grid = pixel_grid(*size, dtype=torch.float64)
    a_t = torch.from_numpy(a).view(1, 2, 1, 1)
    b_t = torch.from_numpy(b).view(1, 2, 1, 1)
    return (a_t * grid + b_t - grid).float()


def _move_pose(pose: Pose, a: np.ndarray, b: np.ndarray, size: tuple[int, int], flip: bool) -> Pose:
    """Keypoints under the inverse of ``p = a * u + b`` (crop point -> output pixel)."""
    xy = ((pose.xy.astype(np.float64) - b) / a).astype(np.float32)
    h, w = size
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    valid = pose.valid & inside
    if flip:
        perm = np.asarray(FLIP_PERMUTATION)
        xy, valid = xy[perm], valid[perm]
    return Pose(np.where(valid[:, None], xy, 0).astype(np.float32), valid)


def affine_pair(
    person: PersonCrop,
    rng: np.random.Generator,
    cfg: SelfPairConfig,
) -> tuple[torch.Tensor, torch.Tensor, Pose, Pose, torch.Tensor, torch.Tensor, torch.Tensor,
           torch.Tensor]:  # fmt: skip
    """One affine self-pair (see the module docstring).

    Args:
        person: The framed person.
        rng: Draws the transforms.
        cfg: Ranges of the draws.

    Returns:
        ``(source (3, h, w), target (3, h, w), source pose, target pose, flow (2, h, w),
        visibility (h, w) int64, background (3, h, w), target mask (1, h, w))``; images in
        ``[-1, 1]``.
    """
    size = person.size
    flip = bool(rng.random() < cfg.flip_prob)
    if rng.random() < cfg.identity_prob:
        sim_a = sim_b = _Similarity(1.0, (0.0, 0.0), False)
    else:
        sim_a = _draw_similarity(rng, cfg, size, flip)
        sim_b = _draw_similarity(rng, cfg, size, flip)
    (a_a, b_a), (a_b, b_b) = sim_a.coefficients(size), sim_b.coefficients(size)
    crop = uint8_to_tensor(person.image)[None]
    plate = uint8_to_tensor(person.plate)[None]
    mask = torch.from_numpy(np.ascontiguousarray(person.mask, np.float32))[None, None]
    flow_a, flow_b = _apply_grid(size, a_a, b_a), _apply_grid(size, a_b, b_b)
    source = warp(crop, flow_a, padding_mode="border")[0]
    background = warp(plate, flow_a, padding_mode="border")[0]
    person_b = warp(crop, flow_b, padding_mode="border")[0]
    mask_b = warp(mask, flow_b)[0].clamp(0, 1)
    target = mask_b * person_b + (1 - mask_b) * background
    # Target pixel v -> crop point B(v) -> source pixel A^-1(B(v)).
    a_ab, b_ab = a_b / a_a, (b_b - b_a) / a_a
    flow = _apply_grid(size, a_ab, b_ab)[0]
    coords = pixel_grid(*size)[0] + flow
    h, w = size
    inside = (coords[0] >= 0) & (coords[0] < w) & (coords[1] >= 0) & (coords[1] < h)
    on_person = mask_b[0] > 0.5
    vis = torch.full(size, int(Visibility.BACKGROUND), dtype=torch.int64)
    vis[on_person & inside] = int(Visibility.VISIBLE)
    vis[on_person & ~inside] = int(Visibility.INVISIBLE)
    flow = flow * (vis != int(Visibility.BACKGROUND))
    pose_src = _move_pose(person.pose, a_a, b_a, size, flip)
    pose_tgt = _move_pose(person.pose, a_b, b_b, size, flip)
    return source, target, pose_src, pose_tgt, flow, vis, background, mask_b


# ------------------------------------------------------------------------------------------------
# The dataset.


class SelfPairDataset(Dataset[SelfPairSample]):
    """Self-pairs of one person, drawn afresh each epoch from ``(seed, epoch, index)``.

    Args:
        person: The framed person.
        cfg: The draws.
        pose_map: Pose maps of the samples (the run's ``data.pose_map``).
        body_pairs: Precomputed body self-pairs (:func:`.body_pairs.make_body_pairs`), or None.
        length: Samples per epoch (default ``cfg.per_epoch``).
        seed: Seed of the draws.
    """

    def __init__(
        self,
        person: PersonCrop,
        cfg: SelfPairConfig,
        pose_map: PoseMapConfig,
        body_pairs: BodyPairs | None = None,
        length: int | None = None,
        seed: int = 0,
    ) -> None:
        self.person, self.cfg, self.pose_map = person, cfg, pose_map
        self.body_pairs = body_pairs if body_pairs is not None and len(body_pairs) else None
        self.length = cfg.per_epoch if length is None else length
        self.seed, self.epoch = seed, 0

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        """Draw the pairs of ``epoch`` from now on."""
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> SelfPairSample:
        rng = np.random.default_rng((self.seed, self.epoch, index))
        body = self.body_pairs
        if body is not None and rng.random() < self.cfg.body_fraction:
            k = int(rng.integers(len(body)))
            source, pose_src, flow, vis = body.sample(k)
            background = uint8_to_tensor(self.person.plate)
            mask = torch.from_numpy(np.ascontiguousarray(self.person.mask, np.float32))[None]
            # The person over the plate, as in the affine pairs: the background input is then
            # the target's own (no real texture to invent around the person's silhouette).
            target = mask * uint8_to_tensor(self.person.image) + (1 - mask) * background
            pose_tgt, name = self.person.pose, f"body{k}"
        else:
            source, target, pose_src, pose_tgt, flow, vis, background, mask = affine_pair(
                self.person, rng, self.cfg
            )
            name = "affine"
        xy, valid = stack_poses([pose_src, pose_tgt])
        maps = pose_maps(xy, valid, self.person.size, self.pose_map)
        return SelfPairSample(
            source_name=f"{name}-{self.epoch}-{index}:source",
            target_name=f"{name}-{self.epoch}-{index}:target",
            source_image=source,
            target_image=target,
            source_xy=xy[0],
            source_valid=valid[0],
            target_xy=xy[1],
            target_valid=valid[1],
            source_pose_map=maps[0],
            target_pose_map=maps[1],
            flow=flow.contiguous(),
            visibility=vis,
            background=background,
            person_mask=mask,
        )
