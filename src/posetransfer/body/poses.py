"""Random plausible body poses (standing, walking, fashion) and shapes for synthetic data.

Poses are built from a few interpretable controls per kind (arm lowering and swing, hip
flexion, knee bend, a small torso/head sway) plus small noise, then clipped to 3 standard
deviations of the pose prior and to the hinge limits, so no sample is acrobatic. Left-side
controls are written once and mirrored for the right side (``params.mirror_rotvec``).
"""

from __future__ import annotations

import math
from typing import Final, Literal

import roma
import torch
from torch import Tensor

from posetransfer.body.params import (
    BALL_BONES,
    HINGE_BONES,
    NUM_PHENOTYPES,
    BodyParams,
    mirror_rotvec,
)
from posetransfer.body.priors import default_pose_prior

__all__ = ["POSE_KINDS", "PoseKind", "sample_phenotype", "sample_pose"]

PoseKind = Literal["standing", "walking", "fashion"]
POSE_KINDS: Final[tuple[str, ...]] = ("standing", "walking", "fashion")


def _uniform(gen: torch.Generator, batch: int, low: float, high: float) -> Tensor:
    return low + (high - low) * torch.rand(batch, generator=gen)


def _normal(gen: torch.Generator, batch: int, std: float) -> Tensor:
    return std * torch.randn(batch, generator=gen)


def _rv(x: Tensor | float, y: Tensor | float, z: Tensor | float, batch: int) -> Tensor:
    return torch.stack(
        [torch.as_tensor(v, dtype=torch.float32).expand(batch) for v in (x, y, z)], -1
    )


#: Direction of the left upper arm in the A-pose (shoulder to elbow), for twisting the arm.
_UPPER_ARM_AXIS_L: Final[tuple[float, float, float]] = (0.667, -0.059, -0.743)


def _arm_controls(
    gen: torch.Generator, batch: int, kind: str, swing: Tensor
) -> tuple[Tensor, Tensor]:
    """Left-side upper-arm rotation vector ``(B, 3)`` and elbow angle ``(B,)``.

    The arm is twisted about its own axis, then swung (X) and lowered (Y) in world axes.
    """
    lower = _uniform(gen, batch, 0.45, 0.75)  # +Y lowers the A-pose arm towards the body
    fwd = swing + _normal(gen, batch, 0.1)  # +X swings the hanging arm backwards
    twist = _normal(gen, batch, 0.2)
    elbow = _uniform(gen, batch, -0.7, -0.1)  # nearly straight (the A-pose elbow is bent)
    if kind == "walking":
        elbow = _uniform(gen, batch, -0.5, 0.3)
    if kind == "fashion":
        # 0: arm down, 1: hand on the waist, 2: forearm raised in front
        style = torch.randint(0, 3, (batch,), generator=gen)
        on_hip, forward = style == 1, style == 2
        lower = torch.where(on_hip, _uniform(gen, batch, -0.2, 0.0), lower)
        fwd = torch.where(on_hip, _uniform(gen, batch, 0.0, 0.3), fwd)
        twist = torch.where(on_hip, _uniform(gen, batch, 1.2, 1.6), twist)
        elbow = torch.where(on_hip, _uniform(gen, batch, 1.1, 1.4), elbow)
        fwd = torch.where(forward, _uniform(gen, batch, -0.5, -0.1), fwd)
        elbow = torch.where(forward, _uniform(gen, batch, 0.6, 1.5), elbow)
    swing_lower = roma.rotvec_to_rotmat(_rv(fwd, lower, 0.0, batch))
    twist_rot = roma.rotvec_to_rotmat(twist[:, None] * torch.tensor(_UPPER_ARM_AXIS_L))
    return roma.rotmat_to_rotvec(swing_lower @ twist_rot), elbow


def _leg_controls(
    gen: torch.Generator, batch: int, kind: str, phase: Tensor
) -> tuple[Tensor, Tensor]:
    """Left-side upper-leg rotation vector ``(B, 3)`` and knee angle ``(B,)``."""
    flex = _normal(gen, batch, 0.04)  # -X swings the leg forwards
    spread = _uniform(gen, batch, -0.12, 0.03)  # +Y brings the leg towards the midline
    knee = _uniform(gen, batch, -0.15, 0.15)
    if kind == "walking":
        amplitude = _uniform(gen, batch, 0.2, 0.45)
        flex = -amplitude * torch.sin(phase)
        knee = 0.05 + 0.7 * torch.relu(torch.sin(phase - 1.0)) * _uniform(gen, batch, 0.5, 1.0)
    if kind == "fashion":
        relaxed = torch.rand(batch, generator=gen) < 0.5  # weight on the other leg
        flex = torch.where(relaxed, _uniform(gen, batch, -0.35, -0.05), flex)
        spread = torch.where(relaxed, _uniform(gen, batch, -0.05, 0.12), spread)
        knee = torch.where(relaxed, _uniform(gen, batch, 0.2, 0.6), knee)
    return _rv(flex, spread, _normal(gen, batch, 0.08), batch), knee


