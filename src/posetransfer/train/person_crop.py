"""One person framed at a model's size: :class:`PersonCrop`, what personalisation trains on.

``posetransfer.infer.repose.RePoser.source`` makes one from a photo (crop, keypoints, person mask,
person-free plate); :mod:`.self_pairs` and :mod:`.body_pairs` make training pairs from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posetransfer.pose.keypoints import Pose

__all__ = ["PersonCrop"]


@dataclass(frozen=True, eq=False)
class PersonCrop:
    """One person framed at the model's size.

    Attributes:
        image: ``(h, w, 3)`` uint8, the frame (person and background).
        pose: Keypoints in the frame's pixels.
        mask: ``(h, w)`` float32 person mask in ``[0, 1]``.
        plate: ``(h, w, 3)`` uint8, the frame with the person removed.
    """

    image: np.ndarray
    pose: Pose
    mask: np.ndarray
    plate: np.ndarray

    def __post_init__(self) -> None:
        size = self.image.shape[:2]
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(f"image must be (h, w, 3) uint8, got {self.image.shape}")
        if self.plate.shape != self.image.shape or self.plate.dtype != np.uint8:
            raise ValueError(f"plate must be {self.image.shape} uint8, got {self.plate.shape}")
        if self.mask.shape != size:
            raise ValueError(f"mask must be {size}, got {self.mask.shape}")

    @property
    def size(self) -> tuple[int, int]:
        """``(h, w)``."""
        return int(self.image.shape[0]), int(self.image.shape[1])
