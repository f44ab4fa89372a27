"""bfloat16 against float32 inference: how much the frames change, and how much faster they come.

``infer --precision bf16`` (``PoseTransferPipeline(precision="bf16")``) runs the torch networks
under bfloat16 autocast. This script measures what that costs and gains with a **trained** run
(default: the full model that ``make demo`` trains, at its own size) on the driving poses of a
real demo video (BSD-3, ``make real-videos``; default the Pose2Sim single-person camera 2) with
the source person of ``tests/fixtures/real/single_cam01_f050.jpg``:

- per frame, the flow (end-point error of bf16 against float32, pixels of the model frame), the
  visibility classes (share of pixels that agree), and the networks' image before compositing
  (largest and mean absolute difference on 0-255, PSNR of bf16 against float32);
- the CPU seconds per frame of the flow regressor and of the generator + refiner at each
  precision (batches of ``--batch-size``, one intra-op thread), after a warm-up batch.

Whether bfloat16 is native on this CPU (AVX512-BF16 or AMX) is printed: where it is emulated it
is slower than float32.

Usage: ``python benchmarks/precision.py [--checkpoint RUN] [--frames 48] [--append]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import machine_info, record  # noqa: E402
from posetransfer.infer.images import load_image  # noqa: E402
from posetransfer.infer.motion import _frame_targets, driving_poses  # noqa: E402
from posetransfer.infer.pipeline import PoseTransferPipeline, native_bf16  # noqa: E402
from posetransfer.infer.repose import RePoseOptions, RePoser, RePoseResult  # noqa: E402
from posetransfer.pose.keypoints import Pose  # noqa: E402
from posetransfer.runtime import set_torch_threads  # noqa: E402
from real_videos import ensure_real_videos  # noqa: E402

SOURCE = ROOT / "tests" / "fixtures" / "real" / "single_cam01_f050.jpg"
DEMO_RUN = ROOT / "demo_out" / "work" / "runs" / "full"


def render_all(
    pipeline: PoseTransferPipeline, targets: list[Pose], batch: int
) -> tuple[list[RePoseResult], float, float]:
    """Every target rendered: (results, CPU s/frame of the flow, of generator + refiner)."""
    with RePoser(pipeline, RePoseOptions()) as reposer:
        source = reposer.source(load_image(SOURCE), name=SOURCE.name)
        reposer.render(source, targets[:batch])  # warm-up (targets are in the model frame)
        flow_cpu = render_cpu = 0.0
        results: list[RePoseResult] = []
        for start in range(0, len(targets), batch):
            chunk = targets[start : start + batch]
            t = time.process_time()
            flows = reposer.flows(source, chunk)
            flow_cpu += time.process_time() - t
            t = time.process_time()
            results += reposer.render(source, chunk, flows)
            render_cpu += time.process_time() - t
        return results, flow_cpu / len(targets), render_cpu / len(targets)


def shown(path: Path) -> str:
    """``path`` relative to the repository when inside it."""
    return str(path.relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def compare(fp32: list[RePoseResult], bf16: list[RePoseResult]) -> dict[str, float]:
    """Differences of bf16 against float32, over all frames."""
    epe = [np.linalg.norm(b.flow - a.flow, axis=-1).mean() for a, b in zip(fp32, bf16, strict=True)]
    agree = [(a.visibility == b.visibility).mean() for a, b in zip(fp32, bf16, strict=True)]
    diffs = [
        np.abs(a.generated.astype(np.int16) - b.generated.astype(np.int16))
        for a, b in zip(fp32, bf16, strict=True)
    ]
    psnrs = [psnr(a.generated, b.generated) for a, b in zip(fp32, bf16, strict=True)]
    return {
        "flow_epe": float(np.mean(epe)),
        "flow_epe_max": float(np.max(epe)),
        "vis_agree": float(np.mean(agree)),
        "vis_agree_min": float(np.min(agree)),
        "image_max": float(max(int(d.max()) for d in diffs)),
        "image_mean": float(np.mean([d.mean() for d in diffs])),
        "psnr": float(np.mean(psnrs)),
        "psnr_min": float(np.min(psnrs)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=DEMO_RUN, help="a `train` run")
    parser.add_argument("--frames", type=int, default=48, help="driving-video frames")
    parser.add_argument("--video", default="single_cam02", help="demo video key (real_videos)")
    parser.add_argument("--batch-size", type=int, default=8, help="frames per network batch")
    parser.add_argument("--append", action="store_true", help="append the table to BENCHMARKS.md")
    args = parser.parse_args(argv)
    if not (args.checkpoint / "config.yaml").is_file():
        parser.error(f"{args.checkpoint}: not a `posetransfer train` run (run `make demo` first)")
    video = ensure_real_videos(keys=[args.video])[args.video]
    set_torch_threads(1)
    pipelines = {
        p: PoseTransferPipeline.from_run(args.checkpoint, precision=p) for p in ("fp32", "bf16")
    }
    poses, _, _ = driving_poses(video, max_frames=args.frames)
    with RePoser(pipelines["fp32"], RePoseOptions()) as reposer:
        source = reposer.source(load_image(SOURCE), name=SOURCE.name)
        targets = _frame_targets(source, poses, True, reposer.options.margin)
    runs = {p: render_all(pipe, targets, args.batch_size) for p, pipe in pipelines.items()}
    diff = compare(runs["fp32"][0], runs["bf16"][0])
    size = "x".join(str(v) for v in pipelines["fp32"].image_size)
    lines = [
        f"Run `{shown(args.checkpoint)}` at {size}; {len(targets)} driving poses of "
        f"`{video.relative_to(ROOT)}`; source "
        f"`{SOURCE.relative_to(ROOT)}`; batches of {args.batch_size}; 1 thread; native bfloat16 "
        f"on this CPU: {native_bf16(torch.device('cpu'))}; {machine_info()}.",
        "",
        "| precision | flow CPU ms/frame | generator + refiner CPU ms/frame | total | vs fp32 |",
        "|---|---|---|---|---|",
    ]
    base = sum(runs["fp32"][1:])
    for p, (_, flow_cpu, render_cpu) in runs.items():
        total = flow_cpu + render_cpu
        lines.append(
            f"| {p} | {1e3 * flow_cpu:.1f} | {1e3 * render_cpu:.1f} | {1e3 * total:.1f} | "
            f"{base / total:.2f}x |"
        )
    lines += [
        "",
        f"- bf16 vs fp32 flow: mean end-point error {diff['flow_epe']:.3f} px (worst frame "
        f"{diff['flow_epe_max']:.3f}); visibility classes agree on {100 * diff['vis_agree']:.2f}% "
        f"of pixels (worst frame {100 * diff['vis_agree_min']:.2f}%)",
        f"- bf16 vs fp32 network image (0-255): mean absolute difference "
        f"{diff['image_mean']:.2f}, largest {diff['image_max']:.0f}; PSNR {diff['psnr']:.1f} dB "
        f"(worst frame {diff['psnr_min']:.1f})",
    ]
    body = "\n".join(lines)
    print(body)
    if args.append:
        record("Inference precision: bfloat16 against float32 (CPU, trained run)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
