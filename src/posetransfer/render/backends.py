"""Which implementation the renderer runs: tensor ops (``torch``) or Warp CPU kernels (``warp``).

:func:`~posetransfer.render.rasterize` and :func:`~posetransfer.render.correspondence` take
``backend="auto" | "torch" | "warp"``. Both backends give the same bits; ``warp``
(:mod:`~posetransfer.render.cpu_kernels`) takes float32 CPU tensors only and is 2-2.5x faster
there for a 256x176 body, so ``auto`` picks it where it applies and the ``warp-lang`` package
imports (it is a dependency, also of Anny), else ``torch`` (GPUs, float64).
"""

from __future__ import annotations

import functools
from typing import Literal

import torch
from torch import Tensor

__all__ = ["int32_faces", "use_warp", "warm_up"]


def use_warp(backend: str, tensors: tuple[Tensor, ...], count: int) -> bool:
    """Whether a renderer function runs its Warp CPU kernel (``backend`` of :func:`rasterize`).

    Args:
        backend: ``"auto"``, ``"torch"`` or ``"warp"``.
        tensors: The float inputs; the kernels take float32 CPU tensors only.
        count: The largest number of items (pixels, faces) a kernel indexes; under ``2**31``.

    Returns:
        True for ``"warp"``, and for ``"auto"`` where the kernels apply and Warp imports.

    Raises:
        ValueError: An unknown ``backend``, or ``"warp"`` for inputs the kernels do not take.
    """
    if backend not in ("auto", "torch", "warp"):
        raise ValueError(f"backend must be 'auto', 'torch' or 'warp', got {backend!r}")
    if backend == "torch":
        return False
    why = None
    odd = [t for t in tensors if t.device.type != "cpu" or t.dtype != torch.float32]
    if odd:
        why = f"float32 CPU tensors, got {odd[0].dtype} on {odd[0].device}"
    elif count >= 2**31:
        why = f"fewer than 2**31 pixels and faces per batch, got {count}"
    elif not _warp_available():
        why = "the warp-lang package (pip install warp-lang)"
    if why is not None and backend == "warp":
        raise ValueError(f"backend 'warp' needs {why}")
    return why is None


def warm_up(backend: Literal["auto", "torch", "warp"] = "auto") -> None:
    """Load the Warp kernels that ``backend`` would run, now instead of at the first call.

    The first load of a Warp module compiles it (about 2 s, then cached); doing it up front
    keeps it out of timings, and off a moment when another thread is loading Warp code of its
    own (as Anny's skinning does while ``synth-flow`` poses bodies ahead of the renders).
    """
    if backend != "torch" and _warp_available():
        from posetransfer.render.cpu_kernels import load

        load()


@functools.cache
def _warp_available() -> bool:
    """True when the Warp kernels import (warp-lang is a dependency; this guards a broken one)."""
    try:
        import posetransfer.render.cpu_kernels  # noqa: F401
    except ImportError:
        return False
    return True


def int32_faces(faces: Tensor) -> Tensor:
    """``faces`` as the contiguous int32 tensor the Warp kernels take (itself if it is one).

    Callers that render one mesh many times (``synth-flow``) convert its faces once with this,
    so each call skips the copy; the torch backend takes int32 faces as well.
    """
    if faces.dtype == torch.int32 and faces.is_contiguous():
        return faces
    return faces.to(torch.int32).contiguous()
