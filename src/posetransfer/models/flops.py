"""Parameter and FLOP counts of a network, for benchmarks and reports.

What is counted:
    Only the multiply-adds of ``nn.Conv1d/2d/3d``, ``nn.ConvTranspose1d/2d/3d`` and ``nn.Linear``
    (``modules`` that call them inside their ``forward`` are covered through their children),
    each as 2 FLOP. A convolution costs ``out.numel() * (C_in / groups) * prod(kernel)``
    multiply-adds; a transposed convolution ``in.numel() * (C_out / groups) * prod(kernel)``
    (every input element is scattered through the whole kernel), which includes the products
    that land in the cropped padding. Bias additions, normalisation, activations, pooling,
    interpolation, concatenation and any ``torch.*`` call outside those modules (``matmul``,
    ``grid_sample``) are not counted: for the conv nets here they are below 1 % of the total.
    A training step is counted as 3x the forward (forward, input gradients, weight gradients).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["count_flops", "count_parameters"]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_T = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def count_parameters(module: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameter elements (shared parameters counted once).

    Args:
        module: The network.
        trainable_only: Count only parameters with ``requires_grad``.

    Returns:
        The count.
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def _module_macs(module: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> int:
    """Multiply-adds of one call of a counted module."""
    if isinstance(module, _CONV):
        per_output = (module.in_channels // module.groups) * math.prod(module.kernel_size)
        return out.numel() * per_output
    if isinstance(module, _CONV_T):
        per_input = (module.out_channels // module.groups) * math.prod(module.kernel_size)
        return inputs[0].numel() * per_input
    if isinstance(module, nn.Linear):
        return out.numel() * module.in_features
    return 0


def count_flops(module: nn.Module, *inputs: object, **kwargs: object) -> int:
    """FLOP (2 x multiply-adds) of one forward pass of ``module(*inputs, **kwargs)``.

    The forward runs once under ``torch.no_grad()`` with forward hooks on the counted layer
    types (see the module docstring); the module's train/eval mode is left as it is. The count
    covers the whole batch: divide by ``B`` for a per-image figure.

    Args:
        module: The network.
        *inputs: Positional arguments of its ``forward``.
        **kwargs: Keyword arguments of its ``forward``.

    Returns:
        The FLOP count.

    Example:
        >>> conv = nn.Conv2d(3, 8, 3, padding=1)
        >>> count_flops(conv, torch.zeros(1, 3, 4, 4)) == 2 * (8 * 4 * 4) * (3 * 3 * 3)
        True
    """
    total = 0

    def hook(mod: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        total += _module_macs(mod, args, out)

    handles = [
        m.register_forward_hook(hook)
        for m in module.modules()
        if isinstance(m, _CONV + _CONV_T + (nn.Linear,))
    ]
    try:
        with torch.no_grad():
            module(*inputs, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return 2 * total
