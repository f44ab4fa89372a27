"""Motion transfer: a driving video's poses animate the person of a source photo.

:func:`animate` runs the whole loop and writes an MP4:

1. **poses**: every ``every``-th frame of the driving video through the pose detector in tracking
   mode (:func:`~posetransfer.infer.detect.detect_sequence`); frames without a person are held;
2. **smoothing**: a One-Euro filter per keypoint (:mod:`~posetransfer.infer.smoothing`), so a
   still person does not jitter;
3. **retargeting**: the driving skeleton gets the source person's scale, foot position and bone
   lengths (:mod:`~posetransfer.infer.retarget`, the "global pose normalisation" of Everybody
   Dance Now), then moves into the source's model frame;
4. **flow**: the run's regressor, or ``flow="3d"``: the source body is fitted once and every
   frame's body in batches (:func:`body_flows`);
5. **rendering and encoding**: :meth:`RePoser.render <posetransfer.infer.repose.RePoser.render>`
   in batches, composited over the source's background, written by
   :class:`~posetransfer.infer.video.VideoWriter` (optionally side by side with the driving
   frame), with a progress bar.

By default (``workers >= 1``, regressor flow) a thread decodes ahead of the detector and step 5
is the streaming loop of :mod:`~posetransfer.infer.motion_stream` (same frames up to float
rounding); ``workers=0`` and ``flow="3d"`` run the plain loop, one batch after another.

:class:`MotionReport` says what happened: frames, held frames, failed fits, seconds per stage.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from posetransfer.infer.body_flow import body_flows
from posetransfer.infer.framing import Frame, box_from_pose
from posetransfer.infer.motion_stream import StreamRenderer, render_stream, side_by_side
from posetransfer.infer.repose import RePoser, SourcePerson
from posetransfer.infer.retarget import retarget_sequence
from posetransfer.infer.smoothing import DEFAULT_BETA, DEFAULT_MIN_CUTOFF, smooth_poses
from posetransfer.infer.video import VideoWriter, iter_frames, video_info
from posetransfer.infer.workers import StageClock, prefetch
from posetransfer.pose.keypoints import Pose

__all__ = [
    "PLAIN_BATCH",
    "STREAM_BATCH",
    "MotionOptions",
    "MotionReport",
    "animate",
    "body_flows",
    "driving_poses",
]

logger = logging.getLogger(__name__)

#: Frames per network call of the streaming loop: smaller batches stay in the CPU's caches
#: (256x176, 2 workers: 2 frames per batch took 12-14% less CPU per frame than 8).
STREAM_BATCH = 2
#: Frames per call of the plain loop and of the 3D-body flow's batched fits.
PLAIN_BATCH = 8


@dataclass(frozen=True)
class MotionOptions:
    """How a driving video animates a photo.

    Attributes:
        every: Use every ``every``-th frame of the driving video.
        max_frames: Stop after this many used frames (None: all).
        smooth: One-Euro filter the driving keypoints.
        min_cutoff: One-Euro cutoff (Hz) of a still point; lower is steadier.
        beta: One-Euro speed coefficient (per person height per second); higher lags less
            behind fast motion.
        retarget: Map the driving skeleton onto the source person (scale, position, bone
            lengths); otherwise the driving person is framed as a whole.
        side_by_side: Write ``driving | output`` frames.
        batch_size: Frames rendered per network call; None: :data:`STREAM_BATCH` for the
            streaming loop (the least CPU per frame at 256x176 on every backend,
            ``BENCHMARKS.md``), :data:`PLAIN_BATCH` for the plain loop and the 3D-body flow
            (whose body fits are batched).
        workers: Batches rendered at once (threads) by the streaming loop; 0: the plain loop.
        detect_workers: Pose landmarkers running at once on the driving frames, each
            tracking every ``detect_workers``-th frame (``detect.detect_sequence``): 2 halves
            the detection's wall time on 2 cores; the same keypoints on the Pose2Sim demo
            video, but on Sports2D's 11 of 230 frames followed another person or pose.
    """

    every: int = 1
    max_frames: int | None = None
    smooth: bool = True
    min_cutoff: float = DEFAULT_MIN_CUTOFF
    beta: float = DEFAULT_BETA
    retarget: bool = True
    side_by_side: bool = False
    batch_size: int | None = None
    workers: int = 2
    detect_workers: int = 1

    def __post_init__(self) -> None:
        batch = 1 if self.batch_size is None else self.batch_size
        if self.detect_workers < 1:
            raise ValueError(f"detect_workers must be >= 1, got {self.detect_workers}")
        if self.every < 1 or batch < 1 or self.workers < 0:
            raise ValueError(
                f"every and batch_size must be >= 1, workers >= 0, got {self.every}, "
                f"{self.batch_size}, {self.workers}"
            )
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1 or None, got {self.max_frames}")


@dataclass
class MotionReport:
    """What :func:`animate` did.

    Attributes:
        output: The MP4 written.
        frames: Frames written.
        fps: Their frame rate (the driving video's divided by ``every``).
        missing_frames: Driving frames without a detected person (their pose was held).
        failed_fits: Frames whose 3D body fit failed (the previous frame's flow was used).
        seconds: Wall time per stage: ``detect`` (with decoding), ``smooth``, ``flow``,
            ``render``, ``encode``; the streaming loop's stages overlap (``decode``, ``detect``,
            ``smooth``, ``flow``, ``generator``, ``composite``, ``encode``: each stage's time
            summed over its threads).
        cpu_seconds: CPU time per stage (the plain loop: the process's; the streaming loop:
            each stage's threads' own, plus ``process`` for the whole call).
        elapsed: Wall time of the whole call.
    """

    output: Path
    frames: int = 0
    fps: float = 0.0
    missing_frames: list[int] = field(default_factory=list)
    failed_fits: list[int] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (frame indices listed up to 20)."""
        total = self.elapsed or sum(self.seconds.values())
        return {
            "output": str(self.output),
            "frames": self.frames,
            "fps": round(self.fps, 3),
            "missing_frames": len(self.missing_frames),
            "missing_first": self.missing_frames[:20],
            "failed_fits": len(self.failed_fits),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "cpu_seconds": {k: round(v, 3) for k, v in self.cpu_seconds.items()},
            "frames_per_second": round(self.frames / total, 3) if total > 0 else None,
        }


class _Clock:
    """Wall and process CPU seconds per stage of the plain (one-thread) loop."""

    def __init__(self, seconds: dict[str, float], cpu: dict[str, float]) -> None:
        self.seconds, self.cpu = seconds, cpu
        self._cpu_start = time.process_time()

    def add(self, stage: str, start: float) -> None:
        now = time.process_time()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start
        self.cpu[stage] = self.cpu.get(stage, 0.0) + now - self._cpu_start
        self._cpu_start = now

    def start(self) -> float:
        self._cpu_start = time.process_time()
        return time.perf_counter()


def driving_poses(
    video: str | Path,
    every: int = 1,
    max_frames: int | None = None,
    *,
    detector_config: Any = None,
    person: int = 0,
    prefetch_frames: int = 0,
    workers: int = 1,
) -> tuple[list[Pose | None], float, tuple[int, int]]:
    """Detect the driving person in every ``every``-th frame.

    With ``prefetch_frames > 0`` a thread decodes up to that many frames ahead of the detector;
    ``workers`` landmarkers detect at once (``detect.detect_sequence``).
    The detector computes no segmentation masks (``DetectorConfig.masks``): only the keypoints
    are used, and they are the same without them.

    Returns:
        ``(poses, fps, (H, W))``: one pose per used frame in the video's pixels (None where
        nobody was found), the used frames' rate and the video's size.
    """
    from posetransfer.infer.detect import DetectorConfig, detect_sequence

    config = dataclasses.replace(detector_config or DetectorConfig(), masks=False)
    info = video_info(video)
    fps = info.fps / every
    decoded: Iterator[tuple[int, np.ndarray]] = iter_frames(video, every, max_frames)
    if prefetch_frames > 0:
        decoded = prefetch(decoded, prefetch_frames, name="decode")
    frames = (frame for _, frame in decoded)
    found = detect_sequence(
        frames, config, fps=fps, person=person, name=str(video), workers=workers
    )
    poses = [None if d is None else d.pose for d in found]
    return poses, fps, (info.height, info.width)


def _frame_targets(
    source: SourcePerson, poses: list[Pose | None], retarget: bool, margin: float
) -> list[Pose]:
    """Driving poses (video pixels, no None) moved into the source's model frame."""
    if retarget:
        source_in_image = source.frame.to_image(source.pose)
        mapped, norm = retarget_sequence(source_in_image, poses)
        logger.info("retargeting: scale %.3f from the %s measure", norm.scale, norm.measure)
        return [source.frame.to_frame(p) for p in mapped if p is not None]
    boxes = np.array([box_from_pose(p) for p in poses if p is not None and p.num_valid > 1])
    union = (*boxes[:, :2].min(0), *boxes[:, 2:].max(0))
    height = int(max(1, np.ceil(union[3])))
    width = int(max(1, np.ceil(union[2])))
    frame = Frame.from_box(union, (height, width), source.frame.model_size, margin=margin)
    return [frame.to_frame(p) for p in poses if p is not None]


def _batches(items: Sequence[Pose], size: int) -> Iterator[tuple[int, list[Pose]]]:
    for start in range(0, len(items), size):
        yield start, list(items[start : start + size])


def animate(
    reposer: RePoser,
    source: SourcePerson,
    video: str | Path,
    out: str | Path,
    options: MotionOptions | None = None,
    *,
    person: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> MotionReport:
    """Animate ``source`` with the motion of ``video`` and write an MP4 to ``out``.

    Args:
        reposer: The loaded run and photo options (flow mode, background, paste).
        source: The source person (:meth:`RePoser.source`).
        video: The driving video.
        out: The MP4 to write (atomically: no half-written file under this name).
        options: Motion settings.
        person: Which driving person by size (0: the largest).
        progress: Called as ``progress(done, total)`` after each rendered batch.

    Returns:
        The report of what was done.

    Raises:
        ValueError: If no frame of the video shows a person (naming the video).
    """
    opts = options or MotionOptions()
    report = MotionReport(Path(out))
    begin, cpu_begin = time.perf_counter(), time.process_time()
    stream = opts.workers >= 1 and reposer.options.flow == "regressor"
    clock = _Clock(report.seconds, report.cpu_seconds)
    start = clock.start()
    poses, fps, _ = driving_poses(
        video, opts.every, opts.max_frames, detector_config=reposer.detector_config,
        person=person, prefetch_frames=8 if stream else 0, workers=opts.detect_workers,
    )  # fmt: skip
    clock.add("detect", start)
    report.fps, report.missing_frames = fps, [i for i, p in enumerate(poses) if p is None]
    if len(report.missing_frames) == len(poses):
        raise ValueError(f"{video}: no person found in any of its {len(poses)} used frames")
    start = clock.start()
    if opts.smooth:
        smoothed = smooth_poses(poses, fps, opts.min_cutoff, opts.beta)
        filled: list[Pose | None] = list(smoothed.poses)
    else:
        filled = _hold(poses)
    targets = _frame_targets(source, filled, opts.retarget, reposer.options.margin)
    clock.add("smooth", start)
    driving = iter_frames(video, opts.every, opts.max_frames) if opts.side_by_side else None
    if stream:
        _stream(reposer, source, targets, driving, report, opts, fps, progress)
    else:
        _plain(reposer, source, targets, driving, report, opts, fps, progress)
    report.elapsed = time.perf_counter() - begin
    report.cpu_seconds["process"] = time.process_time() - cpu_begin
    if report.missing_frames:
        logger.warning(
            "%s: %d of %d frames had no person; their pose was held",
            video, len(report.missing_frames), len(poses),
        )  # fmt: skip
    return report


def _stream(
    reposer: RePoser,
    source: SourcePerson,
    targets: list[Pose],
    driving: Iterator[tuple[int, np.ndarray]] | None,
    report: MotionReport,
    opts: MotionOptions,
    fps: float,
    progress: Callable[[int, int], None] | None,
) -> None:
    """Step 5 by the streaming loop (:mod:`~posetransfer.infer.motion_stream`)."""
    clock = StageClock()
    renderer = StreamRenderer(reposer, source, clock)
    size = STREAM_BATCH if opts.batch_size is None else opts.batch_size
    driving = prefetch(driving, 2 * size, name="decode") if driving else None
    batches = (batch for _, batch in _batches(targets, size))
    with contextlib.ExitStack() as stack:
        if driving is not None:
            stack.callback(driving.close)  # type: ignore[attr-defined]
        writer = stack.enter_context(VideoWriter(report.output, fps))
        stack.enter_context(renderer.source_features())

        def write(frame: np.ndarray) -> None:
            if driving is not None:
                frame = side_by_side(next(driving)[1], frame)
            writer.write(frame)

        def done(count: int) -> None:
            report.frames = count
            if progress is not None:
                progress(count, len(targets))

        render_stream(renderer, batches, write, workers=opts.workers, clock=clock, on_batch=done)
    report.seconds.update(clock.wall)
    report.cpu_seconds.update(clock.cpu)


def _plain(
    reposer: RePoser,
    source: SourcePerson,
    targets: list[Pose],
    driving: Iterator[tuple[int, np.ndarray]] | None,
    report: MotionReport,
    opts: MotionOptions,
    fps: float,
    progress: Callable[[int, int], None] | None,
) -> None:  # the arguments of _stream
    """Step 5 by the plain loop: flow, render, encode, one batch after another."""
    clock = _Clock(report.seconds, report.cpu_seconds)
    source_fit, last = None, None
    with VideoWriter(report.output, fps) as writer:
        size = PLAIN_BATCH if opts.batch_size is None else opts.batch_size
        for offset, batch in _batches(targets, size):
            start = clock.start()
            if reposer.options.flow == "3d":
                flow, vis, failed, source_fit = body_flows(
                    reposer._body_model(), source.pose, batch, reposer.model_size, source_fit
                )
                for i in failed:
                    report.failed_fits.append(offset + i)
                    if last is not None:
                        flow[i], vis[i] = last
                last = (flow[-1].clone(), vis[-1].clone())
                flows = (flow, vis)
            else:
                flows = reposer.flows(source, batch)
            clock.add("flow", start)
            start = clock.start()
            results = reposer.render(source, batch, flows)
            clock.add("render", start)
            start = clock.start()
            for result in results:
                frame = result.image
                if driving is not None:
                    frame = side_by_side(next(driving)[1], frame)
                writer.write(frame)
            report.frames += len(results)
            clock.add("encode", start)
            if progress is not None:
                progress(report.frames, len(targets))


def _hold(poses: list[Pose | None]) -> list[Pose | None]:
    """Fill None frames with the previous pose (leading ones with the first)."""
    first = next(p for p in poses if p is not None)
    out: list[Pose | None] = []
    last = first
    for pose in poses:
        last = pose if pose is not None else last
        out.append(last)
    return out
