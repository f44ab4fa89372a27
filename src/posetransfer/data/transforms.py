"""Carry one sample through an image protocol's map: images, keypoints, flow and visibility alike.

:func:`~posetransfer.data.image_protocols.plan_transform` gives the :class:`Affine` that brings an
input into an :class:`ImageProtocol`'s geometry (:mod:`posetransfer.data.image_protocols`); the
``apply_*`` functions carry every per-pixel or per-point quantity of a sample through that same
map, :func:`transform_pair` a whole :class:`PairArrays`, and :func:`hflip_sample` mirrors a pair.

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
from posetransfer.data.image_protocols import (
    PROTOCOLS,
    Affine,
    ImageProtocol,
    Size,
    format_size,
    get_protocol,
    plan_transform,
)
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
            f"image is {format_size(array.shape[:2])} "
            f"but the map expects {format_size(affine.in_size)}"
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
            f"flow is {format_size(flow.shape[:2])} "
            f"but the map expects {format_size(affine.in_size)}"
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
            expected = [format_size(affine_tgt.in_size)]
            if protocol.keypoint_frame is not None:
                expected.append(f"{format_size(protocol.keypoint_frame)} (the keypoint frame)")
            raise ValueError(
                f"flow is {format_size(frame)}, expected the target image's {' or '.join(expected)}"
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
