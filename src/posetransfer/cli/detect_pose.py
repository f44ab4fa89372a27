"""``posetransfer detect-pose``: 18 keypoints (and person crops) from photos and videos.

``posetransfer detect-pose INPUT... --out ANNOTATIONS.csv [--crops DIR --size HxW] [--every K]
[--person N]``. Inputs are image files, folders (their image files, sorted by name) and videos
(every ``K``-th frame, tracked from frame to frame). The keypoints go to a PATN annotation CSV:

- without ``--crops``: one row per image, named by the image's file name, keypoints in the
  original image's pixels (video frames: ``STEM_f000120.png``, in the frame's pixels);
- with ``--crops DIR``: the person's box at the aspect of ``--size`` (margin included), resampled
  to ``H x W`` and written as ``DIR/NAME.png``; rows are named by the crop files and hold the
  keypoints in crop pixels.

Images and frames without a person (or without person ``N``) and unreadable image files are
reported and skipped, never fatal; the last line on stdout is a summary. Every flag is folded
into the config, so ``--dry-run`` prints what would run. Exit code 0 when at least one pose was
written, 1 when none was.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import logging
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from posetransfer.cli.command import Command
from posetransfer.cli.options import parse_size, positive_int, with_flags
from posetransfer.config import apply_overrides
from posetransfer.console import echo
from posetransfer.data.formats import write_annotation_csv
from posetransfer.infer.detect import (
    Detection,
    DetectorConfig,
    NoPersonError,
    PoseBackendMissingError,
    PoseDetector,
    detect_sequence,
)
from posetransfer.infer.images import ImageInputError, load_image
from posetransfer.infer.sources import IMAGE_SUFFIXES
from posetransfer.infer.video import VIDEO_SUFFIXES, iter_frames, video_info
from posetransfer.io import remove_stale_temporaries, save_png
from posetransfer.pose.keypoints import Pose

__all__ = ["DETECT_POSE", "IMAGE_SUFFIXES", "DetectPoseConfig"]

logger = logging.getLogger("posetransfer.detect-pose")

_OVERRIDE = re.compile(r"-{0,2}[A-Za-z_][\w.]*=")


@dataclass(frozen=True)
class DetectPoseConfig:
    """What ``detect-pose`` runs.

    Attributes:
        inputs: Image files, folders of images and video files.
        out: The annotation CSV to write.
        crops: Folder for person crops, or None for keypoints in the original images.
        size: ``(H, W)`` of the crops; the person box takes its aspect ratio
            (``detector.aspect`` follows it).
        every: Keep every ``every``-th frame of a video.
        max_frames: Most frames kept per video (None: all).
        person: Which person by size (0: the largest) in each image or frame.
        detector: Detector settings.
    """

    inputs: tuple[str, ...] = ()
    out: str | None = None
    crops: str | None = None
    size: tuple[int, int] = (256, 176)
    every: int = 1
    max_frames: int | None = None
    person: int = 0
    detector: DetectorConfig = field(default_factory=DetectorConfig)


@dataclass
class _Tally:
    """Counts for the summary line."""

    images: int = 0
    videos: int = 0
    frames: int = 0
    missing: int = 0
    unreadable: int = 0
    poses: dict[str, Pose] = field(default_factory=dict)


def _arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("inputs", nargs="*", metavar="INPUT", help="image files, folders of images, videos")
    add("--out", type=Path, metavar="ANNOTATIONS.csv", help="annotation CSV to write (required)")
    add("--crops", type=Path, metavar="DIR", help="write person crops here (keypoints in crops)")
    add("--size", type=parse_size, metavar="HxW", help="crop size and box aspect (256x176)")
    add("--every", type=positive_int, metavar="K", help="keep every K-th video frame (1)")
    add("--max-frames", type=positive_int, metavar="N", help="most frames kept per video")
    add("--person", type=int, metavar="N", help="person by size, 0 the largest (0)")


def _configure(args: argparse.Namespace, cfg: DetectPoseConfig) -> DetectPoseConfig:
    """Fold the flags into the config; ``key=value`` items among the inputs are overrides."""
    inputs = [a for a in args.inputs if not (_OVERRIDE.match(a) and not Path(a).exists())]
    overrides = [a for a in args.inputs if a not in inputs]
    if overrides:
        cfg = apply_overrides(cfg, overrides)
    cfg = with_flags(cfg, {
        "inputs": tuple(inputs) or None,
        "out": None if args.out is None else str(args.out),
        "crops": None if args.crops is None else str(args.crops),
        "size": args.size,
        "every": args.every,
        "max_frames": args.max_frames,
        "person": args.person,
    })  # fmt: skip
    if cfg.person < 0:
        raise ValueError(f"--person must be >= 0, got {cfg.person}")
    if cfg.every < 1:
        raise ValueError(f"every must be >= 1, got {cfg.every}")
    detector = dataclasses.replace(cfg.detector, aspect=(cfg.size[0], cfg.size[1]))
    return dataclasses.replace(cfg, detector=detector)


def _run(args: argparse.Namespace, cfg: DetectPoseConfig) -> int:
    if not cfg.inputs:
        raise ValueError("no INPUT given (image files, folders or videos)")
    if cfg.out is None:
        raise ValueError("the following arguments are required: --out")
    remove_stale_temporaries(Path(cfg.out).parent, recursive=False)  # left by a killed run
    if cfg.crops:
        remove_stale_temporaries(cfg.crops)
    images, videos = _collect(cfg.inputs, crops=cfg.crops is not None)
    total = len(images) + sum(_frames_kept(v, cfg) for v in videos)
    bar = tqdm(total=total, unit="img", disable=total < 10 or not sys.stderr.isatty())
    tally = _Tally()
    try:
        with bar:
            if images:
                with PoseDetector(cfg.detector) as detector:
                    for path in images:
                        _do_image(detector, path, cfg, tally)
                        bar.update()
            for path in videos:
                _do_video(path, cfg, tally, bar)
    except PoseBackendMissingError as exc:
        logger.error("%s", exc)
        return 2
    write_annotation_csv(cfg.out, tally.poses)
    where = f"; crops in {cfg.crops}" if cfg.crops else ""
    sources = f"{tally.images} image(s), {tally.videos} video(s) ({tally.frames} frame(s))"
    unreadable = f", {tally.unreadable} unreadable" if tally.unreadable else ""
    echo(f"detect-pose: {sources}: {len(tally.poses)} pose(s) written to {cfg.out}, "
         f"{tally.missing} without a person{unreadable}{where}")  # fmt: skip
    return 0 if tally.poses else 1


def _row_name(path: Path, crops: bool) -> str:
    """An image's row name: its file name, or its crop's (``STEM.png``)."""
    return f"{path.stem}.png" if crops else path.name


def _collect(inputs: tuple[str, ...], *, crops: bool) -> tuple[list[Path], list[Path]]:
    """Split the inputs into image files (folders expanded, sorted) and videos.

    Raises:
        FileNotFoundError: A missing input.
        ValueError: An input that is neither an image nor a video, or two images that would
            get the same row name.
    """
    images: list[Path] = []
    videos: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                logger.warning("%s: no image files (%s)", path, ", ".join(IMAGE_SUFFIXES))
            images += found
        elif not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            images.append(path)
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            videos.append(path)
        else:
            raise ValueError(
                f"{path}: not an image ({', '.join(IMAGE_SUFFIXES)}) or a video "
                f"({', '.join(VIDEO_SUFFIXES)})"
            )
    seen: dict[str, Path] = {}
    for path in images:
        name = _row_name(path, crops)
        if name in seen:
            raise ValueError(f"{seen[name]} and {path} would share the row name {name!r}; "
                             "rename one of them")  # fmt: skip
        seen[name] = path
    return images, videos


def _frames_kept(path: Path, cfg: DetectPoseConfig) -> int:
    """How many frames of ``path`` will be processed (for the progress bar)."""
    count = -(-video_info(path).frame_count // cfg.every)
    return count if cfg.max_frames is None else min(count, cfg.max_frames)


def _do_image(detector: PoseDetector, path: Path, cfg: DetectPoseConfig, tally: _Tally) -> None:
    tally.images += 1
    try:
        image = load_image(path, max_pixels=None)
    except ImageInputError as exc:  # a corrupt file in a folder is skipped, not fatal
        logger.warning("%s", exc)
        tally.unreadable += 1
        return
    try:
        detection = detector.detect(image, str(path), person=cfg.person)
    except NoPersonError as exc:
        logger.warning("%s", exc)
        tally.missing += 1
        return
    _record(_row_name(path, cfg.crops is not None), image, detection, cfg, tally)


def _do_video(path: Path, cfg: DetectPoseConfig, tally: _Tally, bar: tqdm) -> None:
    tally.videos += 1
    fps = video_info(path).fps / cfg.every
    pairs, frames = itertools.tee(iter_frames(path, every=cfg.every, max_frames=cfg.max_frames))
    detections = detect_sequence(
        (frame for _, frame in frames), cfg.detector, fps=fps, person=cfg.person, name=str(path)
    )
    for (index, frame), detection in zip(pairs, detections, strict=True):
        tally.frames += 1
        bar.update()
        if detection is None:
            logger.debug("%s frame %d: no person %d", path, index, cfg.person)
            tally.missing += 1
            continue
        _record(f"{path.stem}_f{index:06d}.png", frame, detection, cfg, tally)


def _record(
    name: str, image: np.ndarray, detection: Detection, cfg: DetectPoseConfig, tally: _Tally
) -> None:
    """Keep the pose under ``name``; with crops, write the crop and keep crop coordinates."""
    if name in tally.poses:
        raise ValueError(f"two inputs give the row name {name!r}; rename one of them")
    if cfg.crops is None:
        tally.poses[name] = detection.pose
        return
    frame = detection.frame(cfg.size)
    save_png(Path(cfg.crops) / name, frame.crop(image))
    tally.poses[name] = frame.to_frame(detection.pose, drop_outside=True)


DETECT_POSE = Command(
    name="detect-pose",
    help="find people in photos and videos: 18 keypoints to a PATN CSV, optional crops",
    config=DetectPoseConfig,
    add_arguments=_arguments,
    run=_run,
    configure=_configure,
    description="Detect one person per image or video frame with MediaPipe BlazePose (the "
    "'pose' extra: pip install 'posetransfer[pose]'; nothing is downloaded) and write the "
    "18 keypoints as a PATN annotation CSV (name:keypoints_y:keypoints_x). INPUTs are image "
    "files, folders of images (sorted) and videos (every K-th frame, tracked). With --crops, "
    "each person's box (keypoints and mask, plus a margin) at the aspect of --size is "
    "resampled to HxW and saved as DIR/NAME.png, and the CSV holds crop coordinates; "
    "without it, the CSV holds the original images' coordinates. Images or frames without "
    "a person are reported and skipped. Several people: --person N picks the N-th largest.",
)
