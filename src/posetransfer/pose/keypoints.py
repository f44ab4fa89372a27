"""18-point OpenPose-COCO keypoints: the :class:`Pose` type and conversions at the boundaries."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posetransfer.conventions import NUM_KEYPOINTS

__all__ = ["Pose"]


@dataclass(frozen=True, eq=False)
class Pose:
    """18 keypoints of one person in the OpenPose-COCO order (see ``conventions.Keypoint``).

    Attributes:
        xy: ``(18, 2)`` float32 pixel coordinates ``(x, y)``, origin at the top-left corner of the
            image. Entries of invalid points are meaningless (kept at 0 by the constructors).
        valid: ``(18,)`` bool, True where the point was detected.
    """

    xy: np.ndarray
    valid: np.ndarray

    def __post_init__(self) -> None:
        xy = np.asarray(self.xy, dtype=np.float32)
        valid = np.asarray(self.valid, dtype=bool)
        if xy.shape != (NUM_KEYPOINTS, 2):
            raise ValueError(f"Pose.xy must have shape (18, 2), got {xy.shape}")
        if valid.shape != (NUM_KEYPOINTS,):
            raise ValueError(f"Pose.valid must have shape (18,), got {valid.shape}")
        if not np.isfinite(xy[valid]).all():
            raise ValueError("Pose.xy holds NaN or inf at a valid keypoint")
        xy = np.where(valid[:, None], xy, 0.0).astype(np.float32)
        object.__setattr__(self, "xy", xy)
        object.__setattr__(self, "valid", valid)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Pose):
            return NotImplemented
        return bool(np.array_equal(self.valid, other.valid) and np.array_equal(self.xy, other.xy))

    def __repr__(self) -> str:
        return f"Pose(num_valid={int(self.valid.sum())})"

    @property
    def num_valid(self) -> int:
        """Number of detected keypoints."""
        return int(self.valid.sum())
