"""Checkpoints: safetensors weights + a ``weights_only`` state file, written atomically.

Layout under ``run_dir/checkpoints/``::

    ckpt-000100/  <module>.safetensors ...  state.pt  meta.json     # every ckpt_every steps
    ckpt-000200/  ...
    latest        "ckpt-000200"    (pointer file, replaced atomically)
    best/         <module>.safetensors ...  meta.json              # best validation metric

A checkpoint folder is filled under a hidden temporary name and renamed into place, so a crash
never leaves a half-written ``ckpt-*``. ``best/`` is swapped in with two renames (a crash between
them leaves no ``best/`` but the previous one as ``.old-best-*``). ``state.pt`` holds only
tensors and plain containers (optimiser, grad-scaler and RNG states, counters) and is read with
``torch.load(weights_only=True)``: loading a checkpoint never runs pickled code.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import safetensors.torch
import torch
from torch import nn

from posetransfer.io import atomic_write_bytes, atomic_write_text

__all__ = [
    "BEST_DIR",
    "CheckpointError",
    "CheckpointMismatchError",
    "capture_rng_state",
    "find_checkpoint",
    "list_checkpoints",
    "load_state",
    "load_weights",
    "prune_checkpoints",
    "restore_rng_state",
    "save_best",
    "save_checkpoint",
]

logger = logging.getLogger(__name__)

CKPT_PREFIX = "ckpt-"
BEST_DIR = "best"
LATEST_FILE = "latest"
STATE_FILE = "state.pt"
META_FILE = "meta.json"
WEIGHTS_SUFFIX = ".safetensors"
_CKPT_RE = re.compile(r"^ckpt-(\d+)$")
_MAX_LISTED = 10


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete or unreadable."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint's weights do not fit the modules they are loaded into."""


def checkpoint_name(step: int) -> str:
    """Folder name of the checkpoint after ``step`` steps, e.g. ``ckpt-000100``."""
    return f"{CKPT_PREFIX}{step:06d}"


# ------------------------------------------------------------------------------------------------
# Writing.


def _fill_and_rename(final: Path, fill: Any) -> None:
    """Create a temp folder next to ``final``, let ``fill(tmp)`` write into it, move it in place."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    try:
        fill(tmp)
        old = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".old-{final.name}-", dir=final.parent))
            os.rename(final, old / final.name)
        os.rename(tmp, final)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_weights(folder: Path, modules: Mapping[str, nn.Module], meta: dict[str, Any]) -> None:
    for name, module in modules.items():
        tensors = {
            k: v.detach().to("cpu", copy=True).contiguous() for k, v in _state(module).items()
        }
        data = safetensors.torch.save(tensors, metadata={"module": name, "step": str(meta["step"])})
        atomic_write_bytes(folder / f"{name}{WEIGHTS_SUFFIX}", data)
    meta = {**meta, "modules": sorted(modules)}
    atomic_write_text(folder / META_FILE, json.dumps(meta, indent=2) + "\n")


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in module.state_dict().items() if isinstance(v, torch.Tensor)}


def save_checkpoint(
    root: str | os.PathLike[str],
    step: int,
    modules: Mapping[str, nn.Module],
    state: Mapping[str, Any],
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``ckpt-<step>/`` atomically and point ``latest`` at it.

    Args:
        root: The run's ``checkpoints/`` folder.
        step: Completed optimisation steps.
        modules: Modules by name; each becomes ``<name>.safetensors``.
        state: Tensors and plain containers only (``torch.load(weights_only=True)`` must read it).
        meta: Extra JSON-serialisable facts for ``meta.json`` (step is added).

    Returns:
        The checkpoint folder.
    """
    root = Path(root)
    final = root / checkpoint_name(step)
    buffer = io.BytesIO()
    torch.save(dict(state), buffer)

    def fill(tmp: Path) -> None:
        _write_weights(tmp, modules, {**(meta or {}), "step": step})
        atomic_write_bytes(tmp / STATE_FILE, buffer.getvalue())

    _fill_and_rename(final, fill)
    atomic_write_text(root / LATEST_FILE, final.name + "\n")
    return final


def save_best(
    root: str | os.PathLike[str],
    step: int,
    modules: Mapping[str, nn.Module],
    meta: Mapping[str, Any],
) -> Path:
    """Replace ``best/`` with the weights of ``modules`` (no optimiser state) and ``meta``."""
    final = Path(root) / BEST_DIR
    _fill_and_rename(final, lambda tmp: _write_weights(tmp, modules, {**meta, "step": step}))
    return final


