"""Settings of the pose detector: :class:`DetectorConfig` (re-exported by ``infer.detect``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["DetectorConfig"]


_UNIT_FIELDS: Final = (
    "min_detection_confidence",
    "min_presence_confidence",
    "min_tracking_confidence",
    "keypoint_threshold",
    "mask_threshold",
)


@dataclass(frozen=True)
class DetectorConfig:
    """Settings of :class:`PoseDetector`.

    Attributes:
        num_poses: Most people looked for in one image (1 is fastest: one landmark pass).
        min_detection_confidence: Person-detector score a candidate needs.
        min_presence_confidence: Landmark-model presence score a person needs.
        min_tracking_confidence: Video mode: below this the detector runs again instead of
            tracking from the previous frame.
        keypoint_threshold: A keypoint is valid when its visibility is above this.
        mask_threshold: Mask values above this count as the person for the box.
        margin: Fraction of the tight person box's larger side added on every side.
        aspect: ``(H, W)`` whose aspect ratio the person box takes, e.g. ``[256, 176]``.
        masks: Compute the segmentation mask. Without it :attr:`Detection.mask` is all zeros
            and boxes come from the keypoints alone; the keypoints are the same, at about a
            quarter less detector CPU (a driving video's poses need no mask, BENCHMARKS.md).
    """

    num_poses: int = 4
    min_detection_confidence: float = 0.5
    min_presence_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    keypoint_threshold: float = 0.5
    mask_threshold: float = 0.5
    margin: float = 0.1
    aspect: tuple[int, int] = (256, 176)
    masks: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.masks, bool):
            raise ValueError(f"masks must be true or false, got {self.masks!r}")
        if isinstance(self.num_poses, bool) or not isinstance(self.num_poses, int):
            raise ValueError(f"num_poses must be a positive integer, got {self.num_poses!r}")
        if self.num_poses < 1:
            raise ValueError(f"num_poses must be a positive integer, got {self.num_poses!r}")
        for name in _UNIT_FIELDS:
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        if not self.margin >= 0:
            raise ValueError(f"margin must be a non-negative fraction, got {self.margin!r}")
        aspect = tuple(self.aspect)
        if len(aspect) != 2 or any(isinstance(v, bool) or int(v) != v or v <= 0 for v in aspect):
            raise ValueError(f"aspect must be two positive integers (H, W), got {self.aspect!r}")
        object.__setattr__(self, "aspect", (int(aspect[0]), int(aspect[1])))
