"""Pose-transfer generator (paper stage 3): dual encoder, feature warping, visibility, decoder.

Paper symbols: the generator renders ``x_hat_tgt`` from the source image ``x_src``, the target pose
maps ``p_tgt``, and the flow ``F`` and visibility ``V`` of the target relative to the source (the
flow regressor's output, or ground truth). The layout follows the original ``DualUnetGenerator``
(``reference/official_repo.md`` §4.2-§4.6), built from :mod:`posetransfer.models.blocks`:

Encoders
    Two residual encoders with the same widths ``channels = (c_0, ..., c_L)``: one on ``p_tgt``,
    one on ``x_src``. Each starts with a 1x1 channel mapping, then at each scale ``l < L``
    (stride ``2**l``) runs ``num_res_blocks`` residual blocks, whose outputs are the skips, and a
    stride-2 down layer to ``c_{l+1}``. The bottleneck (stride ``2**L``) fuses both encoders with a
    1x1 mapping of their concatenation.
Feature warping (``use_flow``)
    At the ``warp_levels`` finest scales each appearance skip is warped by the flow of its level
    (:func:`posetransfer.ops.warp.flow_pyramid`: block average divided by ``2**l``); the warped copy
    becomes the skip while the un-warped feature continues down the encoder.
Visibility (``visibility``)
    How a warped skip ``x_w`` uses the visibility ``V_l`` of its level, as class probabilities
    ``(P_visible, P_invisible, P_background)`` (one-hot for integer codes, pooled with the
    :func:`~posetransfer.ops.warp.visibility_pyramid` rule):
    ``"none"`` keeps ``x_w``; ``"mask"`` zeroes the background, ``x_w * (1 - P_background)`` (the
    original's ``hard_gate``); ``"residual"`` (the paper's) refines ``x_w`` with a residual block
    whose side input is ``E = cat(x_w * P_visible, x_w * P_invisible)``, i.e. the features split
    into their visible and invisible parts.
Decoder
    At each scale from the deepest up: a pixel-shuffle up layer, then ``num_res_blocks`` residual
    blocks fed ``cat(pose_skip, appearance_skip)``, taken in mirror order; then a reflection-padded
    ``head_kernel`` conv to RGB (7x7 in the original) and ``tanh``.

The paper's ablations (Table 2) are config values: ``dual_encoder=False`` is one encoder on
``cat(x_src, p_tgt)`` whose skips feed the decoder (no flow); ``use_flow=False`` keeps both encoders
but does not warp; ``visibility="none"`` warps without visibility; pixel warping is the separate
:class:`~posetransfer.models.pixel_warp.PixelWarpRefiner`.

Differences from the original (``docs/deviations.md``): the two encoders have their own
down-sampling layers (the original's appearance encoder reused the pose encoder's modules by
accident, bug 7.1.1; ``share_encoder_downsampling=True`` reproduces it); visibility blocks exist
only when the features are warped (the original built unused ones for ``use_flow=False``);
visibility pyramids keep any background evidence (the original min-pooled, keeping visible);
warping uses ``align_corners=False`` pixel centres.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from posetransfer.config import ConfigError
from posetransfer.conventions import NUM_VISIBILITY_CLASSES, Visibility
from posetransfer.models.blocks import (
    NORM_KINDS,
    NormKind,
    ResidualBlock,
    conv_unit,
    down_block,
    init_weights,
    up_block,
)
from posetransfer.models.flow_regressor import FlowPrediction
from posetransfer.ops.warp import flow_pyramid, visibility_pyramid, warp

__all__ = [
    "VISIBILITY_MODES",
    "GeneratorConfig",
    "GeneratorOutput",
    "PoseTransferGenerator",
    "ResidualDecoder",
    "ResidualEncoder",
    "StateDictMismatchError",
    "VisibilityMode",
    "VisibilityResidual",
    "check_image_input",
    "check_state_dict",
    "check_visibility_input",
    "condition_from_prediction",
    "visibility_codes",
    "visibility_probabilities",
]

VisibilityMode = Literal["none", "mask", "residual"]
VISIBILITY_MODES: tuple[str, ...] = ("none", "mask", "residual")
_BG = int(Visibility.BACKGROUND)
_PAPER_SIZES = {"deepfashion": ((256, 256), 7, 5), "market": ((128, 64), 5, 4)}


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture of :class:`PoseTransferGenerator` (defaults: the fast preset, 256x256).

    Attributes:
        image_size: ``(H, W)`` of the images; inputs of any other size are rejected. Both must be
            multiples of ``2**num_levels``.
        pose_channels: Channels of the target pose maps,
            :func:`posetransfer.pose.maps.num_pose_channels` of the pose-map config (18).
        channels: Widths ``(c_0, ..., c_L)`` at strides ``1, 2, ..., 2**L``; ``L = len - 1``
            down-sampling layers, the last width is the bottleneck's.
        num_res_blocks: Residual blocks per scale, in each encoder and in the decoder.
        norm: ``"batch"``, ``"instance"`` or ``"none"``.
        dual_encoder: Separate pose and appearance encoders (False: the "w/o dual encoder"
            ablation, one encoder on ``cat(x_src, p_tgt)``, which needs ``use_flow=False``).
        use_flow: Warp the appearance skips by the flow (False: the "w/o flow" ablation).
        warp_levels: Number of finest scales whose appearance skips are warped, ``1 .. L``.
        visibility: ``"none"``, ``"mask"`` or ``"residual"`` (see the module docstring); must be
            ``"none"`` without ``use_flow``.
        share_encoder_downsampling: Reuse the pose encoder's down layers in the appearance
            encoder, as the released code did by accident (for loading its checkpoints).
        head_kernel: Kernel of the reflection-padded output conv (odd; the original's 7, 3 is
            ~4x cheaper at full resolution).
    """

    image_size: tuple[int, int] = (256, 256)
    pose_channels: int = 18
    channels: tuple[int, ...] = (16, 32, 64, 128, 128)
    num_res_blocks: int = 1
    norm: NormKind = "batch"
    dual_encoder: bool = True
    use_flow: bool = True
    warp_levels: int = 4
    visibility: VisibilityMode = "residual"
    share_encoder_downsampling: bool = False
    head_kernel: int = 3

    def __post_init__(self) -> None:
        name = type(self).__name__
        for field in ("image_size", "channels"):  # lists (from code) become tuples
            value = getattr(self, field)
            if not isinstance(value, tuple | list):
                raise ConfigError(f"{name}.{field} must be a list of ints, got {value!r}")
            object.__setattr__(self, field, tuple(value))
        if len(self.image_size) != 2 or not all(map(_positive_int, self.image_size)):
            raise ConfigError(f"{name}.image_size must be 2 positive ints, got {self.image_size!r}")
        if len(self.channels) < 2 or not all(map(_positive_int, self.channels)):
            raise ConfigError(
                f"{name}.channels must list at least 2 positive ints, got {self.channels!r}"
            )
        if not _positive_int(self.head_kernel) or self.head_kernel % 2 == 0:
            raise ConfigError(
                f"{name}.head_kernel must be an odd int >= 1, got {self.head_kernel!r}"
            )
        for field in ("pose_channels", "num_res_blocks", "warp_levels"):
            if not _positive_int(getattr(self, field)):
                raise ConfigError(
                    f"{name}.{field} must be an int >= 1, got {getattr(self, field)!r}"
                )
        if self.norm not in NORM_KINDS:
            raise ConfigError(f"{name}.norm must be one of {NORM_KINDS}, got {self.norm!r}")
        if self.visibility not in VISIBILITY_MODES:
            raise ConfigError(
                f"{name}.visibility must be one of {VISIBILITY_MODES}, got {self.visibility!r}"
            )
        if self.warp_levels > self.num_levels:
            raise ConfigError(
                f"{name}.warp_levels={self.warp_levels} exceeds the {self.num_levels} encoder "
                f"scales of channels={self.channels}"
            )
        if not self.use_flow and self.visibility != "none":
            raise ConfigError(
                f"{name}.visibility={self.visibility!r} acts on warped features; with "
                "use_flow=False set visibility='none'"
            )
        if not self.dual_encoder and (self.use_flow or self.share_encoder_downsampling):
            raise ConfigError(
                f"{name}: dual_encoder=False (one encoder on cat(x_src, p_tgt)) needs "
                "use_flow=False and share_encoder_downsampling=False"
            )
        height, width = self.image_size
        if height % self.stride or width % self.stride:
            raise ConfigError(
                f"{name}.image_size={self.image_size} must be divisible by 2**num_levels="
                f"{self.stride} (channels={self.channels})"
            )

    @property
    def num_levels(self) -> int:
        """Number of down-sampling layers ``L``."""
        return len(self.channels) - 1

    @property
    def stride(self) -> int:
        """Stride ``2**L`` of the bottleneck."""
        return 2**self.num_levels

    @classmethod
    def paper(cls, dataset: Literal["deepfashion", "market"] = "deepfashion") -> GeneratorConfig:
        """The original full generator: nf 32, max 128, 2 residual blocks per scale, 7 scales
        and 5 warped on DeepFashion 256x256 (11.88 M parameters with shared down layers, 12.66 M
        without), 5 and 4 on Market 128x64."""
        if dataset not in _PAPER_SIZES:
            raise ConfigError(f"dataset must be one of {tuple(_PAPER_SIZES)}, got {dataset!r}")
        size, levels, warped = _PAPER_SIZES[dataset]
        channels = tuple(min(32 * (lv + 1), 128) for lv in range(levels + 1))
        return cls(
            image_size=size,
            channels=channels,
            num_res_blocks=2,
            warp_levels=warped,
            visibility="residual",
            head_kernel=7,
        )


