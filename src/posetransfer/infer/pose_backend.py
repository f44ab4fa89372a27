"""MediaPipe plumbing for :mod:`posetransfer.infer.detect`: import, offline model bundle, graph.

MediaPipe is the optional ``pose`` extra; :func:`import_mediapipe` imports it only when a
detector opens and says what to install when it is missing.

The Tasks ``PoseLandmarker`` (several people per image) wants a ``pose_landmarker.task`` bundle,
which the wheel does not ship and which must not be downloaded at run time. The wheel does ship
the legacy solution's two models, ``pose_detection.tflite`` and ``pose_landmark_full.tflite``
(what ``mp.solutions.pose`` runs at ``model_complexity=1``); :func:`model_bundle` adds the
input-normalisation metadata the Tasks graph asks for (with MediaPipe's own metadata writer: the
detector takes ``[-1, 1]`` inputs and the landmark model ``[0, 1]``, as in the legacy graphs)
and zips them in memory under the names the Tasks graph looks for. The ``lite`` and ``heavy``
landmark models are not in the wheel (the legacy API downloads them on first use), so only the
``full`` model is offered.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path
from types import ModuleType
from typing import Any, Final

__all__ = [
    "INSTALL_HINT",
    "PoseBackendMissingError",
    "create_landmarker",
    "import_mediapipe",
    "model_bundle",
]

INSTALL_HINT: Final[str] = "pip install 'posetransfer[pose]'"

#: Model files inside the MediaPipe wheel, relative to the ``mediapipe`` package folder.
DETECTOR_FILE: Final[str] = "modules/pose_detection/pose_detection.tflite"
LANDMARK_FILE: Final[str] = "modules/pose_landmark/pose_landmark_full.tflite"


class PoseBackendMissingError(ImportError):
    """MediaPipe (or one of its model files) is missing; the message says what to install."""


def import_mediapipe() -> ModuleType:
    """Import MediaPipe or raise :class:`PoseBackendMissingError` saying what to install."""
    try:
        import mediapipe
        from mediapipe.tasks.python import vision  # noqa: F401
    except ImportError as exc:
        raise PoseBackendMissingError(
            f"pose detection needs MediaPipe, which is not installed ({exc}); "
            f"install it with: {INSTALL_HINT}"
        ) from exc
    return mediapipe


@functools.cache
def model_bundle() -> bytes:
    """The ``pose_landmarker.task`` bundle, assembled in memory from the wheel's model files.

    Raises:
        PoseBackendMissingError: If MediaPipe or a model file is missing.
    """
    mediapipe = import_mediapipe()
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer
    from mediapipe.tasks.python.metadata.metadata_writers.model_asset_bundle_utils import (
        AlignZipFile,
    )

    if mediapipe.__file__ is None:
        raise PoseBackendMissingError(f"MediaPipe has no install folder; reinstall: {INSTALL_HINT}")
    root = Path(mediapipe.__file__).parent

    def with_normalisation(relative: str, mean: float, std: float) -> bytes:
        path = root / relative
        if not path.is_file():
            raise PoseBackendMissingError(
                f"{path} is missing from the MediaPipe install; reinstall it with: {INSTALL_HINT}"
            )
        writer = metadata_writer.MetadataWriter.create(bytearray(path.read_bytes()))
        writer.add_general_info(path.stem).add_image_input(norm_mean=[mean], norm_std=[std])
        return bytes(writer.populate()[0])

    buffer = io.BytesIO()
    with AlignZipFile(buffer, mode="w", alignment=4) as bundle:
        bundle.writestr("pose_detector.tflite", with_normalisation(DETECTOR_FILE, 127.5, 127.5))
        bundle.writestr(
            "pose_landmarks_detector.tflite", with_normalisation(LANDMARK_FILE, 0.0, 255.0)
        )
    return buffer.getvalue()


def create_landmarker(
    *,
    video: bool,
    num_poses: int,
    min_detection_confidence: float,
    min_presence_confidence: float,
    min_tracking_confidence: float,
    masks: bool = True,
) -> Any:
    """A Tasks ``PoseLandmarker`` on the in-memory bundle.

    Args:
        video: Video running mode (tracking between calls) instead of image mode.
        num_poses: Most people per image.
        min_detection_confidence: Person-detector score threshold.
        min_presence_confidence: Landmark-model presence threshold.
        min_tracking_confidence: Video mode: tracking threshold.
        masks: Output segmentation masks (None per person without them).

    Returns:
        The landmarker (close it with ``.close()``).
    """
    import_mediapipe()
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    options = vision.PoseLandmarkerOptions(
        base_options=BaseOptions(model_asset_buffer=model_bundle()),
        running_mode=vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE,
        num_poses=num_poses,
        min_pose_detection_confidence=min_detection_confidence,
        min_pose_presence_confidence=min_presence_confidence,
        min_tracking_confidence=min_tracking_confidence,
        output_segmentation_masks=masks,
    )
    return vision.PoseLandmarker.create_from_options(options)
