"""Architecture of the pose-transfer generator: :class:`GeneratorConfig` and its presets.

The network it describes, and what each field changes, is documented in
:mod:`posetransfer.models.generator`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from posetransfer.config import ConfigError
from posetransfer.models.blocks import NORM_KINDS, NormKind

__all__ = ["VISIBILITY_MODES", "GeneratorConfig", "VisibilityMode"]

VisibilityMode = Literal["none", "mask", "residual"]
VISIBILITY_MODES: tuple[str, ...] = ("none", "mask", "residual")
_PAPER_SIZES = {"deepfashion": ((256, 256), 7, 5), "market": ((128, 64), 5, 4)}


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture of :class:`PoseTransferGenerator` (defaults: the fast preset, 256x256).

    Attributes:
        image_size: ``(H, W)`` of the images; inputs of any other size are rejected. Any
            positive sizes: the generator pads inputs to multiples of :attr:`stride` and crops
            its output back.
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

    @property
    def num_levels(self) -> int:
        """Number of down-sampling layers ``L``."""
        return len(self.channels) - 1

    @property
    def stride(self) -> int:
        """Stride ``2**L`` of the bottleneck; inputs are padded to multiples of it."""
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
