"""Flow files: the original ``.corr`` correspondence format and our compressed ``.npz`` store.

Both hold, for one (source, target) pair, the backward flow target -> source in pixels
(``(H, W, 2)``, channels ``(dx, dy)``, 0 on background) and the per-pixel
:class:`~posetransfer.conventions.Visibility` codes ``(H, W)``. Files are named
``<target>_<source>.<ext>`` (:func:`flow_filename`, the original order). Readers raise
:class:`~posetransfer.data.formats.FormatError` naming the file; writers validate first and write
atomically.

Original ``.corr`` (``3d/hmr/corr/<target>_<source>.corr``)
    Little-endian, no magic: int32 W, int32 H, then ``H*W*2`` float32 *absolute* source coordinates
    ``(x, y)`` for each target pixel (row-major, channels last), then ``H*W`` uint8 visibility
    codes. Coordinates use the pixel-index convention (pixel ``(i, j)`` sits at ``x=j, y=i``), so
    the flow is ``corr - (j, i)``; the 0.5 offsets of pixel centres cancel in the difference.
    Background pixels hold arbitrary coordinates: their flow reads as 0 and is written as
    ``corr = (j, i)``. Our writer appends an 8-byte trailer, ``b"PTC1"`` and the CRC-32 (uint32)
    of everything before it, which the reader checks, so a damaged file is an error rather than
    a wrong flow; files without it (the original's) are read unchecked. The original reader
    reads fixed counts after the header and ignores the trailer.

Our ``.npz`` store (``<target>_<source>.npz``)
    ``np.savez_compressed`` with exactly two arrays: ``flow`` ``(H, W, 2)`` float16 and
    ``visibility`` ``(H, W)`` uint8. float16 keeps 11 significant bits, so the rounding error is at
    most half the spacing of representable values: the spacing is 0.0625 px on [64, 128), 0.125 px
    on [128, 256) and 0.25 px on [256, 512), giving errors <= 0.03125, 0.0625 and 0.125 px (below
    1/2048 of the magnitude in general). Magnitudes beyond 65504 do not fit and are refused.
    Written with zlib level 1 (:data:`FLOW_COMPRESSLEVEL`): at 256x176 that halves the 2.2 ms of
    compression per file for 6 % more bytes (32 vs 30 KiB), which suits a store written once per
    pair by ``synth-flow``; any zip reader (``np.load``) reads every level.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any, Literal

import numpy as np

from posetransfer.conventions import Visibility
from posetransfer.data.formats import FormatError, PathLike
from posetransfer.io import atomic_open, write_npz

__all__ = ["flow_filename", "read_any_flow", "read_corr", "read_flow", "write_corr", "write_flow"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
MAX_CORR_SIDE = 1 << 15
CORR_TRAILER_MAGIC = b"PTC1"
CORR_TRAILER_SIZE = 8
FLOAT16_MAX = float(np.finfo(np.float16).max)
#: zlib level of our ``.npz`` flow files (module docstring).
FLOW_COMPRESSLEVEL = 1


def _check_flow(path: Path, flow: Any, visibility: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate a flow/visibility pair; return float32 flow (0 on background) and uint8 codes."""
    flow, visibility = np.asarray(flow), np.asarray(visibility)
    if flow.ndim != 3 or flow.shape[2] != 2 or flow.dtype.kind != "f":
        raise FormatError(
            path, f"flow must be float (H, W, 2), got {flow.shape} {flow.dtype}", field="flow"
        )
    if visibility.shape != flow.shape[:2] or visibility.dtype.kind not in "iu":
        raise FormatError(
            path,
            f"visibility must be integer {flow.shape[:2]}, got "
            f"{visibility.shape} {visibility.dtype}",
            field="visibility",
        )
    if min(flow.shape[:2]) < 1:
        raise FormatError(path, f"empty image of size {flow.shape[:2]}", field="flow")
    if visibility.min() < 0 or visibility.max() > max(Visibility):
        raise FormatError(
            path,
            f"visibility codes must be in {[int(v) for v in Visibility]}, "
            f"found {np.unique(visibility).tolist()}",
            field="visibility",
        )
    background = visibility == Visibility.BACKGROUND
    # the per-pixel test only when some value is not finite (it is 60x slower than this one)
    bad = ~np.isfinite(flow).all(axis=2) & ~background if not np.isfinite(flow).all() else None
    if bad is not None and bad.any():
        i, j = np.argwhere(bad)[0]
        raise FormatError(
            path,
            f"{int(bad.sum())} non-background pixels have non-finite flow, "
            f"first at row {i}, col {j}",
            field="flow",
        )
    flow = np.where(background[..., None], 0.0, flow).astype(np.float32)
    return flow, visibility.astype(np.uint8)


