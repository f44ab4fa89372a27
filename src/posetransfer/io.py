"""Atomic file writes: a write either completes or leaves the old file (or nothing) in place.

A write goes to a hidden temporary file next to its destination, named after the writing
process (``.<name>.<pid>@<host>.<random>.tmp``), and is renamed over the destination once
complete. A process killed mid-write (``kill -9``, power loss) leaves that temporary file;
:func:`remove_stale_temporaries`, which the resumable commands call on their output folders when
they start, deletes the ones whose process is gone, and never another live writer's (two shards
may write to one folder). Temporary files of other hosts are left alone.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import socket
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np
import torch
from PIL import Image

__all__ = [
    "PathLike",
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_rgb",
    "read_npz",
    "remove_stale_temporaries",
    "save_png",
    "temporary_owner",
    "tensor_to_uint8",
    "uint8_to_tensor",
    "write_npz",
]

#: A file or folder argument: a ``str`` or any ``os.PathLike`` (``pathlib.Path``).
PathLike = str | os.PathLike[str]


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
    prefix = f".{path.name}.{temporary_owner()}."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding="utf-8" if mode == "w" else None) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if exc.filename is None and exc.errno is not None:  # a failed write (disk full, quota)
            raise OSError(exc.errno, exc.strerror, str(path)) from exc  # names no file: name it
        raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def temporary_owner() -> str:
    """``<pid>@<host>``: the part of a temporary name that says which process writes it."""
    host = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname().split(".")[0])[:40]
    return f"{os.getpid()}@{host or 'localhost'}"


#: Temporary files of :func:`atomic_open`: ``.<name>.<pid>@<host>.<random>.tmp``.
_TEMPORARY_FILE = re.compile(r"^\..+\.(?P<pid>\d+)@(?P<host>[\w-]+)\.\w+\.tmp$")
#: Folders of checkpoint swaps: ``.tmp-<name>-<pid>@<host>-<random>`` (and ``.old-``).
_TEMPORARY_DIR = re.compile(r"^\.(?:tmp|old)-(?P<folder>.+)-(?P<pid>\d+)@(?P<host>[\w-]+)-\w+$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(
    folder: str | os.PathLike[str], *, recursive: bool = True
) -> list[Path]:
    """Delete temporary files and folders in ``folder`` left by processes that are gone.

    A checkpoint swap killed between its two renames leaves the previous checkpoint in
    ``.old-<name>-...``: it is moved back when ``<name>`` is missing.

    Args:
        folder: The folder (a missing one holds nothing).
        recursive: Also look in its subfolders.

    Returns:
        What was removed.
    """
    removed = []
    host = temporary_owner().split("@", 1)[1]
    for root, dirs, files in os.walk(folder):
        for name, pattern in [(n, _TEMPORARY_FILE) for n in files] + [
            (n, _TEMPORARY_DIR) for n in dirs
        ]:
            match = pattern.match(name)
            if not match or match["host"] != host or _alive(int(match["pid"])):
                continue
            path = Path(root) / name
            if pattern is _TEMPORARY_DIR:
                kept, final = path / match["folder"], Path(root) / match["folder"]
                if name.startswith(".old-") and kept.is_dir() and not final.exists():
                    os.rename(kept, final)  # the swap was killed between its two renames
                shutil.rmtree(path, ignore_errors=True)
                dirs.remove(name)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            removed.append(path)
        if not recursive:
            break
    return removed


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w") as f:
        f.write(text)


def write_npz(file: IO[bytes], compresslevel: int | None = None, /, **arrays: np.ndarray) -> None:
    """Write arrays as a compressed ``.npz`` whose bytes depend only on the arrays.

    ``np.savez_compressed`` stamps each member with the current time, so two runs that compute
    the same arrays write different files. This writes the same format (``np.load`` reads it)
    with a fixed member timestamp, so reruns and shards can be compared byte for byte.

    Args:
        file: A binary file open for writing (e.g. from :func:`atomic_open`).
        compresslevel: zlib level 1 (fastest) to 9; None is zlib's default (6), as numpy's.
        **arrays: Arrays by member name (stored as ``<name>.npy``).
    """
    with zipfile.ZipFile(
        file, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=compresslevel
    ) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            # a ZipInfo given to open() keeps its own level (None: zlib's default), not the
            # archive's; ``_compresslevel`` is the attribute (public as compress_level in 3.13)
            info._compresslevel = compresslevel  # type: ignore[attr-defined]
            with archive.open(info, "w") as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


#: The ``.npy`` header numpy writes for a plain array: ``{'descr': ..., 'fortran_order': False,
#: 'shape': (...), }`` padded with spaces; anything else goes to numpy's own parser.
_NPY_HEADER = re.compile(
    r"\{'descr': '([<>|=]?[a-zA-Z][0-9]*)', 'fortran_order': False, "
    r"'shape': \(((?:[0-9]+, )*(?:[0-9]+,?)?)\), \} *\n"
)
_NPY_MAGIC = b"\x93NUMPY\x01\x00"


def read_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file (no pickles), as ``np.load`` gives them, ~2x faster.

    ``np.load`` parses each member's ``.npy`` header with ``ast.literal_eval``, most of the time
    spent reading a small file of many arrays (a body fit: 10). This reads the archive once and
    parses the plain version-1.0 header numpy writes for C-ordered arrays with one anchored
    pattern; any other member (Fortran order, other header versions or layouts, object dtypes)
    is read by ``np.lib.format.read_array`` with ``allow_pickle=False``. Member checksums are
    verified as ``np.load`` does (by ``zipfile``).

    Args:
        path: The file.

    Returns:
        Member name without ``.npy`` -> array (writable, C-ordered). Every member must be an
        ``.npy`` array (``np.load`` would hand other members back as bytes).

    Raises:
        OSError: The file cannot be read.
        ValueError: Not a zip archive, a damaged member, or a member that is not a valid array.
    """
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                name = info.filename.removesuffix(".npy")
                arrays[name] = _read_npy(archive.read(info))
    except (OSError, MemoryError):
        raise
    except Exception as err:  # BadZipFile, zlib.error, NotImplementedError (method), ValueError
        why = f"{type(err).__name__}: {err}"
        raise ValueError(f"{path}: not a readable npz archive: {why}") from err
    return arrays


