"""Building blocks shared by the networks: norms, conv units, residual and resampling blocks.

The layouts follow the original code (``reference/official_repo.md`` §4.2), written once:

* ``conv_unit``: ``[act] -> conv -> [norm] -> [act]``; the original puts the activation *before*
  the convolution everywhere except in the flow net's stem.
* :class:`ResidualBlock`: pre-activation, ``x + N(conv3x3(act(x)))``; with a side input ``a``
  (a U-Net skip), ``x + N(conv3x3(act(cat(x, N(conv1x1(act(a)))))))``.
* ``down_block``: ``act -> conv (stride 2) -> [norm]``.
* ``up_block``: ``act -> convT 4x4 stride 2 -> norm`` (pix2pix) or
  ``act -> conv3x3 to 4C -> PixelShuffle(2) -> norm``.

A convolution followed by a normalisation has no bias (the norm's shift replaces it); without a
norm it has one. ``"instance"`` is an affine ``InstanceNorm2d``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from posetransfer.ops.memory_format import cat_channels

__all__ = [
    "NORM_KINDS",
    "ActFactory",
    "NormKind",
    "ResidualBlock",
    "conv_unit",
    "down_block",
    "init_weights",
    "leaky_relu",
    "norm_layer",
    "relu",
    "up_block",
]

NormKind = Literal["batch", "instance", "none"]
NORM_KINDS: tuple[str, ...] = ("batch", "instance", "none")

#: A zero-argument factory of a fresh activation module (each use gets its own instance).
ActFactory = Callable[[], nn.Module]


def relu() -> nn.Module:
    """``nn.ReLU`` (not in place, so that skip tensors are never modified behind our back)."""
    return nn.ReLU()


def leaky_relu(slope: float) -> ActFactory:
    """Factory of ``nn.LeakyReLU(slope)`` modules."""
    return lambda: nn.LeakyReLU(slope)


def norm_layer(kind: NormKind, channels: int) -> nn.Module:
    """Normalisation over ``channels`` feature maps.

    Args:
        kind: ``"batch"`` (``BatchNorm2d``), ``"instance"`` (affine ``InstanceNorm2d``) or
            ``"none"`` (identity).
        channels: Number of channels ``C`` of the ``(B, C, H, W)`` input.

    Returns:
        The module.

    Raises:
        ValueError: For an unknown ``kind``.
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {NORM_KINDS}, got norm={kind!r}")


def conv_unit(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    norm: NormKind | None = "batch",
    pre_act: ActFactory | None = None,
    post_act: ActFactory | None = None,
    transposed: bool = False,
    bias: bool | None = None,
) -> nn.Sequential:
    """``[pre_act] -> conv -> [norm] -> [post_act]`` with "same" padding for odd kernels.

    Stride-2 layers with an even kernel (4x4, the pix2pix choice) use padding 1, which halves
    (``Conv2d``) or doubles (``ConvTranspose2d``) even sizes exactly.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Square kernel size.
        stride: Convolution stride (the upsampling factor when ``transposed``).
        norm: Normalisation after the convolution; None means no norm layer and a conv bias
            (like ``"none"``).
        pre_act: Activation applied to the input first.
        post_act: Activation applied last.
        transposed: Use ``ConvTranspose2d``.
        bias: Give the convolution a bias; default: exactly when there is no norm.

    Returns:
        ``nn.Sequential`` mapping ``(B, in_channels, H, W)`` to ``(B, out_channels, H', W')``.
    """
    padding = (kernel_size - 1) // 2 if kernel_size % 2 else 1
    norm = norm or "none"
    bias = norm == "none" if bias is None else bias
    conv_cls = nn.ConvTranspose2d if transposed else nn.Conv2d
    layers: list[nn.Module] = [] if pre_act is None else [pre_act()]
    layers.append(conv_cls(in_channels, out_channels, kernel_size, stride, padding, bias=bias))
    if norm != "none":
        layers.append(norm_layer(norm, out_channels))
    if post_act is not None:
        layers.append(post_act())
    return nn.Sequential(*layers)


