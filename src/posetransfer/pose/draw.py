"""Draw an 18-point skeleton on an image (for sample grids, demos and debugging)."""

from __future__ import annotations

import colorsys
from typing import Final

import numpy as np
from PIL import Image, ImageDraw

from posetransfer.conventions import LIMBS, NUM_KEYPOINTS
from posetransfer.pose.keypoints import Pose

__all__ = ["JOINT_COLORS", "LIMB_COLORS", "draw_pose"]


def _rainbow(n: int) -> tuple[tuple[int, int, int], ...]:
    """``n`` saturated colours at evenly spaced hues, starting at red (OpenPose's palette style)."""
    rgb = (colorsys.hsv_to_rgb(i / n, 1.0, 1.0) for i in range(n))
    return tuple((round(255 * r), round(255 * g), round(255 * b)) for r, g, b in rgb)


#: One RGB colour per limb of ``conventions.LIMBS``.
LIMB_COLORS: Final[tuple[tuple[int, int, int], ...]] = _rainbow(len(LIMBS))
#: One RGB colour per keypoint.
JOINT_COLORS: Final[tuple[tuple[int, int, int], ...]] = _rainbow(NUM_KEYPOINTS)


def draw_pose(image: np.ndarray, pose: Pose, radius: int = 2, thickness: int = 1) -> np.ndarray:
    """Draw the skeleton of ``pose`` on a copy of ``image``.

    Limbs whose two ends are valid are drawn as lines, then valid joints as filled circles.
    Keypoints are continuous pixels (pixel ``(i, j)`` covers ``[j, j + 1) x [i, i + 1)``); shapes
    are centred on the pixel holding each point, ``floor(xy)``, which is where PIL's integer
    coordinates put them (PIL truncates fractional coordinates, so they are floored here first).

    Args:
        image: ``(H, W, 3)`` uint8 RGB image; not modified.
        pose: Keypoints in the image's pixel frame.
        radius: Joint circle radius in pixels (0 draws no joints).
        thickness: Limb line width in pixels (0 draws no limbs).

    Returns:
        ``(H, W, 3)`` uint8 copy with the skeleton drawn.

    Raises:
        ValueError: If the image is not ``(H, W, 3)`` uint8 or a size is negative.
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = image.shape if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"draw_pose expects an (H, W, 3) image, got {shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"draw_pose expects a uint8 image, got {image.dtype}")
    for name, value in (("radius", radius), ("thickness", thickness)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"draw_pose {name} must be a non-negative int, got {value!r}")

    canvas = Image.fromarray(np.ascontiguousarray(image))
    draw = ImageDraw.Draw(canvas)
    points = [(int(x), int(y)) for x, y in np.floor(pose.xy)]
    if thickness > 0:
        for (a, b), color in zip(LIMBS, LIMB_COLORS, strict=True):
            if pose.valid[a] and pose.valid[b]:
                draw.line([points[a], points[b]], fill=color, width=thickness)
    if radius > 0:
        for k, color in enumerate(JOINT_COLORS):
            if pose.valid[k]:
                x, y = points[k]
                draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=color)
    return np.asarray(canvas, dtype=np.uint8).copy()
