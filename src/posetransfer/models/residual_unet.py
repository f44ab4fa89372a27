"""The residual U-Net halves shared by the generator and the pixel-warp refiner.

:class:`ResidualEncoder` maps the input to ``c_0`` channels with a 1x1 conv, then at each scale
``l`` (stride ``2**l``) runs residual blocks, whose outputs are the skips, and a stride-2 down
layer. :class:`ResidualDecoder` mirrors it: at each scale from the deepest up, a pixel-shuffle up
layer, then residual blocks fed the skips of that scale in mirror order.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from posetransfer.models.blocks import NormKind, ResidualBlock, conv_unit, down_block, up_block

__all__ = ["ResidualDecoder", "ResidualEncoder"]


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