def _read_npy(data: bytes) -> np.ndarray:
    """One ``.npy`` member's array (see :func:`read_npz`)."""
    if data[:8] == _NPY_MAGIC and len(data) >= 10:
        end = 10 + int.from_bytes(data[8:10], "little")
        match = _NPY_HEADER.fullmatch(data[10:end].decode("latin1"))
        if match is not None:
            dtype = np.dtype(match[1])
            shape = tuple(int(n) for n in match[2].split(",") if n.strip())
            count = int(np.prod(shape, dtype=np.int64))
            plain = not dtype.hasobject and dtype.itemsize > 0
            if plain and len(data) - end == count * dtype.itemsize:
                return np.frombuffer(data, dtype, count, end).reshape(shape).copy()
    return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)


def check_rgb(image: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``image`` is an ``(H, W, 3)`` uint8 array."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = image.shape if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"{name} must be an (H, W, 3) uint8 array, got shape {shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8, got dtype {image.dtype}")


def save_png(path: str | os.PathLike[str], image: np.ndarray) -> None:
    """Write an ``(H, W, 3)`` uint8 image as PNG, atomically (parent folders are created).

    Args:
        path: Destination file.
        image: ``(H, W, 3)`` uint8 RGB array.
    """
    check_rgb(image, "image")
    with atomic_open(path, "wb") as f:
        Image.fromarray(image).save(f, format="PNG")


def tensor_to_uint8(img: torch.Tensor) -> np.ndarray:
    """Convert a model image to a displayable array: ``round((v + 1) * 127.5)`` clipped to uint8.

    Args:
        img: ``(3, H, W)`` float tensor in ``[-1, 1]`` (values outside are clipped).

    Returns:
        ``(H, W, 3)`` uint8 array.
    """
    if not isinstance(img, torch.Tensor) or img.ndim != 3 or img.shape[0] != 3:
        shape = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
        raise ValueError(f"img must be a (3, H, W) tensor, got img.shape={shape}")
    if not img.is_floating_point():
        raise ValueError(f"img must be floating point in [-1, 1], got img.dtype={img.dtype}")
    values = ((img.detach().float() + 1.0) * 127.5).round().clamp(0, 255)
    return values.to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def uint8_to_tensor(img: np.ndarray) -> torch.Tensor:
    """Convert an ``(H, W, 3)`` uint8 image to a model image ``v / 127.5 - 1``.

    Args:
        img: ``(H, W, 3)`` uint8 array.

    Returns:
        ``(3, H, W)`` float32 tensor in ``[-1, 1]``; :func:`tensor_to_uint8` inverts it exactly.
    """
    check_rgb(img, "img")
    img = np.require(img, requirements=["C", "W"])  # a read-only array (PIL's) is copied
    return torch.from_numpy(img).permute(2, 0, 1).float() / 127.5 - 1.0
