"""``posetransfer make-dataset``: a PATN-layout pose-transfer dataset from videos and photo folders.

Output folder ``OUT``::

    OUT/<prefix>annotation-{train,test}.csv   keypoints in crop pixels (PATN: name: [y...]: [x...])
    OUT/<prefix>pairs-{train,test}.csv        (source, target) pairs of one identity and split
    OUT/{train,test}/<name>.png               person crops, H x W
    OUT/masks/{train,test}/<name>.png         person masks, 8-bit (probability x 255), aligned
    OUT/frames.csv                            every image: split, identity, origin, frame, box
    OUT/skipped.csv                           every frame left out, and why
    OUT/parts/<key>.json                      per-source records: a rerun skips finished sources
    OUT/config.yaml, OUT/preview.png          the settings; contact sheet (``preview``)

Steps: the inputs become sources (:func:`~posetransfer.infer.sources.collect_sources`); each
unfinished source is read, detected, cropped and split
(:func:`~posetransfer.infer.dataset_source.make_source`); then the labels of every source are
merged: pairs within each identity and split whose pose change reaches ``min_pose_change``
(:func:`~posetransfer.data.pairing.select_pairs`), the CSVs, and the preview. Image names start
with the identity and ``_`` (``posetransfer.data.splits.identity_of`` recovers it).

Resuming: every file is written atomically; a killed run leaves finished sources with their
records and the unfinished one in its staging folder, and a rerun redoes only the unfinished
and changed sources, then merges again, so it writes the same files as an uninterrupted run.
The merge removes images of ``OUT/{train,test}`` and ``OUT/masks`` that no source lists (left by
sources no longer among the inputs or made with other settings) and the records of sources no
longer among the inputs. ``OUT`` must be new, empty or an earlier ``make-dataset`` output.
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from posetransfer.config import save_config
from posetransfer.data import formats
from posetransfer.data.pairing import select_pairs
from posetransfer.data.person_masks import MASKS_DIR
from posetransfer.data.segments import person_split
from posetransfer.infer.dataset_config import PREFIXES, MakeDatasetConfig
from posetransfer.infer.dataset_parts import (
    PARTS_DIR,
    SourceRecord,
    fingerprint,
    load_record,
    record_path,
)
from posetransfer.infer.dataset_source import frames_to_read, make_source
from posetransfer.infer.sources import Source, collect_sources
from posetransfer.io import atomic_write_text
from posetransfer.pose.keypoints import Pose

__all__ = ["SPLITS", "DatasetSummary", "make_dataset"]

logger = logging.getLogger(__name__)

SPLITS = ("train", "test")
FRAMES_HEADER = ("name", "split", "identity", "origin", "frame", "track", "left", "top", "right",
                 "bottom")  # fmt: skip
SKIPPED_HEADER = ("origin", "frame", "identity", "reason")


@dataclass
class DatasetSummary:
    """What a ``make-dataset`` run produced.

    Attributes:
        out: The dataset folder.
        sources: Number of sources (videos and photo folders).
        reused: Sources whose finished records were reused.
        images: Split -> number of images.
        pairs: Split -> number of pairs.
        identities: Split -> number of identities with at least one image.
        skipped: Reason -> number of frames left out.
        seconds: Wall time of the run.
    """

    out: Path
    sources: int = 0
    reused: int = 0
    images: dict[str, int] = field(default_factory=dict)
    pairs: dict[str, int] = field(default_factory=dict)
    identities: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def describe(self) -> str:
        """One line for the command's output."""
        split = ", ".join(
            f"{s}: {self.images.get(s, 0)} images of {self.identities.get(s, 0)} "
            f"identities, {self.pairs.get(s, 0)} pairs"
            for s in SPLITS
        )
        skipped = sum(self.skipped.values())
        reused = f" ({self.reused} reused)" if self.reused else ""
        return (f"make-dataset: {self.sources} source(s){reused} -> {self.out}: {split}; "
                f"{skipped} frame(s) skipped (skipped.csv); {self.seconds:.1f} s")  # fmt: skip


def make_dataset(cfg: MakeDatasetConfig, *, progress: bool = False) -> DatasetSummary:
    """Make (or finish) the dataset described by ``cfg`` in ``cfg.out``.

    Args:
        cfg: Settings; ``cfg.out`` and ``cfg.inputs`` are required.
        progress: Show a progress bar over the frames (when stderr is a terminal).

    Returns:
        The summary.

    Raises:
        ValueError: Missing inputs or out, an ``OUT`` holding something else, bad identities,
            a person split with fewer than two identities, unreadable videos (names the file).
        FileNotFoundError: A missing input.
        PoseBackendMissingError: MediaPipe is not installed.
    """
    start = time.perf_counter()
    if cfg.out is None:
        raise ValueError("the following arguments are required: --out")
    out = Path(cfg.out)
    sources = collect_sources(cfg.inputs, cfg.identities)
    _check_out(out)
    splits = (
        person_split([s.identity for s in sources], cfg.test_fraction, cfg.test_identities)
        if cfg.split == "person"
        else None
    )
    if splits is None and cfg.test_identities:
        raise ValueError("test_identities needs the person split (--split person)")
    records: list[SourceRecord] = []
    reused = 0
    plans = []
    for source in sources:
        split = None if splits is None else splits[source.identity]
        expected = fingerprint(cfg, source, split)
        record = load_record(out, source.key, expected)
        plans.append((source, split, expected, record))
    total = sum(frames_to_read(s, cfg) for s, _, _, r in plans if r is None)
    bar = tqdm(total=total, unit="frame", desc="make-dataset", disable=not progress or total < 10)
    with bar:
        for source, split, expected, record in plans:
            if record is None:
                record = make_source(out, cfg, source, expected, split, bar)
            else:
                reused += 1
                logger.info("%s: finished before, reused", source.key)
            records.append(record)
    summary = _merge(out, cfg, sources, records)
    summary.reused = reused
    summary.seconds = time.perf_counter() - start
    return summary


