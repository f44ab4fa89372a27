"""Checkpoints: safetensors weights + a ``weights_only`` state file, written atomically.

Layout under ``run_dir/checkpoints/``::

    ckpt-000100/  <module>.safetensors ...  state.pt(.sha256)  meta.json  # every ckpt_every
    ckpt-000200/  ...
    latest        "ckpt-000200"    (pointer file, replaced atomically)
    best/         <module>.safetensors ...  meta.json              # best validation metric

A checkpoint folder is filled under a hidden temporary name and renamed into place, so a crash
never leaves a half-written ``ckpt-*``. ``best/`` is swapped in with two renames (a crash between
them leaves the previous one as ``.old-best-*``, which a rerun moves back). ``state.pt`` holds only
tensors and plain containers (optimiser, grad-scaler and RNG states, counters) and is read with
``torch.load(weights_only=True)``: loading a checkpoint never runs pickled code.

Checksums (SHA-256), so a damaged file is an error naming it, never a silently wrong model:
each ``.safetensors`` file carries ``sha256`` in its metadata (over every tensor's name, dtype,
shape and bytes and the other metadata) and ``meta_checksum``, the ``checksum`` that
``meta.json`` holds over its own other keys; ``state.pt.sha256`` holds the hash of ``state.pt``
(kept out of ``meta.json``: ``state.pt`` records timings, and every other file is the same
byte for byte when a run is repeated). Checkpoints written before these were added have none and
load unchecked.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import safetensors.torch
import torch
from torch import nn

from posetransfer.io import atomic_write_bytes, atomic_write_text, temporary_owner
from posetransfer.train.checksums import meta_checksum, stable_safetensors, tensors_digest
from posetransfer.train.rng_state import capture_rng_state, restore_rng_state

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
    "read_meta",
    "repoint_latest",
    "restore_rng_state",
    "save_best",
    "save_checkpoint",
]

logger = logging.getLogger(__name__)

CKPT_PREFIX = "ckpt-"
BEST_DIR = "best"
LATEST_FILE = "latest"
STATE_FILE = "state.pt"
STATE_CHECKSUM_FILE = "state.pt.sha256"
META_FILE = "meta.json"
WEIGHTS_SUFFIX = ".safetensors"
_CKPT_RE = re.compile(r"^ckpt-(\d+)$")
_MAX_LISTED = 10


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete, unreadable or corrupt."""


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
    owner = temporary_owner()  # a crashed swap's folders are found by remove_stale_temporaries
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-{owner}-", dir=final.parent))
    try:
        fill(tmp)
        old = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".old-{final.name}-{owner}-", dir=final.parent))
            os.rename(final, old / final.name)
        os.rename(tmp, final)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_weights(folder: Path, modules: Mapping[str, nn.Module], meta: dict[str, Any]) -> None:
    meta = {**meta, "modules": sorted(modules)}
    meta["checksum"] = meta_checksum(meta)
    for name, module in modules.items():
        tensors = {
            k: v.detach().to("cpu", copy=True).contiguous() for k, v in _state(module).items()
        }
        # The weights also carry meta.json's checksum: a flip in meta.json's "checksum" key
        # would otherwise pass it off as an older, unchecked file.
        metadata = {"module": name, "step": str(meta["step"]), "meta_checksum": meta["checksum"]}
        metadata["sha256"] = tensors_digest(tensors, metadata)
        data = stable_safetensors(safetensors.torch.save(tensors, metadata=metadata))
        atomic_write_bytes(folder / f"{name}{WEIGHTS_SUFFIX}", data)
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

    state_bytes = buffer.getvalue()
    state_sha256 = hashlib.sha256(state_bytes).hexdigest()

    def fill(tmp: Path) -> None:
        _write_weights(tmp, modules, {**(meta or {}), "step": step})
        atomic_write_bytes(tmp / STATE_FILE, state_bytes)
        atomic_write_text(tmp / STATE_CHECKSUM_FILE, state_sha256 + "\n")

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


def repoint_latest(root: str | os.PathLike[str]) -> None:
    """Point ``latest`` at the newest complete checkpoint if it names another one (a run that
    stopped between a checkpoint's rename and the pointer's update: killed, or a full disk)."""
    found = list_checkpoints(root)
    pointer = Path(root) / LATEST_FILE
    if found and (
        not pointer.is_file() or pointer.read_bytes() != f"{found[-1][1].name}\n".encode()
    ):
        atomic_write_text(pointer, found[-1][1].name + "\n")


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
    found = list_checkpoints(root)
    if not found:
        raise CheckpointError(f"{path}: no checkpoint found (looked for {root}/ckpt-*/)")
    pointer = root / LATEST_FILE
    named = pointer.read_bytes().decode("utf-8", "replace").strip() if pointer.is_file() else None
    if named is not None and named != found[-1][1].name:
        # A crash between a checkpoint's rename and the pointer's update, or a damaged pointer:
        # every complete ckpt-* folder is whole (renamed into place), so the newest one is right.
        shown = named if len(named) <= 40 else named[:40] + "..."
        logger.warning("%s names %r; using the newest checkpoint %s", pointer, shown, found[-1][1])
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
            with safetensors.safe_open(str(path), "pt", device="cpu") as weights:
                metadata = weights.metadata() or {}
                found = {key: weights.get_tensor(key) for key in weights.keys()}  # noqa: SIM118
        except Exception as e:
            raise CheckpointError(f"{path}: cannot read weights: {e}") from e
        if "sha256" in metadata and metadata["sha256"] != tensors_digest(found, metadata):
            raise CheckpointError(f"{path}: checksum mismatch: the weights file is corrupt")
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


def read_meta(ckpt: str | os.PathLike[str]) -> dict[str, Any]:
    """``meta.json`` of checkpoint folder ``ckpt``, its checksum checked when it has one.

    Raises:
        CheckpointError: A missing, unreadable or corrupt file, or one without an integer step.
    """
    path = Path(ckpt) / META_FILE
    try:
        meta = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing (not a checkpoint folder)") from None
    except (ValueError, RecursionError) as e:  # also UnicodeDecodeError
        raise CheckpointError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(meta, dict) or type(meta.get("step")) is not int:
        raise CheckpointError(f"{path}: expected a JSON object with an integer 'step'")
    recorded = set()
    for weights in Path(ckpt).glob(f"*{WEIGHTS_SUFFIX}"):
        try:
            with safetensors.safe_open(str(weights), "pt") as f:
                recorded.add((f.metadata() or {}).get("meta_checksum"))
        except Exception:  # reported by load_module_weights, which reads the file
            continue
    recorded.discard(None)
    checksum = meta.get("checksum")
    if checksum is not None and checksum != meta_checksum(meta):
        raise CheckpointError(f"{path}: checksum mismatch: the file is corrupt")
    if recorded and checksum not in recorded:
        raise CheckpointError(f"{path}: not the meta.json its weights record: the file is corrupt")
    return meta


def load_state(ckpt: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``state.pt`` of checkpoint folder ``ckpt`` with ``torch.load(weights_only=True)``.

    Its SHA-256 is checked against ``state.pt.sha256`` when the checkpoint has one.
    """
    path = Path(ckpt) / STATE_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: state file missing (not a resumable checkpoint)") from None
    recorded = Path(ckpt) / STATE_CHECKSUM_FILE
    if (
        recorded.is_file()
        and recorded.read_bytes().strip() != hashlib.sha256(data).hexdigest().encode()
    ):
        raise CheckpointError(f"{path}: checksum mismatch (see {recorded.name}): it is corrupt")
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: cannot read training state: {e}") from e
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a dict of training state, got {type(state)}")
    return state
