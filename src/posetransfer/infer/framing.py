"""Framing: a person in a photo of any size and aspect into the model's ``H x W`` frame and back.

A :class:`Frame` is a box in image pixels at the model's aspect ratio (it may extend past the
image), the image size and the model size. It maps both ways:

- images: :meth:`Frame.crop` resamples the box to the model size; :meth:`Frame.paste` resamples a
  generated frame back to the box and composites it into the original image (inside the image
  only), optionally through a soft-edged person mask;
- keypoints: :meth:`Frame.to_frame` / :meth:`Frame.to_image` move a
  :class:`~posetransfer.pose.keypoints.Pose` between the two, exactly inverse to each other.

Two ways to choose the box (:meth:`Frame.from_box`):

- ``"crop"``: the given box (a person's bounding box, plus ``margin``) grown about its centre to
  the model's aspect, so the whole box stays in view and the rest of the frame shows the photo
  around it;
- ``"letterbox"``: the whole image grown the same way, so all of it fits with padding on two
  sides (the ``box`` argument is ignored and may be None).

Pixels of the box outside the image are filled by edge replication by default (no hard edge for
the networks to see), or by a constant colour (``fill=(255, 255, 255)``).

Convention:
    Continuous pixel coordinates (``posetransfer.conventions``): pixel ``(i, j)`` covers
    ``[j, j + 1) x [i, i + 1)`` and has its centre at ``(j + 0.5, i + 0.5)``. The box
    ``(left, top, right, bottom)`` maps onto ``[0, W) x [0, H)`` of the frame:
    ``x' = (x - left) * W / (right - left)``, likewise for ``y``. Resampling evaluates the source
    at the preimages of the destination pixel centres (PIL bicubic, antialiased when shrinking),
    so images and keypoints stay aligned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

from posetransfer.io import check_rgb
from posetransfer.pose.keypoints import Pose

__all__ = ["Fill", "Frame", "FrameMode", "box_from_pose"]

Size = tuple[int, int]
Box = tuple[float, float, float, float]
FrameMode = Literal["crop", "letterbox"]
#: ``"edge"`` (replicate the border pixels) or an RGB colour for pixels outside the image.
Fill = Literal["edge"] | tuple[int, int, int]


@dataclass(frozen=True)
class Frame:
    """Where the model's frame sits in an image.

    Attributes:
        box: ``(left, top, right, bottom)`` in continuous image pixels, at the model's aspect
            ratio ``W / H``; may extend outside the image.
        image_size: ``(H, W)`` of the image.
        model_size: ``(H, W)`` of the model's frame, e.g. ``(256, 176)``.
        mode: How the box was chosen (``"crop"`` or ``"letterbox"``).
    """

    box: Box
    image_size: Size
    model_size: Size
    mode: FrameMode = "crop"

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_size", _check_size(self.image_size, "image_size"))
        object.__setattr__(self, "model_size", _check_size(self.model_size, "model_size"))
        box = tuple(float(v) for v in self.box)
        if len(box) != 4 or not all(math.isfinite(v) for v in box):
            raise ValueError(f"Frame.box must be 4 finite numbers, got {self.box!r}")
        left, top, right, bottom = box
        if right <= left or bottom <= top:
            raise ValueError(f"Frame.box {box} must have right > left and bottom > top")
        aspect = self.model_size[1] / self.model_size[0]
        if not math.isclose((right - left) / (bottom - top), aspect, rel_tol=1e-6):
            raise ValueError(
                f"Frame.box {box} has aspect {(right - left) / (bottom - top):.6g}, not the "
                f"model's W/H = {aspect:.6g}; build frames with Frame.from_box"
            )
        if self.mode not in ("crop", "letterbox"):
            raise ValueError(f"Frame.mode must be 'crop' or 'letterbox', got {self.mode!r}")
        object.__setattr__(self, "box", box)

    @classmethod
    def from_box(
        cls,
        box: Box | None,
        image_size: Size,
        model_size: Size,
        mode: FrameMode = "crop",
        *,
        margin: float = 0.0,
    ) -> Frame:
        """The frame around ``box`` (``"crop"``) or around the whole image (``"letterbox"``).

        Args:
            box: ``(left, top, right, bottom)`` in image pixels, e.g. a person's bounding box;
                ignored (may be None) for ``"letterbox"``. A zero-width (or zero-height) box
                is grown to the aspect from its height (width); a single point is refused.
            image_size: ``(H, W)`` of the image.
            model_size: ``(H, W)`` of the model's frame.
            mode: ``"crop"`` or ``"letterbox"``.
            margin: Fraction of the box's larger side added on every side before growing it to
                the model's aspect (``"crop"`` only), e.g. 0.1 so joints are not on the edge.

        Returns:
            The frame, centred on the box (or image) and covering it entirely.

        Raises:
            ValueError: On a non-finite, inverted or one-point box, a negative margin, bad sizes
                or mode.
        """
        image_size = _check_size(image_size, "image_size")
        model_size = _check_size(model_size, "model_size")
        if mode == "letterbox":
            box, margin = (0.0, 0.0, float(image_size[1]), float(image_size[0])), 0.0
        elif mode != "crop":
            raise ValueError(f"mode must be 'crop' or 'letterbox', got {mode!r}")
        if box is None:
            raise ValueError("mode 'crop' needs a box (left, top, right, bottom)")
        values = tuple(float(v) for v in box)
        if len(values) != 4 or not all(math.isfinite(v) for v in values):
            raise ValueError(f"box must be 4 finite numbers (left, top, right, bottom), got {box}")
        left, top, right, bottom = values
        if right < left or bottom < top:
            raise ValueError(f"box {values} must have right >= left and bottom >= top")
        if not (math.isfinite(margin) and margin >= 0):
            raise ValueError(f"margin must be a non-negative fraction, got {margin}")
        if right == left and bottom == top:
            raise ValueError(f"box {values} is a single point; a frame needs an extent")
        pad = margin * max(right - left, bottom - top)
        width, height = right - left + 2 * pad, bottom - top + 2 * pad
        aspect = model_size[1] / model_size[0]
        if width < height * aspect:
            width = height * aspect
        else:
            height = width / aspect
        cx, cy = (left + right) / 2, (top + bottom) / 2
        frame_box = (cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2)
        return cls(frame_box, image_size, model_size, mode)

    # ------------------------------------------------------------------------------- geometry

    @property
    def scale(self) -> tuple[float, float]:
        """``(sx, sy)``: frame pixels per image pixel."""
        left, top, right, bottom = self.box
        return self.model_size[1] / (right - left), self.model_size[0] / (bottom - top)

    @property
    def offset(self) -> tuple[float, float]:
        """``(ox, oy)`` such that ``x' = sx * x + ox`` maps image to frame coordinates."""
        sx, sy = self.scale
        return -self.box[0] * sx, -self.box[1] * sy

    @property
    def image_region(self) -> tuple[slice, slice]:
        """``(rows, cols)``: the image pixels whose centres lie inside the box (may be empty)."""
        left, top, right, bottom = self.box
        height, width = self.image_size
        rows = _centre_range(top, bottom, height)
        cols = _centre_range(left, right, width)
        return rows, cols

    def to_frame(self, pose: Pose, *, drop_outside: bool = False) -> Pose:
        """Move a pose from image to frame coordinates (exact inverse of :meth:`to_image`).

        Args:
            pose: Keypoints in image pixels.
            drop_outside: Mark points that land outside the frame invalid.
        """
        size = self.model_size if drop_outside else None
        return pose.transform(self.scale, self.offset, size=size)

    def to_image(self, pose: Pose, *, drop_outside: bool = False) -> Pose:
        """Move a pose from frame to image coordinates (exact inverse of :meth:`to_frame`).

        Args:
            pose: Keypoints in frame pixels.
            drop_outside: Mark points that land outside the image invalid.
        """
        (sx, sy), (left, top) = self.scale, self.box[:2]
        size = self.image_size if drop_outside else None
        return pose.transform((1.0 / sx, 1.0 / sy), (left, top), size=size)

    # --------------------------------------------------------------------------------- images

    def crop(self, image: np.ndarray, fill: Fill = "edge") -> np.ndarray:
        """The box of ``image`` resampled to the model's size.

        Args:
            image: ``(H, W, 3)`` uint8, ``(H, W) == image_size``.
            fill: ``"edge"`` replicates the border pixels into the part of the box outside the
                image; an RGB tuple fills it with that colour.

        Returns:
            ``(h, w, 3)`` uint8, ``(h, w) == model_size``.
        """
        check_rgb(image, "image")
        if image.shape[:2] != self.image_size:
            raise ValueError(
                f"image is {_fmt(image.shape[:2])} but the frame is for {_fmt(self.image_size)}"
            )
        return _resample(image, self.box, self.model_size, _check_fill(fill))

    def paste(
        self,
        original: np.ndarray,
        generated: np.ndarray,
        mask: np.ndarray | None = None,
        feather: float = 0.0,
    ) -> np.ndarray:
        """Put a generated frame back into the original image.

        Args:
            original: ``(H, W, 3)`` uint8, ``(H, W) == image_size``; not modified.
            generated: ``(h, w, 3)`` uint8, ``(h, w) == model_size``.
            mask: ``(h, w)`` where to use ``generated`` (bool, uint8 0-255 or float in
                ``[0, 1]``), e.g. the person's silhouette; None: the whole box.
            feather: Width in image pixels of the soft edge: the mask is blurred over about
                this width, and where the box edge lies inside the image the weight ramps from
                0 at the edge to 1 at ``feather`` pixels inside. 0: hard edges.

        Returns:
            ``(H, W, 3)`` uint8: ``original`` with ``a * generated + (1 - a) * original``
            inside the box (``a``: the resampled, feathered mask), unchanged outside.
        """
        check_rgb(original, "original")
        check_rgb(generated, "generated")
        if original.shape[:2] != self.image_size:
            raise ValueError(
                f"original is {_fmt(original.shape[:2])} but the frame is for "
                f"{_fmt(self.image_size)}"
            )
        if generated.shape[:2] != self.model_size:
            raise ValueError(
                f"generated is {_fmt(generated.shape[:2])} but the model size is "
                f"{_fmt(self.model_size)}"
            )
        if not (math.isfinite(feather) and feather >= 0):
            raise ValueError(f"feather must be a non-negative number of pixels, got {feather}")
        out = original.copy()
        rows, cols = self.image_region
        if rows.start == rows.stop or cols.start == cols.stop:
            return out  # the box misses the image
        region_box = _frame_coords(self, rows, cols)
        region_size = (rows.stop - rows.start, cols.stop - cols.start)
        values = _resample(generated, region_box, region_size, "edge").astype(np.float32)
        alpha = np.ones(region_size, np.float32)
        if mask is not None:
            weights = _check_mask(mask, self.model_size)
            alpha = np.clip(_resample(weights, region_box, region_size, "edge"), 0.0, 1.0)
            if feather > 0:
                alpha = _blur(alpha, feather)
        if feather > 0:
            alpha *= _edge_ramp(self, rows, cols, feather)
        base = out[rows, cols].astype(np.float32)
        blended = base + alpha[:, :, None] * (values - base)
        out[rows, cols] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
        return out


