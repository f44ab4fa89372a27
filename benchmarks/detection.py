"""Pose detection speed: ms per image on the committed real frames (and full-size video frames).

Compares, on the same images and the same CPU:

- ``PoseDetector`` (the Tasks ``PoseLandmarker`` on the wheel's ``full`` model, mask on) with
  ``num_poses`` 1 and 4 (the default);
- the legacy ``mp.solutions.pose.Pose`` at ``model_complexity`` 0, 1 and 2, static-image mode,
  segmentation on. Complexity 0 (``lite``) and 2 (``heavy``) are not in the wheel: the legacy
  API would download them, so they are reported as unavailable unless the files are present.

Pinned to one CPU core by default (``os.sched_setaffinity``; MediaPipe has no thread setting in
its Python API), ``--cores N`` to use more. Appends a section to BENCHMARKS.md.

Usage: ``python benchmarks/detection.py [--repeat 5] [--cores 1]``
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from common import markdown_table, record
from posetransfer.infer.detect import DetectorConfig, PoseDetector
from posetransfer.infer.images import load_image

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "real"
VIDEOS = ROOT / ".cache" / "real" / "pose2sim" / "Pose2Sim"
LEGACY_MODELS = {0: "pose_landmark_lite.tflite", 1: "pose_landmark_full.tflite",
                 2: "pose_landmark_heavy.tflite"}  # fmt: skip


def _interleaved_ms(
    runners: dict[str, Callable[[np.ndarray], object]], images: list[np.ndarray], repeat: int
) -> dict[str, float]:
    """Median ms per image of each runner; passes alternate between runners (shared CPUs).

    One warm-up pass each, then ``repeat`` rounds in which every runner processes all images.
    """
    times: dict[str, list[float]] = {name: [] for name in runners}
    for round_ in range(repeat + 1):
        for name, fn in runners.items():
            start = time.perf_counter()
            for image in images:
                fn(image)
            if round_:
                times[name].append((time.perf_counter() - start) * 1000 / len(images))
    return {name: float(np.median(t)) for name, t in times.items()}


def _full_size_frames() -> list[np.ndarray]:
    """Frame 50 of three demo videos at full size (``make real-videos``), if fetched."""
    from posetransfer.infer.video import iter_frames

    frames = []
    for video in ("Demo_SinglePerson/videos/cam01.mp4", "Demo_MultiPerson/videos/cam04.mp4",
                  "Demo_SinglePerson/videos/cam04.mp4"):  # fmt: skip
        if (VIDEOS / video).is_file():
            frames.append(list(iter_frames(VIDEOS / video, every=50, max_frames=2))[-1][1])
    return frames


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed passes per setting")
    parser.add_argument("--cores", type=int, default=1, help="CPU cores to pin the process to")
    args = parser.parse_args()
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[: args.cores]))
    torch.set_num_threads(1)

    import mediapipe as mp
    from mediapipe.python.solutions import pose as legacy

    sets = {"real frames, 256 px high": [load_image(p) for p in sorted(FIXTURES.glob("*.jpg"))]}
    full = _full_size_frames()
    if full:
        sets["video frames, 1080x1920"] = full
    models = Path(mp.__file__).parent / "modules" / "pose_landmark"

    rows = []
    for label, images in sets.items():
        with contextlib.ExitStack() as stack:
            runners, found, model = {}, {}, {}
            for num_poses in (1, 4):
                name = f"PoseDetector num_poses={num_poses}"
                det = stack.enter_context(PoseDetector(DetectorConfig(num_poses=num_poses)))
                runners[name], model[name] = det.detect_all, "full"
                found[name] = sum(len(det.detect_all(im)) for im in images)
            for complexity, filename in LEGACY_MODELS.items():
                name, model[name] = f"solutions.pose complexity={complexity}", filename
                if not (models / filename).is_file():
                    found[name] = None
                    continue
                solution = stack.enter_context(legacy.Pose(
                    static_image_mode=True, model_complexity=complexity, enable_segmentation=True
                ))  # fmt: skip
                runners[name] = solution.process
                found[name] = sum(solution.process(im).pose_landmarks is not None for im in images)
            ms = _interleaved_ms(runners, images, args.repeat)
        for name in model:
            if found[name] is None:
                rows.append([label, name, model[name], "not in the wheel (downloads)", "-"])
            else:
                rows.append([label, name, model[name], f"{ms[name]:.1f}", found[name]])

    table = markdown_table(["images", "detector", "landmark model", "ms / image", "people found"],
                           rows)  # fmt: skip
    counts = ", ".join(f"{label}: {len(images)}" for label, images in sets.items())
    body = (
        f"mediapipe {mp.__version__}; pinned to {len(os.sched_getaffinity(0))} core(s); "
        f"median of {args.repeat} passes after a warm-up, settings interleaved; "
        f"images per set: {counts}.\n\n{table}\n"
    )
    record("Pose detection speed (CPU, MediaPipe BlazePose)", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
