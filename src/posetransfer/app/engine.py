"""The model side of the web app, without Gradio: uploads in, pictures and videos out.

:class:`Engine` owns one loaded run (:class:`~posetransfer.infer.pipeline.PoseTransferPipeline`)
and a small pool of :class:`~posetransfer.infer.repose.RePoser` around it (one per concurrent
job: each has its own pose detector, which is not thread-safe; the networks and the 3D body
model are shared). Every method takes the paths of uploaded files, checks them against the
:class:`~posetransfer.app.config.AppConfig` limits and turns every problem with an input into an
:class:`~posetransfer.app.config.AppInputError` whose message names the file by the name the
person gave it, never by its path on the server.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import queue
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import numpy as np

from posetransfer.app.config import AppConfig, AppInputError, check_upload
from posetransfer.app.poses import to_canvas
from posetransfer.infer.images import load_image
from posetransfer.infer.pipeline import PoseTransferPipeline
from posetransfer.infer.repose import RePoseOptions, RePoser, SourcePerson
from posetransfer.io import save_png
from posetransfer.ops.flow_viz import flow_to_color, visibility_to_color
from posetransfer.pose.keypoints import Pose

__all__ = ["Engine", "PhotoOutput", "Progress", "VideoOutput", "display_size"]

logger = logging.getLogger(__name__)

FlowChoice = Literal["regressor", "3d"]

#: ``progress(done, total, stage)`` for the video path.
Progress = Callable[[int, int, str], None]

#: Frames larger than this (pixels) are refused in driving videos (an 8K frame is 33 MP).
MAX_VIDEO_FRAME_PIXELS: Final[int] = 4096 * 4096

#: Source people kept ready (detection and inpainting done) for photos seen again.
_SOURCE_CACHE_SIZE: Final[int] = 4

#: Shortest side the flow and visibility pictures are enlarged to (nearest neighbour).
_DISPLAY_MIN_HEIGHT: Final[int] = 256


@dataclass(frozen=True, eq=False)
class PhotoOutput:
    """What the photo tab shows.

    Attributes:
        image: ``(H, W, 3)`` uint8 the re-posed person (pasted into the photo, or the frame).
        flow: ``(h, w, 3)`` uint8 the target -> source flow in colour, enlarged for display.
        visibility: ``(h, w, 3)`` uint8 the visibility classes in colour, enlarged likewise.
        message: One line on what was done.
    """

    image: np.ndarray
    flow: np.ndarray
    visibility: np.ndarray
    message: str


@dataclass(frozen=True)
class VideoOutput:
    """What the video tab shows: the MP4 written and one line on it."""

    path: Path
    message: str


def display_size(image: np.ndarray, min_height: int = _DISPLAY_MIN_HEIGHT) -> np.ndarray:
    """``image`` enlarged by a whole factor (nearest neighbour) to at least ``min_height`` rows."""
    factor = max(1, math.ceil(min_height / max(1, image.shape[0])))
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1) if factor > 1 else image


class Engine:
    """A loaded run serving the app's requests.

    Args:
        pipeline: The trained networks.
        config: Limits and defaults.
        workdir: Folder for results (created; the server deletes it when it stops).
        detector_config: Settings of the pose detector.
        body_cache_dir: The body model's cache folder for the 3D flow (default:
            ``$ANNY_CACHE_DIR``, see ``posetransfer.body.load_body_model``).
    """

    def __init__(
        self,
        pipeline: PoseTransferPipeline,
        config: AppConfig,
        workdir: str | Path,
        detector_config: object = None,
        body_cache_dir: str | Path | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.config = config
        self.results = Path(workdir) / "results"
        self.results.mkdir(parents=True, exist_ok=True)
        self._pool: queue.Queue[RePoser] = queue.Queue()
        self._reposers = [
            RePoser(
                pipeline,
                RePoseOptions(),
                detector_config=detector_config,
                body_cache_dir=body_cache_dir,
            )
            for _ in range(config.concurrency)
        ]
        for reposer in self._reposers:
            self._pool.put(reposer)
        self._sources: OrderedDict[str, SourcePerson] = OrderedDict()
        self._lock = threading.Lock()
        self._pruned = time.monotonic()
        self.active = 0  # model jobs running now
        self.peak_active = 0  # the most that ever ran at once

    @classmethod
    def from_config(cls, config: AppConfig, workdir: str | Path, checkpoint: str | Path) -> Engine:
        """Load ``checkpoint`` (a ``posetransfer train`` run) on the configured device."""
        from posetransfer.runtime import resolve_device

        device = resolve_device(config.device)
        pipeline = PoseTransferPipeline.from_run(
            checkpoint, config.which, device=device, precision=config.precision
        )
        return cls(pipeline, config, workdir)

    @property
    def model_size(self) -> tuple[int, int]:
        """``(h, w)`` of the model's frame."""
        return self.pipeline.image_size

    def close(self) -> None:
        """Close the pose detectors (idempotent)."""
        for reposer in self._reposers:
            reposer.close()

    # ------------------------------------------------------------------------------ photos

    def target_from_photo(self, path: str | Path, name: str) -> Pose:
        """The pose of the person in the photo at ``path``, framed into the canvas.

        Raises:
            AppInputError: The upload is too large or not an image, or shows nobody.
        """
        image = self._photo(path, name, "target photo")
        with self._reposer() as reposer, _as_input_error(path, name):
            found = reposer.detector().detect(image, name=name, person=0)
        return to_canvas(found.pose)

    def repose(
        self,
        photo: str | Path,
        name: str,
        pose: Pose,
        flow: str = "regressor",
        paste: bool = True,
    ) -> PhotoOutput:
        """Render the person of ``photo`` in ``pose`` (canvas pixels).

        Raises:
            AppInputError: A bad upload, nobody in the photo, or a pose the model cannot use.
        """
        mode = _check_flow(flow)
        start = time.perf_counter()
        image = self._photo(photo, name, "photo")
        options = RePoseOptions(flow=mode, paste=bool(paste))
        with self._reposer(options) as reposer, _as_input_error(photo, name):
            source = self._source(reposer, image, name)
            target = reposer.framed_pose(pose, name="target pose")
            result = reposer.render(source, [target])[0]
        flow_image = display_size(flow_to_color(result.flow))
        vis_image = display_size(visibility_to_color(result.visibility))
        height, width = result.image.shape[:2]
        model_h, model_w = self.model_size
        message = (
            f"{name}: re-posed with the {'3D body' if flow == '3d' else 'regressor'} flow in "
            f"{time.perf_counter() - start:.1f} s (result {height}x{width}, model frame "
            f"{model_h}x{model_w}, H x W)"
        )
        return PhotoOutput(result.image, flow_image, vis_image, message)

    # ------------------------------------------------------------------------------ videos

    def animate(
        self,
        photo: str | Path,
        photo_name: str,
        video: str | Path,
        video_name: str,
        *,
        flow: str = "regressor",
        side_by_side: bool = False,
        every: float = 1,
        progress: Progress | None = None,
    ) -> VideoOutput:
        """Animate the person of ``photo`` with the motion of ``video``; write an MP4.

        Every ``every``-th frame (a whole number) drives the photo; the video is cut to
        :attr:`AppConfig.max_video_frames` used frames (said in the message).

        Raises:
            AppInputError: A bad upload, nobody in the photo or in any used video frame.
        """
        from posetransfer.infer.motion import MotionOptions, animate
        from posetransfer.infer.video import video_info

        mode = _check_flow(flow)
        if not isinstance(every, int | float) or not float(every).is_integer() or every < 1:
            raise AppInputError(f"'every' must be a whole number >= 1, got {every!r}")
        step = int(every)
        image = self._photo(photo, photo_name, "photo")
        path = check_upload(video, "driving video", self.config.max_upload_bytes)
        with _as_input_error(path, video_name):
            info = video_info(path)
        if info.width * info.height > MAX_VIDEO_FRAME_PIXELS:
            raise AppInputError(
                f"{video_name}: frames of {info.width}x{info.height} are too large "
                f"(at most {MAX_VIDEO_FRAME_PIXELS // 1_000_000} megapixels)"
            )
        used = math.ceil(info.frame_count / step)
        limit = self.config.max_video_frames
        note = f"; cut to the first {limit} of {used} frames" if used > limit else ""
        self._prune_results()
        out = self.results / f"{uuid.uuid4().hex}.mp4"
        options = MotionOptions(
            every=step,
            max_frames=min(used, limit),
            side_by_side=bool(side_by_side),
            batch_size=self.config.batch_size,
        )

        def report(done: int, total: int) -> None:
            if progress is not None:
                progress(done, total, "rendering")

        start = time.perf_counter()
        with self._reposer(RePoseOptions(flow=mode, paste=True)) as reposer:
            with _as_input_error(photo, photo_name):
                source = self._source(reposer, image, photo_name)
            if progress is not None:
                progress(0, options.max_frames or used, "finding the pose in each video frame")
            with _as_input_error(path, video_name):
                result = animate(reposer, source, path, out, options, progress=report)
        held = f", {len(result.missing_frames)} without a person (pose held)"
        message = (
            f"{video_name}: {result.frames} frames at {result.fps:.3g} fps in "
            f"{time.perf_counter() - start:.1f} s"
            f"{held if result.missing_frames else ''}{note}"
        )
        return VideoOutput(out, message)

    # ------------------------------------------------------------------------------ files

    def picture(self, image: np.ndarray, stem: str) -> str:
        """Write ``image`` to a new PNG in the results folder; return its path.

        The page shows pictures from these files rather than from arrays: Gradio writes an
        array to a cache file named by its content without a temporary name, so two requests
        with the same picture (the same pose's canvas, the same flow) could rewrite the file
        while another is downloading it; a file is copied into the cache atomically.
        """
        if time.monotonic() - self._pruned > 60:
            self._prune_results()
        path = self.results / f"{stem}-{uuid.uuid4().hex[:12]}.png"
        save_png(path, np.ascontiguousarray(image))
        return str(path)

    # ------------------------------------------------------------------------------ helpers

    @contextlib.contextmanager
    def _reposer(self, options: RePoseOptions | None = None) -> Iterator[RePoser]:
        """A free :class:`RePoser` of the pool with ``options`` for the duration of the block."""
        reposer = self._pool.get()
        with self._lock:
            self.active += 1
            self.peak_active = max(self.peak_active, self.active)
        try:
            if options is not None:
                reposer.options = options
            yield reposer
        finally:
            with self._lock:
                self.active -= 1
            self._pool.put(reposer)

    def _photo(self, path: str | Path, name: str, what: str) -> np.ndarray:
        file = check_upload(path, what, self.config.max_upload_bytes)
        with _as_input_error(file, name):
            return load_image(file, max_pixels=self.config.max_photo_pixels)

    def _source(self, reposer: RePoser, image: np.ndarray, name: str) -> SourcePerson:
        """The framed source person, reused when the same photo comes again."""
        key = f"{image.shape}:{hashlib.sha256(image.tobytes()).hexdigest()}"
        with self._lock:
            cached = self._sources.get(key)
            if cached is not None:
                self._sources.move_to_end(key)
                return cached
        source = reposer.source(image, name=name)
        with self._lock:
            self._sources[key] = source
            while len(self._sources) > _SOURCE_CACHE_SIZE:
                self._sources.popitem(last=False)
        return source

    def _prune_results(self) -> None:
        """Delete results older than :attr:`AppConfig.keep_minutes`."""
        self._pruned = time.monotonic()
        cutoff = time.time() - self.config.keep_minutes * 60
        for file in self.results.iterdir():
            with contextlib.suppress(OSError):
                if file.stat().st_mtime < cutoff:
                    file.unlink()


def _check_flow(flow: str) -> FlowChoice:
    if flow == "regressor":
        return "regressor"
    if flow == "3d":
        return "3d"
    raise AppInputError(f"flow must be 'regressor' or '3d', got {flow!r}")


@contextlib.contextmanager
def _as_input_error(path: str | Path, name: str) -> Iterator[None]:
    """Re-raise input errors (``ValueError``) as :class:`AppInputError` naming ``name``.

    The server's path of the upload is replaced by the name the person gave the file.
    """
    try:
        yield
    except AppInputError:
        raise
    except ValueError as exc:
        text = str(exc)
        forms = {str(path), str(Path(path).resolve()), Path(path).name}
        for form in sorted(forms, key=len, reverse=True):  # whole paths before bare names
            text = text.replace(form, name)
        raise AppInputError(text) from None
