"""Atomic file writes: a write either completes or leaves the old file (or nothing) in place."""

from __future__ import annotations

import contextlib
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_text", "write_npz"]


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to ``path`` and rename it over ``path`` on success.

    The temporary file lives in the same folder (so the rename is atomic on POSIX) and is
    removed if the body raises, so a crash or a bad value never leaves a half-written file.

    Args:
        path: Final destination. Parent folders are created.
        mode: ``"wb"`` or ``"w"`` (text, UTF-8).

    Yields:
        The open temporary file.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open supports modes 'wb' and 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w") as f:
        f.write(text)


def write_npz(file: IO[bytes], **arrays: np.ndarray) -> None:
    """Write arrays as a compressed ``.npz`` whose bytes depend only on the arrays.

    ``np.savez_compressed`` stamps each member with the current time, so two runs that compute
    the same arrays write different files. This writes the same format (``np.load`` reads it)
    with a fixed member timestamp, so reruns and shards can be compared byte for byte.

    Args:
        file: A binary file open for writing (e.g. from :func:`atomic_open`).
        **arrays: Arrays by member name (stored as ``<name>.npy``).
    """
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w") as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
