"""Readers and writers for every on-disk format: pair lists, keypoints and flows.

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

DIAF pair split (``Label/pair_split.json``)
    ``{"train": [[source, target], ...], "test": [...], "test_small": [...]}``; image ids carry no
    extension.

DIAF keypoints (``Label/pose_label.pkl``)
    A pickled dict ``id -> 18 [x, y]`` (lists, or ``(18, 2)`` numpy arrays), written by Python 2
    ``cPickle``. **x (column) comes first.** Pickles can run code, so they are read with
    :func:`posetransfer.data.safe_pickle.safe_load`, which rebuilds plain data and numpy arrays
    only and refuses every other global before it is called.

Flow files
    The original ``.corr`` and our ``.npz`` store live in :mod:`posetransfer.data.flow_files`;
    dataset discovery in :mod:`posetransfer.data.layout`.
"""

from __future__ import annotations

import csv
import json
import math
import pickle
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from posetransfer.conventions import NUM_KEYPOINTS
from posetransfer.data.safe_pickle import ForbiddenGlobalError, safe_load
from posetransfer.io import atomic_open
from posetransfer.pose.keypoints import Pose

__all__ = [
    "FormatError",
    "read_annotation_csv",
    "read_pair_split",
    "read_pairs_csv",
    "read_pose_label",
    "write_annotation_csv",
    "write_pair_split",
    "write_pairs_csv",
    "write_pose_label",
]

PathLike = str | Path

ANNOTATION_HEADER = ("name", "keypoints_y", "keypoints_x")
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


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise FormatError(path, "file not found") from None
    except UnicodeDecodeError as exc:
        raise FormatError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _pose_from_indices(ij_xy: Any, path: Path, *, line: int | None, field: str) -> Pose:
    try:
        return Pose.from_indices(ij_xy)
    except ValueError as exc:
        raise FormatError(path, str(exc), line=line, field=field) from None


def _indices_from_pose(pose: Pose, path: Path, name: str) -> np.ndarray:
    if not isinstance(pose, Pose):
        raise FormatError(path, f"expected a Pose, got {type(pose).__name__}", field=name)
    try:
        return pose.to_indices()
    except ValueError as exc:
        raise FormatError(path, str(exc), field=name) from None


def _check_name(path: Path, name: Any, forbidden: str, what: str) -> str:
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
    rows = [
        (number, [field.strip() for field in row])
        for number, row in enumerate(csv.reader(_read_text(path).splitlines()), start=1)
        if any(field.strip() for field in row)
    ]
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
            _check_name(path, name, ',"', f"pair {k} name")
    with atomic_open(path, "w") as f:
        f.write(",".join(PAIRS_HEADER) + "\n")
        f.writelines(f"{src},{tgt}\n" for src, tgt in items)


# ------------------------------------------------------------------------ PATN annotation csv


