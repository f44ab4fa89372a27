"""Pixel-warping refinement (paper stage 3, last step): blend the warped source into the output.

The generator's coarse image is good at the body's shape but blurs texture; the source warped
by the flow keeps texture but is wrong where the flow is. A residual U-Net (the original's
``UnetGenerator_MultiOutput``, ``reference/official_repo.md`` §4.7) predicts a soft mask ``m`` from
``(warped source, coarse output, visibility[, flow])`` and the output is::

    x_hat = m * warp(x_src, F) + (1 - m) * x_coarse

The warped source is -1 (black) on BACKGROUND target pixels, as in the original. ``m = 1`` takes
the warped pixel. The original trained this network in a second stage with the generator frozen;
here that is the training stage's business (run the generator under ``no_grad``), not a branch in
``forward``.

Differences from the original: visibility enters as 3 class-probability channels instead of one
raw 0/1/2 label channel; the optional flow input is divided by :data:`FLOW_INPUT_SCALE` (the
flow regressor's output unit of 20 px) instead of raw pixels; widths are configurable; any image
size is accepted (the mask network's inputs are padded to a multiple of its stride and the mask
cropped back, :mod:`posetransfer.models.stride_padding`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
from torch import nn

from posetransfer.config import ConfigError
from posetransfer.conventions import IMAGE_RANGE, NUM_VISIBILITY_CLASSES, Visibility
from posetransfer.models.blocks import NORM_KINDS, NormKind, conv_unit, init_weights, relu
from posetransfer.models.generator import GeneratorOutput, PoseTransferGenerator
from posetransfer.models.generator_inputs import (
    check_image_input,
    check_state_dict,
    check_visibility_input,
    visibility_codes,
    visibility_probabilities,
)
from posetransfer.models.residual_unet import ResidualDecoder, ResidualEncoder
from posetransfer.models.stride_padding import crop_to, pad_constant, pad_image, pad_visibility
from posetransfer.ops.warp import warp

__all__ = [
    "BLANK_VALUE",
    "FLOW_INPUT_SCALE",
    "PixelWarpConfig",
    "PixelWarpRefiner",
    "build_refiner",
    "pixel_warp_input_channels",
    "transfer",
    "warp_source_image",
]

#: Value of the warped source on BACKGROUND target pixels (black, the bottom of the image range).
BLANK_VALUE: float = IMAGE_RANGE[0]

#: Flow input channels are ``flow / FLOW_INPUT_SCALE`` (units of 20 full-resolution pixels).
FLOW_INPUT_SCALE: float = 20.0


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass(frozen=True)
class PixelWarpConfig:
    """Architecture of :class:`PixelWarpRefiner` (defaults: the fast preset).

    Attributes:
        enabled: Build the refiner (False: the "w/o pixel warping" ablation; the output is the
            generator's coarse image).
        channels: Widths ``(c_0, ..., c_L)`` of the residual U-Net at strides ``1 .. 2**L``;
            other image sizes than multiples of ``2**L`` are padded to one.
        num_res_blocks: Residual blocks per scale.
        norm: ``"batch"``, ``"instance"`` or ``"none"``.
        flow_input: Also feed the flow (2 channels) to the mask network, as the original did.
        head_kernel: Kernel of the reflection-padded mask conv (odd; the original's 7).
    """

    enabled: bool = True
    channels: tuple[int, ...] = (16, 32, 64, 64)
    num_res_blocks: int = 1
    norm: NormKind = "batch"
    flow_input: bool = False
    head_kernel: int = 3

    def __post_init__(self) -> None:
        name = type(self).__name__
        if not isinstance(self.channels, tuple | list):
            raise ConfigError(f"{name}.channels must be a list of ints, got {self.channels!r}")
        object.__setattr__(self, "channels", tuple(self.channels))  # a list from code
        if len(self.channels) < 2 or not all(map(_positive_int, self.channels)):
            raise ConfigError(
                f"{name}.channels must list at least 2 positive ints, got {self.channels!r}"
            )
        if not _positive_int(self.num_res_blocks):
            raise ConfigError(
                f"{name}.num_res_blocks must be an int >= 1, got {self.num_res_blocks!r}"
            )
        if not _positive_int(self.head_kernel) or self.head_kernel % 2 == 0:
            raise ConfigError(
                f"{name}.head_kernel must be an odd int >= 1, got {self.head_kernel!r}"
            )
        if self.norm not in NORM_KINDS:
            raise ConfigError(f"{name}.norm must be one of {NORM_KINDS}, got {self.norm!r}")

    @property
    def stride(self) -> int:
        """Stride ``2**L`` of the bottleneck; other image sizes are padded to multiples of it."""
        return 2 ** (len(self.channels) - 1)

    @classmethod
    def paper(cls, dataset: Literal["deepfashion", "market"] = "deepfashion") -> PixelWarpConfig:
        """The original's: nf 32, max 128, 2 blocks, 7 scales on DeepFashion (8.36 M
        parameters), 5 on Market (5.04 M), flow fed as an input."""
        levels = {"deepfashion": 7, "market": 5}.get(dataset)
        if levels is None:
            raise ConfigError(f"dataset must be 'deepfashion' or 'market', got {dataset!r}")
        channels = tuple(min(32 * (lv + 1), 128) for lv in range(levels + 1))
        return cls(True, channels, num_res_blocks=2, norm="batch", flow_input=True, head_kernel=7)


def pixel_warp_input_channels(cfg: PixelWarpConfig) -> int:
    """Input channels of the mask network: warped source, coarse image, visibility[, flow]."""
    return 3 + 3 + NUM_VISIBILITY_CLASSES + (2 if cfg.flow_input else 0)


def warp_source_image(x_src: torch.Tensor, flow: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
    """The source image warped onto the target grid, blanked on background.

    Args:
        x_src: ``(B, 3, H, W)`` source image in ``[-1, 1]``.
        flow: ``(B, 2, H, W)`` backward flow target -> source in pixels.
        vis: ``(B, H, W)`` :class:`Visibility` codes or ``(B, 3, H, W)`` class probabilities
            (background where the argmax is BACKGROUND).

    Returns:
        ``(B, 3, H, W)``: ``warp(x_src, flow)``, :data:`BLANK_VALUE` where the target is
        background.
    """
    background = (visibility_codes(vis) == Visibility.BACKGROUND).unsqueeze(1)
    return warp(x_src, flow).masked_fill(background, BLANK_VALUE)


class PixelWarpRefiner(nn.Module):
    """Predicts the pixel-warp mask ``m`` and blends the warped source into the coarse output.

    Args:
        cfg: Architecture; see :class:`PixelWarpConfig`.

    Example:
        >>> from posetransfer.models.generator import GeneratorOutput
        >>> ref = PixelWarpRefiner(PixelWarpConfig(channels=(4, 8)))
        >>> coarse = torch.zeros(1, 3, 8, 8)
        >>> out = ref(coarse, GeneratorOutput(coarse, coarse), torch.zeros(1, 2, 8, 8),
        ...           torch.zeros(1, 8, 8, dtype=torch.long))
        >>> tuple(out.mask.shape)
        (1, 1, 8, 8)
    """

    def __init__(self, cfg: PixelWarpConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch = cfg.channels
        self.encoder = ResidualEncoder(
            pixel_warp_input_channels(cfg), ch, cfg.num_res_blocks, cfg.norm
        )
        self.decoder = ResidualDecoder(ch, cfg.num_res_blocks, 1, cfg.norm)
        self.head = nn.Sequential(
            conv_unit(ch[0], ch[0], 1, norm=cfg.norm, post_act=relu),
            nn.ReflectionPad2d(cfg.head_kernel // 2),
            nn.Conv2d(ch[0], 1, cfg.head_kernel),
        )
        init_weights(self)

    def mask_logits(
        self,
        warped_src: torch.Tensor,
        coarse: torch.Tensor,
        vis: torch.Tensor,
        flow: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits of the mask ``m`` (``m = sigmoid(logits)``).

        Args:
            warped_src: ``(B, 3, H, W)`` output of :func:`warp_source_image`.
            coarse: ``(B, 3, H, W)`` generator output; any ``H``, ``W`` (other sizes than
                multiples of ``cfg.stride`` run padded at the bottom/right: ``coarse``
                replicated, ``warped_src`` :data:`BLANK_VALUE`, visibility BACKGROUND, flow 0).
            vis: ``(B, H, W)`` codes or ``(B, 3, H, W)`` probabilities.
            flow: ``(B, 2, H, W)`` flow in pixels; used when ``cfg.flow_input``.

        Returns:
            ``(B, 1, H, W)`` logits.
        """
        size, stride = (coarse.shape[-2], coarse.shape[-1]), self.cfg.stride
        vis_probs = visibility_probabilities(pad_visibility(vis, stride), 1)[0]
        inputs = [
            pad_constant(warped_src, stride, BLANK_VALUE),
            pad_image(coarse, stride),
            vis_probs.to(coarse.dtype),
        ]
        if self.cfg.flow_input:
            if flow is None:
                raise ValueError("PixelWarpRefiner: flow is required with cfg.flow_input=True")
            inputs.append(pad_constant(flow, stride) / FLOW_INPUT_SCALE)
        bottom, skips = self.encoder(torch.cat(inputs, dim=1))
        return crop_to(self.head(self.decoder(bottom, skips)), size)

    def forward(
        self,
        x_src: torch.Tensor,
        out: GeneratorOutput,
        flow: torch.Tensor,
        vis: torch.Tensor,
    ) -> GeneratorOutput:
        """Refine a generator output.

        Args:
            x_src: ``(B, 3, H, W)`` source image in ``[-1, 1]``.
            out: The generator's output; ``out.coarse`` is ``(B, 3, H, W)``.
            flow: ``(B, 2, H, W)`` backward flow target -> source in pixels.
            vis: ``(B, H, W)`` :class:`Visibility` codes or ``(B, 3, H, W)`` probabilities.

        Returns:
            ``out`` with ``image = m * warped_src + (1 - m) * coarse``, ``warped_src`` and
            ``mask = m`` set.

        Raises:
            ValueError: On mismatched shapes.
        """
        self._check_inputs(x_src, out.coarse, flow, vis)
        warped = warp_source_image(x_src, flow, vis)
        mask = torch.sigmoid(self.mask_logits(warped, out.coarse, vis, flow))
        image = mask * warped + (1.0 - mask) * out.coarse
        return replace(out, image=image, warped_src=warped, mask=mask)

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """``nn.Module.load_state_dict``, raising
        :class:`~posetransfer.models.generator.StateDictMismatchError` for another config."""
        check_state_dict(self, state_dict, strict=strict)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def _check_inputs(
        self, x_src: torch.Tensor, coarse: torch.Tensor, flow: torch.Tensor, vis: torch.Tensor
    ) -> None:
        """Raise ``ValueError`` naming the argument on any shape mismatch."""
        owner = type(self).__name__
        batch = check_image_input("x_src", x_src, 3, None, None, owner)
        size = (x_src.shape[-2], x_src.shape[-1])
        check_image_input("coarse", coarse, 3, size, batch, owner)
        check_image_input("flow", flow, 2, size, batch, owner)
        check_visibility_input(vis, batch, size, owner)


def build_refiner(cfg: PixelWarpConfig) -> PixelWarpRefiner | None:
    """The refiner of ``cfg``, or None when ``cfg.enabled`` is False."""
    return PixelWarpRefiner(cfg) if cfg.enabled else None


def transfer(
    generator: PoseTransferGenerator,
    refiner: PixelWarpRefiner | None,
    x_src: torch.Tensor,
    pose_tgt: torch.Tensor,
    flow: torch.Tensor | None,
    vis: torch.Tensor | None,
    background: torch.Tensor | None = None,
) -> GeneratorOutput:
    """Generator, then the pixel-warp refiner if given.

    Args:
        generator: The generator.
        refiner: The refiner, or None for the coarse image.
        x_src: ``(B, 3, H, W)`` source images in ``[-1, 1]``.
        pose_tgt: ``(B, C, H, W)`` target pose maps.
        flow: ``(B, 2, H, W)`` target -> source flow in pixels (None without flow).
        vis: ``(B, H, W)`` visibility codes (None without flow).
        background: Optional ``(B, 3, H, W)`` person-free source for the generator's
            background skips (:meth:`PoseTransferGenerator.forward`).

    Returns:
        The output (``image`` refined when ``refiner`` is given).
    """
    out = generator(x_src, pose_tgt, flow, vis, background)
    if refiner is not None:
        if flow is None or vis is None:
            raise ValueError("the pixel-warp refiner needs flow and visibility")
        out = refiner(x_src, out, flow, vis)
    return out
