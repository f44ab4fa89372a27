"""Flow regressor (paper stage 2): a U-Net from the two pose maps to flow and visibility.

Paper symbols: input ``(p_src, p_tgt)`` as pose maps, outputs the backward flow ``F`` (target ->
source) and the visibility logits of ``V`` (:class:`~posetransfer.conventions.Visibility`).
The original's two networks (``reference/official_repo.md`` §3.2, §3.3) are one model here; the
``variant`` config value picks the recipe:

``"unet"`` (``FlowUnet``, pix2pix style)
    stem ``conv7x7 -> N -> LReLU(0.1)``, ``conv3x3/2 -> N -> LReLU(0.1)``; each level
    ``LReLU(0.2) -> conv4x4/2 -> N`` down (no activation on the first, no norm on the innermost)
    and ``ReLU -> convT4x4/2 -> N`` up; the decoder input of a level is ``cat(skip, up)`` where
    the skip is the *activated* encoder tensor (the original's in-place LeakyReLU). Heads use
    ``LReLU(0.1)``. Channels ``c_l = min(max_channels, base_channels * 2**(l+1))``.
``"unet_v2"`` (``FlowUnet_v2``, residual and smaller)
    stem ``conv1x1 -> N``, residual block, ``ReLU -> conv3x3/2 -> N``; each level has
    ``num_res_blocks`` pre-activation residual blocks (their outputs are the skips), a
    ``ReLU -> conv3x3/2 -> N`` down, a ``ReLU -> conv3x3 -> PixelShuffle -> N`` up and
    residual blocks fed the skips. Heads use ReLU. ``c_l = min(max_channels, base_channels*(l+2))``.

Levels and units:
    Decoder level ``l = 0 .. num_levels-1`` works at stride ``2**(l+1)`` with ``c_l`` channels and
    has a flow head; the visibility head sits on level 0. :class:`FlowPrediction` indexes outputs
    by *stride* ``2**k``: ``flows[k]`` for ``k = 1 .. num_levels`` comes from a head and
    ``flows[0]`` is ``flows[1]`` bilinearly upsampled to the input size (as the original's
    ``flow_out``); ``vis_logits`` has entries 0 (upsampled) and 1. Flow is in pixels of its own
    level, as :func:`posetransfer.ops.warp.flow_pyramid`, so ``flows[k]`` is directly comparable
    with ``flow_pyramid(F, num_levels + 1)[k]``.

Output scale:
    A head's raw output ``o`` is read as the original did, in units of ``flow_scale = 20``
    full-resolution pixels, so ``flows[k] = o * flow_scale / 2**k``. This keeps the heads'
    targets O(1) for typical body displacements and keeps released weights meaningful.

Differences from the original (64 parameters fewer): the redundant bias of the outermost
transposed conv (followed by BatchNorm) is dropped, activations are not in place (the
skip semantics are kept), ``max_channels`` is honoured by ``"unet"`` (the original ignored it), and
inputs of any size are accepted: they are padded at the bottom/right to a multiple of the stride
(zero pose maps, :mod:`posetransfer.models.stride_padding`) and every output is cropped back,
where the original failed inside a ``cat``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from posetransfer.config import ConfigError
from posetransfer.conventions import NUM_VISIBILITY_CLASSES
from posetransfer.models.blocks import (
    NORM_KINDS,
    NormKind,
    ResidualBlock,
    conv_unit,
    down_block,
    init_weights,
    leaky_relu,
    relu,
    up_block,
)
from posetransfer.models.stride_padding import crop_to, pad_constant, padded_size
from posetransfer.ops.memory_format import cat_channels
from posetransfer.ops.warp import resize_flow
from posetransfer.pose.maps import PoseMapConfig, num_pose_channels

__all__ = [
    "FlowPrediction",
    "FlowRegressor",
    "FlowRegressorConfig",
    "flow_input_channels",
    "level_channels",
]

logger = logging.getLogger(__name__)

Variant = Literal["unet", "unet_v2"]


@dataclass(frozen=True)
class FlowRegressorConfig:
    """Architecture of :class:`FlowRegressor`.

    The defaults are the efficient preset: the original's ``"unet"`` at half width with three
    levels (1.6 M parameters, 4.2 GFLOP at 256x176 against 19.7 GFLOP for the original at
    256x256), whose stride 16 divides both 256x176 and 128x64. :meth:`paper` gives the original's
    settings.

    Attributes:
        variant: ``"unet"`` (pix2pix levels) or ``"unet_v2"`` (residual levels); see the module
            docstring.
        in_channels: Channels of ``cat(pose_src, pose_tgt)``, i.e. ``flow_input_channels(pose)``
            (36 for 18 keypoint maps per pose).
        base_channels: Width ``nf`` of the full-resolution stem; level widths grow from it.
        max_channels: Cap on level widths.
        num_levels: Down-sampling levels after the stride-2 stem (inputs of other sizes than
            multiples of ``2**(num_levels + 1)`` are padded to one and cropped back); there are
            ``num_levels`` flow heads, at strides ``2 .. 2**num_levels``.
        norm: ``"batch"``, ``"instance"`` or ``"none"``.
        num_res_blocks: Residual blocks per level and side (``"unet_v2"`` only; 0 for ``"unet"``).
        flow_scale: Pixels of the full-resolution image per unit of raw head output.
    """

    variant: Variant = "unet"
    in_channels: int = 36
    base_channels: int = 16
    max_channels: int = 256
    num_levels: int = 3
    norm: NormKind = "batch"
    num_res_blocks: int = 0
    flow_scale: float = 20.0

    def __post_init__(self) -> None:
        if self.variant not in ("unet", "unet_v2"):
            raise ConfigError(
                f"FlowRegressorConfig.variant must be 'unet' or 'unet_v2', got {self.variant!r}"
            )
        if self.norm not in NORM_KINDS:
            raise ConfigError(
                f"FlowRegressorConfig.norm must be one of {NORM_KINDS}, got {self.norm!r}"
            )
        for name in ("in_channels", "base_channels", "max_channels", "num_levels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"FlowRegressorConfig.{name} must be an int >= 1, got {value!r}")
        if isinstance(self.num_res_blocks, bool) or not isinstance(self.num_res_blocks, int):
            raise ConfigError(
                f"FlowRegressorConfig.num_res_blocks must be an int, got {self.num_res_blocks!r}"
            )
        if self.variant == "unet" and self.num_res_blocks != 0:
            raise ConfigError(
                "FlowRegressorConfig.num_res_blocks must be 0 for variant='unet' (its levels have "
                f"no residual blocks), got {self.num_res_blocks}"
            )
        if self.variant == "unet_v2" and self.num_res_blocks < 1:
            raise ConfigError(
                "FlowRegressorConfig.num_res_blocks must be >= 1 for variant='unet_v2' (the "
                f"residual blocks carry the skips; the original uses 2), got {self.num_res_blocks}"
            )
        if not isinstance(self.flow_scale, int | float) or not 0 < self.flow_scale < float("inf"):
            raise ConfigError(
                f"FlowRegressorConfig.flow_scale must be a positive number, got {self.flow_scale!r}"
            )

    @property
    def stride(self) -> int:
        """Total down-sampling ``2**(num_levels + 1)``; other input sizes are padded to it."""
        return 2 ** (self.num_levels + 1)

    @classmethod
    def paper(
        cls, dataset: Literal["deepfashion", "market"], variant: Variant = "unet"
    ) -> FlowRegressorConfig:
        """The original's settings: ``"unet"`` 29.34 M / 16.74 M parameters, ``"unet_v2"``
        6.59 M / 4.93 M (DeepFashion 256x256, 5 levels / Market 128x64, 4 levels)."""
        if dataset not in ("deepfashion", "market"):
            raise ConfigError(f"dataset must be 'deepfashion' or 'market', got {dataset!r}")
        levels = 5 if dataset == "deepfashion" else 4
        unet = variant == "unet"
        return cls(
            variant=variant,
            in_channels=36,
            base_channels=32,
            max_channels=512 if unet else 128,
            num_levels=levels,
            norm="batch",
            num_res_blocks=0 if unet else 2,
            flow_scale=20.0,
        )


def flow_input_channels(pose: PoseMapConfig) -> int:
    """``in_channels`` for pose maps made with ``pose``: two poses of ``num_pose_channels``."""
    return 2 * num_pose_channels(pose)


def level_channels(cfg: FlowRegressorConfig) -> tuple[int, ...]:
    """Widths ``(c_0, ..., c_num_levels)``: ``c_l`` at stride ``2**(l+1)``; the last is the bottom.

    Example:
        >>> level_channels(FlowRegressorConfig.paper("deepfashion"))
        (64, 128, 256, 512, 512, 512)
    """
    nf, top = cfg.base_channels, cfg.max_channels
    if cfg.variant == "unet":
        return tuple(min(top, nf * 2 ** (lv + 1)) for lv in range(cfg.num_levels + 1))
    return tuple(min(top, nf * (lv + 2)) for lv in range(cfg.num_levels + 1))


@dataclass
class FlowPrediction:
    """Multi-scale output of :class:`FlowRegressor` (``H, W``: input size; entry k: stride 2**k).

    Level ``k`` has ``ceil(H / 2**k) x ceil(W / 2**k)`` pixels (``H / 2**k`` when it divides):
    the level's pixels that overlap the input, pixel ``(i, j)`` covering input rows
    ``[i * 2**k, (i + 1) * 2**k)``.

    Attributes:
        flows: ``flows[k]`` is ``(B, 2, H_k, W_k)`` backward flow target -> source in pixels of
            level ``k``, for ``k = 0 .. num_levels``; entry 0 is upsampled from entry 1.
        vis_logits: ``vis_logits[k]`` is ``(B, 3, H_k, W_k)`` logits of the
            :class:`~posetransfer.conventions.Visibility` classes, for ``k = 0, 1``; entry 0 is
            upsampled from entry 1.
    """

    flows: list[torch.Tensor]
    vis_logits: list[torch.Tensor]

    @property
    def flow(self) -> torch.Tensor:
        """``(B, 2, H, W)`` full-resolution flow in pixels."""
        return self.flows[0]

    @property
    def vis_logits_full(self) -> torch.Tensor:
        """``(B, 3, H, W)`` full-resolution visibility logits."""
        return self.vis_logits[0]

    @property
    def visibility(self) -> torch.Tensor:
        """``(B, H, W)`` int64 predicted Visibility codes (argmax of the logits)."""
        return self.vis_logits[0].argmax(dim=1)

    def to(self, device: torch.device | str) -> FlowPrediction:
        """A copy with every tensor on ``device``."""
        return replace(
            self,
            **{f.name: [t.to(device) for t in getattr(self, f.name)] for f in fields(self)},
        )


class _EncoderLevel(nn.Module):
    """One encoder level: returns the down-sampled tensor and the skips for the decoder."""

    def __init__(self, cfg: FlowRegressorConfig, c_in: int, c_out: int, *, first: bool, last: bool):
        super().__init__()
        if cfg.variant == "unet":
            # The skip is the activated input, as with the original's in-place LeakyReLU.
            self.act = nn.Identity() if first else nn.LeakyReLU(0.2)
            self.res = nn.ModuleList()
            # The innermost conv has neither norm nor bias, as in the original.
            norm = None if last else cfg.norm
            self.down = conv_unit(c_in, c_out, 4, stride=2, norm=norm, bias=False)
        else:
            self.act = nn.Identity()
            blocks = [ResidualBlock(c_in, norm=cfg.norm) for _ in range(cfg.num_res_blocks)]
            self.res = nn.ModuleList(blocks)
            self.down = down_block(c_in, c_out, norm=cfg.norm)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.act(x)
        skips = [x] if not self.res else []
        for block in self.res:
            x = block(x)
            skips.append(x)
        return self.down(x), skips


class _DecoderLevel(nn.Module):
    """One decoder level: returns the level's features (for the heads) and the next input."""

    def __init__(self, cfg: FlowRegressorConfig, c_in: int, c_out: int, *, first: bool, last: bool):
        super().__init__()
        self.concat_skip = cfg.variant == "unet" and not first
        if cfg.variant == "unet":
            up_in = c_in if last else 2 * c_in  # inner levels receive cat(skip, up)
            self.up = up_block(up_in, c_out, mode="transposed", norm=cfg.norm)
            self.res = nn.ModuleList()
        else:
            self.up = up_block(c_in, c_out, mode="pixel_shuffle", norm=cfg.norm)
            blocks = [ResidualBlock(c_out, c_out, norm=cfg.norm) for _ in range(cfg.num_res_blocks)]
            self.res = nn.ModuleList(blocks)

    def forward(
        self, y: torch.Tensor, skips: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.up(y)
        if self.res:  # unet_v2: the last encoder output feeds the first block
            for block, skip in zip(self.res, reversed(skips), strict=True):
                x = block(x, skip)
        if self.concat_skip:
            return x, cat_channels((skips[0], x))
        return x, x


class FlowRegressor(nn.Module):
    """U-Net from the source and target pose maps to multi-scale flow and visibility.

    Args:
        cfg: Architecture; see :class:`FlowRegressorConfig`.

    Example:
        >>> net = FlowRegressor(FlowRegressorConfig(base_channels=4, max_channels=8, num_levels=2))
        >>> out = net(torch.zeros(1, 18, 32, 16), torch.zeros(1, 18, 32, 16))
        >>> [tuple(f.shape) for f in out.flows]
        [(1, 2, 32, 16), (1, 2, 16, 8), (1, 2, 8, 4)]
    """

    def __init__(self, cfg: FlowRegressorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch = level_channels(cfg)
        nf, n = cfg.base_channels, cfg.num_levels
        if cfg.variant == "unet":
            head_act = leaky_relu(0.1)
            self.stem = nn.Sequential(
                conv_unit(cfg.in_channels, nf, 7, norm=cfg.norm, post_act=head_act),
                conv_unit(nf, ch[0], 3, stride=2, norm=cfg.norm, post_act=head_act),
            )
        else:
            head_act = relu
            self.stem = nn.Sequential(
                conv_unit(cfg.in_channels, nf, 1, norm=cfg.norm),
                ResidualBlock(nf, norm=cfg.norm),
                down_block(nf, ch[0], norm=cfg.norm),
            )
        self.encoder = nn.ModuleList(
            _EncoderLevel(cfg, ch[lv], ch[lv + 1], first=lv == 0, last=lv == n - 1)
            for lv in range(n)
        )
        self.decoder = nn.ModuleList(
            _DecoderLevel(cfg, ch[lv + 1], ch[lv], first=lv == 0, last=lv == n - 1)
            for lv in range(n)
        )
        self.flow_heads = nn.ModuleList(
            conv_unit(ch[lv], 2, 3, norm=None, pre_act=head_act) for lv in range(n)
        )
        self.vis_head = conv_unit(ch[0], NUM_VISIBILITY_CLASSES, 3, norm=None, pre_act=head_act)
        init_weights(self)

    def forward(self, pose_src: torch.Tensor, pose_tgt: torch.Tensor) -> FlowPrediction:
        """Predict the flow and visibility of the target pose relative to the source pose.

        Args:
            pose_src: ``(B, C, H, W)`` pose maps of the source image.
            pose_tgt: ``(B, C, H, W)`` pose maps of the target; ``2 * C == cfg.in_channels``. Any
                ``H``, ``W``: other sizes than multiples of ``cfg.stride`` are zero-padded at the
                bottom/right and the outputs cropped back (multiples run unpadded).

        Returns:
            The :class:`FlowPrediction`.

        Raises:
            ValueError: On mismatched shapes or a wrong channel count.
        """
        x = self._input(pose_src, pose_tgt)
        size = (x.shape[-2], x.shape[-1])
        x = pad_constant(x, self.cfg.stride)
        x = self.stem(x)
        skips = []
        for level in self.encoder:
            x, level_skips = level(x)
            skips.append(level_skips)
        feats: list[torch.Tensor] = [x] * self.cfg.num_levels
        for lv in reversed(range(self.cfg.num_levels)):
            feats[lv], x = self.decoder[lv](x, skips[lv])
        flows = [
            head(feat) * (self.cfg.flow_scale / 2 ** (lv + 1))
            for lv, (head, feat) in enumerate(zip(self.flow_heads, feats, strict=True))
        ]
        vis = self.vis_head(feats[0])
        full = padded_size(size, self.cfg.stride)  # upsample before cropping: an exact 2x
        vis_full = F.interpolate(vis, size=full, mode="bilinear", align_corners=False)
        flows = [resize_flow(flows[0], full), *flows]
        vis_logits = [vis_full, vis]
        if full != size:
            flows = [crop_to(f, _level_size(size, k)) for k, f in enumerate(flows)]
            vis_logits = [crop_to(v, _level_size(size, k)) for k, v in enumerate(vis_logits)]
        return FlowPrediction(flows, vis_logits)

    def _input(self, pose_src: torch.Tensor, pose_tgt: torch.Tensor) -> torch.Tensor:
        """Check the pose maps and concatenate them (source first, as the original)."""
        for name, t in (("pose_src", pose_src), ("pose_tgt", pose_tgt)):
            if not isinstance(t, torch.Tensor) or t.ndim != 4 or not t.is_floating_point():
                shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ValueError(f"{name} must be a float (B, C, H, W) tensor, got {shape}")
        if pose_src.shape != pose_tgt.shape:
            raise ValueError(
                f"pose_src.shape={tuple(pose_src.shape)} differs from "
                f"pose_tgt.shape={tuple(pose_tgt.shape)}"
            )
        if 2 * pose_src.shape[1] != self.cfg.in_channels:
            raise ValueError(
                f"FlowRegressor expects 2 x {self.cfg.in_channels // 2} pose channels "
                f"(cfg.in_channels={self.cfg.in_channels}), got {pose_src.shape[1]} per pose"
            )
        return torch.cat((pose_src, pose_tgt), dim=1)


def _level_size(size: tuple[int, int], level: int) -> tuple[int, int]:
    """``(ceil(H / 2**level), ceil(W / 2**level))``: the level's pixels overlapping the input."""
    return -(-size[0] // 2**level), -(-size[1] // 2**level)
