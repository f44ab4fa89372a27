"""Image protocols: one geometric map applied alike to images, keypoints, flow and visibility.

Published numbers on DeepFashion and Market-1501 come from a few fixed image geometries
(``reference/peers.md`` §2). An :class:`ImageProtocol` names one of them; :func:`plan_transform`
turns it into an :class:`Affine` for a given input size, and the ``apply_*`` functions carry every
per-pixel or per-point quantity of a sample through that same map. :func:`hflip_sample` mirrors a
whole pair.

Convention:
    Continuous pixel coordinates with pixel ``(i, j)`` centred at ``(j + 0.5, i + 0.5)``
    (``posetransfer.conventions``). An :class:`Affine` maps input to output coordinates,
    ``x' = sx * x + ox`` and ``y' = sy * y + oy``. Every resampler evaluates its input at the
    preimages of the output pixel centres, so images, keypoints and flow stay aligned exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from posetransfer.conventions import Visibility
from posetransfer.ops.warp import flip_flow
from posetransfer.pose.keypoints import Pose

__all__ = [
    "PROTOCOLS",
    "Affine",
    "ImageProtocol",
    "PairArrays",
    "apply_flow",
    "apply_image",
    "apply_pose",
    "get_protocol",
    "hflip_flow",
    "hflip_sample",
    "plan_transform",
    "transform_pair",
]

Size = tuple[int, int]


@dataclass(frozen=True)
class ImageProtocol:
    """A named image geometry: the output size and how inputs of known sizes reach it.

    Attributes:
        name: Key in :data:`PROTOCOLS`.
        size: ``(H, W)`` of the output, or None to keep every input as it is.
        crop: ``(left, top, right, bottom)`` box in input pixels, applied (then resized to
            ``size`` if it differs) when the input is ``crop_input_size``.
        crop_input_size: ``(H, W)`` of the inputs that get ``crop``.
        keypoint_frame: ``(H, W)`` frame the annotated keypoints live in when it is not the
            image's own (it covers the same field of view as the image); None: the image's frame.
        resize: If True, inputs of any other size are resized straight to ``size``; if False
            they are an error.
        source: Where the protocol comes from.
    """

    name: str
    size: Size | None
    crop: tuple[int, int, int, int] | None = None
    crop_input_size: Size | None = None
    keypoint_frame: Size | None = None
    resize: bool = False
    source: str = ""

    def __post_init__(self) -> None:
        for field in ("size", "crop_input_size", "keypoint_frame"):
            value = getattr(self, field)
            if value is not None and (len(value) != 2 or min(value) <= 0):
                raise ValueError(f"ImageProtocol {self.name!r}: {field} must be (H, W) > 0")
        if (self.crop is None) != (self.crop_input_size is None):
            raise ValueError(f"ImageProtocol {self.name!r}: crop needs crop_input_size and back")
        if self.crop is not None and self.crop_input_size is not None:
            left, top, right, bottom = self.crop
            height, width = self.crop_input_size
            if not (0 <= left < right <= width and 0 <= top < bottom <= height):
                raise ValueError(
                    f"ImageProtocol {self.name!r}: crop {self.crop} does not fit inside "
                    f"crop_input_size {self.crop_input_size}"
                )
        if self.size is None and (self.crop is not None or self.resize):
            raise ValueError(f"ImageProtocol {self.name!r}: crop/resize need an output size")

    def accepted_sizes(self) -> str:
        """Human-readable list of the input sizes this protocol takes."""
        if self.size is None:
            return "any size"
        sizes = [_fmt(self.size)]
        if self.crop_input_size is not None:
            sizes.append(f"{_fmt(self.crop_input_size)} (cropped to {self.crop})")
        return "any size (resized)" if self.resize else " or ".join(sizes)


#: The named protocols (``reference/peers.md`` §2.1-2.2).
PROTOCOLS: dict[str, ImageProtocol] = {
    p.name: p
    for p in (
        ImageProtocol(
            name="deepfashion-256x176",
            size=(256, 176),
            crop=(40, 0, 216, 256),
            crop_input_size=(256, 256),
            source="PATN legacy protocol: the 256x256 low-res DeepFashion images (white side "
            "margins) are cropped to x in [40, 216) by tool/generate_fashion_datasets.py; the "
            "'fasion-resize-*' 256x176 images and annotations are used as they are.",
        ),
        ImageProtocol(
            name="deepfashion-256x256",
            size=(256, 256),
            keypoint_frame=(256, 176),
            resize=True,
            source="GFLA protocol: high-res DeepFashion images resized straight to 256x256 "
            "(data/base_dataset.py); its 'fasion-annotation-*' keypoints live in a 256x176 frame "
            "(old_size=(256, 176)) and are rescaled with the image.",
        ),
        ImageProtocol(
            name="market-128x64",
            size=(128, 64),
            source="Market-1501 at its native 128x64 (PATN/GFLA and Intr-Flow).",
        ),
        ImageProtocol(
            name="native",
            size=None,
            source="No geometric change; keypoints are in the image frame (DIAF layout, "
            "synthetic data).",
        ),
    )
}


def get_protocol(name: str | ImageProtocol) -> ImageProtocol:
    """Look up a protocol by name (an :class:`ImageProtocol` is returned as is).

    Raises:
        ValueError: For an unknown name; the message lists the valid ones.
    """
    if isinstance(name, ImageProtocol):
        return name
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(
            f"unknown image protocol {name!r}; valid protocols: {', '.join(sorted(PROTOCOLS))}"
        ) from None


@dataclass(frozen=True)
class Affine:
    """Axis-aligned map from input to output pixel coordinates, ``x' = s * x + o`` per axis.

    Attributes:
        scale: ``(sx, sy)``, positive.
        offset: ``(ox, oy)`` in output pixels.
        in_size: ``(H, W)`` of the input frame.
        out_size: ``(H, W)`` of the output frame.
    """

    scale: tuple[float, float]
    offset: tuple[float, float]
    in_size: Size
    out_size: Size

    @classmethod
    def identity(cls, size: Size) -> Affine:
        """The identity on an ``(H, W)`` frame."""
        return cls((1.0, 1.0), (0.0, 0.0), tuple(size), tuple(size))

    @classmethod
    def from_box(
        cls, box: tuple[float, float, float, float], in_size: Size, out_size: Size
    ) -> Affine:
        """Map the input box ``(left, top, right, bottom)`` onto the whole output frame."""
        left, top, right, bottom = box
        sx, sy = out_size[1] / (right - left), out_size[0] / (bottom - top)
        return cls((sx, sy), (-left * sx, -top * sy), tuple(in_size), tuple(out_size))

    @property
    def crop_box(self) -> tuple[float, float, float, float]:
        """``(left, top, right, bottom)``: the input region that maps onto the output frame."""
        (sx, sy), (ox, oy), (height, width) = self.scale, self.offset, self.out_size
        return (-ox / sx, -oy / sy, (width - ox) / sx, (height - oy) / sy)

    @property
    def is_identity(self) -> bool:
        """True if the map changes nothing."""
        return (
            self.scale == (1.0, 1.0) and self.offset == (0.0, 0.0) and self.in_size == self.out_size
        )

    def rebase(self, frame: Size) -> Affine:
        """The same map read from ``frame``, another resolution of the same field of view.

        A point at ``x`` in ``frame`` sits at ``x * W_in / W_frame`` in the input, so the result
        is this map composed with that rescaling.
        """
        rx, ry = self.in_size[1] / frame[1], self.in_size[0] / frame[0]
        (sx, sy), offset = self.scale, self.offset
        return Affine((sx * rx, sy * ry), offset, tuple(frame), self.out_size)


def plan_transform(protocol: ImageProtocol | str, image_size: Size) -> Affine:
    """The map that brings an image of ``image_size`` into ``protocol``'s geometry.

    Args:
        protocol: A protocol or its name.
        image_size: ``(H, W)`` of the input image.

    Returns:
        Identity for inputs already at the protocol size (or for ``native``), the crop (then
        resize) for ``crop_input_size`` inputs, a plain resize if the protocol allows it.

    Raises:
        ValueError: If the protocol does not take inputs of this size (names both).
    """
    protocol = get_protocol(protocol)
    image_size = (int(image_size[0]), int(image_size[1]))
    if protocol.size is None or image_size == protocol.size:
        return Affine.identity(image_size)
    if protocol.crop is not None and image_size == protocol.crop_input_size:
        return Affine.from_box(protocol.crop, image_size, protocol.size)
    if protocol.resize:
        return Affine.from_box((0, 0, image_size[1], image_size[0]), image_size, protocol.size)
    raise ValueError(
        f"image protocol {protocol.name!r} expects inputs of {protocol.accepted_sizes()}, "
        f"got {_fmt(image_size)}"
    )


def apply_image(image: Image.Image | np.ndarray, affine: Affine) -> np.ndarray:
    """Resample an image into the output frame.

    Integer crops are exact copies; anything else is PIL bicubic on the crop box (PIL samples at
    pixel centres and antialiases when shrinking, matching the continuous convention above).

    Args:
        image: ``(H, W, 3)`` uint8 array or an RGB PIL image, ``(H, W) == affine.in_size``.
        affine: The map.

    Returns:
        ``(H', W', 3)`` uint8 array, ``(H', W') == affine.out_size``.
    """
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(
            f"apply_image expects an (H, W, 3) uint8 image, got {array.shape} {array.dtype}"
        )
    if array.shape[:2] != tuple(affine.in_size):
        raise ValueError(
            f"image is {_fmt(array.shape[:2])} but the map expects {_fmt(affine.in_size)}"
        )
    if affine.is_identity:
        return array
    box = affine.crop_box
    height, width = affine.out_size
    if affine.scale == (1.0, 1.0) and all(float(v).is_integer() for v in box):
        left, top = int(box[0]), int(box[1])
        return array[top : top + height, left : left + width]
    pil = image if isinstance(image, Image.Image) else Image.fromarray(array)
    return np.array(pil.resize((width, height), Image.Resampling.BICUBIC, box=box))


def apply_pose(pose: Pose, affine: Affine, keypoint_frame: Size | None = None) -> Pose:
    """Move keypoints into the output frame; points that leave it become invalid.

    Args:
        pose: Keypoints in the input frame, or in ``keypoint_frame``.
        affine: The image's map.
        keypoint_frame: ``(H, W)`` of the frame the keypoints live in, if not the input's (it
            covers the same field of view); they are rescaled to the input first.

    Returns:
        The pose in the output frame.
    """
    if keypoint_frame is not None:
        affine = affine.rebase(keypoint_frame)
    return pose.transform(affine.scale, affine.offset, size=affine.out_size)


def apply_flow(
    flow: np.ndarray,
    visibility: np.ndarray,
    affine: Affine,
    source_affine: Affine | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Carry a target->source flow and its visibility through the images' maps.

    Derivation. ``F`` lives on the target grid: the target point ``u`` shows the source point
    ``u + F(u)``. After the target goes through ``A_t(x) = S_t x + o_t`` and the source through
    ``A_s``, the output target point ``u' = A_t(u)`` shows the output source point
    ``A_s(u + F(u))``, so

        ``F'(u') = A_s(u + F(u)) - u' = S_s F(u) + (S_s - S_t) u + (o_s - o_t)``,
        with ``u = A_t^{-1}(u')``.

    When both images share the map (``A_s = A_t``) the offsets cancel and ``F'(u') = S F(u)``:
    the map is resampled like the target image and the values are scaled by ``(sx, sy)``.
    ``F`` is sampled bilinearly at ``A_t^{-1}(u')`` from the body pixels only (weights
    renormalised over non-BACKGROUND pixels, so background zeros do not drag the flow towards 0
    near the silhouette); visibility is sampled NEAREST (the pixel containing the point); a
    VISIBLE pixel whose source point left the output source frame (a crop) becomes INVISIBLE,
    since its appearance can no longer be copied; the flow is zeroed on BACKGROUND.

    Args:
        flow: ``(H, W, 2)`` float ``(dx, dy)`` target->source pixels, ``(H, W) == affine.in_size``.
        visibility: ``(H, W)`` integer :class:`~posetransfer.conventions.Visibility` codes.
        affine: The target image's map (the flow's grid).
        source_affine: The source image's map; None: the same as ``affine``.

    Returns:
        ``flow`` ``(H', W', 2)`` float32 and ``visibility`` ``(H', W')`` uint8 in the output frame.
    """
    flow = np.asarray(flow, dtype=np.float32)
    visibility = np.asarray(visibility)
    if flow.ndim != 3 or flow.shape[2] != 2 or visibility.shape != flow.shape[:2]:
        raise ValueError(
            "flow must be (H, W, 2) with visibility (H, W), "
            f"got {flow.shape} and {visibility.shape}"
        )
    if flow.shape[:2] != tuple(affine.in_size):
        raise ValueError(
            f"flow is {_fmt(flow.shape[:2])} but the map expects {_fmt(affine.in_size)}"
        )
    source_affine = affine if source_affine is None else source_affine
    if affine.is_identity and source_affine == affine:
        return flow.copy(), visibility.astype(np.uint8)

    x_in, y_in = _preimage_grid(affine)  # (W',), (H',) continuous input coordinates
    rows, cols = _nearest(y_in, visibility.shape[0]), _nearest(x_in, visibility.shape[1])
    vis_out = visibility[rows[:, None], cols[None, :]]
    body = (visibility != Visibility.BACKGROUND).astype(np.float32)
    stacked = np.concatenate([flow * body[..., None], body[..., None]], axis=2)
    sampled = _bilinear(stacked, x_in, y_in)
    flow_out = sampled[..., :2] / np.maximum(sampled[..., 2:], 1e-6)

    s_s, s_t = np.asarray(source_affine.scale), np.asarray(affine.scale)
    flow_out = flow_out * s_s
    if source_affine != affine:
        u = np.stack(np.broadcast_arrays(x_in[None, :], y_in[:, None]), axis=-1)
        flow_out = flow_out + (s_s - s_t) * u + (np.asarray(source_affine.offset) - affine.offset)
    src_h, src_w = source_affine.out_size
    x_src = np.arange(flow_out.shape[1])[None, :] + 0.5 + flow_out[..., 0]
    y_src = np.arange(flow_out.shape[0])[:, None] + 0.5 + flow_out[..., 1]
    cropped_away = (x_src < 0) | (x_src > src_w) | (y_src < 0) | (y_src > src_h)
    vis_out = np.where(
        cropped_away & (vis_out == Visibility.VISIBLE), Visibility.INVISIBLE, vis_out
    )
    flow_out[vis_out == Visibility.BACKGROUND] = 0.0
    return flow_out.astype(np.float32), vis_out.astype(np.uint8)