@dataclass
class GeneratorOutput:
    """Images produced for one batch (``B``, ``H``, ``W``: the input batch and size).

    Attributes:
        image: ``(B, 3, H, W)`` final output in ``[-1, 1]``: the coarse image, or its blend with the
            warped source after pixel warping.
        coarse: ``(B, 3, H, W)`` generator output before pixel warping.
        warped_src: ``(B, 3, H, W)`` source warped by the flow, -1 on background (set by the
            pixel-warp refiner; None before).
        mask: ``(B, 1, H, W)`` pixel-warp mask ``m`` in ``[0, 1]``, 1 where the warped source is
            taken (None without pixel warping).
    """

    image: torch.Tensor
    coarse: torch.Tensor
    warped_src: torch.Tensor | None = None
    mask: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> GeneratorOutput:
        """A copy with every tensor on ``device``."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(self, **{k: v if v is None else v.to(device) for k, v in values.items()})


class StateDictMismatchError(ValueError):
    """A checkpoint's state dict does not fit the network (another configuration)."""


def check_state_dict(
    module: nn.Module, state_dict: Mapping[str, Any], *, strict: bool = True
) -> None:
    """Compare a state dict with ``module``'s before loading it.

    Args:
        module: The network; its ``cfg`` attribute, if any, is named in the error.
        state_dict: Tensors by key, as saved from a network.
        strict: Also require the same key set (shapes are always checked).

    Raises:
        StateDictMismatchError: Listing missing and unexpected keys and keys whose shapes differ.
    """
    own = module.state_dict()
    problems = []
    if strict:
        missing = sorted(set(own) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(own))
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected)):
            if keys:
                shown = ", ".join(keys[:8]) + (
                    f", ... ({len(keys)} in all)" if len(keys) > 8 else ""
                )
                problems.append(f"{label}: {shown}")
    shapes = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state_dict.items()
        if k in own and isinstance(v, torch.Tensor) and v.shape != own[k].shape
    ]
    if shapes:
        more = f" ... ({len(shapes)} in all)" if len(shapes) > 8 else ""
        problems.append("shape mismatches: " + "; ".join(shapes[:8]) + more)
    if problems:
        config = getattr(module, "cfg", None)
        raise StateDictMismatchError(
            f"state dict does not fit {type(module).__name__}"
            + (f" built with {config}" if config is not None else "")
            + " (a checkpoint of another model config?): "
            + " | ".join(problems)
        )


