"""Backward warping by dense flow, flow/visibility pyramids and small flow utilities.

Convention (``posetransfer.conventions``):
    A flow ``F`` of shape ``(B, 2, H, W)`` is *backward* flow from the target to the source, in
    pixels, channels ``(dx, dy)``, defined on the target grid. Target pixel ``(row i, col j)`` has
    its centre at ``u = (j + 0.5, i + 0.5)`` and takes its value from the source at ``u + F(u)``::

        target[i, j] = source sampled at (x, y) = (j + 0.5 + dx[i, j], i + 0.5 + dy[i, j])

    Sampling is ``grid_sample(..., align_corners=False)``, whose normalised coordinate ``-1`` is
    the left edge of the left pixel and ``+1`` the right edge of the right pixel, so
    ``x_norm = 2 * x / W_src - 1`` uses the same pixel centres. Positions outside the source read
    zeros (bilinear interpolation fades to zero over the last half pixel). This fixes the
    half-pixel drift of the original code, which normalised by ``W - 1`` (align_corners=True).

Exactness and precision:
    A zero flow or an integer shift reproduces pixels bit-exactly when the source width and
    height are powers of two (every normalised coordinate is then a dyadic rational). For other
    sizes ``grid_sample``'s un-normalisation moves the sample by about one float32 ulp of the
    coordinate (~2e-5 px at 256 px), so a zero flow reproduces a 256 x 176 image only to ~1e-4
    of its pixel differences; :func:`warp_reference` states the exact semantics in float64.
    Sampling always runs in at least float32: a float16/bfloat16 grid would misplace samples by
    up to ~0.03/0.25 px at 256 px, so low-precision sources are upcast and the result cast back.

Pyramids:
    Level ``l`` has stride ``2**l``. Flow is average-pooled over ``2**l x 2**l`` blocks and divided
    by ``2**l`` (displacements in level-``l`` pixels); visibility takes the largest code in each
    block (any BACKGROUND wins, then INVISIBLE). Both require ``H`` and ``W`` divisible by the
    coarsest stride, as a U-Net decoder at that stride needs: a partial block has no consistent
    pixel centre, so we raise instead of guessing.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from posetransfer.ops.memory_format import dense_grad, is_channels_last

__all__ = [
    "flip_flow",
    "flow_pyramid",
    "flow_to_grid",
    "masked_epe",
    "pixel_grid",
    "resize_flow",
    "visibility_pyramid",
    "warp",
    "warp_reference",
]

SampleMode = Literal["bilinear", "nearest", "bicubic"]
PaddingMode = Literal["zeros", "border", "reflection"]
_SAMPLE_MODES: tuple[str, ...] = ("bilinear", "nearest", "bicubic")
_PADDING_MODES: tuple[str, ...] = ("zeros", "border", "reflection")


def _check_flow(flow: torch.Tensor, name: str = "flow") -> None:
    """Raise ``ValueError`` unless ``flow`` is a floating ``(B, 2, H, W)`` tensor."""
    if not isinstance(flow, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(flow).__name__}")
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(
            f"{name} must have shape (B, 2, H, W), got {name}.shape={tuple(flow.shape)}"
        )
    if not flow.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {name}.dtype={flow.dtype}")


def _check_size(size: Sequence[int], name: str) -> tuple[int, int]:
    """Return ``size`` as ``(H, W)`` of positive ints or raise ``ValueError``."""
    try:
        height, width = (operator.index(s) for s in size)
    except (TypeError, ValueError):
        height = width = 0
    if height <= 0 or width <= 0:
        raise ValueError(f"{name} must be (height, width) positive ints, got {name}={size!r}")
    return height, width


def _check_levels(shape: Sequence[int], levels: int, name: str) -> None:
    """Raise ``ValueError`` unless ``levels >= 1`` and ``(H, W)`` divide by ``2**(levels-1)``."""
    if not isinstance(levels, int) or levels < 1:
        raise ValueError(f"levels must be a positive int, got levels={levels!r}")
    stride = 2 ** (levels - 1)
    height, width = shape[-2:]
    if height % stride or width % stride:
        raise ValueError(
            f"{name} spatial size (H, W)=({height}, {width}) must be divisible by the coarsest "
            f"stride 2**(levels-1)={stride} for levels={levels}"
        )


def pixel_grid(
    height: int,
    width: int,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Pixel-centre coordinates of an ``height x width`` image.

    Args:
        height: Number of rows ``H``.
        width: Number of columns ``W``.
        device: Device of the result.
        dtype: Floating dtype of the result.

    Returns:
        ``(1, 2, H, W)`` tensor; channel 0 is ``x = j + 0.5``, channel 1 is ``y = i + 0.5``.

    Example:
        >>> pixel_grid(1, 2)[0, :, 0, :].tolist()
        [[0.5, 1.5], [0.5, 0.5]]
    """
    height, width = _check_size((height, width), "(height, width)")
    ys = torch.arange(height, device=device, dtype=dtype) + 0.5
    xs = torch.arange(width, device=device, dtype=dtype) + 0.5
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((grid_x, grid_y)).unsqueeze(0)


