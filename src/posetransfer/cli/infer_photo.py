"""``posetransfer infer --source PHOTO --target T``: a photo re-posed, or animated by a video.

``T`` is a photo (its person's pose is detected), a pose (JSON, PATN annotation file[#NAME] or
row, in any image's pixels: it is framed by its own box) or a video (every ``--every``-th frame
drives the source person; written as MP4). The source person's pose is detected unless
``--source-pose`` gives it (in the photo's pixels). Everything the photo path needs is in
:mod:`posetransfer.infer.repose` and :mod:`posetransfer.infer.motion`; this module maps the
command's arguments and config onto them.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from posetransfer.config import ConfigError
from posetransfer.console import echo
from posetransfer.infer.images import load_image
from posetransfer.infer.inputs import read_pose
from posetransfer.infer.pipeline import PoseTransferPipeline
from posetransfer.infer.smoothing import DEFAULT_BETA, DEFAULT_MIN_CUTOFF
from posetransfer.infer.video import VIDEO_SUFFIXES
from posetransfer.io import save_png

if TYPE_CHECKING:
    from posetransfer.infer.repose import RePoser, SourcePerson

__all__ = ["PhotoConfig", "VideoConfig", "run_photo", "target_kind"]

logger = logging.getLogger("posetransfer.infer")

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")


@dataclass(frozen=True)
class PhotoConfig:
    """How ``infer`` treats a photo (see ``posetransfer.infer.repose.RePoseOptions``).

    Attributes:
        background: ``"source"`` (the photo's, the person removed), ``"white"`` or an image.
        paste: Put the result back into the whole source photo (``background: source``).
        framing: ``crop`` (a box around the person) or ``letterbox`` (the whole photo).
        person: Which person of a photo or video (0 = the largest).
        margin: Fraction of a person's box added on every side before framing.
        feather: Soft-edge width of the compositing, in pixels.
        clean_background: Give the generator the person-free background.
    """

    background: str = "source"
    paste: bool = False
    framing: Literal["crop", "letterbox"] = "crop"
    person: int = 0
    margin: float = 0.1
    feather: float = 1.5
    clean_background: bool = True

    def __post_init__(self) -> None:
        if self.paste and self.background != "source":
            raise ConfigError(f"photo.paste needs photo.background=source, got {self.background!r}")
        for name in ("person", "margin", "feather"):
            if getattr(self, name) < 0:
                raise ConfigError(f"photo.{name} must be >= 0, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class VideoConfig:
    """How ``infer`` animates a photo from a driving video (``posetransfer.infer.motion``).

    Attributes:
        every: Use every ``every``-th frame.
        max_frames: Stop after this many used frames (null: all).
        smooth: One-Euro filter the driving keypoints.
        min_cutoff: One-Euro cutoff in Hz of a still point.
        beta: One-Euro speed coefficient.
        retarget: Give the driving skeleton the source person's scale, position and bones.
        side_by_side: Write ``driving | output`` frames.
        batch_size: Frames per network call (null: the fastest per frame,
            ``posetransfer.infer.motion.MotionOptions``).
        detect_workers: Pose landmarkers at once on the driving frames (2: the detection in
            half the wall time on 2 cores; each then tracks every other frame).
    """

    every: int = 1
    max_frames: int | None = None
    smooth: bool = True
    min_cutoff: float = DEFAULT_MIN_CUTOFF
    beta: float = DEFAULT_BETA
    retarget: bool = True
    side_by_side: bool = False
    batch_size: int | None = None
    detect_workers: int = 1

    def __post_init__(self) -> None:
        if self.every < 1 or (self.max_frames is not None and self.max_frames < 1):
            raise ConfigError(
                f"video.every and video.max_frames must be >= 1, got {self.every}, "
                f"{self.max_frames}"
            )
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"video.batch_size must be >= 1 or null, got {self.batch_size}")
        if self.detect_workers < 1:
            raise ConfigError(f"video.detect_workers must be >= 1, got {self.detect_workers}")


TargetKind = Literal["photo", "video", "pose"]


def target_kind(spec: str) -> TargetKind:
    """What ``--target`` names: a video or photo file by suffix, else a pose."""
    suffix = Path(spec.split("#", 1)[0]).suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in PHOTO_SUFFIXES:
        return "photo"
    return "pose"


def output_path(out: Path, kind: TargetKind) -> Path:
    """``out`` with the suffix of the output kind (``.mp4`` for videos, else ``.png``).

    Raises:
        ValueError: If ``out`` has another suffix.
    """
    want = ".mp4" if kind == "video" else ".png"
    if out.suffix == "":
        return out.with_suffix(want)
    if out.suffix.lower() != want:
        raise ValueError(f"--out {out}: a {kind} target writes {want}, not {out.suffix}")
    return out


def run_photo(
    args: argparse.Namespace,
    pipeline: PoseTransferPipeline,
    flow: Literal["regressor", "3d"],
    photo: PhotoConfig,
    video: VideoConfig,
) -> int:
    """Re-pose ``args.source`` into ``args.target`` (or ``--target-pose``) and write the output.

    Returns:
        The exit code (0).
    """
    from posetransfer.infer.repose import RePoseOptions, RePoser

    spec = args.target if args.target is not None else args.target_pose
    kind = "pose" if args.target is None else target_kind(spec)
    out = output_path(args.out, kind)
    options = RePoseOptions(
        flow=flow, background=photo.background, paste=photo.paste, framing=photo.framing,
        margin=photo.margin,
        feather=photo.feather, person=photo.person, clean_background=photo.clean_background,
    )  # fmt: skip
    source_pose = read_pose(args.source_pose) if args.source_pose is not None else None
    image = load_image(args.source)
    with RePoser(pipeline, options) as reposer:
        person = reposer.source(image, source_pose, name=str(args.source))
        if kind == "video":
            return _animate(reposer, person, Path(spec), out, video)
        if kind == "photo":
            target = reposer.target_pose(load_image(spec), name=spec)
        else:
            target = reposer.framed_pose(read_pose(spec), name=spec)
        result = reposer.render(person, [target])[0]
    save_png(out, result.image)
    logger.info("wrote %s", out)
    echo(json.dumps({"output": str(out), "size": list(result.image.shape[:2])}))
    return 0


def _animate(
    reposer: RePoser,
    person: SourcePerson,
    video: Path,
    out: Path,
    cfg: VideoConfig,
) -> int:
    from posetransfer.infer.motion import MotionOptions, animate

    options = MotionOptions(
        every=cfg.every, max_frames=cfg.max_frames, smooth=cfg.smooth, min_cutoff=cfg.min_cutoff,
        beta=cfg.beta, retarget=cfg.retarget, side_by_side=cfg.side_by_side,
        batch_size=cfg.batch_size, detect_workers=cfg.detect_workers,
    )  # fmt: skip
    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(desc=f"animating {video.name}", unit="frame", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.update(done - bar.n)

    try:
        report = animate(
            reposer, person, video, out, options, person=reposer.options.person, progress=progress
        )
    finally:
        if bar is not None:
            bar.close()
    logger.info("wrote %s (%d frames at %.2f fps)", out, report.frames, report.fps)
    echo(json.dumps(report.summary()))
    return 0