def check_image_input(
    name: str,
    x: torch.Tensor,
    channels: int,
    size: tuple[int, int] | None,
    batch: int | None,
    owner: str,
) -> int:
    """Check a ``(B, C, H, W)`` float input of a network and return ``B``.

    Args:
        name: Argument name used in the error.
        x: The tensor.
        channels: Expected ``C``.
        size: Expected ``(H, W)``, or None for any.
        batch: Expected ``B``, or None for any.
        owner: Network name used in the error.

    Returns:
        The batch size ``B``.

    Raises:
        ValueError: Naming the argument, the expected and the actual shape.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{owner}: {name} must be a float (B, C, H, W) tensor, got {got}")
    if x.shape[1] != channels:
        raise ValueError(
            f"{owner}: {name} must have {channels} channels, got {name}.shape={tuple(x.shape)}"
        )
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        raise ValueError(
            f"{owner}: {name} has size (H, W)={tuple(x.shape[-2:])}, expected {tuple(size)}"
        )
    if batch is not None and x.shape[0] != batch:
        raise ValueError(
            f"{owner}: {name} has batch size {x.shape[0]}, x_src has {batch} "
            f"({name}.shape={tuple(x.shape)})"
        )
    return x.shape[0]


def condition_from_prediction(pred: FlowPrediction) -> tuple[torch.Tensor, torch.Tensor]:
    """Flow and visibility for the generator from the flow regressor, as the original fed them.

    Args:
        pred: The flow regressor's output.

    Returns:
        ``(flow, vis)``: ``(B, 2, H, W)`` full-resolution flow set to 0 where the predicted class
        is BACKGROUND (flow is 0 on background by convention) and ``(B, H, W)`` int64 codes, the
        argmax of the visibility logits.
    """
    vis = pred.visibility
    return pred.flow.masked_fill((vis == _BG).unsqueeze(1), 0.0), vis


def check_visibility_input(
    vis: torch.Tensor, batch: int, size: tuple[int, int], owner: str
) -> None:
    """Check a visibility input: ``(B, H, W)`` integer codes or ``(B, 3, H, W)`` probabilities.

    Args:
        vis: The tensor.
        batch: Expected ``B``.
        size: Expected ``(H, W)``.
        owner: Network name used in the error.

    Raises:
        ValueError: On another shape, float codes, or class values that do not sum to 1 (logits
            instead of probabilities).
    """
    if not isinstance(vis, torch.Tensor):
        raise ValueError(f"{owner}: vis must be a tensor, got {type(vis).__name__}")
    if vis.ndim == 4:
        check_image_input("vis", vis, NUM_VISIBILITY_CLASSES, size, batch, owner)
        if (vis.float().sum(dim=1) - 1).abs().max() > 0.02:  # bf16 probabilities pass
            raise ValueError(
                f"{owner}: (B, 3, H, W) vis must hold class probabilities summing to 1 "
                "(softmax of the logits, or one-hot), not logits"
            )
        return
    if tuple(vis.shape) != (batch, *size) or vis.is_floating_point():
        raise ValueError(
            f"{owner}: vis must be (B, H, W) integer codes or (B, 3, H, W) probabilities with "
            f"(B, H, W)=({batch}, {size[0]}, {size[1]}), got {tuple(vis.shape)} {vis.dtype}"
        )


def visibility_codes(vis: torch.Tensor) -> torch.Tensor:
    """``(B, H, W)`` int64 :class:`Visibility` codes from codes or ``(B, 3, H, W)`` probabilities
    (argmax over the classes)."""
    return vis.argmax(dim=1) if vis.ndim == 4 else vis.long()


def visibility_probabilities(vis: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Visibility as class probabilities at strides ``1 .. 2**(levels-1)``.

    Integer codes are pooled with :func:`~posetransfer.ops.warp.visibility_pyramid` (a coarse
    pixel takes the largest code of its block) and one-hot encoded; probabilities (softmax of
    the flow regressor's logits) are average-pooled.

    Args:
        vis: ``(B, H, W)`` integer codes or ``(B, 3, H, W)`` float probabilities.
        levels: Number of levels, at least 1.

    Returns:
        ``levels`` float tensors; entry ``l`` is ``(B, 3, H / 2**l, W / 2**l)``.
    """
    if vis.ndim == 4:
        return [vis if lv == 0 else F.avg_pool2d(vis, 2**lv) for lv in range(levels)]
    return [
        F.one_hot(codes.long(), NUM_VISIBILITY_CLASSES).permute(0, 3, 1, 2).float()
        for codes in visibility_pyramid(vis, levels)
    ]