def hflip_flow(
    flow: np.ndarray, visibility: np.ndarray, source_width: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Mirror a target->source flow when both images are mirrored (``ops.warp.flip_flow``).

    The target point ``x`` goes to ``W_t - x`` and its source point ``x + dx`` to
    ``W_s - x - dx``, so the mirrored map is read backwards along W with
    ``dx' = (W_s - W_t) - dx`` (``-dx`` for equal widths); ``dy`` is unchanged.

    Args:
        flow: ``(H, W, 2)`` float ``(dx, dy)``.
        visibility: ``(H, W)`` Visibility codes.
        source_width: Width of the source image; None: the flow's width.

    Returns:
        The mirrored ``flow`` ``(H, W, 2)`` float32 (0 on BACKGROUND) and ``visibility``.
    """
    as_tensor = torch.from_numpy(np.ascontiguousarray(flow, dtype=np.float32))
    flipped = flip_flow(as_tensor.permute(2, 0, 1)[None], src_width=source_width)
    flipped_np = np.ascontiguousarray(flipped[0].permute(1, 2, 0).numpy())
    vis = np.ascontiguousarray(visibility[:, ::-1])
    flipped_np[vis == Visibility.BACKGROUND] = 0.0
    return flipped_np, vis


@dataclass(frozen=True)
class PairArrays:
    """One source/target pair as arrays, before conversion to tensors.

    Attributes:
        source_image: ``(H_s, W_s, 3)`` uint8.
        target_image: ``(H_t, W_t, 3)`` uint8.
        source_pose: Keypoints in the source image's frame.
        target_pose: Keypoints in the target image's frame.
        flow: ``(H_t, W_t, 2)`` float32 target->source ``(dx, dy)``, or None.
        visibility: ``(H_t, W_t)`` uint8 Visibility codes, or None (exactly when ``flow`` is).
    """

    source_image: np.ndarray
    target_image: np.ndarray
    source_pose: Pose
    target_pose: Pose
    flow: np.ndarray | None = None
    visibility: np.ndarray | None = None

    def __post_init__(self) -> None:
        if (self.flow is None) != (self.visibility is None):
            raise ValueError("PairArrays needs both flow and visibility, or neither")


def transform_pair(pair: PairArrays, protocol: ImageProtocol | str) -> PairArrays:
    """Bring a pair into ``protocol``'s geometry (each image planned from its own size).

    The poses are read in ``protocol.keypoint_frame`` when it is set. The flow must be on the
    target image's grid or on the keypoint frame (a flow rendered from the keypoints).

    Raises:
        ValueError: If an image or the flow has a size the protocol does not take.
    """
    protocol = get_protocol(protocol)
    affine_src = plan_transform(protocol, pair.source_image.shape[:2])
    affine_tgt = plan_transform(protocol, pair.target_image.shape[:2])
    flow, visibility = pair.flow, pair.visibility
    if flow is not None and visibility is not None:
        frame = tuple(flow.shape[:2])
        if frame not in (tuple(affine_tgt.in_size), protocol.keypoint_frame):
            expected = [_fmt(affine_tgt.in_size)]
            if protocol.keypoint_frame is not None:
                expected.append(f"{_fmt(protocol.keypoint_frame)} (the keypoint frame)")
            raise ValueError(
                f"flow is {_fmt(frame)}, expected the target image's {' or '.join(expected)}"
            )
        flow, visibility = apply_flow(
            flow, visibility, affine_tgt.rebase(frame), affine_src.rebase(frame)
        )
    return PairArrays(
        source_image=apply_image(pair.source_image, affine_src),
        target_image=apply_image(pair.target_image, affine_tgt),
        source_pose=apply_pose(pair.source_pose, affine_src, protocol.keypoint_frame),
        target_pose=apply_pose(pair.target_pose, affine_tgt, protocol.keypoint_frame),
        flow=flow,
        visibility=visibility,
    )


def hflip_sample(pair: PairArrays) -> PairArrays:
    """Mirror a whole pair horizontally.

    Both images are mirrored, both poses go through :meth:`Pose.flip` (``x -> W - x`` and
    left/right swapped), and the flow through :func:`hflip_flow` (map mirrored along W, ``dx``
    negated, visibility mirrored), so ``warp(source, flow) == target`` still holds.
    """
    src_w, tgt_w = pair.source_image.shape[1], pair.target_image.shape[1]
    flow, visibility = pair.flow, pair.visibility
    if flow is not None and visibility is not None:
        flow, visibility = hflip_flow(flow, visibility, source_width=src_w)
    return replace(
        pair,
        source_image=np.ascontiguousarray(pair.source_image[:, ::-1]),
        target_image=np.ascontiguousarray(pair.target_image[:, ::-1]),
        source_pose=pair.source_pose.flip(src_w),
        target_pose=pair.target_pose.flip(tgt_w),
        flow=flow,
        visibility=visibility,
    )


# --------------------------------------------------------------------------------- helpers


def _fmt(size: Size | tuple[int, ...]) -> str:
    return f"{size[0]}x{size[1]}"


def _preimage_grid(affine: Affine) -> tuple[np.ndarray, np.ndarray]:
    """Input coordinates of the output pixel centres: ``x = (j + 0.5 - ox) / sx`` per axis."""
    (sx, sy), (ox, oy), (height, width) = affine.scale, affine.offset, affine.out_size
    x = (np.arange(width, dtype=np.float64) + 0.5 - ox) / sx
    y = (np.arange(height, dtype=np.float64) + 0.5 - oy) / sy
    return x, y


def _nearest(coords: np.ndarray, n: int) -> np.ndarray:
    """Index of the pixel containing each continuous coordinate, clamped to ``[0, n)``."""
    return np.clip(np.floor(coords), 0, n - 1).astype(np.int64)


def _bilinear(values: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample ``(H, W, C)`` at the grid ``y x x`` of continuous coordinates (border clamp)."""
    height, width = values.shape[:2]
    gx = torch.from_numpy(2.0 * x / width - 1.0).float()
    gy = torch.from_numpy(2.0 * y / height - 1.0).float()
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1)[None]
    image = torch.from_numpy(np.ascontiguousarray(values)).permute(2, 0, 1)[None].float()
    out = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[0].permute(1, 2, 0).numpy()
