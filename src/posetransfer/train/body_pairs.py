"""Body self-pairs for personalisation: the person 3D-warped into nearby poses of the fitted body.

:func:`make_body_pairs` fits the body model to the framed person's keypoints once
(:func:`posetransfer.body.fitting.fit_keypoints`), perturbs the fit ``count`` times (a turn about
the vertical axis, the upper arms and legs, the elbows and knees within their limits) and renders
two flows per perturbed pose ``P'`` (:func:`posetransfer.render.bodies.render_body_flow`):

- ``P' -> P`` makes the *source*: the real crop warped into ``P'`` where the ``P'`` body sees a
  point the crop shows, the person-free plate off the body, and holes (points the crop does not
  show) filled from their surroundings;
- ``P -> P'`` is the pair's flow: the *target* is the real crop itself, so every target pixel is
  a real one, and where the target shows what the source cannot (INVISIBLE), the network learns
  this person's look instead of guessing.

The source's keypoints are the perturbed body's projected keypoints plus the detector's offset
from the fitted ones (so both sides of a pair carry the same detector bias). The result is small
(``count`` images and flows at the model's size) and is kept in the run folder
(:meth:`BodyPairs.save`), so a resumed run needs neither the body model nor a new fit.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import roma
import torch
import torch.nn.functional as F

from posetransfer.body.params import BALL_BONES, BodyParams
from posetransfer.body.priors import HINGE_LIMITS
from posetransfer.config import ConfigError
from posetransfer.conventions import Visibility
from posetransfer.io import atomic_open, tensor_to_uint8, uint8_to_tensor, write_npz
from posetransfer.ops.warp import warp
from posetransfer.pose.keypoints import Pose
from posetransfer.train.person_crop import PersonCrop

if TYPE_CHECKING:
    from posetransfer.body.anny_model import BodyModel

__all__ = ["BodyPairConfig", "BodyPairs", "make_body_pairs"]

logger = logging.getLogger(__name__)

#: Indices in ``BodyParams.body_pose`` of the perturbed limbs.
_ARMS = (BALL_BONES.index("upperarm01.L"), BALL_BONES.index("upperarm01.R"))
_LEGS = (BALL_BONES.index("upperleg01.L"), BALL_BONES.index("upperleg01.R"))


@dataclass(frozen=True)
class BodyPairConfig:
    """The perturbed poses of the fitted body.

    Attributes:
        count: Perturbed poses (0: no body self-pairs, no body model needed).
        yaw_deg: Largest turn of the whole body about the vertical axis.
        arm_deg: Standard deviation of the upper arms' rotation (each axis).
        leg_deg: Standard deviation of the upper legs' rotation (each axis).
        hinge_deg: Standard deviation of the elbows' and knees' flexion change.
        seed: Seed of the draws.
    """

    count: int = 8
    yaw_deg: float = 25.0
    arm_deg: float = 20.0
    leg_deg: float = 8.0
    hinge_deg: float = 20.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ConfigError(f"body.count must be >= 0, got {self.count!r}")
        for name in ("yaw_deg", "arm_deg", "leg_deg", "hinge_deg"):
            if getattr(self, name) < 0:
                raise ConfigError(f"body.{name} must be >= 0, got {getattr(self, name)!r}")


@dataclass(frozen=True, eq=False)
class BodyPairs:
    """Precomputed body self-pairs (the target of each is the person's crop).

    Attributes:
        sources: ``(K, h, w, 3)`` uint8 source images (the crop in the perturbed poses).
        source_xy: ``(K, 18, 2)`` float32 source keypoints; ``source_valid`` ``(K, 18)`` bool.
        flow: ``(K, 2, h, w)`` float32 flow from the crop's grid to each source.
        visibility: ``(K, h, w)`` uint8 visibility codes on the crop's grid.
    """

    sources: np.ndarray
    source_xy: np.ndarray
    source_valid: np.ndarray
    flow: np.ndarray
    visibility: np.ndarray

    def __len__(self) -> int:
        return int(self.sources.shape[0])

    def sample(self, k: int) -> tuple[torch.Tensor, Pose, torch.Tensor, torch.Tensor]:
        """``(source (3, h, w) in [-1, 1], source pose, flow (2, h, w), visibility (h, w))``."""
        pose = Pose(self.source_xy[k].astype(np.float32), self.source_valid[k].astype(bool))
        flow = torch.from_numpy(np.ascontiguousarray(self.flow[k], np.float32))
        vis = torch.from_numpy(self.visibility[k].astype(np.int64))
        return uint8_to_tensor(self.sources[k]), pose, flow, vis

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write a compressed ``.npz`` atomically."""
        with atomic_open(path) as f:
            write_npz(f, **{k: getattr(self, k) for k in self.__dataclass_fields__})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BodyPairs:
        """Read what :meth:`save` wrote (no pickles)."""
        with np.load(path, allow_pickle=False) as data:
            return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def _perturb(params: BodyParams, cfg: BodyPairConfig, gen: torch.Generator) -> BodyParams:
    """``cfg.count`` perturbed copies of the one fitted body ``params``."""
    k = cfg.count
    rad = math.pi / 180.0
    yaw = (torch.rand(k, generator=gen) * 2 - 1) * cfg.yaw_deg * rad
    turn = torch.stack([torch.zeros(k), torch.zeros(k), yaw], dim=-1)
    orient = roma.rotvec_composition([turn, params.global_orient.expand(k, 3)])
    body = params.body_pose.expand(k, -1, -1).clone()
    for bones, std in ((_ARMS, cfg.arm_deg), (_LEGS, cfg.leg_deg)):
        for bone in bones:
            body[:, bone] += torch.randn(k, 3, generator=gen) * std * rad
    hinge = params.hinge.expand(k, -1) + torch.randn(k, 4, generator=gen) * cfg.hinge_deg * rad
    low = torch.tensor([HINGE_LIMITS["lowerarm01"][0]] * 2 + [HINGE_LIMITS["lowerleg01"][0]] * 2)
    high = torch.tensor([HINGE_LIMITS["lowerarm01"][1]] * 2 + [HINGE_LIMITS["lowerleg01"][1]] * 2)
    hinge = torch.maximum(torch.minimum(hinge, high), low)
    phenotype = None if params.phenotype is None else params.phenotype.expand(k, -1)
    return BodyParams(orient, body, hinge, phenotype)


def _fill_holes(image: torch.Tensor, hole: torch.Tensor, iterations: int = 24) -> torch.Tensor:
    """``image`` ``(1, 3, h, w)`` with ``hole`` ``(1, 1, h, w)`` pixels filled by repeated 3x3
    averaging of the known pixels around them (a cheap diffusion)."""
    known = (~hole).float()
    out = image * known
    for _ in range(iterations):
        total = F.avg_pool2d(out, 3, 1, 1, count_include_pad=False)
        weight = F.avg_pool2d(known, 3, 1, 1, count_include_pad=False)
        fill = total / weight.clamp(min=1e-6)
        out = torch.where(known > 0, out, fill * (weight > 0))
        known = torch.maximum(known, (weight > 0).float())
    return out


def make_body_pairs(model: BodyModel, person: PersonCrop, cfg: BodyPairConfig) -> BodyPairs:
    """Fit the body to ``person`` and make ``cfg.count`` body self-pairs (module docstring).

    Args:
        model: The body model (:func:`posetransfer.body.load_body_model`).
        person: The framed person.
        cfg: The perturbations.

    Returns:
        The pairs (empty when ``cfg.count`` is 0).

    Raises:
        ValueError: The body could not be fitted to the person's keypoints.
    """
    from posetransfer.body.camera import project
    from posetransfer.body.fitting import fit_keypoints
    from posetransfer.pose.keypoints import stack_poses
    from posetransfer.render.bodies import render_body_flow

    h, w = person.size
    k = cfg.count
    if k == 0:
        return BodyPairs(
            sources=np.zeros((0, h, w, 3), np.uint8),
            source_xy=np.zeros((0, 18, 2), np.float32),
            source_valid=np.zeros((0, 18), bool),
            flow=np.zeros((0, 2, h, w), np.float32),
            visibility=np.zeros((0, h, w), np.uint8),
        )
    xy, valid = stack_poses([person.pose])
    fit = fit_keypoints(model, xy, valid, (h, w))
    if fit.camera.isnan().any():
        raise ValueError(f"the body could not be fitted to the person's keypoints: {fit.reason[0]}")
    if fit.reason[0] is not None:
        logger.warning("body fit: %s; using it anyway", fit.reason[0])
    gen = torch.Generator().manual_seed(cfg.seed)
    perturbed = _perturb(fit.params, cfg, gen)
    base = fit.params
    camera = fit.camera.expand(k, 3)
    repeated = BodyParams(
        base.global_orient.expand(k, 3), base.body_pose.expand(k, -1, -1), base.hinge.expand(k, -1),
        None if base.phenotype is None else base.phenotype.expand(k, -1),
    )  # fmt: skip
    into = render_body_flow(model, repeated, camera, perturbed, camera, (h, w))  # P' -> P
    back = render_body_flow(model, perturbed, camera, repeated, camera, (h, w))  # P -> P'
    crop = uint8_to_tensor(person.image)[None].expand(k, -1, -1, -1)
    plate = uint8_to_tensor(person.plate)[None].expand(k, -1, -1, -1)
    warped = warp(crop, into.flow, padding_mode="border")
    vis = into.visibility[:, None]
    sources = torch.where(vis == int(Visibility.BACKGROUND), plate, warped)
    sources = torch.cat([
        _fill_holes(sources[i : i + 1], vis[i : i + 1] == int(Visibility.INVISIBLE))
        for i in range(k)
    ])  # fmt: skip
    # Source keypoints: the perturbed body's, plus the detector's offset from the fitted body.
    moved = project(model.fast_keypoints18(perturbed), camera)[..., :2]
    offset = torch.where(valid[..., None], xy - fit.keypoints_xy, 0.0)
    src_xy = (moved + offset).numpy().astype(np.float32)
    inside = (src_xy[..., 0] >= 0) & (src_xy[..., 0] < w) & (src_xy[..., 1] >= 0)
    src_valid = valid.numpy().repeat(k, 0) & inside & (src_xy[..., 1] < h)
    logger.info("made %d body self-pairs (fit error %.1f px)", k, float(fit.reprojection_error[0]))
    return BodyPairs(
        sources=np.stack([tensor_to_uint8(s) for s in sources]),
        source_xy=np.where(src_valid[..., None], src_xy, 0).astype(np.float32),
        source_valid=src_valid,
        flow=back.flow.numpy().astype(np.float32),
        visibility=back.visibility.numpy().astype(np.uint8),
    )