class _EncoderLevel(nn.Module):
    """``num_res_blocks`` residual blocks (their outputs are the skips), then a down layer."""

    def __init__(self, c_in: int, c_out: int, num_res_blocks: int, norm: NormKind) -> None:
        super().__init__()
        self.res = nn.ModuleList(ResidualBlock(c_in, norm=norm) for _ in range(num_res_blocks))
        self.down = down_block(c_in, c_out, norm=norm)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for block in self.res:
            x = block(x)
            skips.append(x)
        return self.down(x), skips


class ResidualEncoder(nn.Module):
    """Residual U-Net encoder: 1x1 channel mapping, then per scale residual blocks and a down layer.

    Args:
        in_channels: Input channels.
        channels: Widths ``(c_0, ..., c_L)`` at strides ``1 .. 2**L``.
        num_res_blocks: Residual blocks per scale.
        norm: Normalisation kind.
    """

    def __init__(
        self, in_channels: int, channels: Sequence[int], num_res_blocks: int, norm: NormKind
    ) -> None:
        super().__init__()
        self.stem = conv_unit(in_channels, channels[0], 1, norm=norm)
        self.levels = nn.ModuleList(
            _EncoderLevel(channels[lv], channels[lv + 1], num_res_blocks, norm)
            for lv in range(len(channels) - 1)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
        """Encode ``x``.

        Args:
            x: ``(B, in_channels, H, W)``, ``H`` and ``W`` multiples of ``2**L``.

        Returns:
            The bottleneck ``(B, c_L, H / 2**L, W / 2**L)`` and ``skips[l][i]``, the
            ``(B, c_l, H / 2**l, W / 2**l)`` output of residual block ``i`` at scale ``l``.
        """
        x = self.stem(x)
        skips = []
        for level in self.levels:
            x, level_skips = level(x)
            skips.append(level_skips)
        return x, skips


class _DecoderLevel(nn.Module):
    """Up layer, then residual blocks fed the skips of the scale in mirror order."""

    def __init__(
        self, c_in: int, c_out: int, num_res_blocks: int, side_channels: int, norm: NormKind
    ) -> None:
        super().__init__()
        self.up = up_block(c_in, c_out, mode="pixel_shuffle", norm=norm)
        self.res = nn.ModuleList(
            ResidualBlock(c_out, side_channels, norm=norm) for _ in range(num_res_blocks)
        )

    def forward(self, x: torch.Tensor, sides: list[torch.Tensor]) -> torch.Tensor:
        x = self.up(x)
        for block, side in zip(self.res, reversed(sides), strict=True):
            x = block(x, side)
        return x


class ResidualDecoder(nn.Module):
    """Residual U-Net decoder mirroring :class:`ResidualEncoder`.

    Args:
        channels: Widths ``(c_0, ..., c_L)``, as the encoder's.
        num_res_blocks: Residual blocks per scale (one per skip).
        side_factor: Skip channels per scale are ``side_factor * c_l`` (2: pose and appearance).
        norm: Normalisation kind.
    """

    def __init__(
        self, channels: Sequence[int], num_res_blocks: int, side_factor: int, norm: NormKind
    ) -> None:
        super().__init__()
        self.levels = nn.ModuleList(
            _DecoderLevel(
                channels[lv + 1], channels[lv], num_res_blocks, side_factor * channels[lv], norm
            )
            for lv in range(len(channels) - 1)
        )

    def forward(self, x: torch.Tensor, sides: list[list[torch.Tensor]]) -> torch.Tensor:
        """Decode from the bottleneck.

        Args:
            x: ``(B, c_L, H / 2**L, W / 2**L)`` bottleneck features.
            sides: ``sides[l][i]``: ``(B, side_factor * c_l, H / 2**l, W / 2**l)`` skips.

        Returns:
            ``(B, c_0, H, W)`` features.
        """
        for lv in reversed(range(len(self.levels))):
            x = self.levels[lv](x, sides[lv])
        return x


class VisibilityResidual(nn.Module):
    """The paper's visibility fusion: a residual block on ``x_w`` fed its visible/invisible split.

    Args:
        channels: Channels ``C`` of the warped features.
        norm: Normalisation kind.
    """

    def __init__(self, channels: int, norm: NormKind) -> None:
        super().__init__()
        self.block = ResidualBlock(channels, 2 * channels, norm=norm)

    def forward(self, x_warped: torch.Tensor, vis_probs: torch.Tensor) -> torch.Tensor:
        """Refine warped features.

        Args:
            x_warped: ``(B, C, h, w)`` warped appearance features.
            vis_probs: ``(B, 3, h, w)`` visibility class probabilities at this level.

        Returns:
            ``(B, C, h, w)``.
        """
        vis_probs = vis_probs.to(x_warped.dtype)
        visible = vis_probs[:, Visibility.VISIBLE : Visibility.VISIBLE + 1]
        invisible = vis_probs[:, Visibility.INVISIBLE : Visibility.INVISIBLE + 1]
        return self.block(x_warped, torch.cat((x_warped * visible, x_warped * invisible), dim=1))


class PoseTransferGenerator(nn.Module):
    """Dual-encoder U-Net with flow-warped, visibility-aware appearance skips.

    Args:
        cfg: Architecture; see :class:`GeneratorConfig`.

    Example:
        >>> cfg = GeneratorConfig(image_size=(32, 16), channels=(4, 8, 8), warp_levels=2)
        >>> net = PoseTransferGenerator(cfg)
        >>> x, pose = torch.zeros(1, 3, 32, 16), torch.zeros(1, 18, 32, 16)
        >>> flow = torch.zeros(1, 2, 32, 16)
        >>> out = net(x, pose, flow, vis=torch.zeros(1, 32, 16, dtype=torch.long))
        >>> tuple(out.image.shape)
        (1, 3, 32, 16)
    """

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch, blocks, norm = cfg.channels, cfg.num_res_blocks, cfg.norm
        if cfg.dual_encoder:
            self.pose_encoder = ResidualEncoder(cfg.pose_channels, ch, blocks, norm)
            self.app_encoder = ResidualEncoder(3, ch, blocks, norm)
            if cfg.share_encoder_downsampling:  # the released code's accidental weight sharing
                for pose_level, app_level in zip(
                    self.pose_encoder.levels, self.app_encoder.levels, strict=True
                ):
                    app_level.down = pose_level.down
            self.fuse = conv_unit(2 * ch[-1], ch[-1], 1, norm=norm)
        else:
            self.encoder = ResidualEncoder(3 + cfg.pose_channels, ch, blocks, norm)
        if cfg.use_flow and cfg.visibility == "residual":
            self.vis_blocks = nn.ModuleList(
                nn.ModuleList(VisibilityResidual(ch[lv], norm) for _ in range(blocks))
                for lv in range(cfg.warp_levels)
            )
        side_factor = 2 if cfg.dual_encoder else 1
        self.decoder = ResidualDecoder(ch, blocks, side_factor, norm)
        k = cfg.head_kernel
        self.head = nn.Sequential(nn.ReflectionPad2d(k // 2), nn.Conv2d(ch[0], 3, k))
        init_weights(self)

    def forward(
        self,
        x_src: torch.Tensor,
        pose_tgt: torch.Tensor,
        flow: torch.Tensor | None = None,
        vis: torch.Tensor | None = None,
    ) -> GeneratorOutput:
        """Render the source person in the target pose.

        Args:
            x_src: ``(B, 3, H, W)`` source image in ``[-1, 1]``; ``(H, W) == cfg.image_size``.
            pose_tgt: ``(B, cfg.pose_channels, H, W)`` target pose maps.
            flow: ``(B, 2, H, W)`` backward flow target -> source in full-resolution pixels
                (the flow regressor's ``FlowPrediction.flow`` or ground truth); required with
                ``cfg.use_flow``, ignored otherwise.
            vis: Target visibility, ``(B, H, W)`` integer :class:`Visibility` codes or
                ``(B, 3, H, W)`` class probabilities (softmax or one-hot); required with
                ``cfg.use_flow`` and a visibility mode other than ``"none"``.

        Returns:
            :class:`GeneratorOutput` with ``image`` = ``coarse`` = ``tanh`` of the head.

        Raises:
            ValueError: On a wrong image size, channel count, batch size or a missing input.
        """
        self._check_inputs(x_src, pose_tgt, flow, vis)
        if self.cfg.dual_encoder:
            pose_bottom, pose_skips = self.pose_encoder(pose_tgt)
            app_bottom, app_skips = self.encode_appearance(x_src, flow, vis)
            x = self.fuse(torch.cat((pose_bottom, app_bottom), dim=1))
            sides = [
                [torch.cat(pair, dim=1) for pair in zip(p, a, strict=True)]
                for p, a in zip(pose_skips, app_skips, strict=True)
            ]
        else:
            x, sides = self.encoder(torch.cat((x_src, pose_tgt), dim=1))
        image = torch.tanh(self.head(self.decoder(x, sides)))
        return GeneratorOutput(image=image, coarse=image)

    def encode_appearance(
        self, x_src: torch.Tensor, flow: torch.Tensor | None, vis: torch.Tensor | None
    ) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
        """Appearance encoder with warped, visibility-processed skips (dual encoder only).

        Args:
            x_src: ``(B, 3, H, W)`` source image.
            flow: ``(B, 2, H, W)`` flow in pixels (unused without ``cfg.use_flow``).
            vis: Visibility codes or probabilities as in :meth:`forward`.

        Returns:
            The un-warped bottleneck features ``(B, c_L, H / 2**L, W / 2**L)`` and the skips:
            ``skips[l][i]`` is ``(B, c_l, H / 2**l, W / 2**l)``, the output of residual block
            ``i`` of scale ``l``, warped and visibility-processed for ``l < cfg.warp_levels``.
        """
        bottom, skips = self.app_encoder(x_src)
        if not self.cfg.use_flow:
            return bottom, skips
        levels = self.cfg.warp_levels
        flows = flow_pyramid(flow, levels)
        probs = None if self.cfg.visibility == "none" else visibility_probabilities(vis, levels)
        for lv in range(levels):
            warped = [warp(s, flows[lv]) for s in skips[lv]]
            if self.cfg.visibility == "mask":
                keep = 1.0 - probs[lv][:, _BG : _BG + 1].to(warped[0].dtype)
                warped = [w * keep for w in warped]
            elif self.cfg.visibility == "residual":
                warped = [
                    blk(w, probs[lv]) for blk, w in zip(self.vis_blocks[lv], warped, strict=True)
                ]
            skips[lv] = warped
        return bottom, skips

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """``nn.Module.load_state_dict``, raising :class:`StateDictMismatchError` (a
        ``ValueError`` listing the missing, unexpected and mis-shaped keys) for a checkpoint of
        another configuration."""
        check_state_dict(self, state_dict, strict=strict)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def _check_inputs(
        self,
        x_src: torch.Tensor,
        pose_tgt: torch.Tensor,
        flow: torch.Tensor | None,
        vis: torch.Tensor | None,
    ) -> None:
        """Raise ``ValueError`` naming the argument on any shape or channel mismatch."""
        cfg = self.cfg
        batch = check_image_input("x_src", x_src, 3, None, None, type(self).__name__)
        if tuple(x_src.shape[-2:]) != cfg.image_size:
            raise ValueError(
                f"{type(self).__name__}: x_src has size (H, W)={tuple(x_src.shape[-2:])} but "
                f"GeneratorConfig.image_size is {cfg.image_size}; resize the images or change the "
                "config"
            )
        check_image_input(
            "pose_tgt", pose_tgt, cfg.pose_channels, cfg.image_size, batch, type(self).__name__
        )
        if not cfg.use_flow:
            return
        if flow is None:
            raise ValueError("flow is required when GeneratorConfig.use_flow is True")
        check_image_input("flow", flow, 2, cfg.image_size, batch, type(self).__name__)
        if cfg.visibility == "none":
            return
        if vis is None:
            raise ValueError(f"vis is required with GeneratorConfig.visibility={cfg.visibility!r}")
        check_visibility_input(vis, batch, cfg.image_size, type(self).__name__)
