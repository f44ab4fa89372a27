"""CPU video throughput of motion transfer: the plain loop against the streaming loop, per stage.

``posetransfer infer --source PHOTO --target VIDEO`` runs :func:`posetransfer.infer.motion.animate`.
This script runs it on the first ``--frames`` frames of a real demo video (BSD-3, ``make
real-videos``; default the Pose2Sim single-person camera 2, 1080x1920 at 60 fps) with the source
person of ``tests/fixtures/real/single_cam01_f050.jpg``, at 256x176, for each backend (torch,
torch with ``precision="bf16"``, ONNX Runtime) and each loop:

``plain``
    ``MotionOptions(workers=0)``: decode and detect, smooth, then per batch (8 frames by default)
    the flow, the
    render (generator, refiner, compositing) and the encoding, one after another;
``stream``
    the default (``workers=2``): decoding in a thread ahead of detection, then
    :mod:`posetransfer.infer.motion_stream` (source features once, two batches in the networks
    at once, encoding in the calling thread; batches of 2 frames by default).

Every row is one ``animate`` call with the networks at one intra-op thread (``--threads``), after
a warm-up call. Printed per row: frames per second end to end (frames / wall time of the call),
the process's CPU seconds per frame, and the frames per second that CPU time would give on two
idle cores (``2 / cpu_per_frame``: *derived*, assumes both cores fully used), then per stage the
wall seconds (summed over threads: stages overlap in the streaming loop) and the CPU seconds.
The streaming loop's frames are compared with the plain loop's (largest difference of the
decoded MP4s' pixels), and the bf16 frames with torch's float32 ones. The machine's load
average is printed before and after each row: on a shared machine the wall-time figures depend
on it, the CPU figures much less.

The model is the default architecture (``configs/generator/default.yaml`` and the default flow
regressor) with **random weights**: speed does not depend on the weights.

Usage: ``python benchmarks/video_throughput.py [--frames 48] [--backends torch torch-bf16
onnxruntime] [--batch-size N] [--detect-workers 1] [--append]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import machine_info, record  # noqa: E402
from posetransfer.infer.images import load_image  # noqa: E402
from posetransfer.infer.motion import (  # noqa: E402
    PLAIN_BATCH,
    STREAM_BATCH,
    MotionOptions,
    MotionReport,
    animate,
)
from posetransfer.infer.pipeline import PoseTransferPipeline  # noqa: E402
from posetransfer.infer.repose import RePoseOptions, RePoser  # noqa: E402
from posetransfer.infer.video import iter_frames  # noqa: E402
from posetransfer.runtime import set_torch_threads  # noqa: E402
from real_people import SIZE, random_pipeline  # noqa: E402
from real_videos import ensure_real_videos  # noqa: E402

SOURCE = ROOT / "tests" / "fixtures" / "real" / "single_cam01_f050.jpg"
BACKENDS = ("torch", "torch-bf16", "onnxruntime")
STAGES = ("detect", "decode", "smooth", "flow", "generator", "render", "composite", "encode")


def run_row(
    pipeline: PoseTransferPipeline,
    video: Path,
    frames: int,
    workers: int,
    out: Path,
    batch_size: int | None = None,
    detect_workers: int = 1,
) -> tuple[MotionReport, float, float]:
    """One ``animate`` call: (report, wall seconds, process CPU seconds)."""
    with RePoser(pipeline, RePoseOptions()) as reposer:
        source = reposer.source(load_image(SOURCE), name=SOURCE.name)
        options = MotionOptions(
            max_frames=frames, workers=workers, batch_size=batch_size, detect_workers=detect_workers
        )
        wall, cpu = time.perf_counter(), time.process_time()
        report = animate(reposer, source, video, out, options)
        return report, time.perf_counter() - wall, time.process_time() - cpu


def max_difference(a: Path, b: Path) -> tuple[int, float]:
    """Largest and mean absolute pixel difference between two videos' frames."""
    worst, total, count = 0, 0.0, 0
    for (_, x), (_, y) in zip(iter_frames(a), iter_frames(b), strict=True):
        diff = np.abs(x.astype(np.int16) - y.astype(np.int16))
        worst, total, count = max(worst, int(diff.max())), total + float(diff.mean()), count + 1
    return worst, total / max(count, 1)


