"""Reading what ``synth-flow`` fits: keypoint files, record by record when a record is bad.

Keypoint files are read by the strict readers of :mod:`posetransfer.data.formats` first. When
they refuse a file because of single records (NaN or negative coordinates, a malformed row, a
name listed twice with different keypoints), it is read again record by record: good records are
kept and each bad one gets a reason ``"<category>: <detail>"`` that ends up in the manifest.
The images themselves are checked by :func:`posetransfer.synth.flow_fits.check_image`.
"""

from __future__ import annotations

import json
import logging
import reprlib
from pathlib import Path

import numpy as np

from posetransfer.conventions import NUM_KEYPOINTS
from posetransfer.data.diaf_formats import is_keypoint_table, read_pose_label
from posetransfer.data.formats import ANNOTATION_HEADER, FormatError, read_annotation_csv
from posetransfer.data.safe_pickle import safe_load
from posetransfer.pose.keypoints import Pose

__all__ = ["read_keypoints"]

logger = logging.getLogger(__name__)


def _number_list(text: str) -> np.ndarray:
    try:
        values = json.loads(text)
    except (ValueError, RecursionError):  # bad syntax, a huge integer, deep nesting
        values = None
    if not isinstance(values, list) or len(values) != NUM_KEYPOINTS:
        raise ValueError(f"expected a list of {NUM_KEYPOINTS} numbers, got {text.strip()[:60]!r}")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise ValueError(f"expected numbers, got {text.strip()[:60]!r}")
    try:
        return np.asarray(values, dtype=np.float64)
    except OverflowError:  # an integer beyond float64
        raise ValueError(f"a number is out of range in {text.strip()[:60]!r}") from None


def _pose_or_reason(indices: np.ndarray) -> Pose | str:
    """A pose from ``(18, 2)`` (col, row) indices, or why it is not one."""
    if not np.isfinite(indices).all():
        return "NaN in keypoints: a coordinate is NaN or infinite"
    try:
        return Pose.from_indices(indices)
    except ValueError as exc:
        return f"invalid keypoints: {exc}"


def _resolve_records(
    records: dict[str, list[tuple[int, Pose | str]]], path: Path
) -> tuple[dict[str, Pose], dict[str, str]]:
    """Poses of names read once (or several times with equal keypoints); problems otherwise."""
    poses: dict[str, Pose] = {}
    problems: dict[str, str] = {}
    for name, recs in records.items():
        values = [value for _, value in recs]
        first = values[0]
        if isinstance(first, Pose) and all(v == first for v in values[1:]):
            poses[name] = first
        elif len(recs) > 1:
            lines = ", ".join(str(number) for number, _ in recs)
            problems[name] = (
                f"duplicate name: {name!r} is on lines {lines} of {path} with different keypoints"
            )
        else:
            problems[name] = f"{first} ({path}, line {recs[0][0]})"
    return poses, problems


def _annotations_by_record(path: Path) -> tuple[dict[str, Pose], dict[str, str], list[str]]:
    """Tolerant twin of ``read_annotation_csv``: ``(poses, problems by name, unattributed)``."""
    text = path.read_text(encoding="utf-8-sig")
    lines = [(n, s) for n, s in enumerate(text.splitlines(), start=1) if s.strip()]
    if not lines or tuple(f.strip() for f in lines[0][1].split(":")) != ANNOTATION_HEADER:
        raise FormatError(path, f"missing header {':'.join(ANNOTATION_HEADER)!r}", line=1)
    records: dict[str, list[tuple[int, Pose | str]]] = {}
    unattributed: list[str] = []
    for number, row in lines[1:]:
        fields = row.split(":")
        name = fields[0].strip()
        if len(fields) != 3 or not name:
            unattributed.append(f"{path}, line {number}: malformed row {row[:60]!r}")
            continue
        try:
            ys, xs = _number_list(fields[1]), _number_list(fields[2])
            value: Pose | str = _pose_or_reason(np.stack([xs, ys], axis=1))
        except ValueError as exc:
            value = f"invalid keypoints: {exc}"
        records.setdefault(name, []).append((number, value))
    poses, problems = _resolve_records(records, path)
    return poses, problems, unattributed


def _pose_label_by_record(path: Path) -> tuple[dict[str, Pose], dict[str, str], list[str]]:
    """Tolerant twin of ``read_pose_label``: ``(poses, problems by name, unattributed)``."""
    with path.open("rb") as f:
        data = safe_load(f)
    poses: dict[str, Pose] = {}
    problems: dict[str, str] = {}
    unattributed: list[str] = []
    for name, value in data.items():
        if not isinstance(name, str):
            unattributed.append(f"{path}: id {reprlib.repr(name)} is not a string")
            continue
        try:
            indices = np.asarray(value if is_keypoint_table(value) else (), dtype=np.float64)
        except (ValueError, TypeError, OverflowError):
            indices = np.zeros(0)
        if indices.shape != (NUM_KEYPOINTS, 2):
            problems[name] = f"invalid keypoints: expected 18 [x, y] numbers in {path}"
            continue
        pose = _pose_or_reason(indices)
        if isinstance(pose, Pose):
            poses[name] = pose
        else:
            problems[name] = f"{pose} ({path})"
    return poses, problems, unattributed


def read_keypoints(path: Path, layout: str) -> tuple[dict[str, Pose], dict[str, str], list[str]]:
    """Read a keypoint file, strictly if possible, else record by record.

    Args:
        path: PATN annotation CSV or DIAF ``pose_label.pkl``.
        layout: ``"patn"`` or ``"diaf"``.

    Returns:
        Name -> pose of the good records; name -> reason of the bad ones; problems tied to no
        name (a malformed row).

    Raises:
        FormatError: The file as a whole is unusable (missing, wrong header, corrupt pickle).
    """
    strict, tolerant = (
        (read_annotation_csv, _annotations_by_record)
        if layout == "patn"
        else (read_pose_label, _pose_label_by_record)
    )
    try:
        return strict(path), {}, []
    except FormatError as exc:
        if exc.line is None and exc.field is None:
            raise  # the file as a whole is unusable
        logger.warning("%s; reading the file record by record and skipping bad records", exc)
        return tolerant(path)
