"""One source of ``make-dataset``: frames -> detections -> person crops, masks and a record.

:func:`make_source` reads a video (every ``K``-th frame, tracked from frame to frame with
:func:`~posetransfer.infer.detect.detect_sequence`) or a folder's photos (each detected on its
own), keeps the largest person of each frame (numbering the video's *tracks*: a new track
starts where the person box jumps, overlapping the previous kept frame's box less than
``track_iou``, as when the largest person changes from one person to another), crops the
person box (at the aspect of the crop size, margin included) to ``H x W`` and crops the
detector's segmentation mask through the same :class:`~posetransfer.infer.framing.Frame`, so
mask and image stay pixel-aligned. Keypoints are moved into crop pixels; points outside the crop
become missing.

Frames are left out, each with a reason in the record: no person found, an unreadable photo,
fewer than ``min_keypoints`` valid keypoints in the crop, or (time split) a frame in the gap
before the test segment. The images wait in the source's staging folder until every frame has
been seen, then move to ``OUT/<split>/`` and ``OUT/masks/<split>/``
(:mod:`posetransfer.infer.dataset_parts`).
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from posetransfer.data.person_masks import mask_path, mask_to_uint8, write_mask
from posetransfer.data.segments import Segment, time_segments
from posetransfer.infer.dataset_config import MakeDatasetConfig
from posetransfer.infer.dataset_parts import (
    FrameRecord,
    SkipRecord,
    SourceRecord,
    staging_dir,
    write_record,
)
from posetransfer.infer.detect import Detection, PoseDetector, detect_sequence
from posetransfer.infer.images import ImageInputError, load_image
from posetransfer.infer.sources import Source
from posetransfer.infer.video import iter_frames, video_info
from posetransfer.io import save_png

__all__ = ["GAP_REASON", "NO_PERSON", "box_iou", "crop_person", "frames_to_read", "make_source"]

logger = logging.getLogger(__name__)

NO_PERSON = "no person found"
GAP_REASON = "in the gap before the test segment"

#: ``(frame index, image or None, detection or None, reason when there is no image)``.
_Item = tuple[int, np.ndarray | None, Detection | None, str | None]


def frames_to_read(source: Source, cfg: MakeDatasetConfig) -> int:
    """How many frames of ``source`` will be looked at (for the progress bar)."""
    if source.kind == "photos":
        return len(source.photos)
    count = -(-video_info(source.path).frame_count // cfg.every)
    return count if cfg.max_frames is None else min(count, cfg.max_frames)


def crop_person(
    image: np.ndarray, detection: Detection, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, FrameRecord]:
    """The person's crop, its mask and keypoints, cropped by one frame.

    Args:
        image: ``(H, W, 3)`` uint8, the image ``detection`` was found in.
        detection: The person.
        size: ``(h, w)`` of the crop, at the aspect of the detection's box.

    Returns:
        ``(crop, mask, record)``: ``(h, w, 3)`` uint8 crop; ``(h, w)`` uint8 mask (person
        probability x 255, resampled exactly like the crop); a :class:`FrameRecord` with the
        keypoints in crop pixels and the box (name, split, frame and origin left blank).
    """
    frame = detection.frame(size)
    crop = frame.crop(image)
    full = mask_to_uint8(detection.mask)
    mask = frame.crop(np.broadcast_to(full[..., None], (*full.shape, 3)))[..., 0]
    pose = frame.to_frame(detection.pose, drop_outside=True)
    record = FrameRecord("", "", -1, "", pose.to_indices().tolist(), list(frame.box))
    return crop, np.ascontiguousarray(mask), record


def make_source(
    out: Path, cfg: MakeDatasetConfig, source: Source, fingerprint: dict, split: str | None,
    bar: tqdm | None = None,
) -> SourceRecord:  # fmt: skip
    """Make one source's images, masks and record (written last).

    Args:
        out: The dataset folder.
        cfg: Settings.
        source: The video or photo folder.
        fingerprint: Stored in the record (:func:`~posetransfer.infer.dataset_parts.fingerprint`).
        split: Person split: every frame's split; time split: None (decided per frame).
        bar: Progress bar, advanced once per frame read.

    Returns:
        The record.

    Raises:
        VideoInputError: A video that cannot be read (names the file and frame).
        PoseBackendMissingError: MediaPipe is not installed.
    """
    staging = staging_dir(out, source.key)
    shutil.rmtree(staging, ignore_errors=True)
    indices: list[int] = []
    kept: list[FrameRecord] = []
    skipped: list[SkipRecord] = []
    for index, image, detection, reason in _detections(source, cfg):
        indices.append(index)
        if bar is not None:
            bar.update()
        origin = source.frame_label(index)
        if image is None or detection is None:
            skipped.append(SkipRecord(index, origin, reason or NO_PERSON))
            continue
        crop, mask, record = crop_person(image, detection, cfg.size)
        valid = sum(k[0] >= 0 for k in record.keypoints)
        if valid < cfg.min_keypoints:
            why = f"{valid} keypoints in the crop, fewer than min_keypoints={cfg.min_keypoints}"
            skipped.append(SkipRecord(index, origin, why))
            continue
        name = source.frame_name(index)
        save_png(staging / "images" / name, crop)
        write_mask(staging / "masks" / name, mask)
        kept.append(FrameRecord(name, "", index, origin, record.keypoints, record.box))
    tracks = _tracks([item.box for item in kept], cfg.track_iou if source.kind == "video" else 0)
    segments = _segments(source, cfg, indices, split)
    frames: list[FrameRecord] = []
    for item, track in zip(kept, tracks, strict=True):
        segment = segments[item.frame]
        images, masks = staging / "images" / item.name, staging / "masks" / item.name
        if segment == "gap":
            skipped.append(SkipRecord(item.frame, item.origin, GAP_REASON))
            continue
        os.replace(images, _placed(out / segment / item.name))
        os.replace(masks, _placed(mask_path(out, segment, item.name)))
        frames.append(FrameRecord(item.name, segment, item.frame, item.origin, item.keypoints,
                                  item.box, track))  # fmt: skip
    shutil.rmtree(staging, ignore_errors=True)
    skipped.sort(key=lambda s: s.frame)
    result = SourceRecord(source.key, source.identity, fingerprint, frames, skipped)
    write_record(out, result)
    _log(source, result, len(indices))
    return result


def _segments(
    source: Source, cfg: MakeDatasetConfig, indices: list[int], split: str | None
) -> dict[int, Segment]:
    """Frame index -> segment: the identity's split, or the time split of this sequence."""
    if split is not None:
        return dict.fromkeys(indices, "test" if split == "test" else "train")
    gap = cfg.gap if source.kind == "video" else 0
    return dict(zip(indices, time_segments(indices, cfg.test_fraction, gap), strict=True))