def _parse_coordinate_list(text: str, path: Path, line: int, field: str) -> list[float]:
    try:
        values = json.loads(text)
    except json.JSONDecodeError:
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
        if not (number and math.isfinite(value) and (value >= 0 or value == -1)):
            raise FormatError(
                path,
                f"value {k} is {value!r}, not a pixel coordinate (>= 0, or -1 if missing)",
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
    lines = [(n, s) for n, s in enumerate(_read_text(path).splitlines(), start=1) if s.strip()]
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
        poses[name] = _pose_from_indices(xy, path, line=number, field="keypoints_y/keypoints_x")
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
        _check_name(path, name, ":", "pose name")
        indices = _indices_from_pose(pose, path, name)
        rows.append(
            f"{name}: {json.dumps(indices[:, 1].tolist())}: {json.dumps(indices[:, 0].tolist())}\n"
        )
    with atomic_open(path, "w") as f:
        f.write(":".join(ANNOTATION_HEADER) + "\n")
        f.writelines(rows)


# ---------------------------------------------------------------------- DIAF pair_split.json


def read_pair_split(path: PathLike) -> dict[str, list[tuple[str, str]]]:
    """Read the original ``Label/pair_split.json``.

    Args:
        path: JSON dict ``split -> [[source, target], ...]``.

    Returns:
        Split name -> list of ``(source, target)`` image ids.

    Raises:
        FormatError: Invalid JSON (with its line) or a structure other than the one above.
    """
    path = Path(path)
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise FormatError(path, f"invalid JSON: {exc.msg}", line=exc.lineno) from None
    if not isinstance(data, dict):
        raise FormatError(path, f"expected a JSON object of splits, got {type(data).__name__}")
    splits: dict[str, list[tuple[str, str]]] = {}
    for split, items in data.items():
        if not isinstance(items, list):
            raise FormatError(
                path, f"expected a list of pairs, got {type(items).__name__}", field=split
            )
        for k, item in enumerate(items):
            if not (
                isinstance(item, list)
                and len(item) == 2
                and all(isinstance(s, str) and s for s in item)
            ):
                raise FormatError(
                    path, f"expected [source, target] ids, got {item!r}", field=f"{split}[{k}]"
                )
        splits[split] = [(src, tgt) for src, tgt in items]
    return splits


def write_pair_split(path: PathLike, splits: Mapping[str, Sequence[tuple[str, str]]]) -> None:
    """Write ``Label/pair_split.json`` atomically.

    Args:
        path: Destination ``.json``.
        splits: Split name -> ``(source, target)`` image ids.

    Raises:
        FormatError: A split name or pair that is not made of non-empty strings.
    """
    path = Path(path)
    data: dict[str, list[list[str]]] = {}
    for split, pairs in splits.items():
        _check_name(path, split, "", "split name")
        data[split] = []
        for k, pair in enumerate(pairs):
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise FormatError(
                    path, f"expected (source, target), got {pair!r}", field=f"{split}[{k}]"
                )
            data[split].append([_check_name(path, s, "", f"{split}[{k}] id") for s in pair])
    with atomic_open(path, "w") as f:
        json.dump(data, f)


# ------------------------------------------------------------------------ DIAF pose_label.pkl


def read_pose_label(path: PathLike) -> dict[str, Pose]:
    """Read the original ``Label/pose_label.pkl`` with a restricted unpickler.

    Args:
        path: Pickled dict ``id -> 18 [x, y]`` (lists or ``(18, 2)`` arrays; -1 = missing).

    Returns:
        Image id -> pose, pixel centres at ``index + 0.5``.

    Raises:
        FormatError: A forbidden global (never called), a corrupt pickle, or a structure other than
            a dict of 18x2 pixel indices.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = safe_load(f)
    except FileNotFoundError:
        raise FormatError(path, "file not found") from None
    except ForbiddenGlobalError as exc:
        raise FormatError(
            path,
            f"refusing to load global {exc.module}.{exc.name}: a keypoint pickle may hold only "
            "plain data and numpy arrays",
        ) from None
    except Exception as exc:  # corrupt pickles raise many types (EOFError, UnpicklingError, ...)
        raise FormatError(path, f"not a valid pickle: {type(exc).__name__}: {exc}") from None
    if not isinstance(data, dict):
        raise FormatError(path, f"expected a dict id -> keypoints, got {type(data).__name__}")
    poses = {}
    for name, value in data.items():
        if not isinstance(name, str):
            raise FormatError(path, f"expected string ids, got {name!r}")
        try:
            indices = np.asarray(value)
        except ValueError:  # ragged nested lists
            raise FormatError(path, "expected 18 [x, y] pairs", field=name) from None
        if indices.dtype.kind not in "iuf" or indices.shape != (NUM_KEYPOINTS, 2):
            raise FormatError(
                path,
                f"expected 18 [x, y] numbers, got shape {indices.shape} of dtype {indices.dtype}",
                field=name,
            )
        poses[name] = _pose_from_indices(indices, path, line=None, field=name)
    return poses


def write_pose_label(path: PathLike, poses: Mapping[str, Pose]) -> None:
    """Write ``Label/pose_label.pkl`` atomically (pickle protocol 2, readable by Python 2).

    Args:
        path: Destination ``.pkl``.
        poses: Image id -> pose; stored as 18 ``[x, y]`` int lists, ``[-1, -1]`` when missing.

    Raises:
        FormatError: A bad id or a valid point left of / above the image.
    """
    path = Path(path)
    data = {
        _check_name(path, name, "", "pose id"): _indices_from_pose(pose, path, name).tolist()
        for name, pose in poses.items()
    }
    with atomic_open(path, "wb") as f:
        pickle.dump(data, f, protocol=2)
