"""Arithmetic of the torch networks at inference: float32, or bfloat16 under ``torch.autocast``.

``PoseTransferPipeline(precision="bf16")`` (``infer --precision bf16``, ``serve --precision
bf16``) runs its networks under bfloat16 autocast: about twice as fast on CPUs with native
bfloat16 (AVX512-BF16 or AMX), images within 0.35/255 on average of float32's on the demo run
(``benchmarks/precision.py``, BENCHMARKS.md). Warping stays float32 (``ops.warp``) and every
output is cast back to float32.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Literal

import torch

from posetransfer.models.generator import GeneratorOutput

__all__ = ["PRECISIONS", "Precision", "check_precision", "float32_output", "native_bf16"]

logger = logging.getLogger(__name__)

#: Arithmetic of the torch networks: float32, or bfloat16 under ``torch.autocast``.
Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively (else autocast emulates it, slowly)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def check_precision(precision: str, device: torch.device, onnx: bool) -> Precision:
    """``precision`` if it can run on ``device`` (``onnx``: an ONNX Runtime engine runs it).

    Warns when bfloat16 would be emulated.

    Raises:
        ValueError: An unknown precision, or ``bf16`` with ONNX Runtime.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "bf16":
        if onnx:
            raise ValueError(
                "precision bf16 runs on the torch backend; the onnxruntime backend computes in "
                "float32 (use --backend torch with --precision bf16)"
            )
        if not native_bf16(device):
            logger.warning(
                "precision bf16: this %s has no native bfloat16 (AVX512-BF16 or AMX), so it "
                "is emulated and slower than fp32", device.type,
            )  # fmt: skip
    return precision


def float32_output(out: GeneratorOutput) -> GeneratorOutput:
    """``out`` with every tensor in float32 (autocast leaves bfloat16 ones)."""
    changes = {
        f.name: value.float()
        for f in dataclasses.fields(out)
        if isinstance(value := getattr(out, f.name), torch.Tensor) and value.dtype != torch.float32
    }
    return dataclasses.replace(out, **changes) if changes else out