def box_from_pose(pose: Pose) -> Box:
    """The bounding box ``(left, top, right, bottom)`` of a pose's valid keypoints.

    Raises:
        ValueError: If the pose has no valid keypoint.
    """
    if pose.num_valid == 0:
        raise ValueError("cannot frame a pose with no valid keypoint")
    xy = pose.xy[pose.valid].astype(np.float64)
    (left, top), (right, bottom) = xy.min(axis=0), xy.max(axis=0)
    return float(left), float(top), float(right), float(bottom)


# ------------------------------------------------------------------------------------ helpers


def _fmt(size: tuple[int, ...]) -> str:
    return f"{size[0]}x{size[1]}"


def _check_size(size: Size, name: str) -> Size:
    items = tuple(size) if isinstance(size, tuple | list) else ()
    if (
        len(items) != 2
        or any(isinstance(s, bool) or not isinstance(s, int | np.integer) for s in items)
        or min(items) <= 0
    ):
        raise ValueError(f"{name} must be two positive integers (H, W), got {size!r}")
    return int(items[0]), int(items[1])


def _check_fill(fill: Fill) -> Fill:
    if fill == "edge":
        return fill
    if (
        isinstance(fill, tuple | list)
        and len(fill) == 3
        and all(isinstance(v, int | np.integer) and 0 <= v <= 255 for v in fill)
    ):
        return tuple(int(v) for v in fill)  # type: ignore[return-value]
    raise ValueError(f"fill must be 'edge' or an RGB tuple of 0-255 integers, got {fill!r}")


