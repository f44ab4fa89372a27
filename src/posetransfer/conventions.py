"""Conventions shared by every stage, written down once.

Everything that crosses a module boundary follows these rules; ``docs/conventions.md`` explains
them with pictures and examples.

Tensors
    Images and feature maps are ``(B, C, H, W)``. Images are float in ``[-1, 1]`` inside models
    (:data:`IMAGE_RANGE`) and ``uint8`` in ``[0, 255]`` on disk.

Keypoints
    18 points in the OpenPose-COCO order (:data:`KEYPOINT_NAMES`), ``(x, y)`` float pixels with
    the origin at the top-left corner of the top-left pixel, plus a boolean validity mask. Files in
    the PATN/GFLA layout store ``keypoints_y`` then ``keypoints_x`` with ``-1`` for a missing point
    (:data:`MISSING_COORD`); conversion happens at the file boundary only.

Flow
    *Backward* flow from the target to the source, in pixels, channels ``(dx, dy)``, defined on
    the target grid: the target pixel with centre ``u`` takes its appearance from the source at
    ``u + F(u)``. Pixel ``(i, j)`` (row, column) has its centre at ``(x, y) = (j + 0.5, i + 0.5)``
    and sampling uses ``grid_sample(..., align_corners=False)``, which uses the same centres.
    Flow is zero on :attr:`Visibility.BACKGROUND` pixels.

Visibility
    Three classes per target pixel (:class:`Visibility`): the body point is visible in the source,
    hidden in the source, or the pixel is background. The codes are the original ``.corr`` codes.

Pyramids
    Flow at level ``l`` is average-pooled by ``2**l`` and divided by ``2**l`` (it is measured in
    pixels of that level). Visibility at level ``l`` takes, over each ``2**l x 2**l`` block, the
    *largest* code present: any BACKGROUND evidence wins, then INVISIBLE, so a coarse pixel is
    VISIBLE only when all its fine pixels are.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

__all__ = [
    "FLIP_PERMUTATION",
    "IMAGE_RANGE",
    "KEYPOINT_NAMES",
    "LIMBS",
    "MISSING_COORD",
    "NUM_KEYPOINTS",
    "NUM_VISIBILITY_CLASSES",
    "Keypoint",
    "Visibility",
]


class Keypoint(IntEnum):
    """Index of each of the 18 OpenPose-COCO keypoints ("R" and "L" are the person's sides)."""

    NOSE = 0
    NECK = 1
    R_SHOULDER = 2
    R_ELBOW = 3
    R_WRIST = 4
    L_SHOULDER = 5
    L_ELBOW = 6
    L_WRIST = 7
    R_HIP = 8
    R_KNEE = 9
    R_ANKLE = 10
    L_HIP = 11
    L_KNEE = 12
    L_ANKLE = 13
    R_EYE = 14
    L_EYE = 15
    R_EAR = 16
    L_EAR = 17


NUM_KEYPOINTS: Final[int] = len(Keypoint)

#: Names in index order, lower case (``"r_shoulder"``).
KEYPOINT_NAMES: Final[tuple[str, ...]] = tuple(k.name.lower() for k in Keypoint)

#: ``FLIP_PERMUTATION[i]`` is the index of keypoint ``i``'s mirror partner (left <-> right).
FLIP_PERMUTATION: Final[tuple[int, ...]] = tuple(
    Keypoint[k.name.replace("R_", "@").replace("L_", "R_").replace("@", "L_")].value
    for k in Keypoint
)

#: Limbs (pairs of keypoint indices) of the PATN/GFLA skeleton, converted to 0-based indices.
LIMBS: Final[tuple[tuple[int, int], ...]] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
    (2, 16), (5, 17),
)  # fmt: skip

#: Value stored in keypoint files for a missing coordinate.
MISSING_COORD: Final[int] = -1

#: Range of image tensors inside models; uint8 ``[0, 255]`` maps linearly onto it.
IMAGE_RANGE: Final[tuple[float, float]] = (-1.0, 1.0)


class Visibility(IntEnum):
    """Per-pixel visibility of the target body point in the source image.

    The codes are those of the original ``.corr`` files and the paper's three classes.
    """

    VISIBLE = 0  #: body point seen in the source: copy appearance from ``u + F(u)``
    INVISIBLE = 1  #: body point hidden in the source: appearance must be hallucinated
    BACKGROUND = 2  #: no body at this target pixel; flow is 0


NUM_VISIBILITY_CLASSES: Final[int] = len(Visibility)
