"""VGG19 feature extractor for the perceptual loss, in plain torch (no torchvision).

The layer list is torchvision's ``vgg19().features`` (configuration "E"), so the state-dict keys
are the same (``features.<i>.weight`` / ``.bias`` for the 16 convolutions at indices 0, 2, 5, 7,
10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34) and torchvision's ImageNet file
``vgg19-dcbb9e9d.pth`` loads with ``strict=True`` (its ``classifier.*`` keys are dropped).

Convention: inputs are images in ``[-1, 1]`` (``conventions.IMAGE_RANGE``); they are mapped to
``[0, 1]`` and normalised with the ImageNet mean and std, as the original did. Taps are the ReLU
outputs named ``relu<block>_<conv>``; the perceptual loss uses ``relu1_1 .. relu5_1``
(indices 1, 6, 11, 20, 29). The forward stops at the deepest requested tap.

Weights are never downloaded: :func:`load_vgg19` finds the file with
:func:`posetransfer.assets.resolve_weights` (explicit path, ``$POSETRANSFER_WEIGHTS_DIR``,
then torch's cache folder) and raises a ``FileNotFoundError`` naming the file and where to put it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import torch
from torch import nn

from posetransfer.assets import resolve_weights

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PERCEPTUAL_LAYERS",
    "VGG19_LAYERS",
    "VGG19Features",
    "load_vgg19",
]

logger = logging.getLogger(__name__)

#: torchvision's configuration "E": conv widths, "M" for a 2x2 max-pool.
_CFG_E: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
    512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
)  # fmt: skip

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def _relu_indices() -> dict[str, int]:
    """``{"relu1_1": 1, "relu1_2": 3, ...}``: index of each ReLU in ``features``."""
    names, index, block, conv = {}, 0, 1, 0
    for item in _CFG_E:
        if item == "M":
            index, block, conv = index + 1, block + 1, 0
        else:
            conv += 1
            names[f"relu{block}_{conv}"] = index + 1
            index += 2
    return names


#: Index in ``features`` of every tap, by name (``relu1_1`` .. ``relu5_4``).
VGG19_LAYERS: dict[str, int] = _relu_indices()

#: The perceptual loss's taps (the original's ``vgg_content`` layers).
PERCEPTUAL_LAYERS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


class VGG19Features(nn.Module):
    """torchvision-compatible ``vgg19().features`` returning named ReLU outputs.

    The parameters are randomly initialised (PyTorch defaults); use :func:`load_vgg19` for the
    pretrained network.

    Example:
        >>> net = VGG19Features()
        >>> feats = net(torch.zeros(1, 3, 32, 32), layers=("relu1_1", "relu3_1"))
        >>> {k: tuple(v.shape) for k, v in feats.items()}
        {'relu1_1': (1, 64, 32, 32), 'relu3_1': (1, 256, 8, 8)}
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for item in _CFG_E:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                conv = nn.Conv2d(in_channels, int(item), kernel_size=3, padding=1)
                # In place, as torchvision: a conv does not keep its output for the backward,
                # and no later layer modifies a tapped ReLU output.
                layers += [conv, nn.ReLU(inplace=True)]
                in_channels = int(item)
        self.features = nn.Sequential(*layers)
        # Not persistent: the state dict holds exactly torchvision's keys.
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    def forward(
        self, x: torch.Tensor, layers: Sequence[str] = PERCEPTUAL_LAYERS
    ) -> dict[str, torch.Tensor]:
        """Features of ``x`` at the requested taps.

        Args:
            x: ``(B, 3, H, W)`` images in ``[-1, 1]``.
            layers: Tap names, keys of :data:`VGG19_LAYERS`.

        Returns:
            ``{name: (B, C_name, H / s, W / s)}`` in the order of ``layers``.

        Raises:
            ValueError: On an unknown tap name or a non-RGB input.
        """
        unknown = [name for name in layers if name not in VGG19_LAYERS]
        if unknown or not layers:
            raise ValueError(
                f"unknown VGG19 layer(s) {unknown or list(layers)}; "
                f"known: {', '.join(VGG19_LAYERS)}"
            )
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"VGG19Features expects (B, 3, H, W) images, got {tuple(x.shape)}")
        wanted = {VGG19_LAYERS[name]: name for name in layers}
        h = ((x + 1.0) * 0.5 - self.mean) / self.std
        found: dict[str, torch.Tensor] = {}
        for index, layer in enumerate(list(self.features)[: max(wanted) + 1]):
            h = layer(h)
            if index in wanted:
                found[wanted[index]] = h
        return {name: found[name] for name in layers}


def load_vgg19(
    weights_path: str | os.PathLike[str] | None = None, *, random_weights: bool = False
) -> VGG19Features:
    """A frozen VGG19 feature extractor (eval mode, ``requires_grad=False``).

    Args:
        weights_path: torchvision-format ``vgg19-dcbb9e9d.pth``; None searches
            ``$POSETRANSFER_WEIGHTS_DIR`` and torch's cache folder
            (:func:`~posetransfer.assets.resolve_weights`).
        random_weights: Skip loading and keep random weights (tests only: the perceptual loss
            is then meaningless).

    Returns:
        The network on the CPU.

    Raises:
        FileNotFoundError: If no file is found; the message names the file and where to put it.
        ValueError: If the file is not a torchvision VGG19 state dict.
    """
    net = VGG19Features()
    if random_weights:
        logger.warning("VGG19 with random weights: the perceptual loss is only good for tests")
    else:
        path = resolve_weights("vgg19", weights_path)
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
        other = sorted(k for k in state if not k.startswith(("features.", "classifier.")))
        if other:
            raise ValueError(f"{path}: not a torchvision VGG19 state dict (keys {other[:5]})")
        features = {k: v for k, v in state.items() if k.startswith("features.")}
        try:
            net.load_state_dict(features, strict=True)
        except RuntimeError as e:
            reason = " ".join(str(e).split())  # torch's message spans several lines
            raise ValueError(f"{path}: not a torchvision VGG19 state dict: {reason}") from None
        logger.info("loaded VGG19 weights from %s", path)
    net.eval()
    net.requires_grad_(False)
    return net
