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
warping uses ``align_corners=False`` pixel centres; any image size is accepted (inputs are padded
to a multiple of the stride, :mod:`posetransfer.models.stride_padding`, and the output cropped).

The configuration, :class:`~posetransfer.models.generator_config.GeneratorConfig`, lives in its
own module and is re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, cast

import torch
from torch import nn

from posetransfer.conventions import Visibility
from posetransfer.models.blocks import NormKind, ResidualBlock, conv_unit, init_weights
from posetransfer.models.generator_config import VISIBILITY_MODES, GeneratorConfig, VisibilityMode
from posetransfer.models.generator_inputs import (
    check_image_input,
    check_state_dict,
    check_visibility_input,
    visibility_probabilities,
)
from posetransfer.models.residual_unet import ResidualDecoder, ResidualEncoder
from posetransfer.models.stride_padding import crop_to, pad_constant, pad_image, pad_visibility
from posetransfer.ops.memory_format import cat_channels
from posetransfer.ops.warp import flow_pyramid, warp

__all__ = [
    "VISIBILITY_MODES",
    "GeneratorConfig",
    "GeneratorOutput",
    "PoseTransferGenerator",
    "VisibilityMode",
    "VisibilityResidual",
]

_BG = int(Visibility.BACKGROUND)


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
        moved: dict[str, Any] = {k: v if v is None else v.to(device) for k, v in values.items()}
        return replace(self, **moved)


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
        return self.block(x_warped, cat_channels((x_warped * visible, x_warped * invisible)))


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
        background: torch.Tensor | None = None,
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
            background: Optional ``(B, 3, H, W)`` source image with the person removed (e.g.
                inpainted). Where the target is BACKGROUND, the appearance skips then come from
                this image's features instead of the source's at the same place (zero flow), so
                no ghost of the source person stays where they stood. Needs the dual encoder,
                flow and visibility; None (training) leaves the network unchanged.

        Returns:
            :class:`GeneratorOutput` with ``image`` = ``coarse`` = ``tanh`` of the head,
            ``(B, 3, H, W)``. Sizes that are not multiples of ``cfg.stride`` run padded at the
            bottom/right (``x_src`` replicated, pose maps and flow zero, visibility BACKGROUND)
            and the image is cropped back; multiples run unpadded.

        Raises:
            ValueError: On a wrong image size, channel count, batch size or a missing input.
        """
        self._check_inputs(x_src, pose_tgt, flow, vis)
        if background is not None:
            self._check_background(background, x_src)
            background = pad_image(background, self.cfg.stride)
        size, stride = (x_src.shape[-2], x_src.shape[-1]), self.cfg.stride
        x_src, pose_tgt = pad_image(x_src, stride), pad_constant(pose_tgt, stride)
        if self.cfg.use_flow:
            flow, vis = pad_constant(flow, stride), pad_visibility(vis, stride)
        if self.cfg.dual_encoder:
            pose_bottom, pose_skips = self.pose_encoder(pose_tgt)
            app_bottom, app_skips = self.encode_appearance(x_src, flow, vis, background)
            x = self.fuse(cat_channels((pose_bottom, app_bottom)))
            sides = [
                [cat_channels(pair) for pair in zip(p, a, strict=True)]
                for p, a in zip(pose_skips, app_skips, strict=True)
            ]
        else:
            x, sides = self.encoder(torch.cat((x_src, pose_tgt), dim=1))
        image = crop_to(torch.tanh(self.head(self.decoder(x, sides))), size)
        return GeneratorOutput(image=image, coarse=image)

    def encode_appearance(
        self,
        x_src: torch.Tensor,
        flow: torch.Tensor | None,
        vis: torch.Tensor | None,
        background: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
        """Appearance encoder with warped, visibility-processed skips (dual encoder only).

        Args:
            x_src: ``(B, 3, H, W)`` source image, ``H``, ``W`` multiples of ``cfg.stride``
                (:meth:`forward` pads other sizes before calling this).
            flow: ``(B, 2, H, W)`` flow in pixels (unused without ``cfg.use_flow``).
            vis: Visibility codes or probabilities as in :meth:`forward`.
            background: Optional person-free source ``(B, 3, H, W)`` (see :meth:`forward`).

        Returns:
            The un-warped bottleneck features ``(B, c_L, H / 2**L, W / 2**L)`` and the skips:
            ``skips[l][i]`` is ``(B, c_l, H / 2**l, W / 2**l)``, the output of residual block
            ``i`` of scale ``l``, warped and visibility-processed for ``l < cfg.warp_levels``.
        """
        bottom, skips = self.app_encoder(x_src)
        if not self.cfg.use_flow:
            return bottom, skips
        levels = self.cfg.warp_levels
        if flow is None:
            raise ValueError("flow is required when GeneratorConfig.use_flow is True")
        flows = flow_pyramid(flow, levels)
        probs: list[torch.Tensor] | None = None
        if self.cfg.visibility != "none":
            if vis is None:
                raise ValueError(
                    f"vis is required with GeneratorConfig.visibility={self.cfg.visibility!r}"
                )
            probs = visibility_probabilities(vis, levels)
        if background is not None:
            assert vis is not None, "background needs a visibility mode (checked in forward)"
            skips = self._background_skips(skips, background, vis)
        for lv in range(levels):
            warped = [warp(s, flows[lv]) for s in skips[lv]]
            if self.cfg.visibility == "mask":
                assert probs is not None
                keep = 1.0 - probs[lv][:, _BG : _BG + 1].to(warped[0].dtype)
                warped = [w * keep for w in warped]
            elif self.cfg.visibility == "residual":
                assert probs is not None
                blocks = cast(nn.ModuleList, self.vis_blocks[lv])
                warped = [blk(w, probs[lv]) for blk, w in zip(blocks, warped, strict=True)]
            skips[lv] = warped
        return bottom, skips

    def _background_skips(
        self, skips: list[list[torch.Tensor]], background: torch.Tensor, vis: torch.Tensor
    ) -> list[list[torch.Tensor]]:
        """Skips with the person-free features where the target is BACKGROUND.

        Background pixels keep their place (zero flow), so warping a background feature is the
        identity up to interpolation: blending before the warp with the target's background
        probability at each level gives the person-free features there, the source's elsewhere.
        """
        _, bg_skips = self.app_encoder(background)
        probs = visibility_probabilities(vis, len(skips))
        out = []
        for lv, (level, bg_level) in enumerate(zip(skips, bg_skips, strict=True)):
            p_bg = probs[lv][:, _BG : _BG + 1].to(level[0].dtype)
            out.append([s + p_bg * (b - s) for s, b in zip(level, bg_level, strict=True)])
        return out

    def _check_background(self, background: torch.Tensor, x_src: torch.Tensor) -> None:
        cfg = self.cfg
        if not (cfg.dual_encoder and cfg.use_flow and cfg.visibility != "none"):
            raise ValueError(
                "background needs GeneratorConfig.dual_encoder, use_flow and a visibility mode"
            )
        if background.shape != x_src.shape:
            raise ValueError(
                f"background has shape {tuple(background.shape)}, x_src {tuple(x_src.shape)}"
            )

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
