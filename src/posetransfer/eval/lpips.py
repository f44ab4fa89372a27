"""LPIPS v0.1 (Zhang et al. 2018, "net-lin", AlexNet) in plain torch, without torchvision.

The computation of ``lpips.LPIPS(net="alex", version="0.1")``:

1. scale the inputs: ``(x - shift) / scale`` with ``shift = (-0.030, -0.088, -0.188)`` and
   ``scale = (0.458, 0.448, 0.450)`` (the ImageNet statistics expressed on ``[-1, 1]``);
2. AlexNet features after ReLU 1-5 (torchvision ``features`` layers 0-11);
3. unit-normalise each feature vector over channels (``x / (||x||_2 + 1e-10)``);
4. squared difference, a learned non-negative 1x1 convolution per layer (the "lin" heads),
   spatial mean, sum over the 5 layers.

**Input range: [-1, 1].** Images must be mapped as ``x_uint8 / 127.5 - 1``. Feeding ``[0, 1]``
images without rescaling (PCDMs' evaluation) gives systematically low, incomparable values, so
:class:`LPIPS` refuses inputs outside ``[-1, 1]`` and cannot detect ``[0, 1]`` data otherwise.

Weights. The backbone is torchvision's ``alexnet-owt-7be5be79.pth`` (key names
``features.{0,3,6,8,10}.{weight,bias}``, the classifier is ignored), found by
:func:`posetransfer.assets.resolve_weights`. The heads are the ``lpips`` package's
``weights/v0.1/alex.pth``, which torchmetrics ships byte-identical as
``torchmetrics/functional/image/lpips_models/alex.pth`` (keys ``lin{0..4}.model.1.weight``,
shapes ``(1, C, 1, 1)``); it is located without importing torchmetrics.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import torch
from torch import nn

from posetransfer.assets import resolve_weights

__all__ = [
    "ALEX_CHANNELS",
    "LPIPS",
    "AlexNetFeatures",
    "lpips_distance",
    "torchmetrics_heads_path",
]

#: Channels of the five AlexNet ReLU outputs LPIPS compares.
ALEX_CHANNELS: Final[tuple[int, ...]] = (64, 192, 384, 256, 256)
_SHIFT: Final[tuple[float, float, float]] = (-0.030, -0.088, -0.188)
_SCALE: Final[tuple[float, float, float]] = (0.458, 0.448, 0.450)
_EPS: Final[float] = 1e-10


class AlexNetFeatures(nn.Module):
    """torchvision's ``AlexNet.features`` (same layer indices, so its state-dict keys load).

    ``forward`` returns the outputs of the 5 ReLUs after conv layers 0, 3, 6, 8 and 10.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),  # 0
            nn.ReLU(inplace=True),  # 1 -> relu1
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),  # 3
            nn.ReLU(inplace=True),  # 4 -> relu2
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),  # 6
            nn.ReLU(inplace=True),  # 7 -> relu3
            nn.Conv2d(384, 256, kernel_size=3, padding=1),  # 8
            nn.ReLU(inplace=True),  # 9 -> relu4
            nn.Conv2d(256, 256, kernel_size=3, padding=1),  # 10
            nn.ReLU(inplace=True),  # 11 -> relu5
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``(B, 3, H, W)`` scaled images -> five ``(B, C_l, H_l, W_l)`` ReLU outputs."""
        taps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in (1, 4, 7, 9, 11):
                taps.append(x)
        return taps


def lpips_distance(
    feats_a: Sequence[torch.Tensor], feats_b: Sequence[torch.Tensor], heads: Sequence[torch.Tensor]
) -> torch.Tensor:
    """LPIPS from two feature pyramids and the per-layer linear heads.

    Args:
        feats_a: ``L`` tensors ``(B, C_l, H_l, W_l)``.
        feats_b: Same shapes as ``feats_a``.
        heads: ``L`` non-negative channel weights, each ``(C_l,)``.

    Returns:
        ``(B,)`` distances: ``sum_l mean_hw(sum_c w_lc (a_hat - b_hat)^2)``.
    """
    total = None
    for a, b, w in zip(feats_a, feats_b, heads, strict=True):
        a_hat = a / (a.square().sum(dim=1, keepdim=True).sqrt() + _EPS)
        b_hat = b / (b.square().sum(dim=1, keepdim=True).sqrt() + _EPS)
        layer = ((a_hat - b_hat).square() * w.view(1, -1, 1, 1)).sum(dim=1).mean(dim=(1, 2))
        total = layer if total is None else total + layer
    assert total is not None, "lpips_distance needs at least one layer"
    return total


def torchmetrics_heads_path(net: str = "alex") -> Path:
    """Path of the LPIPS v0.1 linear heads bundled with torchmetrics (not imported).

    Raises:
        FileNotFoundError: If torchmetrics is not installed or lacks the file.
    """
    spec = importlib.util.find_spec("torchmetrics")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "LPIPS heads: torchmetrics is not installed (it ships lpips_models/alex.pth); "
            "install torchmetrics or pass heads=PATH to a copy of lpips' weights/v0.1/alex.pth"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    path = root / "functional" / "image" / "lpips_models" / f"{net}.pth"
    if not path.is_file():
        raise FileNotFoundError(f"LPIPS heads: {path} not found in the installed torchmetrics")
    return path


def _load_state(path: Path, what: str) -> dict[str, torch.Tensor]:
    """``torch.load`` with errors that name the file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise ValueError(f"{path}: cannot read {what} ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict for {what}, got {type(state).__name__}")
    return state