def sample_pose(
    generator: torch.Generator,
    batch: int,
    kind: PoseKind = "standing",
    yaw: tuple[float, float] = (-math.pi, math.pi),
) -> BodyParams:
    """Sample plausible poses (average body shape) at random yaws.

    Args:
        generator: Source of randomness (results are reproducible for a seeded generator).
        batch: Number of poses ``B``.
        kind: ``"standing"`` (relaxed, arms down), ``"walking"`` (leg and counter arm swing)
            or ``"fashion"`` (weight shift, hand on hip, forearm raised, head tilt).
        yaw: Range of the rotation about the vertical axis (0 faces the camera).

    Returns:
        ``B`` poses with ``phenotype=None`` (see :func:`sample_phenotype`).
    """
    if kind not in POSE_KINDS:
        raise ValueError(f"sample_pose: unknown kind {kind!r}; choose from {POSE_KINDS}")
    if batch < 1:
        raise ValueError(f"sample_pose: batch must be >= 1, got {batch}")
    prior = default_pose_prior()
    gen = generator
    phase = _uniform(gen, batch, 0.0, 2 * math.pi)
    sway = 0.5 if kind == "standing" else 1.0
    pose = prior.ball_mean + sway * 0.4 * prior.ball_std * torch.randn(
        batch, len(BALL_BONES), 3, generator=gen
    )
    index = {b: i for i, b in enumerate(BALL_BONES)}
    swing_amp = _uniform(gen, batch, 0.15, 0.35) if kind == "walking" else torch.zeros(batch)
    hinges = torch.zeros(batch, len(HINGE_BONES))
    for side, sign in (("L", 1.0), ("R", -1.0)):
        arm, elbow = _arm_controls(gen, batch, kind, sign * swing_amp * torch.sin(phase))
        leg, knee = _leg_controls(gen, batch, kind, phase if side == "L" else phase + math.pi)
        for bone, rotvec in ((f"upperarm01.{side}", arm), (f"upperleg01.{side}", leg)):
            pose[:, index[bone]] = rotvec if side == "L" else mirror_rotvec(rotvec)
        hinges[:, HINGE_BONES.index(f"lowerarm01.{side}")] = elbow
        hinges[:, HINGE_BONES.index(f"lowerleg01.{side}")] = knee
    if kind == "fashion":
        pose[:, index["head"]] += _rv(
            _normal(gen, batch, 0.1), _normal(gen, batch, 0.15), 0.0, batch
        )
    low, high = prior.ball_mean - 3 * prior.ball_std, prior.ball_mean + 3 * prior.ball_std
    pose = torch.maximum(torch.minimum(pose, high), low)
    hinges = torch.maximum(torch.minimum(hinges, prior.hinge_upper), prior.hinge_lower)
    tilt = 0.03 * torch.randn(batch, 2, generator=gen)
    global_orient = _tilt_then_yaw(tilt, _uniform(gen, batch, yaw[0], yaw[1]))
    return BodyParams(global_orient=global_orient, body_pose=pose, hinge=hinges)


def _tilt_then_yaw(tilt: Tensor, yaw: Tensor) -> Tensor:
    """Rotation vectors of ``Rz(yaw) @ R(tilt_x, tilt_y, 0)``."""
    tilt_rv = torch.cat([tilt, torch.zeros_like(tilt[:, :1])], 1)
    yaw_rv = torch.stack([torch.zeros_like(yaw), torch.zeros_like(yaw), yaw], -1)
    return roma.rotmat_to_rotvec(roma.rotvec_to_rotmat(yaw_rv) @ roma.rotvec_to_rotmat(tilt_rv))


def sample_phenotype(generator: torch.Generator, batch: int) -> Tensor:
    """``(B, 6)`` adult phenotypes: age in ``[0.5, 0.9]``, the others in ``[0.1, 0.9]``."""
    low = torch.full((NUM_PHENOTYPES,), 0.1)
    high = torch.full((NUM_PHENOTYPES,), 0.9)
    low[1] = 0.5  # age: Anny's lower values are children
    return low + (high - low) * torch.rand(batch, NUM_PHENOTYPES, generator=generator)