def list_checkpoints(root: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """Complete ``ckpt-*`` folders under ``root`` as ``(step, path)``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _CKPT_RE.match(path.name)
        if match and (path / STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def prune_checkpoints(root: str | os.PathLike[str], keep_last: int | None) -> list[Path]:
    """Delete all but the newest ``keep_last`` ``ckpt-*`` folders (None keeps all).

    Returns:
        The deleted folders.
    """
    if keep_last is None:
        return []
    if keep_last < 1:
        raise ValueError(f"keep_last must be >= 1 or None, got {keep_last}")
    doomed = [path for _, path in list_checkpoints(root)[:-keep_last]]
    for path in doomed:
        shutil.rmtree(path)
    return doomed


# ------------------------------------------------------------------------------------------------
# Finding and reading.


def find_checkpoint(
    run_dir_or_ckpt: str | os.PathLike[str], which: Literal["best", "latest"] = "latest"
) -> Path:
    """Resolve a run folder (or its ``checkpoints/``, or a checkpoint folder) to a checkpoint.

    ``latest`` follows the pointer file, falling back to the highest-step complete ``ckpt-*``
    (a crash between the folder rename and the pointer write).

    Raises:
        CheckpointError: If there is no such checkpoint.
    """
    path = Path(run_dir_or_ckpt)
    if (path / META_FILE).is_file():
        return path
    root = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    if which == "best":
        if (root / BEST_DIR / META_FILE).is_file():
            return root / BEST_DIR
        raise CheckpointError(
            f"{path}: no best checkpoint (was a validation set given?); try which='latest'"
        )
    if which != "latest":
        raise ValueError(f"which must be 'best' or 'latest', got {which!r}")
    pointer = root / LATEST_FILE
    if pointer.is_file():
        target = root / pointer.read_text(encoding="utf-8").strip()
        if (target / STATE_FILE).is_file():
            return target
        logger.warning("%s points at missing %s; using the newest checkpoint", pointer, target)
    found = list_checkpoints(root)
    if not found:
        raise CheckpointError(f"{path}: no checkpoint found (looked for {root}/ckpt-*/)")
    return found[-1][1]


def _describe_mismatch(
    expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor]
) -> list[str]:
    def clip(items: list[str]) -> str:
        more = f", ... ({len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
        return ", ".join(items[:_MAX_LISTED]) + more

    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = [
        f"{k}: checkpoint {tuple(found[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(found))
        if found[k].shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys [{clip(missing)}]")
    if unexpected:
        problems.append(f"unexpected keys [{clip(unexpected)}]")
    if shapes:
        problems.append(f"shape mismatches [{clip(shapes)}]")
    return problems


def load_module_weights(
    ckpt: str | os.PathLike[str], modules: Mapping[str, nn.Module], *, exact: bool = False
) -> None:
    """Load ``<name>.safetensors`` from checkpoint folder ``ckpt`` into each module.

    Args:
        ckpt: A checkpoint folder.
        modules: Modules by name.
        exact: Also require the checkpoint to hold no other modules (used when resuming).

    Raises:
        CheckpointMismatchError: Naming the module, and the missing, unexpected or mis-shaped keys.
    """
    ckpt = Path(ckpt)
    present = sorted(p.name.removesuffix(WEIGHTS_SUFFIX) for p in ckpt.glob(f"*{WEIGHTS_SUFFIX}"))
    absent = sorted(set(modules) - set(present))
    extra = sorted(set(present) - set(modules)) if exact else []
    if absent or extra:
        raise CheckpointMismatchError(
            f"{ckpt}: holds modules {present}, but the model has {sorted(modules)}"
        )
    for name, module in modules.items():
        path = ckpt / f"{name}{WEIGHTS_SUFFIX}"
        try:
            found = safetensors.torch.load_file(str(path), device="cpu")
        except Exception as e:
            raise CheckpointError(f"{path}: cannot read weights: {e}") from e
        problems = _describe_mismatch(_state(module), found)
        if problems:
            raise CheckpointMismatchError(
                f"{path}: weights do not fit module '{name}' (different model config?): "
                + "; ".join(problems)
            )
        module.load_state_dict(found, strict=False)  # keys checked above; extras are non-tensors


def load_weights(
    run_dir_or_ckpt: str | os.PathLike[str],
    modules: Mapping[str, nn.Module],
    which: Literal["best", "latest"] = "best",
) -> Path:
    """Load trained weights for inference or evaluation.

    Args:
        run_dir_or_ckpt: A run folder, its ``checkpoints/`` folder, or one checkpoint folder.
        modules: Modules by name (a subset of the checkpoint's is fine, e.g. only the generator).
        which: ``"best"`` (validation metric) or ``"latest"``; ignored for a checkpoint folder.

    Returns:
        The checkpoint folder that was read.
    """
    ckpt = find_checkpoint(run_dir_or_ckpt, which)
    load_module_weights(ckpt, modules)
    return ckpt


def load_state(ckpt: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``state.pt`` of checkpoint folder ``ckpt`` with ``torch.load(weights_only=True)``."""
    path = Path(ckpt) / STATE_FILE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: state file missing (not a resumable checkpoint)") from None
    except Exception as e:
        raise CheckpointError(f"{path}: cannot read training state: {e}") from e


# ------------------------------------------------------------------------------------------------
# RNG states as tensors and plain containers (weights_only-safe).


def capture_rng_state() -> dict[str, Any]:
    """The python, numpy, torch (and initialised CUDA) global RNG states."""
    # The legacy (default) form: the global RandomState is always an MT19937.
    state = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
    name, keys, pos, has_gauss, cached = state
    version, internal, gauss_next = random.getstate()
    return {
        "python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
    }


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state((npy["name"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
