"""18-point OpenPose-COCO keypoints: the :class:`Pose` type and conversions at the boundaries.

Convention:
    ``Pose.xy`` holds continuous ``(x, y)`` pixel coordinates with the origin at the top-left
    corner of the top-left pixel, so pixel ``(row i, col j)`` has its centre at
    ``(j + 0.5, i + 0.5)``. Files store integer pixel indices with ``-1`` for a missing point;
    :meth:`Pose.from_indices` and :meth:`Pose.to_indices` are the only conversions between the two.

Detector outputs are mapped to the 18-point order here: COCO-17 (:meth:`Pose.from_coco17`) and
MediaPipe BlazePose-33 (:meth:`Pose.from_blazepose33`). Neither has a neck; it is the midpoint of
the shoulders, valid only when both shoulders are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import torch

from posetransfer.conventions import FLIP_PERMUTATION, MISSING_COORD, NUM_KEYPOINTS, Keypoint

__all__ = ["BLAZEPOSE33_INDEX", "COCO17_INDEX", "Pose", "stack_poses"]

#: For each of our keypoints except the neck, its index among the 17 COCO keypoints.
COCO17_INDEX: Final[Mapping[Keypoint, int]] = {
    Keypoint.NOSE: 0,
    Keypoint.L_EYE: 1,
    Keypoint.R_EYE: 2,
    Keypoint.L_EAR: 3,
    Keypoint.R_EAR: 4,
    Keypoint.L_SHOULDER: 5,
    Keypoint.R_SHOULDER: 6,
    Keypoint.L_ELBOW: 7,
    Keypoint.R_ELBOW: 8,
    Keypoint.L_WRIST: 9,
    Keypoint.R_WRIST: 10,
    Keypoint.L_HIP: 11,
    Keypoint.R_HIP: 12,
    Keypoint.L_KNEE: 13,
    Keypoint.R_KNEE: 14,
    Keypoint.L_ANKLE: 15,
    Keypoint.R_ANKLE: 16,
}

#: For each of our keypoints except the neck, its index among the 33 BlazePose landmarks.
BLAZEPOSE33_INDEX: Final[Mapping[Keypoint, int]] = {
    Keypoint.NOSE: 0,
    Keypoint.L_EYE: 2,
    Keypoint.R_EYE: 5,
    Keypoint.L_EAR: 7,
    Keypoint.R_EAR: 8,
    Keypoint.L_SHOULDER: 11,
    Keypoint.R_SHOULDER: 12,
    Keypoint.L_ELBOW: 13,
    Keypoint.R_ELBOW: 14,
    Keypoint.L_WRIST: 15,
    Keypoint.R_WRIST: 16,
    Keypoint.L_HIP: 23,
    Keypoint.R_HIP: 24,
    Keypoint.L_KNEE: 25,
    Keypoint.R_KNEE: 26,
    Keypoint.L_ANKLE: 27,
    Keypoint.R_ANKLE: 28,
}


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

    # ----------------------------------------------------------------------------- constructors

    @classmethod
    def missing(cls) -> Pose:
        """A pose with no valid keypoint."""
        return cls(np.zeros((NUM_KEYPOINTS, 2), np.float32), np.zeros(NUM_KEYPOINTS, bool))

    @classmethod
    def from_arrays(cls, xy: np.ndarray, valid: np.ndarray) -> Pose:
        """Same as the constructor: ``xy`` ``(18, 2)`` continuous pixels, ``valid`` ``(18,)``."""
        return cls(xy, valid)

    @classmethod
    def from_coco17(
        cls, xy: np.ndarray, scores: np.ndarray | None = None, threshold: float = 0.0
    ) -> Pose:
        """Map the 17 COCO keypoints to the 18-point order.

        Args:
            xy: ``(17, 2)`` continuous ``(x, y)`` pixels in the COCO order (nose, l_eye, r_eye,
                l_ear, r_ear, l_shoulder, r_shoulder, l_elbow, r_elbow, l_wrist, r_wrist, l_hip,
                r_hip, l_knee, r_knee, l_ankle, r_ankle).
            scores: ``(17,)`` confidences (or COCO visibility flags); None means all detected.
            threshold: A point is valid when its score is strictly above this and it is finite.

        Returns:
            The pose; the neck is the shoulder midpoint, valid only when both shoulders are.

        Raises:
            ValueError: If ``xy`` or ``scores`` has the wrong shape.
        """
        return _from_detector(cls, "COCO-17", 17, COCO17_INDEX, xy, scores, threshold)

    @classmethod
    def from_blazepose33(
        cls,
        xy: np.ndarray,
        scores: np.ndarray | None = None,
        threshold: float = 0.5,
        *,
        image_size: tuple[int, int] | None = None,
    ) -> Pose:
        """Map the 33 MediaPipe BlazePose landmarks to the 18-point order.

        Args:
            xy: ``(33, 2)`` landmark ``(x, y)``: continuous pixels, or coordinates normalised to
                ``[0, 1]`` by the image width and height (MediaPipe's output) when ``image_size``
                is given. Extra columns (``z``) must be dropped by the caller.
            scores: ``(33,)`` visibility or presence scores; None means all detected.
            threshold: A point is valid when its score is strictly above this and it is finite.
            image_size: ``(H, W)``; when given, x is multiplied by W and y by H.

        Returns:
            The pose; the neck is the shoulder midpoint, valid only when both shoulders are.

        Raises:
            ValueError: If ``xy``/``scores`` has the wrong shape or ``image_size`` is not positive.
        """
        xy = np.asarray(xy, dtype=np.float64)
        if image_size is not None:
            height, width = _check_size(image_size, "image_size")
            if xy.shape == (33, 2):
                xy = xy * np.array([width, height], dtype=np.float64)
        return _from_detector(cls, "BlazePose-33", 33, BLAZEPOSE33_INDEX, xy, scores, threshold)

    @classmethod
    def from_indices(cls, ij_xy: np.ndarray) -> Pose:
        """Read integer pixel indices as stored in keypoint files.

        Args:
            ij_xy: ``(18, 2)`` ``(col, row)`` pixel indices; ``-1`` in either coordinate marks
                a missing point. Files from detectors hold integers; sub-pixel values (projected
                joints, as in the original's ``pose_label_adapt.pkl``) are read the same way, as
                continuous index coordinates.

        Returns:
            The pose at the pixel centres, ``xy = index + 0.5``.

        Raises:
            ValueError: On a wrong shape, a non-finite value or a negative value other than -1.
        """
        raw = np.asarray(ij_xy)
        if raw.shape != (NUM_KEYPOINTS, 2):
            raise ValueError(f"keypoint indices must have shape (18, 2), got {raw.shape}")
        if raw.dtype.kind not in "iuf":
            raise ValueError(f"keypoint indices must be integers, got dtype {raw.dtype}")
        values = raw.astype(np.float64)
        bad = ~np.isfinite(values) | ((values < 0) & (values != MISSING_COORD))
        if bad.any():
            k, c = np.argwhere(bad)[0]
            raise ValueError(
                f"keypoint {Keypoint(k).name.lower()} {'xy'[c]}={raw[k, c]!r} is not a pixel "
                f"coordinate (a value >= 0, or {MISSING_COORD} for a missing point)"
            )
        valid = (values != MISSING_COORD).all(axis=1)
        return cls(values + 0.5, valid)

    # ----------------------------------------------------------------------------- conversions

    def to_indices(self) -> np.ndarray:
        """Integer pixel indices for keypoint files: ``floor(xy)``, ``-1`` for missing points.

        Returns:
            ``(18, 2)`` int64 ``(col, row)`` indices.

        Raises:
            ValueError: If a valid point has a negative coordinate, which files cannot hold
                (negative values mean "missing"); drop such points first, for example with
                ``transform((1, 1), (0, 0), size=(H, W))``.
        """
        indices = np.floor(self.xy).astype(np.int64)
        negative = self.valid & (indices < 0).any(axis=1)
        if negative.any():
            k = int(np.argmax(negative))
            raise ValueError(
                f"keypoint {Keypoint(k).name.lower()} at {self.xy[k].tolist()} lies left of or "
                "above the image and cannot be stored as a pixel index; mark it invalid first"
            )
        return np.where(self.valid[:, None], indices, MISSING_COORD).astype(np.int64)

    def flip(self, width: int) -> Pose:
        """Mirror horizontally inside an image of ``width`` pixels.

        ``x -> width - x`` (pixel centre ``j + 0.5`` goes to ``(width - 1 - j) + 0.5``), then left
        and right points swap (``conventions.FLIP_PERMUTATION``). ``flip(flip(p)) == p`` holds
        exactly when ``width - x`` is exact in float32 (pixel centres, any multiple of 1/64 in
        images under 2**17 pixels wide) and to float32 rounding otherwise.

        Args:
            width: Image width in pixels, positive.

        Returns:
            The mirrored pose.
        """
        if isinstance(width, bool) or not isinstance(width, int | np.integer) or width <= 0:
            raise ValueError(f"flip width must be a positive integer, got {width!r}")
        xy = self.xy.copy()
        xy[:, 0] = np.float32(width) - xy[:, 0]
        perm = np.asarray(FLIP_PERMUTATION)
        return Pose(xy[perm], self.valid[perm])

    def transform(
        self,
        scale: tuple[float, float],
        offset: tuple[float, float],
        size: tuple[int, int] | None = None,
    ) -> Pose:
        """Apply an axis-aligned affine map ``x' = x * sx + ox``, ``y' = y * sy + oy``.

        On continuous coordinates this is exact for resizing (factor ``s``, offset 0) and
        cropping (scale 1, offset ``-corner``).

        Args:
            scale: ``(sx, sy)``, finite.
            offset: ``(ox, oy)`` in output pixels, finite.
            size: ``(H, W)`` of the output image; if given, points outside ``[0, W) x [0, H)``
                become invalid.

        Returns:
            The transformed pose.
        """
        sxy = _finite_pair(scale, "scale")
        oxy = _finite_pair(offset, "offset")
        xy = (self.xy.astype(np.float64) * sxy + oxy).astype(np.float32)
        valid = self.valid.copy()
        if size is not None:
            height, width = _check_size(size, "size")
            valid &= ~_outside(xy, height, width)
        return Pose(xy, valid)

    def out_of_bounds(self, height: int, width: int) -> np.ndarray:
        """Valid points outside ``[0, width) x [0, height)``.

        Returns:
            ``(18,)`` bool, True for a valid point that lies outside the image.
        """
        height, width = _check_size((height, width), "(height, width)")
        return self.valid & _outside(self.xy, height, width)


def stack_poses(poses: Sequence[Pose]) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch poses for the map functions of ``posetransfer.pose.maps``.

    Args:
        poses: ``B`` poses (may be empty).

    Returns:
        ``xy`` ``(B, 18, 2)`` float32 and ``valid`` ``(B, 18)`` bool CPU tensors.
    """
    if not all(isinstance(p, Pose) for p in poses):
        bad = next(type(p).__name__ for p in poses if not isinstance(p, Pose))
        raise TypeError(f"stack_poses expects Pose objects, got a {bad}")
    xy = np.zeros((len(poses), NUM_KEYPOINTS, 2), np.float32)
    valid = np.zeros((len(poses), NUM_KEYPOINTS), bool)
    for b, pose in enumerate(poses):
        xy[b], valid[b] = pose.xy, pose.valid
    return torch.from_numpy(xy), torch.from_numpy(valid)


# --------------------------------------------------------------------------------- helpers


def _from_detector(
    cls: type[Pose],
    name: str,
    count: int,
    index: Mapping[Keypoint, int],
    xy: np.ndarray,
    scores: np.ndarray | None,
    threshold: float,
) -> Pose:
    """Gather ``index``-mapped points of a ``count``-point detector output and add the neck."""
    xy = np.asarray(xy, dtype=np.float64)
    if xy.shape != (count, 2):
        raise ValueError(f"{name} xy must have shape ({count}, 2), got {xy.shape}")
    if scores is None:
        detected = np.ones(count, bool)
    else:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != (count,):
            raise ValueError(f"{name} scores must have shape ({count},), got {scores.shape}")
        detected = scores > threshold
    detected &= np.isfinite(xy).all(axis=1)

    out_xy = np.zeros((NUM_KEYPOINTS, 2), np.float64)
    valid = np.zeros(NUM_KEYPOINTS, bool)
    for keypoint, src in index.items():
        out_xy[keypoint], valid[keypoint] = xy[src], detected[src]
    shoulders = [Keypoint.L_SHOULDER, Keypoint.R_SHOULDER]
    valid[Keypoint.NECK] = valid[shoulders].all()
    if valid[Keypoint.NECK]:
        out_xy[Keypoint.NECK] = out_xy[shoulders].mean(axis=0)
    out_xy[~valid] = 0.0
    return cls(out_xy, valid)


def _check_size(size: tuple[int, int], name: str) -> tuple[int, int]:
    """Validate an ``(H, W)`` pair of positive integers."""
    items = tuple(size) if isinstance(size, Sequence) else ()
    if (
        len(items) != 2
        or any(isinstance(s, bool) or not isinstance(s, int | np.integer) for s in items)
        or min(items) <= 0
    ):
        raise ValueError(f"{name} must be two positive integers (H, W), got {size!r}")
    return int(items[0]), int(items[1])


def _finite_pair(pair: tuple[float, float], name: str) -> np.ndarray:
    """Validate a finite ``(x, y)`` pair and return it as a float64 array."""
    arr = np.asarray(pair, dtype=np.float64)
    if arr.shape != (2,) or not np.isfinite(arr).all():
        raise ValueError(f"{name} must be two finite numbers (x, y), got {pair!r}")
    return arr


def _outside(xy: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(18,)`` bool: ``xy`` outside ``[0, width) x [0, height)``."""
    x, y = xy[:, 0], xy[:, 1]
    return (x < 0) | (x >= width) | (y < 0) | (y >= height)