def stage_cells(report: MotionReport) -> str:
    cells = []
    for stage in STAGES:
        if stage in report.seconds:
            wall, cpu = report.seconds[stage], report.cpu_seconds.get(stage, float("nan"))
            cells.append(f"{stage} {wall:.1f}/{cpu:.1f}")
    return ", ".join(cells)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=48, help="video frames per row")
    parser.add_argument("--video", default="single_cam02", help="demo video key (real_videos)")
    parser.add_argument("--threads", type=int, default=1, help="torch / ORT intra-op threads")
    parser.add_argument("--workers", type=int, default=2, help="streaming loop's workers")
    parser.add_argument(
        "--batch-size", type=int, help="frames per network batch (default: the MotionOptions one)"
    )
    parser.add_argument(
        "--detect-workers", type=int, default=1, help="landmarkers at once (stream rows)"
    )
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--append", action="store_true", help="append the table to BENCHMARKS.md")
    args = parser.parse_args(argv)
    video = ensure_real_videos(keys=[args.video])[args.video]
    set_torch_threads(args.threads)
    torch.manual_seed(0)
    header = (
        "| backend | loop | frames | wall s | frames/s | CPU s/frame | derived frames/s on 2 "
        "idle cores | vs plain (CPU) | load before/after | stages: wall s / CPU s |\n"
        "|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [header]
    print(header, flush=True)
    notes = []
    outputs: dict[tuple[str, str], Path] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends:
            pipeline = random_pipeline(precision="bf16" if backend == "torch-bf16" else "fp32")
            if backend == "onnxruntime":
                from posetransfer.infer.onnx_backend import OnnxEngine

                pipeline.engine = OnnxEngine.from_networks(
                    pipeline.cfg, pipeline.nets, args.threads
                )
            run_row(pipeline, video, 8, 0, Path(tmp) / "warm.mp4")  # warm-up (detector, ORT)
            base_cpu = None
            for loop, workers in (("plain", 0), ("stream", args.workers)):
                out = Path(tmp) / f"{backend}-{loop}.mp4"
                load = os.getloadavg()[0]
                detect = args.detect_workers if workers else 1
                report, wall, cpu = run_row(
                    pipeline, video, args.frames, workers, out, args.batch_size, detect
                )
                outputs[backend, loop] = out
                per_frame = cpu / report.frames
                base_cpu = per_frame if base_cpu is None else base_cpu
                line = (
                    f"| {backend} | {loop} (workers={workers}) | {report.frames} | {wall:.1f} | "
                    f"{report.frames / wall:.2f} | {per_frame:.3f} | {2 / per_frame:.1f} | "
                    f"{base_cpu / per_frame:.2f}x | {load:.1f}/{os.getloadavg()[0]:.1f} | "
                    f"{stage_cells(report)} |"
                )
                lines.append(line)
                print(line, flush=True)
            pairs = [("stream vs plain", (backend, "stream"), (backend, "plain"))]
            if backend == "torch-bf16" and ("torch", "stream") in outputs:
                pairs.append(("bf16 vs float32", (backend, "stream"), ("torch", "stream")))
            for what, a, b in pairs:
                worst, mean = max_difference(outputs[a], outputs[b])
                notes.append(
                    f"- {backend}: {what} output frames (decoded MP4s): largest pixel "
                    f"difference {worst}, mean {mean:.4f} (0-255)"
                )
                print(notes[-1], flush=True)
    batches = (
        f"batches of {args.batch_size}"
        if args.batch_size
        else f"batches of {PLAIN_BATCH} (plain) and {STREAM_BATCH} (stream), the defaults"
    )
    body = "\n".join(
        [
            f"Video `{video.relative_to(ROOT)}`, first {args.frames} frames; source "
            f"`{SOURCE.relative_to(ROOT)}`; default networks at {SIZE[0]}x{SIZE[1]}, random "
            f"weights; {batches}; {args.detect_workers} landmarker(s) in the stream rows; "
            f"{args.threads} intra-op thread(s); "
            f"{machine_info()}.",
            "",
            *lines,
            "",
            *notes,
        ]
    )
    if args.append:
        record("Video throughput: plain vs streaming motion-transfer loop (CPU)", body)
    else:
        print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