def _pixel_grid(height: int, width: int) -> np.ndarray:
    """``(H, W, 2)`` float32 pixel indices ``(x=j, y=i)``."""
    i, j = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return np.stack([j, i], axis=-1).astype(np.float32)


def read_corr(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read an original ``.corr`` correspondence file.

    Args:
        path: ``<target>_<source>.corr`` (see the module docstring for the layout).

    Returns:
        ``flow`` ``(H, W, 2)`` float32 ``(dx, dy)`` target -> source pixels (0 on background) and
        ``visibility`` ``(H, W)`` uint8 codes.

    Raises:
        FormatError: Truncated or oversized file, implausible size, a checksum that does not
            match, unknown visibility code or a non-finite coordinate on a body pixel.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FormatError(path, "file not found") from None
    if len(raw) < 8:
        raise FormatError(path, f"truncated: {len(raw)} bytes, the header alone needs 8")
    width, height = (int(v) for v in np.frombuffer(raw, "<i4", count=2))
    if not (0 < width <= MAX_CORR_SIDE and 0 < height <= MAX_CORR_SIDE):
        raise FormatError(
            path,
            f"implausible image size W={width}, H={height} in the header "
            f"(expected 1..{MAX_CORR_SIDE})",
        )
    n = width * height
    expected = 8 + 8 * n + n
    if len(raw) not in (expected, expected + CORR_TRAILER_SIZE):
        raise FormatError(
            path,
            f"expected {expected} bytes for W={width}, H={height} "
            f"(8 header + {8 * n} coordinates + {n} visibility, then an optional "
            f"{CORR_TRAILER_SIZE}-byte checksum), got {len(raw)}",
        )
    if len(raw) > expected:
        magic, crc = raw[expected : expected + 4], raw[expected + 4 :]
        if magic != CORR_TRAILER_MAGIC:
            raise FormatError(path, f"unknown {CORR_TRAILER_SIZE}-byte trailer {raw[expected:]!r}")
        if zlib.crc32(raw[:expected]) != int.from_bytes(crc, "little"):
            raise FormatError(path, "checksum mismatch: the file is corrupt")
    corr = np.frombuffer(raw, "<f4", count=2 * n, offset=8).reshape(height, width, 2)
    visibility = np.frombuffer(raw, np.uint8, count=n, offset=8 + 8 * n).reshape(height, width)
    return _check_flow(path, corr - _pixel_grid(height, width), visibility)


def write_corr(path: PathLike, flow: np.ndarray, visibility: np.ndarray) -> None:
    """Write an original-format ``.corr`` file atomically, with a checksum trailer.

    Args:
        path: Destination, usually ``flow_filename(source, target, "corr")``.
        flow: ``(H, W, 2)`` float ``(dx, dy)`` target -> source pixels.
        visibility: ``(H, W)`` integer Visibility codes; background pixels store zero flow.

    Raises:
        FormatError: Wrong shapes or dtypes, unknown codes or non-finite flow on the body.
    """
    path = Path(path)
    flow, visibility = _check_flow(path, flow, visibility)
    height, width = visibility.shape
    corr = (_pixel_grid(height, width) + flow).astype("<f4")
    body = np.array([width, height], "<i4").tobytes() + corr.tobytes() + visibility.tobytes()
    with atomic_open(path, "wb") as f:
        f.write(body)
        f.write(CORR_TRAILER_MAGIC + zlib.crc32(body).to_bytes(4, "little"))


def read_flow(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read our ``.npz`` flow store.

    Args:
        path: File holding exactly ``flow`` ``(H, W, 2)`` float16 and ``visibility`` ``(H, W)``
            uint8.

    Returns:
        ``flow`` ``(H, W, 2)`` float32 (0 on background) and ``visibility`` ``(H, W)`` uint8.

    Raises:
        FormatError: Not an npz archive, wrong keys, shapes, dtypes or codes.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = sorted(archive.files)
            if keys != ["flow", "visibility"]:
                raise FormatError(path, f"expected arrays ['flow', 'visibility'], found {keys}")
            flow, visibility = archive["flow"], archive["visibility"]
    except FileNotFoundError:
        raise FormatError(path, "file not found") from None
    except FormatError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, ValueError (pickled object arrays), ...
        raise FormatError(
            path, f"not a readable npz archive: {type(exc).__name__}: {exc}"
        ) from None
    return _check_flow(path, flow, visibility)


def write_flow(path: PathLike, flow: np.ndarray, visibility: np.ndarray) -> None:
    """Write our ``.npz`` flow store atomically (float16 flow, see the module docstring).

    Args:
        path: Destination, usually ``flow_filename(source, target)``.
        flow: ``(H, W, 2)`` float ``(dx, dy)`` target -> source pixels; forced to 0 on background.
        visibility: ``(H, W)`` integer Visibility codes.

    Raises:
        FormatError: Wrong shapes or dtypes, unknown codes, non-finite flow or flow beyond the
            float16 range (+-65504).
    """
    path = Path(path)
    flow, visibility = _check_flow(path, flow, visibility)
    peak = float(np.abs(flow).max())
    if peak > FLOAT16_MAX:
        raise FormatError(
            path, f"flow magnitude {peak:g} exceeds the float16 range {FLOAT16_MAX:g}", field="flow"
        )
    with atomic_open(path, "wb") as f:
        write_npz(f, FLOW_COMPRESSLEVEL, flow=flow.astype(np.float16), visibility=visibility)


def read_any_flow(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a ``.npz`` or ``.corr`` flow file, chosen by suffix; returns ``(flow, visibility)``."""
    path = Path(path)
    readers = {".npz": read_flow, ".corr": read_corr}
    if path.suffix not in readers:
        raise FormatError(path, f"unknown flow file type {path.suffix!r}; expected .npz or .corr")
    return readers[path.suffix](path)


def flow_filename(source: str, target: str, fmt: Literal["npz", "corr"] = "npz") -> str:
    """Name of the flow file of a pair, in the original ``<target>_<source>`` order.

    Args:
        source: Source image name or id (an image extension is dropped).
        target: Target image name or id.
        fmt: ``"npz"`` (our store) or ``"corr"`` (original).

    Returns:
        ``f"{stem(target)}_{stem(source)}.{fmt}"``.

    Raises:
        ValueError: An unknown ``fmt``, or a name that is empty or holds a path separator.
    """
    if fmt not in ("npz", "corr"):
        raise ValueError(f"fmt must be 'npz' or 'corr', got {fmt!r}")
    stems = []
    for name in (target, source):
        if not name or "/" in name or "\\" in name:
            raise ValueError(f"image name {name!r} must be a non-empty file name without folders")
        lower = name.lower()
        ext = next((e for e in IMAGE_EXTENSIONS if lower.endswith(e)), "")
        stems.append(name[: len(name) - len(ext)])
    return f"{stems[0]}_{stems[1]}.{fmt}"
