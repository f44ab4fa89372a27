"""Check that a model config fits a checkpoint before building the model.

A damaged or hostile ``config.yaml`` (one inserted digit: 8888 channels instead of 8) would make
the networks take gigabytes before loading their weights reported the mismatch.
:func:`check_shapes` builds them on PyTorch's ``meta`` device, which allocates nothing, and
compares every parameter's and buffer's shape with the tensor headers of the checkpoint's
``.safetensors`` files (read without their data).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import safetensors
import torch
from torch import nn

from posetransfer.train.checkpoint import WEIGHTS_SUFFIX, CheckpointError, CheckpointMismatchError

__all__ = ["check_shapes"]

_MAX_LISTED = 5


def check_shapes(
    ckpt: str | os.PathLike[str], builders: Mapping[str, Callable[[], nn.Module | None]]
) -> None:
    """Build each module on the meta device and compare its shapes with ``ckpt``'s weights.

    Args:
        ckpt: A checkpoint folder.
        builders: Module name -> a function building that module (called on the meta device;
            it may return None for no module).
            A module that cannot be built there, or whose weights file is missing, is left to
            the real build and :func:`~posetransfer.train.checkpoint.load_module_weights`.

    Raises:
        CheckpointMismatchError: A shape differs (names the file and the first keys).
        CheckpointError: A weights file whose header cannot be read.
    """
    for name, build in builders.items():
        path = Path(ckpt) / f"{name}{WEIGHTS_SUFFIX}"
        if not path.is_file():
            continue
        try:
            with torch.device("meta"):
                module = build()
        except Exception:  # not buildable without memory: the real build reports its errors
            continue
        if module is None:
            continue
        try:
            with safetensors.safe_open(str(path), "pt") as weights:
                found = {k: tuple(weights.get_slice(k).get_shape()) for k in weights.keys()}  # noqa: SIM118
        except Exception as e:
            raise CheckpointError(f"{path}: cannot read weights: {e}") from e
        expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        wrong = [
            f"{k}: checkpoint {found[k]} vs model {shape}"
            for k, shape in expected.items()
            if k in found and found[k] != shape
        ]
        if wrong:
            more = f", ... ({len(wrong) - _MAX_LISTED} more)" if len(wrong) > _MAX_LISTED else ""
            raise CheckpointMismatchError(
                f"{path}: weights do not fit module '{name}' (different model config?): "
                f"shape mismatches [{', '.join(wrong[:_MAX_LISTED])}{more}]"
            )