def flow_to_grid(flow: torch.Tensor, src_size: Sequence[int] | None = None) -> torch.Tensor:
    """Turn a backward flow into a normalised sampling grid for ``grid_sample``.

    ``x_norm = 2 * (j + 0.5 + dx) / W_src - 1`` and ``y_norm = 2 * (i + 0.5 + dy) / H_src - 1``,
    to be used with ``align_corners=False``.

    Args:
        flow: ``(B, 2, H_t, W_t)`` flow in pixels of the source image, channels ``(dx, dy)``.
        src_size: ``(H_s, W_s)`` of the source image; defaults to the target size ``(H_t, W_t)``.

    Returns:
        ``(B, H_t, W_t, 2)`` grid, last axis ``(x_norm, y_norm)``. Its dtype is the flow's,
        promoted to at least float32 so that half-precision flows keep sub-pixel accuracy.
    """
    _check_flow(flow)
    src_h, src_w = _check_size(flow.shape[-2:] if src_size is None else src_size, "src_size")
    dtype = torch.promote_types(flow.dtype, torch.float32)
    coords = pixel_grid(*flow.shape[-2:], device=flow.device, dtype=dtype) + flow.to(dtype)
    grid_x = coords[:, 0] * (2.0 / src_w) - 1.0
    grid_y = coords[:, 1] * (2.0 / src_h) - 1.0
    return torch.stack((grid_x, grid_y), dim=-1)


def warp(
    x: torch.Tensor,
    flow: torch.Tensor,
    *,
    mode: SampleMode = "bilinear",
    padding_mode: PaddingMode = "zeros",
    src_size: Sequence[int] | None = None,
) -> torch.Tensor:
    """Backward-warp a source image or feature map onto the target grid.

    ``out[b, :, i, j] = x[b]`` sampled at ``(j + 0.5 + dx, i + 0.5 + dy)`` (see module docstring).

    Args:
        x: ``(B, C, H_s, W_s)`` floating source.
        flow: ``(B, 2, H, W)`` backward flow target -> source in source pixels, ``(dx, dy)``.
        mode: ``grid_sample`` interpolation: ``"bilinear"``, ``"nearest"`` or ``"bicubic"``.
        padding_mode: Value outside the source: ``"zeros"``, ``"border"`` or ``"reflection"``.
            For images in ``[-1, 1]`` zero is mid-grey; to paint outside samples another value,
            warp a ones map as well and blend with it.
        src_size: ``(H, W)`` of the image whose pixels the flow is measured in; defaults to
            ``(H_s, W_s)``. Give it to sample a source stored at another resolution (the grid
            is normalised, so ``x`` is read as a resampled view of that image).

    Returns:
        ``(B, C, H, W)`` warped tensor with ``x``'s dtype, device and memory format (a
        ``channels_last`` ``x`` gives a ``channels_last`` output, and its gradient comes back
        ``channels_last``). Half-precision ``x`` is sampled in float32 (see the module
        docstring), also under autocast.

    Raises:
        ValueError: On wrong shapes, dtypes, mismatched batch sizes or devices, or unknown modes.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a (B, C, H, W) tensor, got x.shape={shape}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor, got x.dtype={x.dtype}")
    _check_flow(flow)
    if x.shape[0] != flow.shape[0]:
        raise ValueError(
            f"x and flow batch sizes differ: x.shape={tuple(x.shape)}, "
            f"flow.shape={tuple(flow.shape)}"
        )
    if x.device != flow.device:
        raise ValueError(f"x and flow devices differ: x on {x.device}, flow on {flow.device}")
    if mode not in _SAMPLE_MODES:
        raise ValueError(f"mode must be one of {_SAMPLE_MODES}, got mode={mode!r}")
    if padding_mode not in _PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, got {padding_mode=!r}")
    grid = flow_to_grid(flow, x.shape[-2:] if src_size is None else src_size)
    dtype = torch.promote_types(x.dtype, grid.dtype)  # at least float32, see module docstring
    out = F.grid_sample(
        dense_grad(x).to(dtype), grid.to(dtype), mode=mode, padding_mode=padding_mode,
        align_corners=False,
    )  # fmt: skip
    if is_channels_last(x):  # grid_sample returns NCHW (and its input gradient too)
        out = out.contiguous(memory_format=torch.channels_last)
    return out.to(x.dtype)


def warp_reference(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Slow per-pixel bilinear backward warp with zero padding: the semantics of :func:`warp`.

    For each target pixel the source position in *index* space is ``(j + dx, i + dy)`` (the pixel
    centre ``j + 0.5`` minus the half pixel that separates centres from indices); the four
    surrounding source pixels are blended bilinearly and pixels outside the source count as 0.

    Args:
        x: ``(B, C, H_s, W_s)`` source.
        flow: ``(B, 2, H, W)`` backward flow in source pixels.

    Returns:
        ``(B, C, H, W)`` tensor with ``x``'s dtype and device, computed in float64 with numpy.
    """
    _check_flow(flow)
    src = x.detach().cpu().double().numpy()
    flo = flow.detach().cpu().double().numpy()
    batch, channels, src_h, src_w = src.shape
    _, _, height, width = flo.shape
    out = np.zeros((batch, channels, height, width))
    for b in range(batch):
        for i in range(height):
            for j in range(width):
                px, py = j + flo[b, 0, i, j], i + flo[b, 1, i, j]
                x0, y0 = int(np.floor(px)), int(np.floor(py))
                fx, fy = px - x0, py - y0
                for yy, wy in ((y0, 1.0 - fy), (y0 + 1, fy)):
                    for xx, wx in ((x0, 1.0 - fx), (x0 + 1, fx)):
                        if 0 <= yy < src_h and 0 <= xx < src_w:
                            out[b, :, i, j] += wy * wx * src[b, :, yy, xx]
    return torch.from_numpy(out).to(device=x.device, dtype=x.dtype)