def _load_heads(path: Path) -> list[torch.Tensor]:
    state = _load_state(path, "LPIPS heads")
    heads = []
    for i, channels in enumerate(ALEX_CHANNELS):
        key = f"lin{i}.model.1.weight"
        if key not in state or tuple(state[key].shape) != (1, channels, 1, 1):
            got = tuple(state[key].shape) if key in state else "missing"
            raise ValueError(f"{path}: LPIPS head {key} must be (1, {channels}, 1, 1), got {got}")
        heads.append(state[key].reshape(channels).float())
    return heads


class LPIPS(nn.Module):
    """LPIPS v0.1 with an AlexNet backbone; ``forward(pred, target) -> (B,)``.

    Args:
        backbone: torchvision AlexNet weights file; None resolves ``"alexnet"`` with
            :func:`~posetransfer.assets.resolve_weights` (explicit path, env var, torch
            cache), which raises ``FileNotFoundError`` with instructions if it is missing.
        heads: LPIPS v0.1 ``alex.pth``; None uses torchmetrics' bundled copy.
        random_backbone: Keep a randomly initialised backbone (seeded by the caller) and load
            no backbone file: only for tests of shapes and plumbing, the values mean nothing.

    The module is frozen (``requires_grad=False``) and starts in eval mode.
    """

    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(
        self,
        backbone: str | os.PathLike[str] | None = None,
        *,
        heads: str | os.PathLike[str] | None = None,
        random_backbone: bool = False,
    ) -> None:
        super().__init__()
        self.net = AlexNetFeatures()
        if random_backbone:
            if backbone is not None:
                raise ValueError("pass either a backbone file or random_backbone=True, not both")
            self.backbone_path: Path | None = None
        else:
            self.backbone_path = resolve_weights("alexnet", backbone)
            self._load_backbone(self.backbone_path)
        self.heads_path = Path(heads) if heads is not None else torchmetrics_heads_path("alex")
        for i, w in enumerate(_load_heads(self.heads_path)):
            self.register_buffer(f"head{i}", w)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def _load_backbone(self, path: Path) -> None:
        state = _load_state(path, "AlexNet weights")
        wanted = self.net.state_dict().keys()
        missing = [k for k in wanted if k not in state]
        if missing:
            raise ValueError(
                f"{path}: not a torchvision AlexNet state dict (missing {', '.join(missing)})"
            )
        self.net.load_state_dict({k: state[k] for k in wanted}, strict=True)

    @property
    def heads(self) -> list[torch.Tensor]:
        """The five ``(C_l,)`` linear-head weights."""
        return [getattr(self, f"head{i}") for i in range(len(ALEX_CHANNELS))]

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """LPIPS distance per image.

        Args:
            pred: ``(B, 3, H, W)`` in ``[-1, 1]``.
            target: ``(B, 3, H, W)`` in ``[-1, 1]``.

        Returns:
            ``(B,)`` distances (0 for identical images).

        Raises:
            ValueError: On mismatched shapes or values outside ``[-1, 1]``.
        """
        if pred.ndim != 4 or pred.shape[1] != 3 or pred.shape != target.shape:
            raise ValueError(
                f"LPIPS expects two (B, 3, H, W) tensors of the same shape, got "
                f"{tuple(pred.shape)} and {tuple(target.shape)}"
            )
        for name, x in (("pred", pred), ("target", target)):
            lo, hi = float(x.min()), float(x.max())
            if lo < -1.001 or hi > 1.001:
                raise ValueError(
                    f"LPIPS {name} must be in [-1, 1] (x_uint8 / 127.5 - 1), "
                    f"got [{lo:.3g}, {hi:.3g}]"
                )
        feats = self.net(torch.cat([pred, target]).float().sub(self.shift).div(self.scale))
        feats_pred = [f[: len(pred)] for f in feats]
        feats_target = [f[len(pred) :] for f in feats]
        return lpips_distance(feats_pred, feats_target, self.heads)
