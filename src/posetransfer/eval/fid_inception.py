"""pytorch-fid's InceptionV3 (``FIDInceptionA/C/E``) in plain torch, for a user-supplied file.

pytorch-fid (Seitzer, Apache-2.0) ports the TF ``inception-2015-12-05`` FID graph onto
torchvision's ``Inception3`` layout and ships the weights as
``pt_inception-2015-12-05-6726825d.pth``. This module rebuilds that network without torchvision:
module names follow torchvision (``Conv2d_1a_3x3`` ... ``Mixed_7c``, each unit a
``BasicConv2d`` = ``conv`` (no bias) + ``bn`` (eps 0.001) + ReLU), so the file loads strictly.
The FID-specific blocks differ from torchvision's only in pooling: ``FIDInceptionA``/``C`` and
``Mixed_7b`` average-pool with ``count_include_pad=False``; ``Mixed_7c`` max-pools. The 1008-way
``fc`` of the file is ignored (no Inception Score here).

Input convention (pytorch-fid's ``resize_input=True, normalize_input=True``): images in
``[0, 1]`` are resized to 299x299 with ``F.interpolate(mode="bilinear", align_corners=False)``
(no antialiasing), then mapped to ``2x - 1``. :class:`PytorchFIDInception` takes 8-bit images
``[0, 255]`` and feeds ``x / 255`` into that pipeline. Output: the 2048-d pool3 features.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Final

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FIDInceptionV3", "PytorchFIDInception", "load_pytorch_fid_state_dict"]

_SIZE: Final[int] = 299
_Pair = int | tuple[int, int]


class BasicConv2d(nn.Module):
    """Conv (no bias) + BatchNorm (eps 0.001) + ReLU: ``(B, C_in, H, W) -> (B, C_out, H', W')``."""

    def __init__(
        self, c_in: int, c_out: int, kernel: _Pair, stride: _Pair = 1, padding: _Pair = 0
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(nn.Module):
    """Mixed_5b/c/d: 1x1, 5x5, double 3x3 and avg-pool branches."""

    def __init__(self, c_in: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(c_in, 64, 1)
        self.branch5x5_1 = BasicConv2d(c_in, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(c_in, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg_pool(x))], 1)


class InceptionB(nn.Module):
    """Mixed_6a: stride-2 reduction (3x3, double 3x3, max-pool)."""

    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(c_in, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, stride=2)], 1)


class FIDInceptionC(nn.Module):
    """Mixed_6b..e: factorised 7x7 branches and an avg-pool branch."""

    def __init__(self, c_in: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(c_in, 192, 1)
        self.branch7x7_1 = BasicConv2d(c_in, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(c_in, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(c_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                      self.branch7x7dbl_4, self.branch7x7dbl_5):  # fmt: skip
            d = layer(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg_pool(x))], 1)


class InceptionD(nn.Module):
    """Mixed_7a: stride-2 reduction (3x3, 7x7 then 3x3, max-pool)."""

    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(c_in, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(c_in, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class FIDInceptionE(nn.Module):
    """Mixed_7b (``max_pool=False``: FIDInceptionE_1) and Mixed_7c (``True``: FIDInceptionE_2)."""

    def __init__(self, c_in: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(c_in, 320, 1)
        self.branch3x3_1 = BasicConv2d(c_in, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(c_in, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(c_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg_pool(x)
        return torch.cat([self.branch1x1(x), b3, d, self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """pytorch-fid's FID Inception to pool3: ``(B, 3, 299, 299)`` in ``[-1, 1]`` -> ``(B, 2048)``.

    Randomly initialised; load a file with :func:`load_pytorch_fid_state_dict`. Its
    ``state_dict`` keys are those of pytorch-fid's ``fid_inception_v3()`` without ``fc.*``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = FIDInceptionA(192, 32)
        self.Mixed_5c = FIDInceptionA(256, 64)
        self.Mixed_5d = FIDInceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, 128)
        self.Mixed_6c = FIDInceptionC(768, 160)
        self.Mixed_6d = FIDInceptionC(768, 160)
        self.Mixed_6e = FIDInceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, max_pool=False)
        self.Mixed_7c = FIDInceptionE(2048, max_pool=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool3 features of ``(B, 3, 299, 299)`` inputs in ``[-1, 1]``; returns ``(B, 2048)``."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), 3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
                      self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b,
                      self.Mixed_7c):  # fmt: skip
            x = block(x)
        return x.mean(dim=(2, 3))


def load_pytorch_fid_state_dict(model: FIDInceptionV3, path: str | os.PathLike[str]) -> None:
    """Load ``pt_inception-2015-12-05-6726825d.pth`` (or a file with its keys) strictly.

    ``fc.*`` entries are dropped; ``bn.num_batches_tracked`` may be absent (older files).

    Raises:
        ValueError: Unreadable file, or keys / shapes that differ (names a few of each).
    """
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, ValueError, pickle.UnpicklingError) as exc:
        raise ValueError(f"{path}: not a loadable torch state dict ({exc})") from exc
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    own = model.state_dict()
    optional = {k for k in own if k.endswith("num_batches_tracked")}
    missing = sorted(set(own) - set(state) - optional)
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        raise ValueError(
            f"{path}: not pytorch-fid Inception weights: {len(missing)} missing keys "
            f"{missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}, {len(wrong)} with "
            f"wrong shapes {wrong[:3]}"
        )
    for key in optional - set(state):
        state[key] = own[key]
    model.load_state_dict(state, strict=True)


class PytorchFIDInception(nn.Module):
    """Pool3 features of 8-bit images with pytorch-fid's network and preprocessing.

    ``forward((B, 3, H, W) in [0, 255]) -> (B, 2048)`` float64 on the CPU; the input is fed as
    ``x / 255`` to pytorch-fid's pipeline (bilinear resize to 299x299, then ``2x - 1``).

    Args:
        path: The weights file (already resolved, see :mod:`posetransfer.assets`), or
            None for random weights (tests only).
    """

    backend: Final[str] = "pytorch-fid pt_inception"

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        self.path: Path | None = None if path is None else Path(path)
        self.model = FIDInceptionV3()
        if self.path is not None:
            load_pytorch_fid_state_dict(self.model, self.path)
        self.model.eval()
        self.requires_grad_(False)

    @torch.inference_mode()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Features of a batch: ``(B, 3, H, W)`` in ``[0, 255]`` -> ``(B, 2048)`` float64."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) RGB images, got {tuple(images.shape)}")
        device = self.model.Conv2d_1a_3x3.conv.weight.device
        x = images.to(device, torch.float32) / 255.0
        if x.shape[-2:] != (_SIZE, _SIZE):
            x = F.interpolate(x, size=(_SIZE, _SIZE), mode="bilinear", align_corners=False)
        return self.model(2.0 * x - 1.0).to(torch.float64).cpu()