def _tracks(boxes: list[list[float]], min_iou: float) -> list[int]:
    """Track number of each kept frame: a new track where the box overlaps the last one less.

    Args:
        boxes: The person boxes ``(left, top, right, bottom)`` of the kept frames, in order.
        min_iou: Least intersection over union of consecutive boxes within a track; 0 makes
            one track.
    """
    tracks, track = [], 0
    for k, box in enumerate(boxes):
        if k and box_iou(boxes[k - 1], box) < min_iou:
            track += 1
        tracks.append(track)
    return tracks


def box_iou(a: list[float], b: list[float]) -> float:
    """Intersection over union of two boxes ``(left, top, right, bottom)``."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(width, 0.0) * max(height, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _placed(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _detections(source: Source, cfg: MakeDatasetConfig) -> Iterator[_Item]:
    """Every frame looked at, with its image and the largest person (or why there is none)."""
    if source.kind == "video":
        fps = video_info(source.path).fps / cfg.every
        frames = iter_frames(source.path, every=cfg.every, max_frames=cfg.max_frames)
        pairs, images = itertools.tee(frames)
        found = detect_sequence((f for _, f in images), cfg.detector, fps=fps,
                                name=str(source.path))  # fmt: skip
        for (index, image), detection in zip(pairs, found, strict=True):
            yield index, image, detection, None
        return
    crowded = 0
    with PoseDetector(cfg.detector) as detector:
        for index, photo in enumerate(source.photos):
            try:
                image = load_image(photo, max_pixels=None)
            except ImageInputError as exc:
                logger.warning("%s", exc)
                yield index, None, None, f"unreadable: {exc}"
                continue
            people = detector.detect_all(image, str(photo))
            crowded += len(people) > 1
            yield index, image, people[0] if people else None, None
    if crowded:
        logger.warning("%s: %d photo(s) showed several people; used the largest",
                       source.path, crowded)  # fmt: skip


def _log(source: Source, record: SourceRecord, looked_at: int) -> None:
    counts = {s: sum(f.split == s for f in record.frames) for s in ("train", "test")}
    gap = sum(s.reason == GAP_REASON for s in record.skipped)
    logger.info(
        "%s (%s): %d frame(s) looked at: %d train, %d test, %d in the gap, %d other skipped",
        source.key, source.path, looked_at, counts["train"], counts["test"], gap,
        len(record.skipped) - gap,
    )  # fmt: skip