def flow_pyramid(flow: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Flow at strides ``1, 2, ..., 2**(levels-1)``, in pixels of each level.

    Level ``l`` averages each ``2**l x 2**l`` block (background zeros included, as in the
    original) and divides by ``2**l``.

    Args:
        flow: ``(B, 2, H, W)`` flow; ``H`` and ``W`` divisible by ``2**(levels-1)``.
        levels: Number of levels, at least 1.

    Returns:
        ``levels`` tensors; entry ``l`` is ``(B, 2, H / 2**l, W / 2**l)``. Entry 0 is ``flow``
        itself (not a copy).
    """
    _check_flow(flow)
    _check_levels(flow.shape, levels, "flow")
    pyramid = [flow]
    for level in range(1, levels):
        stride = 2**level
        pyramid.append(F.avg_pool2d(flow, kernel_size=stride, stride=stride) / stride)
    return pyramid


def visibility_pyramid(vis: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Visibility codes at strides ``1, 2, ..., 2**(levels-1)``.

    Each coarse pixel takes the largest :class:`~posetransfer.conventions.Visibility` code of its
    ``2**l x 2**l`` block: BACKGROUND if any fine pixel is background, else INVISIBLE if any is
    invisible, else VISIBLE.

    Args:
        vis: ``(B, H, W)`` integer codes; ``H`` and ``W`` divisible by ``2**(levels-1)``.
        levels: Number of levels, at least 1.

    Returns:
        ``levels`` tensors of ``vis``'s dtype; entry ``l`` is ``(B, H / 2**l, W / 2**l)``.
        Entry 0 is ``vis`` itself.
    """
    if not isinstance(vis, torch.Tensor) or vis.ndim != 3:
        shape = tuple(vis.shape) if isinstance(vis, torch.Tensor) else type(vis).__name__
        raise ValueError(f"vis must be a (B, H, W) tensor, got vis.shape={shape}")
    if vis.is_floating_point() or vis.is_complex() or vis.dtype == torch.bool:
        raise ValueError(f"vis must hold integer codes, got vis.dtype={vis.dtype}")
    _check_levels(vis.shape, levels, "vis")
    batch, height, width = vis.shape
    pyramid = [vis]
    for level in range(1, levels):
        s = 2**level
        blocks = vis.reshape(batch, height // s, s, width // s, s)
        pyramid.append(blocks.amax(dim=(2, 4)))
    return pyramid


def resize_flow(
    flow: torch.Tensor,
    size: Sequence[int],
    *,
    mode: Literal["bilinear", "nearest"] = "bilinear",
) -> torch.Tensor:
    """Resample a flow to another resolution, rescaling its values to the new pixels.

    Both images of the pair are assumed resized by the same factors ``s_x = W'/W`` and
    ``s_y = H'/H``: a point ``u`` moves to ``s * u``, so ``F'(s * u) = s * F(u)``. The map is
    resampled with pixel centres aligned (``align_corners=False``; ``"nearest"`` means
    ``"nearest-exact"``), then ``dx`` is multiplied by ``s_x`` and ``dy`` by ``s_y``.

    Args:
        flow: ``(B, 2, H, W)`` flow.
        size: ``(H', W')`` output size.
        mode: ``"bilinear"`` (smooth) or ``"nearest"`` (no mixing across body/background edges).

    Returns:
        ``(B, 2, H', W')`` flow in pixels of the new resolution.
    """
    _check_flow(flow)
    new_h, new_w = _check_size(size, "size")
    if mode == "bilinear":
        resized = F.interpolate(flow, size=(new_h, new_w), mode="bilinear", align_corners=False)
    elif mode == "nearest":
        resized = F.interpolate(flow, size=(new_h, new_w), mode="nearest-exact")
    else:
        raise ValueError(f"mode must be 'bilinear' or 'nearest', got mode={mode!r}")
    scale = flow.new_tensor([new_w / flow.shape[-1], new_h / flow.shape[-2]]).view(1, 2, 1, 1)
    return resized * scale


def flip_flow(flow: torch.Tensor, *, src_width: int | None = None) -> torch.Tensor:
    """Flow between horizontally mirrored target and source images.

    Derivation, in continuous coordinates: mirroring maps ``x`` to ``W - x`` and keeps ``y``.
    With ``T(u) = S(u + F(u))``, ``T'(x, y) = T(W_t - x, y)`` and ``S'(x, y) = S(W_s - x, y)``::

        T'(x, y) = S(W_t - x + dx(W_t - x, y), y + dy(W_t - x, y))
                 = S'(x + (W_s - W_t) - dx(W_t - x, y), y + dy(W_t - x, y))

    so ``F'(x, y) = (W_s - W_t - dx(W_t - x, y), dy(W_t - x, y))``. On pixel centres
    ``W_t - (j + 0.5)`` is the centre of column ``W_t - 1 - j``: flip the map along the width and
    negate ``dx`` (plus ``W_s - W_t`` when the source is wider than the target).

    Args:
        flow: ``(B, 2, H, W)`` flow of the original pair.
        src_width: Source width ``W_s``; defaults to the target width ``W``.

    Returns:
        ``(B, 2, H, W)`` flow of the mirrored pair: ``warp(flip(src), flip_flow(F)) ==
        flip(warp(src, F))``.
    """
    _check_flow(flow)
    flipped = torch.flip(flow, dims=(-1,))
    offset = 0 if src_width is None else src_width - flow.shape[-1]
    return torch.cat((offset - flipped[:, :1], flipped[:, 1:]), dim=1)


def masked_epe(flow_pred: torch.Tensor, flow_gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean end-point error ``||F_pred - F_gt||_2`` over the pixels selected by ``mask``.

    All masked pixels of the batch are pooled (a pixel-weighted mean, not a mean of per-sample
    means). An empty mask gives 0. The gradient is finite where the error is zero.

    Args:
        flow_pred: ``(B, 2, H, W)`` predicted flow.
        flow_gt: ``(B, 2, H, W)`` reference flow.
        mask: ``(B, H, W)`` or ``(B, 1, H, W)``, bool or float weights (e.g. ``vis != BACKGROUND``).

    Returns:
        0-dim tensor: ``sum(mask * epe) / sum(mask)``.
    """
    _check_flow(flow_pred, "flow_pred")
    _check_flow(flow_gt, "flow_gt")
    if flow_pred.shape != flow_gt.shape:
        raise ValueError(
            f"flow_pred.shape={tuple(flow_pred.shape)} differs from flow_gt.shape="
            f"{tuple(flow_gt.shape)}"
        )
    batch, _, height, width = flow_pred.shape
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    if mask.ndim == 4 and mask.shape[1] == 1:
        mask = mask[:, 0]
    if tuple(mask.shape) != (batch, height, width):
        raise ValueError(
            f"mask must have shape (B, H, W)=({batch}, {height}, {width}) or (B, 1, H, W), "
            f"got mask.shape={tuple(mask.shape)}"
        )
    epe = torch.linalg.vector_norm(flow_pred - flow_gt, dim=1)
    weights = mask.to(epe.dtype)
    return (epe * weights).sum() / weights.sum().clamp_min(torch.finfo(epe.dtype).tiny)
