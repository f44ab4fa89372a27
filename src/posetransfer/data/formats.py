"""The label formats' shared rules (:class:`FormatError`, checks) and the PATN/GFLA CSV files.

Every reader validates what it reads and raises :class:`FormatError` naming the file, and the line
and field when known. Every writer validates first and then writes atomically (temporary file +
rename, :func:`posetransfer.io.atomic_open`), so a failed write leaves an older file untouched.

Keypoints
    Files store integer pixel indices ``(col, row)`` with ``-1`` for a missing point; in memory
    :class:`~posetransfer.pose.keypoints.Pose` holds continuous coordinates with pixel centres at
    ``index + 0.5``. Readers go through :meth:`Pose.from_indices`, writers through
    :meth:`Pose.to_indices` (``floor(xy)``).

PATN/GFLA pair list (``*-pairs-{train,test}.csv``)
    Comma separated, header ``from,to``, one ``source,target`` pair of file names (with extension)
    per row. A leading pandas index column and extra trailing columns are tolerated on read.

PATN/GFLA annotations (``*-annotation-{train,test}.csv``)
    Colon separated, header ``name:keypoints_y:keypoints_x``; each row is
    ``<file>: [y0, ..., y17]: [x0, ..., x17]`` (written with ``"%s: %s: %s"``). **Rows (y) come
    first.** The lists hold 18 integers, ``-1`` marking a missing point.

DIAF pair split and keypoints (``Label/pair_split.json``, ``Label/pose_label.pkl``)
    In :mod:`posetransfer.data.diaf_formats`, on the same :class:`FormatError` and helpers.

Flow files
    The original ``.corr`` and our ``.npz`` store live in :mod:`posetransfer.data.flow_files`;
    dataset discovery in :mod:`posetransfer.data.layout`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from posetransfer.conventions import NUM_KEYPOINTS
from posetransfer.io import PathLike, atomic_open
from posetransfer.pose.keypoints import Pose

__all__ = [
    "FormatError",
    "parse_json",
    "read_annotation_csv",
    "read_pairs_csv",
    "write_annotation_csv",
    "write_pairs_csv",
]


ANNOTATION_HEADER = ("name", "keypoints_y", "keypoints_x")

#: Largest pixel index a keypoint file may hold: 2**24, the last integer float32 holds exactly.
MAX_COORDINATE = 1 << 24
PAIRS_HEADER = ("from", "to")


class FormatError(ValueError):
    """A file (or data about to be written to it) does not follow its format.

    Attributes:
        path: The file.
        line: 1-based line number, when the format is line based and the line is known.
        field: The column, key or item that is wrong, when known.
    """

    def __init__(
        self, path: PathLike, message: str, *, line: int | None = None, field: str | None = None
    ) -> None:
        self.path = Path(path)
        self.line = line
        self.field = field
        where = [str(self.path)]
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}")


def read_text(path: Path) -> str:
    """The text of a UTF-8 file (a BOM is dropped); a missing or binary file is a FormatError."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise FormatError(path, "file not found") from None
    except UnicodeDecodeError as exc:
        raise FormatError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def parse_json(
    text: str, path: PathLike, *, line: int | None = None, field: str | None = None
) -> Any:
    """``json.loads(text)``; any failure (syntax, nesting too deep, an integer of thousands of
    digits) is a FormatError naming the place."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = exc.lineno if line is None else line
        raise FormatError(path, f"invalid JSON: {exc.msg}", line=where, field=field) from None
    except (ValueError, RecursionError) as exc:  # int_max_str_digits; nesting beyond the stack
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise FormatError(path, f"invalid JSON: {reason}", line=line, field=field) from None


def pose_from_indices(ij_xy: Any, path: Path, *, line: int | None, field: str) -> Pose:
    """:meth:`Pose.from_indices`, its ValueError raised as a FormatError naming the place."""
    try:
        return Pose.from_indices(ij_xy)
    except ValueError as exc:
        raise FormatError(path, str(exc), line=line, field=field) from None


def indices_from_pose(pose: Pose, path: Path, name: str) -> np.ndarray:
    """:meth:`Pose.to_indices` of a value about to be written to ``path`` under ``name``."""
    if not isinstance(pose, Pose):
        raise FormatError(path, f"expected a Pose, got {type(pose).__name__}", field=name)
    try:
        return pose.to_indices()
    except ValueError as exc:
        raise FormatError(path, str(exc), field=name) from None


def check_name(path: Path, name: Any, forbidden: str, what: str) -> str:
    """``name`` if it is a stripped, non-empty string without ``forbidden`` characters/newlines."""
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise FormatError(
            path, f"{what} {name!r} must be a non-empty string without surrounding whitespace"
        )
    bad = [c for c in forbidden + "\n\r" if c in name]
    if bad:
        raise FormatError(
            path, f"{what} {name!r} contains {bad[0]!r}, which the format cannot hold"
        )
    return name


# ------------------------------------------------------------------------------ PATN pairs csv


def read_pairs_csv(path: PathLike) -> list[tuple[str, str]]:
    """Read a PATN/GFLA pair list.

    Args:
        path: ``*-pairs-<split>.csv``: header ``from,to``, then ``source,target`` rows.

    Returns:
        ``(source, target)`` file names exactly as in the file (surrounding spaces removed).

    Raises:
        FormatError: Missing header, a row with the wrong number of fields or an empty name.
    """
    path = Path(path)
    reader = csv.reader(read_text(path).splitlines())
    try:
        rows = [
            (number, [field.strip() for field in row])
            for number, row in enumerate(reader, start=1)
            if any(field.strip() for field in row)
        ]
    except csv.Error as exc:  # a field over csv.field_size_limit(), a stray quote, ...
        raise FormatError(path, f"not a valid CSV line: {exc}", line=reader.line_num) from None
    if not rows or "from" not in rows[0][1] or "to" not in rows[0][1]:
        got = rows[0][1] if rows else "an empty file"
        line = rows[0][0] if rows else 1
        raise FormatError(path, f"missing header 'from,to', got {got!r}", line=line)
    header = rows[0][1]
    src_col, tgt_col = header.index("from"), header.index("to")
    pairs = []
    for number, row in rows[1:]:
        if len(row) != len(header):
            raise FormatError(
                path, f"expected {len(header)} comma-separated fields, got {len(row)}", line=number
            )
        for col in (src_col, tgt_col):
            if not row[col]:
                raise FormatError(path, "empty file name", line=number, field=header[col])
        pairs.append((row[src_col], row[tgt_col]))
    return pairs


def write_pairs_csv(path: PathLike, pairs: Iterable[tuple[str, str]]) -> None:
    """Write a PATN/GFLA pair list (header ``from,to``) atomically.

    Args:
        path: Destination ``.csv``.
        pairs: ``(source, target)`` file names; they may not contain commas, quotes or newlines.

    Raises:
        FormatError: A pair that is not two valid names (nothing is written).
    """
    path = Path(path)
    items = list(pairs)
    for k, pair in enumerate(items):
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise FormatError(path, f"pair {k} is {pair!r}, expected (source, target)")
        for name in pair:
            check_name(path, name, ',"', f"pair {k} name")
    with atomic_open(path, "w") as f:
        f.write(",".join(PAIRS_HEADER) + "\n")
        f.writelines(f"{src},{tgt}\n" for src, tgt in items)


# ------------------------------------------------------------------------ PATN annotation csv


def _parse_coordinate_list(text: str, path: Path, line: int, field: str) -> list[float]:
    try:
        values = json.loads(text)
    except (ValueError, RecursionError):  # bad syntax, a huge integer, nesting beyond the stack
        values = None
    if not isinstance(values, list):
        raise FormatError(
            path, f"expected a list like [12, -1, ...], got {text[:60]!r}", line=line, field=field
        )
    if len(values) != NUM_KEYPOINTS:
        raise FormatError(
            path, f"expected {NUM_KEYPOINTS} values, got {len(values)}", line=line, field=field
        )
    for k, value in enumerate(values):
        number = not isinstance(value, bool) and isinstance(value, int | float)
        if not (number and (0 <= value <= MAX_COORDINATE or value == -1)):  # NaN fails too
            shown = repr(value) if len(repr(value)) < 40 else f"{repr(value)[:20]}..."
            raise FormatError(
                path,
                f"value {k} is {shown}, not a pixel coordinate "
                f"(0 to {MAX_COORDINATE}, or -1 if missing)",
                line=line,
                field=field,
            )
    return values


def read_annotation_csv(path: PathLike) -> dict[str, Pose]:
    """Read a PATN/GFLA keypoint file.

    Args:
        path: ``*-annotation-<split>.csv``: header ``name:keypoints_y:keypoints_x``, then rows
            ``<file>: [y0, ..., y17]: [x0, ..., x17]`` (rows first; -1 = missing).

    Returns:
        File name (with extension) -> pose, pixel centres at ``index + 0.5``.

    Raises:
        FormatError: Missing header, malformed row, wrong number of values, a value that is not
            a pixel index, or a name seen twice. The message names the line and field.
    """
    path = Path(path)
    lines = [(n, s) for n, s in enumerate(read_text(path).splitlines(), start=1) if s.strip()]
    if not lines or tuple(f.strip() for f in lines[0][1].split(":")) != ANNOTATION_HEADER:
        got = lines[0][1][:80] if lines else "an empty file"
        raise FormatError(
            path,
            f"missing header {':'.join(ANNOTATION_HEADER)!r}, got {got!r}",
            line=lines[0][0] if lines else 1,
        )
    poses: dict[str, Pose] = {}
    first_line: dict[str, int] = {}
    for number, text in lines[1:]:
        fields = text.split(":")
        if len(fields) != 3:
            raise FormatError(
                path,
                f"expected 3 colon-separated fields "
                f"{':'.join(ANNOTATION_HEADER)}, got {len(fields)}",
                line=number,
            )
        name = fields[0].strip()
        if not name:
            raise FormatError(path, "empty name", line=number, field="name")
        if name in poses:
            raise FormatError(
                path,
                f"duplicate name {name!r} (first on line {first_line[name]})",
                line=number,
                field="name",
            )
        ys = _parse_coordinate_list(fields[1].strip(), path, number, "keypoints_y")
        xs = _parse_coordinate_list(fields[2].strip(), path, number, "keypoints_x")
        xy = np.stack([np.asarray(xs, np.float64), np.asarray(ys, np.float64)], axis=1)
        poses[name] = pose_from_indices(xy, path, line=number, field="keypoints_y/keypoints_x")
        first_line[name] = number
    return poses


def write_annotation_csv(path: PathLike, poses: Mapping[str, Pose]) -> None:
    """Write a PATN/GFLA keypoint file atomically, in the original ``"%s: %s: %s"`` style.

    Args:
        path: Destination ``.csv``.
        poses: File name -> pose; valid points are written as ``floor(xy)``, missing ones as -1.

    Raises:
        FormatError: A name with ``:`` or a newline, or a valid point left of / above the image.
    """
    path = Path(path)
    rows = []
    for name, pose in poses.items():
        check_name(path, name, ":", "pose name")
        indices = indices_from_pose(pose, path, name)
        rows.append(
            f"{name}: {json.dumps(indices[:, 1].tolist())}: {json.dumps(indices[:, 0].tolist())}\n"
        )
    with atomic_open(path, "w") as f:
        f.write(":".join(ANNOTATION_HEADER) + "\n")
        f.writelines(rows)
