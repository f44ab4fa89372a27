"""Perceptual (VGG feature) and style (Gram matrix) loss terms.

For a frozen VGG19 ``phi`` (:mod:`posetransfer.models.vgg`) and a tap ``k``:

``vgg_<k>``
    ``mean |phi_k(x_hat) - phi_k(x)|``, the content term of the original (``reference/
    official_repo.md`` §4.9: taps relu1_1 .. relu5_1, each weighted 0.125).
``style_<k>``
    ``mean |G_k(x_hat) - G_k(x)|`` with the Gram matrix ``G = phi phi^T / (C H W)`` of the
    ``(C, H*W)`` feature matrix. The original's style term had weight 0 (and crashed when
    enabled, bug 7.1.6).

Terms are returned unweighted; :func:`posetransfer.losses.generator.weighted_total` applies the
per-layer and global weights. Target features are computed without a graph.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from posetransfer.models.vgg import VGG19Features

__all__ = ["gram_matrix", "perceptual_terms"]


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Normalised Gram matrix of feature maps.

    Args:
        features: ``(B, C, H, W)``.

    Returns:
        ``(B, C, C)``: ``F F^T / (C * H * W)`` with ``F`` the ``(C, H*W)`` matrix of each sample,
        computed in at least float32.

    Example:
        >>> gram_matrix(torch.ones(1, 2, 2, 2)).tolist()
        [[[0.5, 0.5], [0.5, 0.5]]]
    """
    if features.ndim != 4:
        raise ValueError(f"features must be (B, C, H, W), got {tuple(features.shape)}")
    batch, channels, height, width = features.shape
    flat = features.reshape(batch, channels, height * width)
    flat = flat.to(torch.promote_types(flat.dtype, torch.float32))
    return flat @ flat.transpose(1, 2) / (channels * height * width)


def perceptual_terms(
    vgg: VGG19Features,
    output: torch.Tensor,
    target: torch.Tensor,
    *,
    content_layers: Sequence[str],
    style_layers: Sequence[str] = (),
) -> dict[str, torch.Tensor]:
    """Unweighted content and style terms between an output and its target.

    Args:
        vgg: Frozen feature extractor (see :func:`posetransfer.models.vgg.load_vgg19`).
        output: ``(B, 3, H, W)`` generated images in ``[-1, 1]`` (gradients flow through).
        target: ``(B, 3, H, W)`` real images in ``[-1, 1]``.
        content_layers: Taps of the content terms (``"relu1_1"``, ...).
        style_layers: Taps of the style terms.

    Returns:
        ``{"vgg_<tap>": ..., "style_<tap>": ...}`` 0-dim tensors, content first.

    Raises:
        ValueError: If ``output`` and ``target`` shapes differ or a tap is unknown.
    """
    if output.shape != target.shape:
        raise ValueError(
            f"output.shape={tuple(output.shape)} differs from target.shape={tuple(target.shape)}"
        )
    layers = list(dict.fromkeys([*content_layers, *style_layers]))
    if not layers:
        return {}
    feats_out = vgg(output, layers)
    with torch.no_grad():
        feats_tgt = vgg(target, layers)
    terms = {f"vgg_{k}": (feats_out[k] - feats_tgt[k]).abs().mean() for k in content_layers}
    for k in style_layers:
        diff = gram_matrix(feats_out[k]) - gram_matrix(feats_tgt[k])
        terms[f"style_{k}"] = diff.abs().mean()
    return terms
