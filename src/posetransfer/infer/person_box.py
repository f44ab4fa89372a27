"""Where a detected person is: a box from their keypoints and segmentation mask.

Pure functions of arrays (no detector needed), used by :mod:`posetransfer.infer.detect`:

- :func:`person_bounds`: the tight box around the valid keypoints and the mask pixels near them;
- :func:`person_box`: that box plus a margin, grown about its centre to a protocol's aspect
  ratio ``H:W`` (e.g. 256x176) with :meth:`posetransfer.infer.framing.Frame.from_box`, so a crop
  of it resized to ``H x W`` shows the whole person undistorted. The box may extend past the
  image; :meth:`~posetransfer.infer.framing.Frame.crop` fills that part.

Convention:
    Boxes are ``(left, top, right, bottom)`` in continuous pixels (``posetransfer.conventions``):
    pixel ``(i, j)`` covers ``[j, j + 1) x [i, i + 1)``, so a mask pixel at column ``j``
    contributes ``[j, j + 1)`` to the box and a keypoint at ``x`` contributes ``x``.
"""

from __future__ import annotations

import math

import numpy as np

from posetransfer.infer.framing import Frame
from posetransfer.pose.keypoints import Pose

__all__ = ["MASK_REACH", "Box", "box_area", "person_bounds", "person_box"]

Box = tuple[float, float, float, float]

#: Mask pixels count only within the keypoints' box grown by this fraction of its larger side on
#: every side: far enough for hair above the eyes and feet below the ankles, near enough that
#: another person inside the landmark model's crop does not stretch the box.
MASK_REACH = 0.25


def person_bounds(
    pose: Pose,
    mask: np.ndarray | None = None,
    *,
    mask_threshold: float = 0.5,
    reach: float = MASK_REACH,
) -> Box:
    """The tight box around a person: valid keypoints united with the mask near them.

    Args:
        pose: The person's keypoints in image pixels.
        mask: ``(H, W)`` float person probability in ``[0, 1]``, or None for keypoints only.
        mask_threshold: Mask pixels strictly above this belong to the person.
        reach: Mask pixels count only inside the keypoints' box grown by ``reach`` times its
            larger side on every side (the whole mask when the pose has no valid point).

    Returns:
        ``(left, top, right, bottom)`` in continuous image pixels.

    Raises:
        ValueError: If the mask is not 2-D, a parameter is out of range, or there is neither a
            valid keypoint nor a mask pixel above the threshold.
    """
    if not (math.isfinite(reach) and reach >= 0):
        raise ValueError(f"reach must be a non-negative number, got {reach!r}")
    if not 0.0 <= mask_threshold < 1.0:
        raise ValueError(f"mask_threshold must be in [0, 1), got {mask_threshold!r}")
    boxes: list[Box] = []
    window: Box | None = None
    if pose.num_valid:
        xy = pose.xy[pose.valid].astype(np.float64)
        (left, top), (right, bottom) = xy.min(axis=0), xy.max(axis=0)
        boxes.append((float(left), float(top), float(right), float(bottom)))
        grow = reach * max(right - left, bottom - top)
        window = (left - grow, top - grow, right + grow, bottom + grow)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.ndim != 2:
            raise ValueError(f"mask must be an (H, W) array, got shape {mask.shape}")
        mask_box = _mask_bounds(mask > mask_threshold, window)
        if mask_box is not None:
            boxes.append(mask_box)
    if not boxes:
        raise ValueError("no valid keypoint and no mask pixel: nothing to put a box around")
    lefts, tops, rights, bottoms = zip(*boxes, strict=True)
    return min(lefts), min(tops), max(rights), max(bottoms)


def person_box(
    pose: Pose,
    mask: np.ndarray | None,
    image_size: tuple[int, int],
    aspect: tuple[int, int] = (256, 176),
    *,
    margin: float = 0.1,
    mask_threshold: float = 0.5,
    reach: float = MASK_REACH,
) -> Box:
    """The person's box with a margin, at the aspect ratio ``H:W`` of ``aspect``.

    Args:
        pose: The person's keypoints in image pixels.
        mask: ``(H, W)`` float person probability in ``[0, 1]``, or None.
        image_size: ``(H, W)`` of the image.
        aspect: ``(H, W)`` of the protocol whose aspect the box takes, e.g. ``(256, 176)``.
        margin: Fraction of the tight box's larger side added on every side before growing it
            to the aspect.
        mask_threshold: See :func:`person_bounds`.
        reach: See :func:`person_bounds`.

    Returns:
        ``(left, top, right, bottom)`` in continuous image pixels with
        ``(right - left) / (bottom - top) == aspect[1] / aspect[0]``, centred on the tight box
        and containing it; it may extend outside the image.

    Raises:
        ValueError: As :func:`person_bounds`, on a mask whose shape is not ``image_size``, or
            on bad sizes or a negative margin.
    """
    if mask is not None and tuple(np.shape(mask)) != tuple(image_size):
        raise ValueError(f"mask shape {np.shape(mask)} does not match image_size {image_size}")
    bounds = person_bounds(pose, mask, mask_threshold=mask_threshold, reach=reach)
    return Frame.from_box(bounds, image_size, aspect, margin=margin).box


def box_area(box: Box) -> float:
    """Area of ``(left, top, right, bottom)`` in square pixels (0 for an inverted box)."""
    left, top, right, bottom = box
    return max(0.0, right - left) * max(0.0, bottom - top)


def _mask_bounds(inside: np.ndarray, window: Box | None) -> Box | None:
    """Box of the True pixels of ``inside`` whose centres lie in ``window`` (None: all)."""
    if window is not None:
        height, width = inside.shape
        left, top, right, bottom = window
        # Pixel (i, j) has its centre at (j + 0.5, i + 0.5); keep centres inside the window.
        j0, j1 = max(0, math.ceil(left - 0.5)), min(width, math.floor(right - 0.5) + 1)
        i0, i1 = max(0, math.ceil(top - 0.5)), min(height, math.floor(bottom - 0.5) + 1)
        if j0 >= j1 or i0 >= i1:
            return None
        sub = inside[i0:i1, j0:j1]
    else:
        i0 = j0 = 0
        sub = inside
    rows, cols = np.flatnonzero(sub.any(axis=1)), np.flatnonzero(sub.any(axis=0))
    if rows.size == 0:
        return None
    return (
        float(j0 + cols[0]),
        float(i0 + rows[0]),
        float(j0 + cols[-1] + 1),
        float(i0 + rows[-1] + 1),
    )
