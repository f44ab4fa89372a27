"""What ``make-dataset`` keeps per finished source, so that a rerun skips it.

A source (one video, or one folder's photos) is finished when ``OUT/parts/<key>.json`` exists:
written last, atomically, after the source's images and masks are in place. It holds the
source's fingerprint (the files' sizes and modification times, the identity, the settings that
change its frames) and a record of every kept and skipped frame. A rerun reuses the record when
the fingerprint matches and redoes the source otherwise. While a source is being made, its
images wait in ``OUT/parts/<key>.staging/`` (the split of a video frame is known only once the
video has been read), and move into ``OUT/<split>/`` and ``OUT/masks/<split>/`` at the end.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from posetransfer.config import to_dict
from posetransfer.infer.dataset_config import SOURCE_KEYS, MakeDatasetConfig
from posetransfer.infer.sources import Source
from posetransfer.io import atomic_write_text
from posetransfer.pose.keypoints import Pose

__all__ = [
    "PARTS_DIR",
    "FrameRecord",
    "SkipRecord",
    "SourceRecord",
    "fingerprint",
    "load_record",
    "record_path",
    "staging_dir",
    "write_record",
]

logger = logging.getLogger(__name__)

#: Folder under the dataset root holding the per-source records.
PARTS_DIR = "parts"
_VERSION = 2


@dataclass(frozen=True)
class FrameRecord:
    """A frame that became an image of the dataset.

    Attributes:
        name: Image file name.
        split: ``"train"`` or ``"test"``.
        frame: Frame index in the video, or the photo's position in its folder.
        origin: The video or photo file.
        keypoints: ``(18, 2)`` ``(col, row)`` pixel indices in the crop, ``-1`` for missing
            points (as the PATN annotation CSV holds them).
        box: The crop's box ``(left, top, right, bottom)`` in the original frame's pixels.
        track: Which stretch of the source without a jump of the person box the frame is in
            (0, 1, ...; always 0 for photos): a new track starts where the largest person
            changes from one person to another.
    """

    name: str
    split: str
    frame: int
    origin: str
    keypoints: list[list[int]]
    box: list[float]
    track: int = 0

    @property
    def pose(self) -> Pose:
        """The keypoints as a :class:`Pose` at the pixel centres (as the CSV reads back)."""
        return Pose.from_indices(np.asarray(self.keypoints, dtype=np.int64))


@dataclass(frozen=True)
class SkipRecord:
    """A frame left out, and why."""

    frame: int
    origin: str
    reason: str


@dataclass
class SourceRecord:
    """Everything a finished source contributed.

    Attributes:
        key: The source's key (prefix of its image names).
        identity: Whose frames these are.
        fingerprint: What the record was made from (:func:`fingerprint`).
        frames: Kept frames, in frame order.
        skipped: Left-out frames, in frame order.
    """

    key: str
    identity: str
    fingerprint: dict[str, Any]
    frames: list[FrameRecord] = field(default_factory=list)
    skipped: list[SkipRecord] = field(default_factory=list)


def record_path(out: Path, key: str) -> Path:
    """Where the record of source ``key`` lives."""
    return out / PARTS_DIR / f"{key}.json"


def staging_dir(out: Path, key: str) -> Path:
    """Where source ``key``'s images wait until the source is finished."""
    return out / PARTS_DIR / f"{key}.staging"


def fingerprint(cfg: MakeDatasetConfig, source: Source, split: str | None) -> dict[str, Any]:
    """What a source's record depends on: its files, identity, split and the frame settings.

    Args:
        cfg: The run's settings (only :data:`SOURCE_KEYS` count).
        source: The source.
        split: Person split: the identity's split; time split: None.

    Raises:
        FileNotFoundError: A file of the source has gone.
    """
    files = [source.path] if source.kind == "video" else list(source.photos)
    stats = []
    for path in files:
        stat = path.stat()
        stats.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    settings = {k: v for k, v in to_dict(cfg).items() if k in SOURCE_KEYS}
    return {
        "version": _VERSION,
        "kind": source.kind,
        "files": stats,
        "identity": source.identity,
        "split": split,
        "settings": settings,
    }


def write_record(out: Path, record: SourceRecord) -> None:
    """Write a source's record atomically (the source is then finished)."""
    text = json.dumps(asdict(record), indent=1, sort_keys=True)
    atomic_write_text(record_path(out, record.key), text + "\n")


def load_record(out: Path, key: str, expected: dict[str, Any]) -> SourceRecord | None:
    """The finished record of source ``key`` if it matches ``expected``, else None.

    An unreadable or malformed record counts as unfinished (logged), so the source is redone.
    """
    path = record_path(out, key)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        record = SourceRecord(
            key=data["key"],
            identity=data["identity"],
            fingerprint=data["fingerprint"],
            frames=[FrameRecord(**item) for item in data["frames"]],
            skipped=[SkipRecord(**item) for item in data["skipped"]],
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("%s: unreadable record (%s); the source is made again", path, exc)
        return None
    if record.fingerprint != json.loads(json.dumps(expected)) or record.key != key:
        logger.info("%s: inputs or settings changed; the source is made again", key)
        return None
    return record