def down_block(
    in_channels: int,
    out_channels: int,
    *,
    kernel_size: int = 3,
    norm: NormKind | None = "batch",
    act: ActFactory | None = relu,
) -> nn.Sequential:
    """``act -> conv (stride 2) -> [norm]``: halves ``H`` and ``W`` (both must be even)."""
    return conv_unit(in_channels, out_channels, kernel_size, stride=2, norm=norm, pre_act=act)


def up_block(
    in_channels: int,
    out_channels: int,
    *,
    mode: Literal["transposed", "pixel_shuffle"],
    norm: NormKind = "batch",
    act: ActFactory = relu,
) -> nn.Sequential:
    """Double ``H`` and ``W`` with a transposed conv or a conv and a pixel shuffle.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        mode: ``"transposed"`` (pix2pix) or ``"pixel_shuffle"`` (conv to ``4 * out_channels``
            then ``PixelShuffle(2)``; no checkerboard from uneven kernel overlap).
        norm: Normalisation of the output.
        act: Activation applied to the input.

    Returns:
        ``nn.Sequential`` mapping ``(B, in_channels, H, W)`` to ``(B, out_channels, 2H, 2W)``.
    """
    if mode == "transposed":
        return conv_unit(
            in_channels, out_channels, 4, stride=2, norm=norm, pre_act=act, transposed=True
        )
    if mode == "pixel_shuffle":
        layers = [act(), nn.Conv2d(in_channels, 4 * out_channels, 3, 1, 1, bias=norm == "none")]
        layers.append(nn.PixelShuffle(2))
        if norm != "none":
            layers.append(norm_layer(norm, out_channels))
        return nn.Sequential(*layers)
    raise ValueError(f"mode must be 'transposed' or 'pixel_shuffle', got mode={mode!r}")


class ResidualBlock(nn.Module):
    """Pre-activation residual block, optionally fed a side input (a U-Net skip).

    Without a side input: ``out = x + N(conv3x3(act(x)))``. With side input ``a``:
    ``a' = N(conv1x1(act(a)))`` maps ``side_channels`` to ``channels`` and
    ``out = x + N(conv3x3(act(cat(x, a'))))``.

    Args:
        channels: Channels ``C`` of ``x`` and of the output.
        side_channels: Channels of the side input ``a``; 0 for none.
        norm: Normalisation kind.
        act: Activation factory.
    """

    def __init__(
        self,
        channels: int,
        side_channels: int = 0,
        *,
        norm: NormKind = "batch",
        act: ActFactory = relu,
    ) -> None:
        super().__init__()
        self.side = (
            conv_unit(side_channels, channels, 1, norm=norm, pre_act=act) if side_channels else None
        )
        in_channels = 2 * channels if side_channels else channels
        self.body = conv_unit(in_channels, channels, 3, norm=norm, pre_act=act)

    def forward(self, x: torch.Tensor, side: torch.Tensor | None = None) -> torch.Tensor:
        """Apply the block.

        Args:
            x: ``(B, C, H, W)``.
            side: ``(B, side_channels, H, W)``; required exactly when ``side_channels > 0``.

        Returns:
            ``(B, C, H, W)``.
        """
        if (side is None) != (self.side is None):
            expected = "a side input" if self.side is not None else "no side input"
            raise ValueError(f"this ResidualBlock takes {expected}")
        h = x if self.side is None else cat_channels((x, self.side(side)))
        return x + self.body(h)


def init_weights(module: nn.Module) -> None:
    """The original initialisation, in place.

    Conv and transposed-conv weights: Kaiming normal, ``fan_in`` mode, gain for ReLU (torch's
    fan of a ``ConvTranspose2d`` weight counts its output channels, as in the original call);
    norm scales ``N(1, 0.02)``; every bias 0.

    Args:
        module: Network whose submodules are initialised.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.kaiming_normal_(m.weight, a=0.0, mode="fan_in")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.InstanceNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