def _check_mask(mask: np.ndarray, size: Size) -> np.ndarray:
    """``(h, w)`` mask (bool, uint8 or float in [0, 1]) -> float32 weights in ``[0, 1]``."""
    if not isinstance(mask, np.ndarray) or mask.shape != size:
        shape = mask.shape if isinstance(mask, np.ndarray) else type(mask).__name__
        raise ValueError(f"mask must be an array of shape {size} (the model size), got {shape}")
    if mask.dtype == bool:
        return mask.astype(np.float32)
    if mask.dtype == np.uint8:
        return mask.astype(np.float32) / 255.0
    if mask.dtype.kind == "f":
        if not np.isfinite(mask).all() or mask.min() < 0 or mask.max() > 1:
            raise ValueError("mask of floats must hold finite values in [0, 1]")
        return mask.astype(np.float32)
    raise ValueError(f"mask must be bool, uint8 or float in [0, 1], got dtype {mask.dtype}")


def _centre_range(start: float, stop: float, n: int) -> slice:
    """Indices ``k`` in ``[0, n)`` with ``start <= k + 0.5 < stop``."""
    first = min(max(math.ceil(start - 0.5), 0), n)
    last = min(max(math.ceil(stop - 0.5), 0), n)
    return slice(first, max(first, last))


