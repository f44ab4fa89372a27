"""Body parameters: which Anny bones are posed, their axes, and the :class:`BodyParams` batch.

Axes
    Anny's world frame is in metres with **Z up**; the body **faces -Y** and the person's **left
    is +X**. The identity pose is a relaxed A-pose with the pelvis at the origin, about 1.65 m tall.

Rotations
    Every rotation is a rotation vector (axis * angle, radians) in Anny's ``local-ref``
    parameterisation: a bone's delta rotation is expressed in *world-aligned axes at the bone's
    reference pose* (the A-pose), and is applied about the bone's head. With the rest of the body
    in the A-pose, a delta of ``(0, 0, a)`` on any bone turns it by ``a`` about the world Z axis.
    Useful directions (left side; the right side is the mirror image, see
    :func:`mirror_rotvec`):

    - ``upperleg01.L``: -X swings the leg forward (hip flexion), +Y moves it in (towards the
      midline), -Y out.
    - ``upperarm01.L``: +Y lowers the arm towards the body, -X swings it forward.
    - ``spine0*``/``neck0*``/``head``: +X bends forward (a vector pointing up turns towards
      -Y), Z twists, Y bends sideways (+Y towards the person's left, +X).

Hinges
    The elbows and knees are 1-DoF hinges, angles in radians, positive = flexion, measured from
    the A-pose (whose elbows are already bent by about 37 degrees and knees by about 8 degrees,
    so straightening needs a small negative angle; see ``priors.HINGE_LIMITS``). The knee axis is
    world +X; the elbow axis is derived from the reference skeleton in
    :meth:`posetransfer.body.anny_model.BodyModel.hinge_axes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "ACTIVE_BONES",
    "BALL_BONES",
    "HINGE_BONES",
    "NUM_BALL",
    "NUM_HINGE",
    "NUM_PHENOTYPES",
    "PHENOTYPE_LABELS",
    "BodyParams",
    "mirror_rotvec",
]

#: Bones with a free 3-DoF rotation, in the order of ``BodyParams.body_pose``.
BALL_BONES: Final[tuple[str, ...]] = (
    "spine05", "spine04", "spine03", "spine02", "spine01",
    "neck01", "neck02", "head",
    "clavicle.L", "clavicle.R", "shoulder01.L", "shoulder01.R",
    "upperarm01.L", "upperarm01.R", "wrist.L", "wrist.R",
    "upperleg01.L", "upperleg01.R", "foot.L", "foot.R",
)  # fmt: skip

#: 1-DoF hinge bones, in the order of ``BodyParams.hinge``: elbows then knees.
HINGE_BONES: Final[tuple[str, ...]] = (
    "lowerarm01.L",
    "lowerarm01.R",
    "lowerleg01.L",
    "lowerleg01.R",
)

#: Every bone with a non-identity delta: the root (global orientation), ball bones, hinges.
ACTIVE_BONES: Final[tuple[str, ...]] = ("root", *BALL_BONES, *HINGE_BONES)

#: Anny's default phenotype parameters, each in ``[0, 1]`` (0.5 = average), order of ``phenotype``.
PHENOTYPE_LABELS: Final[tuple[str, ...]] = (
    "gender", "age", "muscle", "weight", "height", "proportions",
)  # fmt: skip

NUM_BALL: Final[int] = len(BALL_BONES)
NUM_HINGE: Final[int] = len(HINGE_BONES)
NUM_PHENOTYPES: Final[int] = len(PHENOTYPE_LABELS)


def mirror_rotvec(rotvec: Tensor) -> Tensor:
    """Mirror rotation vectors through the body's sagittal plane (X -> -X).

    A rotation vector is a pseudo-vector, so the reflection maps ``(x, y, z)`` to ``(x, -y, -z)``.

    Args:
        rotvec: ``(..., 3)`` rotation vectors.

    Returns:
        ``(..., 3)`` mirrored rotation vectors.
    """
    return rotvec * rotvec.new_tensor([1.0, -1.0, -1.0])


@dataclass(frozen=True, eq=False)
class BodyParams:
    """A batch of Anny body parameters (pose and optional shape).

    Attributes:
        global_orient: ``(B, 3)`` rotation vector of the whole body about the pelvis, world axes.
        body_pose: ``(B, 20, 3)`` rotation vectors of :data:`BALL_BONES` (``local-ref`` axes).
        hinge: ``(B, 4)`` flexion angles (rad) of :data:`HINGE_BONES`.
        phenotype: ``(B, 6)`` values in ``[0, 1]`` in :data:`PHENOTYPE_LABELS` order, or None
            for the average body (all 0.5).
    """

    global_orient: Tensor
    body_pose: Tensor
    hinge: Tensor
    phenotype: Tensor | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.global_orient, Tensor) or self.global_orient.ndim != 2:
            shape = getattr(self.global_orient, "shape", type(self.global_orient))
            raise ValueError(f"BodyParams.global_orient must have shape (B, 3), got {shape}")
        batch = self.global_orient.shape[0]
        expected = {
            "global_orient": (batch, 3),
            "body_pose": (batch, NUM_BALL, 3),
            "hinge": (batch, NUM_HINGE),
        }
        if self.phenotype is not None:
            expected["phenotype"] = (batch, NUM_PHENOTYPES)
        for name, shape in expected.items():
            value = getattr(self, name)
            if not isinstance(value, Tensor):
                raise TypeError(f"BodyParams.{name} must be a torch.Tensor, got {type(value)}")
            if tuple(value.shape) != shape:
                raise ValueError(
                    f"BodyParams.{name} must have shape {shape} (B = global_orient.shape[0]), "
                    f"got {tuple(value.shape)}"
                )
            if not value.is_floating_point():
                raise ValueError(f"BodyParams.{name} must be a float tensor, got {value.dtype}")

    @property
    def batch_size(self) -> int:
        """Number of bodies ``B``."""
        return self.global_orient.shape[0]

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the tensors."""
        return self.global_orient.dtype

    @classmethod
    def identity(
        cls, batch: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
    ) -> BodyParams:
        """The A-pose facing the camera (-Y), average body."""
        zeros = torch.zeros
        return cls(
            global_orient=zeros(batch, 3, dtype=dtype, device=device),
            body_pose=zeros(batch, NUM_BALL, 3, dtype=dtype, device=device),
            hinge=zeros(batch, NUM_HINGE, dtype=dtype, device=device),
        )

    def _map(self, fn) -> BodyParams:
        return BodyParams(
            global_orient=fn(self.global_orient),
            body_pose=fn(self.body_pose),
            hinge=fn(self.hinge),
            phenotype=None if self.phenotype is None else fn(self.phenotype),
        )

    def to(self, *args, **kwargs) -> BodyParams:
        """Move or cast every tensor, with the arguments of :meth:`torch.Tensor.to`."""
        return self._map(lambda t: t.to(*args, **kwargs))

    def detach(self) -> BodyParams:
        """Detach every tensor from the autograd graph."""
        return self._map(Tensor.detach)

    def select(self, index: Tensor | Sequence[int] | slice) -> BodyParams:
        """Rows ``index`` of the batch (an index list, a bool mask or a slice)."""
        if not isinstance(index, slice):
            index = torch.as_tensor(index)
        return self._map(lambda t: t[index])

    def with_phenotype(self, phenotype: Tensor | None) -> BodyParams:
        """The same pose with another ``(B, 6)`` phenotype (or None for the average body)."""
        return BodyParams(self.global_orient, self.body_pose, self.hinge, phenotype)

    def phenotype_or_default(self) -> Tensor:
        """``(B, 6)`` phenotype, 0.5 everywhere when it is None."""
        if self.phenotype is not None:
            return self.phenotype
        return self.global_orient.new_full((self.batch_size, NUM_PHENOTYPES), 0.5)

    @staticmethod
    def cat(items: Sequence[BodyParams]) -> BodyParams:
        """Concatenate batches; the phenotype defaults to 0.5 where only some items carry one."""
        if not items:
            raise ValueError("BodyParams.cat needs at least one item")
        has_shape = any(p.phenotype is not None for p in items)
        return BodyParams(
            global_orient=torch.cat([p.global_orient for p in items]),
            body_pose=torch.cat([p.body_pose for p in items]),
            hinge=torch.cat([p.hinge for p in items]),
            phenotype=torch.cat([p.phenotype_or_default() for p in items]) if has_shape else None,
        )

    def to_dict(self) -> dict[str, np.ndarray]:
        """Plain float32 numpy arrays keyed by field name (npz / safetensors friendly).

        The phenotype key is absent when the phenotype is None.
        """
        out = {
            "global_orient": self.global_orient,
            "body_pose": self.body_pose,
            "hinge": self.hinge,
        }
        if self.phenotype is not None:
            out["phenotype"] = self.phenotype
        return {k: v.detach().cpu().to(torch.float32).numpy() for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: dict) -> BodyParams:
        """Inverse of :meth:`to_dict`; also accepts nested lists (e.g. parsed JSON)."""
        missing = {"global_orient", "body_pose", "hinge"} - set(data)
        if missing:
            raise ValueError(f"BodyParams.from_dict: missing keys {sorted(missing)}")

        def tensor(key: str) -> Tensor:
            return torch.as_tensor(np.asarray(data[key], dtype=np.float32))

        phenotype = data.get("phenotype")
        return cls(
            global_orient=tensor("global_orient"),
            body_pose=tensor("body_pose"),
            hinge=tensor("hinge"),
            phenotype=None if phenotype is None else tensor("phenotype"),
        )
