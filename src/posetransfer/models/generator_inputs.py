"""Checks and conversions of the generator's inputs: images, flow, visibility, state dicts.

The flow regressor's prediction becomes the generator's condition with
:func:`condition_from_prediction` (flow in pixels and hard visibility codes); visibility codes
become per-scale class probabilities with :func:`visibility_probabilities` (background wins when
down-sampling, ``docs/deviations.md`` 8). Every check names the argument, the shape it got and the
one it expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from posetransfer.conventions import NUM_VISIBILITY_CLASSES, Visibility
from posetransfer.models.flow_regressor import FlowPrediction
from posetransfer.ops.warp import visibility_pyramid

__all__ = [
    "StateDictMismatchError",
    "check_image_input",
    "check_state_dict",
    "check_visibility_input",
    "condition_from_prediction",
    "visibility_codes",
    "visibility_probabilities",
]

_BG = int(Visibility.BACKGROUND)


class StateDictMismatchError(ValueError):
    """A checkpoint's state dict does not fit the network (another configuration)."""


def check_state_dict(
    module: nn.Module, state_dict: Mapping[str, Any], *, strict: bool = True
) -> None:
    """Compare a state dict with ``module``'s before loading it.

    Args:
        module: The network; its ``cfg`` attribute, if any, is named in the error.
        state_dict: Tensors by key, as saved from a network.
        strict: Also require the same key set (shapes are always checked).

    Raises:
        StateDictMismatchError: Listing missing and unexpected keys and keys whose shapes differ.
    """
    own = module.state_dict()
    problems = []
    if strict:
        missing = sorted(set(own) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(own))
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected)):
            if keys:
                shown = ", ".join(keys[:8]) + (
                    f", ... ({len(keys)} in all)" if len(keys) > 8 else ""
                )
                problems.append(f"{label}: {shown}")
    shapes = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state_dict.items()
        if k in own and isinstance(v, torch.Tensor) and v.shape != own[k].shape
    ]
    if shapes:
        more = f" ... ({len(shapes)} in all)" if len(shapes) > 8 else ""
        problems.append("shape mismatches: " + "; ".join(shapes[:8]) + more)
    if problems:
        config = getattr(module, "cfg", None)
        raise StateDictMismatchError(
            f"state dict does not fit {type(module).__name__}"
            + (f" built with {config}" if config is not None else "")
            + " (a checkpoint of another model config?): "
            + " | ".join(problems)
        )


def check_image_input(
    name: str,
    x: torch.Tensor,
    channels: int,
    size: tuple[int, int] | None,
    batch: int | None,
    owner: str,
) -> int:
    """Check a ``(B, C, H, W)`` float input of a network and return ``B``.

    Args:
        name: Argument name used in the error.
        x: The tensor.
        channels: Expected ``C``.
        size: Expected ``(H, W)``, or None for any.
        batch: Expected ``B``, or None for any.
        owner: Network name used in the error.

    Returns:
        The batch size ``B``.

    Raises:
        ValueError: Naming the argument, the expected and the actual shape.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{owner}: {name} must be a float (B, C, H, W) tensor, got {got}")
    if x.shape[1] != channels:
        raise ValueError(
            f"{owner}: {name} must have {channels} channels, got {name}.shape={tuple(x.shape)}"
        )
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        raise ValueError(
            f"{owner}: {name} has size (H, W)={tuple(x.shape[-2:])}, expected {tuple(size)}"
        )
    if batch is not None and x.shape[0] != batch:
        raise ValueError(
            f"{owner}: {name} has batch size {x.shape[0]}, x_src has {batch} "
            f"({name}.shape={tuple(x.shape)})"
        )
    return x.shape[0]


def condition_from_prediction(pred: FlowPrediction) -> tuple[torch.Tensor, torch.Tensor]:
    """Flow and visibility for the generator from the flow regressor, as the original fed them.

    Args:
        pred: The flow regressor's output.

    Returns:
        ``(flow, vis)``: ``(B, 2, H, W)`` full-resolution flow set to 0 where the predicted class
        is BACKGROUND (flow is 0 on background by convention) and ``(B, H, W)`` int64 codes, the
        argmax of the visibility logits.
    """
    vis = pred.visibility
    return pred.flow.masked_fill((vis == _BG).unsqueeze(1), 0.0), vis


def check_visibility_input(
    vis: torch.Tensor, batch: int, size: tuple[int, int], owner: str
) -> None:
    """Check a visibility input: ``(B, H, W)`` integer codes or ``(B, 3, H, W)`` probabilities.

    Args:
        vis: The tensor.
        batch: Expected ``B``.
        size: Expected ``(H, W)``.
        owner: Network name used in the error.

    Raises:
        ValueError: On another shape, float codes, or class values that do not sum to 1 (logits
            instead of probabilities).
    """
    if not isinstance(vis, torch.Tensor):
        raise ValueError(f"{owner}: vis must be a tensor, got {type(vis).__name__}")
    if vis.ndim == 4:
        check_image_input("vis", vis, NUM_VISIBILITY_CLASSES, size, batch, owner)
        if (vis.float().sum(dim=1) - 1).abs().max() > 0.02:  # bf16 probabilities pass
            raise ValueError(
                f"{owner}: (B, 3, H, W) vis must hold class probabilities summing to 1 "
                "(softmax of the logits, or one-hot), not logits"
            )
        return
    if tuple(vis.shape) != (batch, *size) or vis.is_floating_point():
        raise ValueError(
            f"{owner}: vis must be (B, H, W) integer codes or (B, 3, H, W) probabilities with "
            f"(B, H, W)=({batch}, {size[0]}, {size[1]}), got {tuple(vis.shape)} {vis.dtype}"
        )


def visibility_codes(vis: torch.Tensor) -> torch.Tensor:
    """``(B, H, W)`` int64 :class:`Visibility` codes from codes or ``(B, 3, H, W)`` probabilities
    (argmax over the classes)."""
    return vis.argmax(dim=1) if vis.ndim == 4 else vis.long()


def visibility_probabilities(vis: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Visibility as class probabilities at strides ``1 .. 2**(levels-1)``.

    Integer codes are pooled with :func:`~posetransfer.ops.warp.visibility_pyramid` (a coarse
    pixel takes the largest code of its block) and one-hot encoded; probabilities (softmax of
    the flow regressor's logits) are average-pooled.

    Args:
        vis: ``(B, H, W)`` integer codes or ``(B, 3, H, W)`` float probabilities.
        levels: Number of levels, at least 1.

    Returns:
        ``levels`` float tensors; entry ``l`` is ``(B, 3, H / 2**l, W / 2**l)``.
    """
    if vis.ndim == 4:
        return [vis if lv == 0 else F.avg_pool2d(vis, 2**lv) for lv in range(levels)]
    return [
        F.one_hot(codes.long(), NUM_VISIBILITY_CLASSES).permute(0, 3, 1, 2).float()
        for codes in visibility_pyramid(vis, levels)
    ]