def _frame_coords(frame: Frame, rows: slice, cols: slice) -> Box:
    """Frame coordinates of the outer edges of an image pixel region."""
    (sx, sy), (ox, oy) = frame.scale, frame.offset
    return (cols.start * sx + ox, rows.start * sy + oy, cols.stop * sx + ox, rows.stop * sy + oy)


def _resample(src: np.ndarray, box: Box, out_size: Size, fill: Fill) -> np.ndarray:
    """Resample the box of ``src`` to ``out_size`` ``(H, W)``, outside filled by ``fill``.

    ``src`` is ``(h, w, 3)`` uint8 (returns uint8) or ``(h, w)`` float32 (returns float32).
    Only a window around the box (plus the filter's support) is copied, with out-of-image rows
    and columns replicated from the edge or set to the fill colour, so PIL's box always lies
    inside its input and nothing image-sized is allocated.
    """
    left, top, right, bottom = box
    height, width = out_size
    src_h, src_w = src.shape[:2]
    shrink = max((right - left) / width, (bottom - top) / height, 1.0)
    support = math.ceil(2 * shrink) + 2  # bicubic reaches 2 source pixels per output pixel
    x0, y0 = math.floor(left) - support, math.floor(top) - support
    cols = np.arange(x0, math.ceil(right) + support)
    rows = np.arange(y0, math.ceil(bottom) + support)
    window = src[np.ix_(np.clip(rows, 0, src_h - 1), np.clip(cols, 0, src_w - 1))]
    if fill != "edge":
        outside = ((rows < 0) | (rows >= src_h))[:, None] | ((cols < 0) | (cols >= src_w))[None]
        window[outside] = fill
    pil = Image.fromarray(np.ascontiguousarray(window))
    local = (left - x0, top - y0, right - x0, bottom - y0)
    return np.array(pil.resize((width, height), Image.Resampling.BICUBIC, box=local))


def _blur(alpha: np.ndarray, feather: float) -> np.ndarray:
    """Two box filters of width ``~feather / 2`` (a tent of total width ~feather), edge-clamped."""
    radius = max(1, round(feather / 4))
    for axis in (0, 1, 0, 1):
        padded = np.concatenate(
            [np.repeat(np.take(alpha, [0], axis), radius, axis), alpha,
             np.repeat(np.take(alpha, [-1], axis), radius, axis)], axis=axis,
        )  # fmt: skip
        csum = np.cumsum(np.insert(padded, 0, 0.0, axis=axis), axis=axis, dtype=np.float64)
        n = alpha.shape[axis]
        k = 2 * radius + 1
        hi = np.take(csum, np.arange(k, k + n), axis)
        lo = np.take(csum, np.arange(0, n), axis)
        alpha = ((hi - lo) / k).astype(np.float32)
    return alpha


def _edge_ramp(frame: Frame, rows: slice, cols: slice, feather: float) -> np.ndarray:
    """Weight rising from 0 at each box edge inside the image to 1 at ``feather`` px inside."""
    left, top, right, bottom = frame.box
    height, width = frame.image_size
    y = np.arange(rows.start, rows.stop, dtype=np.float64) + 0.5
    x = np.arange(cols.start, cols.stop, dtype=np.float64) + 0.5
    ramp_y = np.ones_like(y)
    ramp_x = np.ones_like(x)
    if top > 0:
        ramp_y = np.minimum(ramp_y, (y - top) / feather)
    if bottom < height:
        ramp_y = np.minimum(ramp_y, (bottom - y) / feather)
    if left > 0:
        ramp_x = np.minimum(ramp_x, (x - left) / feather)
    if right < width:
        ramp_x = np.minimum(ramp_x, (right - x) / feather)
    ramp = np.minimum(ramp_y[:, None], ramp_x[None, :])
    return np.clip(ramp, 0.0, 1.0).astype(np.float32)
