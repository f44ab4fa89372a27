"""Readers and writers of the original DIAF (Intr-Flow) label files: pair split and keypoints.

Same rules as :mod:`posetransfer.data.formats`: every reader validates and raises
:class:`~posetransfer.data.formats.FormatError` naming the file (and the field when known); every
writer validates first and then writes atomically. Keypoints are stored as integer pixel indices
``(col, row)``, ``-1`` for a missing point, and held as continuous
:class:`~posetransfer.pose.keypoints.Pose` coordinates in memory (pixel centres at ``index + 0.5``).

DIAF pair split (``Label/pair_split.json``)
    ``{"train": [[source, target], ...], "test": [...], "test_small": [...]}``; image ids carry no
    extension.

DIAF keypoints (``Label/pose_label.pkl``)
    A pickled dict ``id -> 18 [x, y]`` (lists, or ``(18, 2)`` numpy arrays), written by Python 2
    ``cPickle``. **x (column) comes first.** Pickles can run code, so they are read with
    :func:`posetransfer.data.safe_pickle.safe_load`, which rebuilds plain data and numpy arrays
    only and refuses every other global before it is called.
"""

from __future__ import annotations

import json
import pickle
import reprlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from posetransfer.conventions import NUM_KEYPOINTS
from posetransfer.data.formats import (
    FormatError,
    PathLike,
    check_name,
    indices_from_pose,
    parse_json,
    pose_from_indices,
    read_text,
)
from posetransfer.data.safe_pickle import ForbiddenGlobalError, safe_load
from posetransfer.io import atomic_open
from posetransfer.pose.keypoints import Pose

__all__ = ["read_pair_split", "read_pose_label", "write_pair_split", "write_pose_label"]


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
    data = parse_json(read_text(path), path)
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
        check_name(path, split, "", "split name")
        data[split] = []
        for k, pair in enumerate(pairs):
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise FormatError(
                    path, f"expected (source, target), got {pair!r}", field=f"{split}[{k}]"
                )
            data[split].append([check_name(path, s, "", f"{split}[{k}] id") for s in pair])
    with atomic_open(path, "w") as f:
        json.dump(data, f)


# ------------------------------------------------------------------------ DIAF pose_label.pkl


def is_keypoint_table(value: object) -> bool:
    """Whether ``value`` is an ``(18, 2)`` array or 18 lists/tuples of 2 numbers.

    Checked before ``np.asarray``, which would walk any nesting a pickle builds (a list holding
    the same list ten times, nine levels deep, is 10**9 numbers from a few hundred bytes).
    """
    if isinstance(value, np.ndarray):
        return value.shape == (NUM_KEYPOINTS, 2)
    return (
        isinstance(value, list | tuple)
        and len(value) == NUM_KEYPOINTS
        and all(
            isinstance(point, list | tuple)
            and len(point) == 2
            and all(isinstance(v, int | float | np.number) for v in point)
            for point in value
        )
    )


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
    except MemoryError:  # a length field larger than memory: the C unpickler allocates first
        raise FormatError(
            path, "not a valid pickle: it declares an object larger than memory"
        ) from None
    except Exception as exc:  # corrupt pickles raise many types (EOFError, UnpicklingError, ...)
        raise FormatError(path, f"not a valid pickle: {type(exc).__name__}: {exc}") from None
    if not isinstance(data, dict):
        raise FormatError(path, f"expected a dict id -> keypoints, got {type(data).__name__}")
    poses = {}
    for name, value in data.items():
        if not isinstance(name, str):
            raise FormatError(path, f"expected string ids, got {reprlib.repr(name)}")
        if not is_keypoint_table(value):
            raise FormatError(path, "expected 18 [x, y] pairs of numbers", field=name)
        indices = np.asarray(value)
        if indices.dtype.kind not in "iuf" or indices.shape != (NUM_KEYPOINTS, 2):
            raise FormatError(
                path,
                f"expected 18 [x, y] numbers, got shape {indices.shape} of dtype {indices.dtype}",
                field=name,
            )
        poses[name] = pose_from_indices(indices, path, line=None, field=name)
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
        check_name(path, name, "", "pose id"): indices_from_pose(pose, path, name).tolist()
        for name, pose in poses.items()
    }
    with atomic_open(path, "wb") as f:
        pickle.dump(data, f, protocol=2)