def _check_out(out: Path) -> None:
    """Refuse an ``OUT`` that exists, is not empty and was not made by ``make-dataset``."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: --out must be a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / PARTS_DIR).is_dir():
        raise ValueError(
            f"{out} is not empty and was not made by make-dataset (no {PARTS_DIR}/ folder); "
            "choose a new or empty folder"
        )
    (out / PARTS_DIR).mkdir(parents=True, exist_ok=True)


def _merge(
    out: Path, cfg: MakeDatasetConfig, sources: list[Source], records: list[SourceRecord]
) -> DatasetSummary:
    """Write the labels of every source, remove what no source lists, write the preview."""
    summary = DatasetSummary(out, sources=len(sources))
    skipped: Counter[str] = Counter()
    frame_rows, skip_rows = [], []
    for record in sorted(records, key=lambda r: r.key):
        for frame in record.frames:
            box = [f"{v:.3f}" for v in frame.box]
            frame_rows.append(
                [frame.name, frame.split, record.identity, frame.origin, frame.frame, frame.track,
                 *box]
            )  # fmt: skip
        for skip in record.skipped:
            skip_rows.append([skip.origin, skip.frame, record.identity, skip.reason])
            skipped[_category(skip.reason)] += 1
    for split in SPLITS:
        poses: dict[str, Pose] = {}
        groups: dict[str, list[str]] = {}
        tracks: dict[str, tuple[str, int]] = {}
        for record in records:
            for frame in record.frames:
                if frame.split == split:
                    poses[frame.name] = frame.pose
                    groups.setdefault(record.identity, []).append(frame.name)
                    tracks[frame.name] = (record.key, frame.track)
        pairs = select_pairs(poses, groups, cfg.pair_rule, tracks)
        formats.write_annotation_csv(
            out / f"{cfg.prefix}annotation-{split}.csv", dict(sorted(poses.items()))
        )
        formats.write_pairs_csv(out / f"{cfg.prefix}pairs-{split}.csv", pairs)
        (out / split).mkdir(exist_ok=True)
        _remove_unlisted(out / split, set(poses))
        _remove_unlisted(out / MASKS_DIR / split, set(poses))
        summary.images[split] = len(poses)
        summary.pairs[split] = len(pairs)
        summary.identities[split] = len(groups)
    for other in PREFIXES:  # labels written under another prefix by an earlier run
        if other != cfg.prefix:
            for split, kind in itertools.product(SPLITS, ("annotation", "pairs")):
                (out / f"{other}{kind}-{split}.csv").unlink(missing_ok=True)
    _write_csv(out / "frames.csv", FRAMES_HEADER, sorted(frame_rows))
    _write_csv(out / "skipped.csv", SKIPPED_HEADER, skip_rows)
    _remove_stale_records(out, {s.key for s in sources})
    save_config(cfg, out / "config.yaml")
    summary.skipped = dict(sorted(skipped.items()))
    if cfg.preview:
        from posetransfer.infer.dataset_preview import write_preview

        write_preview(out, out / "preview.png", rows=cfg.preview_pairs, prefix=cfg.prefix)
    if not any(summary.images.values()):
        logger.warning("no frame of any input showed a person: the dataset is empty")
    return summary


def _write_csv(path: Path, header: tuple[str, ...], rows: list[list]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def _remove_unlisted(folder: Path, names: set[str]) -> None:
    """Delete ``*.png`` files of ``folder`` that are not in ``names`` (images of old runs)."""
    if not folder.is_dir():
        return
    stale = sorted(p for p in folder.iterdir() if p.suffix == ".png" and p.name not in names)
    for path in stale:
        path.unlink()
    if stale:
        logger.info("%s: removed %d image(s) no source lists any more", folder, len(stale))


def _remove_stale_records(out: Path, keys: set[str]) -> None:
    """Delete records and staging folders of sources that are no longer among the inputs."""
    for path in sorted((out / PARTS_DIR).iterdir()):
        key = path.name.removesuffix(".json").removesuffix(".staging")
        if key in keys and path == record_path(out, key):
            continue
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
        logger.info("removed %s (not among the inputs any more)", path)


def _category(reason: str) -> str:
    """A skip reason without its particulars, for the summary's counts."""
    if "keypoints in the crop" in reason:
        return "few keypoints"
    return "unreadable" if reason.startswith("unreadable") else reason
