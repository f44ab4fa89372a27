"""Find people in photos and video frames: 18 keypoints, a segmentation mask and a person box.

The detector is MediaPipe's BlazePose (GHUM 3D, the ``full`` landmark model) run through the
Tasks ``PoseLandmarker``, which finds up to ``num_poses`` people per image. It needs the optional
``pose`` extra (``pip install 'posetransfer[pose]'``), imported only when a detector opens.

Nothing is downloaded: the model files come from the MediaPipe wheel
(:mod:`posetransfer.infer.pose_backend`); on real frames this gives the legacy
``mp.solutions.pose`` (``model_complexity=1``) landmarks to < 1.1 px at 256 px high, with the
same visibilities and masks (docs/real_people.md).

- :class:`PoseDetector` (a context manager): :meth:`~PoseDetector.detect_all` gives every person
  found, largest first; :meth:`~PoseDetector.detect` gives one (``person=INDEX``, 0 the largest)
  or raises :class:`NoPersonError`;
- :func:`detect_sequence`: video frames in tracking mode, one :class:`Detection` or None each.

Coordinates: MediaPipe's normalised landmarks times the image width and height are continuous
pixels with the origin at the image's top-left corner, the project's convention (pixel ``(i, j)``
has its centre at ``(j + 0.5, i + 0.5)``). Points outside the image are marked invalid.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np

from posetransfer.conventions import NUM_KEYPOINTS, Keypoint
from posetransfer.infer.detect_config import DetectorConfig
from posetransfer.infer.framing import Frame
from posetransfer.infer.person_box import Box, box_area, person_bounds, person_box
from posetransfer.infer.pose_backend import (
    INSTALL_HINT,
    PoseBackendMissingError,
    create_landmarker,
    import_mediapipe,
)
from posetransfer.infer.workers import ordered_futures
from posetransfer.io import check_rgb
from posetransfer.pose.keypoints import BLAZEPOSE33_INDEX, Pose

__all__ = [
    "INSTALL_HINT",
    "Detection",
    "DetectorConfig",
    "NoPersonError",
    "PoseBackendMissingError",
    "PoseDetector",
    "detect_sequence",
]

logger = logging.getLogger(__name__)


class NoPersonError(ValueError):
    """No person (or not the requested one) was found in an image; the message names it."""


@dataclass(frozen=True, eq=False)
class Detection:
    """One person found in one image.

    Attributes:
        pose: 18 keypoints in the image's continuous pixels; points with a visibility at or
            below the threshold, or outside the image, are invalid.
        scores: ``(18,)`` float32 visibility per keypoint (the neck: the lower shoulder's).
        mask: ``(H, W)`` float32 person probability in ``[0, 1]`` at the image's size.
        bounds: Tight box ``(left, top, right, bottom)`` around the keypoints and the mask.
        box: ``bounds`` with the margin, grown to the config's aspect; may leave the image.
        landmarks: ``(33, 3)`` float32 raw BlazePose ``(x, y, visibility)``, x and y in pixels.
    """

    pose: Pose
    scores: np.ndarray
    mask: np.ndarray
    bounds: Box
    box: Box
    landmarks: np.ndarray

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of the image the person was found in."""
        return int(self.mask.shape[0]), int(self.mask.shape[1])

    @property
    def size(self) -> float:
        """Area of :attr:`bounds` in square pixels (people are ordered by it)."""
        return box_area(self.bounds)

    def frame(self, model_size: tuple[int, int]) -> Frame:
        """The crop of :attr:`box` for a model of ``(H, W)`` (same aspect as the config's).

        Raises:
            ValueError: If ``model_size`` has another aspect ratio than the box.
        """
        return Frame(self.box, self.image_size, model_size)


class PoseDetector:
    """MediaPipe pose landmarker on ``(H, W, 3)`` uint8 RGB images; use it in a ``with`` block.

    Example::

        with PoseDetector() as detector:
            detection = detector.detect(load_image(path), name=str(path))

    Args:
        config: Detector settings.
        video: Tracking mode for consecutive frames of one video (:func:`detect_sequence`);
            calls then need increasing ``timestamp_ms``.

    Raises:
        PoseBackendMissingError: If MediaPipe is not installed.
    """

    def __init__(self, config: DetectorConfig | None = None, *, video: bool = False) -> None:
        self.config = config or DetectorConfig()
        self.video = video
        self._mp = import_mediapipe()
        self._landmarker: Any = None

    def __enter__(self) -> PoseDetector:
        if self._landmarker is None:
            cfg = self.config
            self._landmarker = create_landmarker(
                video=self.video,
                num_poses=cfg.num_poses,
                min_detection_confidence=cfg.min_detection_confidence,
                min_presence_confidence=cfg.min_presence_confidence,
                min_tracking_confidence=cfg.min_tracking_confidence,
                masks=cfg.masks,
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the MediaPipe graph (idempotent)."""
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    def detect_all(
        self, image: np.ndarray, name: str = "image", *, timestamp_ms: int | None = None
    ) -> list[Detection]:
        """Every person found in ``image``, largest first.

        Args:
            image: ``(H, W, 3)`` uint8 RGB.
            name: What to call the image in messages (a file name).
            timestamp_ms: Video mode only: the frame's time, increasing from call to call.

        Returns:
            Up to ``config.num_poses`` detections ordered by :attr:`Detection.size`, descending;
            empty when nobody is found.

        Raises:
            ValueError: On a bad image, or a timestamp missing in video mode.
            RuntimeError: If the detector is not open (use it in a ``with`` block).
        """
        check_rgb(image, name)
        if self._landmarker is None:
            raise RuntimeError("PoseDetector is not open: use it in a 'with' block")
        mp_image = self._mp.Image(
            image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(image)
        )
        if self.video:
            if timestamp_ms is None:
                raise ValueError("a video-mode PoseDetector needs each frame's timestamp_ms")
            result = self._landmarker.detect_for_video(mp_image, int(timestamp_ms))
        else:
            result = self._landmarker.detect(mp_image)
        masks = result.segmentation_masks or [None] * len(result.pose_landmarks)
        found = []
        for landmarks, mask in zip(result.pose_landmarks, masks, strict=True):
            detection = self._detection(landmarks, mask, image.shape[:2])
            if detection is None:
                logger.debug("%s: a person with no visible keypoint or mask was left out", name)
            else:
                found.append(detection)
        return sorted(found, key=lambda d: d.size, reverse=True)

    def detect(
        self,
        image: np.ndarray,
        name: str = "image",
        *,
        person: int = 0,
        timestamp_ms: int | None = None,
    ) -> Detection:
        """The ``person``-th largest person in ``image``.

        Logs a warning naming how many people were found when there are several.

        Args:
            image: ``(H, W, 3)`` uint8 RGB.
            name: What to call the image in messages (a file name).
            person: 0 for the largest person, 1 for the next, ...
            timestamp_ms: Video mode only, as in :meth:`detect_all`.

        Raises:
            NoPersonError: If nobody, or fewer than ``person + 1`` people, were found.
        """
        if isinstance(person, bool) or not isinstance(person, int) or person < 0:
            raise ValueError(f"person must be a non-negative index, got {person!r}")
        found = self.detect_all(image, name, timestamp_ms=timestamp_ms)
        return _pick(found, person, name)

    def _detection(
        self, landmarks: Any, mask: Any, image_size: tuple[int, int]
    ) -> Detection | None:
        """One person from MediaPipe's output; None when nothing of them can be boxed."""
        height, width = image_size
        raw = np.array([(lm.x, lm.y, lm.visibility) for lm in landmarks], np.float64)
        raw = np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0)
        raw[:, 0] *= width
        raw[:, 1] *= height
        cfg = self.config
        pose = Pose.from_blazepose33(raw[:, :2], raw[:, 2], threshold=cfg.keypoint_threshold)
        pose = pose.transform((1.0, 1.0), (0.0, 0.0), size=image_size)  # drop points outside
        if mask is None:
            prob, boxed = np.zeros(image_size, np.float32), None  # boxes from the keypoints
        else:
            prob = np.array(mask.numpy_view(), dtype=np.float32).reshape(image_size)
            np.clip(prob, 0.0, 1.0, out=prob)
            boxed = prob
        try:
            bounds = person_bounds(pose, boxed, mask_threshold=cfg.mask_threshold)
            box = person_box(pose, boxed, image_size, cfg.aspect,
                             margin=cfg.margin, mask_threshold=cfg.mask_threshold)  # fmt: skip
        except ValueError:  # no valid point and no mask, or a single point
            return None
        return Detection(pose, _scores18(raw[:, 2]), prob, bounds, box, raw.astype(np.float32))


def detect_sequence(
    frames: Iterable[np.ndarray],
    config: DetectorConfig | None = None,
    *,
    fps: float = 30.0,
    person: int = 0,
    name: str = "video",
    workers: int = 1,
) -> Iterator[Detection | None]:
    """Detect people in consecutive video frames, tracking them from frame to frame.

    The landmarker runs in video mode (the Tasks counterpart of the legacy
    ``static_image_mode=False``): after a person is found, the next frame's search starts from
    their landmarks, and the person detector runs again when tracking is lost.

    With ``workers > 1`` that many landmarkers run in threads (MediaPipe releases the GIL), frame
    ``i`` going to landmarker ``i % workers`` with its own timestamps, so each one tracks every
    ``workers``-th frame. On the Pose2Sim single-person demo video the keypoints equal one
    landmarker's; on the Sports2D demo (a moving camera, two people) 11 of 230 frames followed
    another person or pose (median keypoint distance > 10 px) and 2 fewer frames found one.

    Args:
        frames: ``(H, W, 3)`` uint8 RGB frames in order (e.g. from ``infer.video.iter_frames``).
        config: Detector settings.
        fps: Frame rate of ``frames`` (timestamps for the tracker); for every ``K``-th frame of a
            video, pass the video's fps divided by ``K``.
        person: Which person by size in each frame (0: the largest).
        name: What to call the video in messages.
        workers: Landmarkers running at once (>= 1).

    Yields:
        One item per frame: the detection, or None when the frame has no such person.

    Raises:
        PoseBackendMissingError: If MediaPipe is not installed.
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    if isinstance(person, bool) or not isinstance(person, int) or person < 0:
        raise ValueError(f"person must be a non-negative index, got {person!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    missing = crowded = 0
    for found in _detect_frames(frames, config, fps, name, workers):
        crowded += len(found) > 1
        if len(found) <= person:
            missing += 1
            yield None
        else:
            yield found[person]
    if crowded:
        logger.warning("%s: %d frame(s) showed several people; used person %d by size",
                       name, crowded, person)  # fmt: skip
    if missing:
        logger.warning("%s: %d frame(s) without person %d", name, missing, person)


def _detect_frames(
    frames: Iterable[np.ndarray],
    config: DetectorConfig | None,
    fps: float,
    name: str,
    workers: int,
) -> Iterator[list[Detection]]:
    """Every person in each frame, in frame order, on ``workers`` video-mode landmarkers."""
    with contextlib.ExitStack() as stack:
        detectors = [PoseDetector(config, video=True) for _ in range(workers)]
        for detector in detectors:
            stack.callback(detector.close)
        with ThreadPoolExecutor(workers) as opener:  # about 0.2 s each: opened at once
            list(opener.map(PoseDetector.__enter__, detectors))
        last = [-1] * workers  # each landmarker's last timestamp

        def detect(index: int, frame: np.ndarray) -> list[Detection]:
            k = index % workers
            last[k] = max(last[k] + 1, round(index * 1000.0 / fps))  # strictly increasing
            return detectors[k].detect_all(frame, f"{name} frame {index}", timestamp_ms=last[k])

        if workers == 1:
            for index, frame in enumerate(frames):
                yield detect(index, frame)
            return
        # One single-thread executor per landmarker keeps its frames in order.
        pools = [
            stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix=f"detect{k}"))
            for k in range(workers)
        ]
        yield from ordered_futures(
            lambda index, frame: pools[index % workers].submit(detect, index, frame),
            frames,
            depth=2 * workers,
        )


def _pick(found: list[Detection], person: int, name: str) -> Detection:
    """The ``person``-th detection, with a warning when there are several."""
    if not found:
        raise NoPersonError(f"{name}: no person found")
    if len(found) <= person:
        raise NoPersonError(
            f"{name}: found {len(found)} {'person' if len(found) == 1 else 'people'}, "
            f"so there is no person {person} (0 is the largest)"
        )
    if len(found) > 1:
        logger.warning("%s: found %d people; using person %d by size (0 is the largest)",
                       name, len(found), person)  # fmt: skip
    return found[person]


def _scores18(visibility33: np.ndarray) -> np.ndarray:
    """``(18,)`` per-keypoint visibility in our order; the neck gets the lower shoulder's."""
    scores = np.zeros(NUM_KEYPOINTS, np.float32)
    for keypoint, src in BLAZEPOSE33_INDEX.items():
        scores[keypoint] = visibility33[src]
    scores[Keypoint.NECK] = min(scores[Keypoint.L_SHOULDER], scores[Keypoint.R_SHOULDER])
    return scores
