"""Conditional PatchGAN discriminator (paper stage 3).

The discriminator judges ``(x_src, p_tgt, x)`` triples: a real target image ``x = x_tgt`` or a
generated one ``x = x_hat`` (paper Fig. 2; ``reference/official_repo.md`` §4.8). It is the pix2pix
``NLayerDiscriminator``: ``num_layers`` stride-2 4x4 convolutions (no norm on the first), one
stride-1 4x4 convolution, each followed by LeakyReLU(0.2), then a stride-1 4x4 convolution to one
logit per patch (70x70 receptive field with 3 layers). Widths double from ``base_channels`` up
to ``8 * base_channels``.

The output is raw logits: the sigmoid of the original (``gan_type=dcgan``) is inside the BCE loss
(:mod:`posetransfer.losses.adversarial`), which also allows the LSGAN and hinge objectives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from posetransfer.config import ConfigError
from posetransfer.models.blocks import NORM_KINDS, NormKind, conv_unit, init_weights, leaky_relu
from posetransfer.models.generator_inputs import check_image_input, check_state_dict
from posetransfer.ops.memory_format import cat_channels

__all__ = ["DiscriminatorConfig", "PatchDiscriminator", "discriminator_input_channels"]


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Architecture of :class:`PatchDiscriminator` (defaults: the fast preset).

    Attributes:
        pose_channels: Channels of the target pose maps (18 keypoint maps).
        base_channels: Width of the first layer (the original's ``ndf``, 64).
        num_layers: Stride-2 layers (3: 70x70 patches).
        norm: Normalisation after every convolution but the first and the last.
    """

    pose_channels: int = 18
    base_channels: int = 32
    num_layers: int = 3
    norm: NormKind = "batch"

    def __post_init__(self) -> None:
        name = type(self).__name__
        for field in ("pose_channels", "base_channels", "num_layers"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}.{field} must be an int >= 1, got {value!r}")
        if self.norm not in NORM_KINDS:
            raise ConfigError(f"{name}.norm must be one of {NORM_KINDS}, got {self.norm!r}")

    @classmethod
    def paper(cls) -> DiscriminatorConfig:
        """The original's: ndf 64, 3 layers, BatchNorm (2.79 M parameters)."""
        return cls(pose_channels=18, base_channels=64, num_layers=3, norm="batch")


def discriminator_input_channels(cfg: DiscriminatorConfig) -> int:
    """Channels of ``cat(x_src, x, p_tgt)``: 3 + 3 + ``pose_channels`` (24 for 18 keypoints)."""
    return 6 + cfg.pose_channels


class PatchDiscriminator(nn.Module):
    """PatchGAN on ``cat(x_src, x, p_tgt)``, one logit per overlapping patch.

    Args:
        cfg: Architecture; see :class:`DiscriminatorConfig`.

    Example:
        >>> net = PatchDiscriminator(DiscriminatorConfig(base_channels=4))
        >>> x = torch.zeros(2, 3, 64, 32)
        >>> tuple(net(x, x, torch.zeros(2, 18, 64, 32)).shape)
        (2, 1, 6, 2)
    """

    def __init__(self, cfg: DiscriminatorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        act = leaky_relu(0.2)
        widths = [
            min(cfg.base_channels * 2**i, 8 * cfg.base_channels) for i in range(cfg.num_layers + 1)
        ]
        layers = [
            conv_unit(
                discriminator_input_channels(cfg), widths[0], 4, stride=2, norm=None, post_act=act
            )
        ]
        for i in range(1, cfg.num_layers + 1):
            stride = 2 if i < cfg.num_layers else 1
            layers.append(
                conv_unit(widths[i - 1], widths[i], 4, stride=stride, norm=cfg.norm, post_act=act)
            )
        layers.append(conv_unit(widths[-1], 1, 4, norm=None))
        self.layers = nn.Sequential(*layers)
        init_weights(self)

    def forward(
        self, x_src: torch.Tensor, image: torch.Tensor, pose_tgt: torch.Tensor
    ) -> torch.Tensor:
        """Score an image as the target of the pair.

        Args:
            x_src: ``(B, 3, H, W)`` source image.
            image: ``(B, 3, H, W)`` real target or generated image.
            pose_tgt: ``(B, cfg.pose_channels, H, W)`` target pose maps.

        Returns:
            ``(B, 1, H', W')`` logits, one per patch (``H' = H / 2**num_layers - 2`` for ``H``
            a multiple of ``2**num_layers``).

        Raises:
            ValueError: On mismatched shapes or channel counts.
        """
        owner = type(self).__name__
        batch = check_image_input("x_src", x_src, 3, None, None, owner)
        size = (x_src.shape[-2], x_src.shape[-1])
        check_image_input("image", image, 3, size, batch, owner)
        check_image_input("pose_tgt", pose_tgt, self.cfg.pose_channels, size, batch, owner)
        return self.layers(cat_channels((x_src, image, pose_tgt)))

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """``nn.Module.load_state_dict``, raising
        :class:`~posetransfer.models.generator.StateDictMismatchError` for another config."""
        check_state_dict(self, state_dict, strict=strict)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)
