"""Real people end to end: pose detection, photo -> image, and video frames per second (CPU).

Measures, on the BSD-3 demo frames and videos of the ``pose2sim`` / ``sports2d`` wheels
(``make real-videos`` fetches them into ``.cache/real``):

``detect``
    BlazePose (``posetransfer.infer.detect``) per image on the committed real frames
    (``tests/fixtures/real``), photo mode; milliseconds per image, median of the frames.
``photo``
    ``RePoser(source photo, target photo)``: load both photos, detect both people, frame,
    inpaint the source's background, flow, generator and refiner, composite, paste; seconds per
    photo, median of the repeats.
``video``
    :func:`posetransfer.infer.motion.animate` on the first ``--frames`` frames of a demo video:
    detection in tracking mode, One-Euro smoothing, retargeting, flow (``regressor`` or ``3d``),
    rendering in batches of 8, H.264 encoding; frames per second = frames / wall time of the
    whole call, with the per-stage wall times, for 1 and 2 torch threads.

The model is the default architecture (``configs/generator/default.yaml``, the default flow
regressor) at 256x176 with **random weights** unless ``--run`` names a trained run: speed does not
depend on the weights. Rows of one run are comparable; the machine's load average is printed.

Usage: ``python benchmarks/real_people.py [--run RUN] [--frames 60] [--append]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from posetransfer.config import load_config  # noqa: E402
from posetransfer.infer.detect import PoseDetector  # noqa: E402
from posetransfer.infer.images import load_image  # noqa: E402
from posetransfer.infer.motion import MotionOptions, animate  # noqa: E402
from posetransfer.infer.pipeline import PoseTransferPipeline  # noqa: E402
from posetransfer.infer.repose import RePoseOptions, RePoser  # noqa: E402
from posetransfer.io import save_png  # noqa: E402
from posetransfer.models.flow_regressor import FlowRegressor  # noqa: E402
from posetransfer.models.generator import PoseTransferGenerator  # noqa: E402
from posetransfer.models.pixel_warp import build_refiner  # noqa: E402
from posetransfer.runtime import set_torch_threads  # noqa: E402
from posetransfer.train.generator_config import FlowModelRecord, GeneratorStageConfig  # noqa: E402
from real_videos import ensure_real_videos  # noqa: E402

FRAMES = ROOT / "tests" / "fixtures" / "real"
SIZE = (256, 176)


def random_pipeline(size: tuple[int, int] = SIZE, precision: str = "fp32") -> PoseTransferPipeline:
    """The default networks at ``size`` with random weights (speed only)."""
    torch.manual_seed(0)
    cfg = load_config(
        GeneratorStageConfig,
        ROOT / "configs" / "generator" / "default.yaml",
        [f"generator.image_size=[{size[0]}, {size[1]}]"],
    )
    record = FlowModelRecord()
    return PoseTransferPipeline(
        cfg,
        PoseTransferGenerator(cfg.generator),
        build_refiner(cfg.pixel_warp),
        FlowRegressor(record.model),
        record.pose_map,
        precision=precision,  # type: ignore[arg-type]  # checked by the pipeline
    )


def bench_detect() -> float:
    """Median milliseconds per image, photo mode."""
    images = [load_image(p) for p in sorted(FRAMES.glob("*.jpg"))]
    times = []
    with PoseDetector() as detector:
        detector.detect_all(images[0])  # warm-up
        for image in images:
            start = time.perf_counter()
            detector.detect_all(image)
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def bench_photo(pipeline: PoseTransferPipeline, repeats: int, out: Path) -> float:
    """Median seconds for one photo re-posed end to end (load, detect, ..., save)."""
    source, target = FRAMES / "single_cam01_f050.jpg", FRAMES / "sports2d_f115.jpg"
    times = []
    with RePoser(pipeline, RePoseOptions(paste=True)) as reposer:
        reposer(load_image(source), load_image(target))  # warm-up (opens the detector)
        for _ in range(repeats):
            start = time.perf_counter()
            result = reposer(load_image(source), load_image(target))
            save_png(out, result.image)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_video(
    pipeline: PoseTransferPipeline, video: Path, frames: int, flow: str, out: Path
) -> tuple[float, dict[str, float]]:
    """(frames per second, seconds per stage) of one ``animate`` call."""
    options = RePoseOptions(flow=flow, paste=False)  # type: ignore[arg-type]
    with RePoser(pipeline, options) as reposer:
        source = reposer.source(load_image(FRAMES / "single_cam01_f050.jpg"))
        if flow == "3d":
            reposer._body_model()  # load Anny before the clock starts (~2 s, once per process)
        start = time.perf_counter()
        report = animate(reposer, source, video, out, MotionOptions(max_frames=frames))
        wall = time.perf_counter() - start
    return report.frames / wall, report.seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, help="a trained run (default: random weights)")
    parser.add_argument("--frames", type=int, default=60, help="video frames per row")
    parser.add_argument("--repeats", type=int, default=5, help="photo repeats")
    parser.add_argument("--video", default="sports2d", help="which demo video (real_videos keys)")
    parser.add_argument("--append", action="store_true", help="append the table to BENCHMARKS.md")
    args = parser.parse_args(argv)
    videos = ensure_real_videos()
    video = next(p for k, p in videos.items() if args.video in k)
    lines = [
        f"load average at start: {os.getloadavg()[0]:.2f} (2 cores)",
        f"model: {'trained ' + str(args.run) if args.run else 'default networks, random weights'}"
        f" at {SIZE[0]}x{SIZE[1]}; video: {video.relative_to(ROOT)}, first {args.frames} frames",
        "",
        "| row | threads | result | detect | smooth | flow | render | encode |",
        "|---|---|---|---|---|---|---|---|",
    ]
    set_torch_threads(1)
    lines.append(f"| detect (photo mode) | 1 | {bench_detect():.1f} ms/image | | | | | |")
    with tempfile.TemporaryDirectory() as tmp:
        for threads in (1, 2):
            set_torch_threads(threads)
            pipeline = PoseTransferPipeline.from_run(args.run) if args.run else random_pipeline()
            photo = bench_photo(pipeline, args.repeats, Path(tmp) / "photo.png")
            lines.append(f"| photo -> image, end to end | {threads} | {photo:.3f} s | | | | | |")
            for flow in ("regressor", "3d"):
                fps, stages = bench_video(pipeline, video, args.frames, flow, Path(tmp) / "v.mp4")
                cells = " | ".join(
                    f"{stages.get(k, 0):.1f} s"
                    for k in ("detect", "smooth", "flow", "render", "encode")
                )
                lines.append(f"| video, flow {flow} | {threads} | {fps:.2f} frames/s | {cells} |")
                print(lines[-1], flush=True)
    table = "\n".join(lines)
    print(table)
    if args.append:
        stamp = time.strftime("%Y-%m-%d")
        section = (
            f"\n## Real people end to end: detection, photo, video (CPU, {stamp})\n\n"
            f"`python benchmarks/real_people.py --frames {args.frames} --append`\n\n{table}\n"
        )
        with open(ROOT / "BENCHMARKS.md", "a", encoding="utf-8") as f:
            f.write(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
