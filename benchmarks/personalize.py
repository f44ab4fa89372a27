"""Personalisation on real video: a trained run before and after ``personalize`` on one frame.

Pairs (same camera, pose change): for each camera of Pose2Sim's ``Demo_SinglePerson`` (BSD-3,
``make real-videos`` fetches it into ``.cache/real``), the *source* is one early frame and the
*targets* are frames from the later part of the same video. The camera is still, so one fixed
frame per camera (the union of the person's boxes in the source and target frames, grown to the
model's aspect) crops the source and every target: the ground truth is the real target frame in
that frame, background included. The source person is found and framed in it by
``RePoser.source`` (``framing="letterbox"`` of the cropped photo: detector mask, inpainted plate)
and the target poses by ``RePoser.target_pose``.

Methods (each composited over the source's plate through the flow's person mask, as ``infer``
writes a photo; ``raw`` rows are the networks' output without compositing):

- ``copy_source``: the source frame itself;
- ``warp_3d``: the source warped by the fitted-body flow (``flow="3d"``);
- ``base/3d``, ``base/regressor``: the run with the fitted-body flow or its flow regressor;
- ``personal/3d``, ``personal/regressor``: the run after ``personalize`` on the source frame
  (:func:`posetransfer.train.personalize.personalize`, the settings of
  ``posetransfer personalize`` unless overridden).

``WORK/grid.png``: per camera, the first and last target as rows of source, real target,
``warp_3d``, ``base/3d``, ``personal/3d`` and ``personal/3d raw``.

Metrics (``posetransfer.eval``, the ``native`` protocol at the run's size): SSIM, PSNR, L1 and SSIM,
L1 inside the target's keypoint mask (``eval.masks.pose_masks``), means over all pairs, and paired
bootstrap 95% intervals of the differences ``personal/3d - base/3d``, ``- warp_3d`` and
``- copy_source`` and ``personal/3d raw - warp_3d``. One torch thread; the personalisation's wall
time is reported (with the load average: the machine may be shared). ``--reuse`` scores the
personalised runs already in ``--work`` with their recorded times (``bench_timing.json``).

Usage: ``python benchmarks/personalize.py [--run RUN] [--cams 1 2 3 4] [--steps 300] [--reuse]
[--append] [key=value ...]`` (overrides of ``PersonalizeConfig``, e.g. ``body.count=0``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import markdown_table, record  # noqa: E402
from posetransfer.config import apply_overrides  # noqa: E402
from posetransfer.conventions import Visibility  # noqa: E402
from posetransfer.eval.masks import pose_masks  # noqa: E402
from posetransfer.eval.metrics import l1, masked_l1, psnr  # noqa: E402
from posetransfer.eval.protocols import get_eval_protocol  # noqa: E402
from posetransfer.eval.ssim import masked_ssim, ssim  # noqa: E402
from posetransfer.infer.background import composite  # noqa: E402
from posetransfer.infer.detect import PoseDetector  # noqa: E402
from posetransfer.infer.framing import Frame  # noqa: E402
from posetransfer.infer.pipeline import PoseTransferPipeline  # noqa: E402
from posetransfer.infer.repose import RePoseOptions, RePoser, SourcePerson  # noqa: E402
from posetransfer.infer.video import iter_frames  # noqa: E402
from posetransfer.io import save_png, tensor_to_uint8, uint8_to_tensor  # noqa: E402
from posetransfer.models.pixel_warp import warp_source_image  # noqa: E402
from posetransfer.pose.keypoints import Pose  # noqa: E402
from posetransfer.runtime import set_torch_threads  # noqa: E402
from posetransfer.train.personalize import personalize  # noqa: E402
from posetransfer.train.personalize_config import PersonalizeConfig  # noqa: E402
from posetransfer.train.self_pairs import PersonCrop  # noqa: E402
from real_videos import DEFAULT_CACHE, ensure_real_videos  # noqa: E402

RUNS = [ROOT / "demo_out" / "runs" / "full"]  # what `make demo` trains
TINY_RUN = ROOT / "tests" / "fixtures" / "old_run" / "gen_run"
METRICS = ("ssim", "psnr", "l1", "mask_ssim", "mask_l1")
HIGHER = {"ssim": True, "psnr": True, "l1": False, "mask_ssim": True, "mask_l1": False}


def default_run() -> Path:
    """The demo's full run if it is there, else the tiny test run."""
    return next((run for run in RUNS if (run / "checkpoints").is_dir()), TINY_RUN)


def camera_pairs(
    video: Path, source_index: int, target_indices: list[int], size: tuple[int, int]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The source and target frames cropped by one still frame around all of the person's boxes.

    Returns:
        ``(source photo, target photos)``, each ``(4h, 4w, 3)`` uint8 (4x the model's size).
    """
    wanted = {source_index, *target_indices}
    frames = {i: f for i, f in iter_frames(video) if i in wanted}
    with PoseDetector() as detector:
        boxes = [
            detector.detect(frames[i], name=f"{video.name}#{i}").bounds for i in sorted(wanted)
        ]
    union = (min(b[0] for b in boxes), min(b[1] for b in boxes),
             max(b[2] for b in boxes), max(b[3] for b in boxes))  # fmt: skip
    image_size = frames[source_index].shape[:2]
    frame = Frame.from_box(union, image_size, (4 * size[0], 4 * size[1]), "crop", margin=0.05)
    return frame.crop(frames[source_index]), [frame.crop(frames[i]) for i in target_indices]


def warp_3d(source: SourcePerson, flow: torch.Tensor, vis: torch.Tensor) -> list[np.ndarray]:
    """The source warped by the flow on the person, composited over the plate."""
    x = uint8_to_tensor(source.crop)[None].expand(len(flow), -1, -1, -1)
    warped = warp_source_image(x, flow, vis)
    out = []
    for i in range(len(flow)):
        mask = (vis[i] != int(Visibility.BACKGROUND)).numpy().astype(np.float32)
        out.append(composite(tensor_to_uint8(warped[i]), source.plate, mask))
    return out


def render(
    pipeline: PoseTransferPipeline,
    source: SourcePerson,
    targets: list[Pose],
    flows: tuple[torch.Tensor, torch.Tensor] | None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``(composited frames, raw network outputs)``; ``flows`` None uses the run's regressor."""
    with RePoser(pipeline, RePoseOptions(framing="letterbox")) as reposer:
        results = reposer.render(source, targets, flows)
    return [r.frame for r in results], [r.generated for r in results]


def scores(images: list[np.ndarray], truth: list[np.ndarray], poses: list[Pose]) -> dict:
    """Per-pair metrics, ``{name: (N,) float64}``."""
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).double()
    y = torch.from_numpy(np.stack(truth)).permute(0, 3, 1, 2).double()
    masks = pose_masks(poses, tuple(x.shape[-2:]))
    spec = get_eval_protocol("native").ssim[0][1]
    return {
        "ssim": ssim(x, y, spec).numpy(),
        "psnr": psnr(x, y, data_range=255.0).numpy(),
        "l1": l1(x, y, data_range=255.0).numpy(),
        "mask_ssim": masked_ssim(x, y, masks, spec).numpy(),
        "mask_l1": masked_l1(x, y, masks, data_range=255.0).numpy(),
    }


def bootstrap(diff: np.ndarray, draws: int = 4000, seed: int = 0) -> tuple[float, float]:
    """Paired bootstrap 95% interval of the mean of per-pair differences."""
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (draws, len(diff)))].mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--run", type=Path, default=None,
        help="trained run (default: demo_out/runs/full, else the tiny test run)",
    )  # fmt: skip
    parser.add_argument("--cams", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--source-frame", type=int, default=10)
    parser.add_argument("--targets", default="55:100:5", help="start:stop:step frame indices")
    parser.add_argument("--steps", type=int, default=300, help="personalisation steps")
    parser.add_argument("--work", type=Path, default=ROOT / ".cache" / "bench" / "personalize")
    parser.add_argument(
        "--reuse", action="store_true",
        help="score the personalised runs already in --work (and their recorded times)",
    )  # fmt: skip
    parser.add_argument("--append", action="store_true", help="append to BENCHMARKS.md")
    parser.add_argument("overrides", nargs="*", help="PersonalizeConfig overrides key=value")
    args = parser.parse_args()
    set_torch_threads(1)
    run = args.run or default_run()
    start, stop, step = (int(v) for v in args.targets.split(":"))
    target_indices = list(range(start, stop, step))
    cfg = apply_overrides(PersonalizeConfig(checkpoint=run), [
        f"train.max_steps={args.steps}", "framing=letterbox", *args.overrides,
    ])  # fmt: skip
    videos = ensure_real_videos(DEFAULT_CACHE)
    base = PoseTransferPipeline.from_run(run)
    size = base.image_size
    per_method: dict[str, list[dict]] = {}
    timings, grids = [], []
    for cam in args.cams:
        video = videos[f"single_cam{cam:02d}"]
        photo, target_photos = camera_pairs(video, args.source_frame, target_indices, size)
        with RePoser(base, RePoseOptions(framing="letterbox", flow="3d")) as reposer:
            source = reposer.source(photo, name=f"cam{cam:02d}#{args.source_frame}")
            poses = [reposer.target_pose(t, name=f"cam{cam:02d} target") for t in target_photos]
            flows = reposer.flows(source, poses)
        truth = [source.frame.crop(t) for t in target_photos]
        outputs = {"copy_source": [source.crop] * len(poses), "warp_3d": warp_3d(source, *flows)}
        for name, pipeline in (("base", base),):
            outputs[f"{name}/3d"], outputs[f"{name}/3d raw"] = render(
                pipeline, source, poses, flows
            )
            outputs[f"{name}/regressor"], _ = render(pipeline, source, poses, None)
        person = PersonCrop(source.crop, source.pose, source.mask, source.plate)
        out_dir = args.work / f"cam{cam:02d}"
        timing = out_dir / "bench_timing.json"
        if not (args.reuse and timing.is_file()):
            shutil.rmtree(out_dir, ignore_errors=True)  # a fresh personalisation, not a resume
            t0 = time.perf_counter()
            result = personalize(cfg, person, out_dir)
            record_ = {"seconds": time.perf_counter() - t0, "steps": result.step}
            timing.write_text(json.dumps(record_))
        saved = json.loads(timing.read_text())
        timings.append((cam, saved["seconds"], saved["steps"]))
        tuned = PoseTransferPipeline.from_run(out_dir)
        outputs["personal/3d"], outputs["personal/3d raw"] = render(tuned, source, poses, flows)
        outputs["personal/regressor"], _ = render(tuned, source, poses, None)
        for method, images in outputs.items():
            per_method.setdefault(method, []).append(scores(images, truth, poses))
        columns = ["warp_3d", "base/3d", "personal/3d", "personal/3d raw"]
        grids += [np.concatenate([source.crop, truth[i]] + [outputs[m][i] for m in columns], 1)
                  for i in (0, len(truth) - 1)]  # fmt: skip
        print(f"cam{cam:02d}: personalised in {timings[-1][1]:.0f} s", flush=True)
    args.work.mkdir(parents=True, exist_ok=True)
    save_png(args.work / "grid.png", np.concatenate(grids, 0))

    merged = {m: {k: np.concatenate([s[k] for s in v]) for k in METRICS}
              for m, v in per_method.items()}  # fmt: skip
    table = [[m, *(f"{np.nanmean(s[k]):.3f}" for k in METRICS)] for m, s in merged.items()]
    diffs = []
    compared = [("personal/3d", o) for o in ("base/3d", "warp_3d", "copy_source")]
    for mine, other in [*compared, ("personal/3d raw", "warp_3d")]:
        cells = []
        for k in METRICS:
            d = merged[mine][k] - merged[other][k]
            d = d[np.isfinite(d)]
            lo, hi = bootstrap(d)
            better = (lo > 0) if HIGHER[k] else (hi < 0)
            cells.append(f"{d.mean():+.3f} [{lo:+.3f}, {hi:+.3f}]{' *' if better else ''}")
        diffs.append([f"{mine} - {other}", *cells])
    n = len(merged["copy_source"]["ssim"])
    per_cam = ", ".join(f"cam{c:02d} {s:.0f} s" for c, s, _ in timings)
    body = (
        f"Run `{run}` ({size[0]}x{size[1]}); {len(args.cams)} sources (Demo_SinglePerson cams "
        f"{args.cams}, frame {args.source_frame}), {n} pairs (targets: frames {target_indices} "
        f"of the same camera); personalisation {timings[0][2]} steps of batch "
        f"{cfg.train.batch_size}, 1 thread: {per_cam} (load average now "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores).\n\n"
        + markdown_table(["method", *METRICS], table)
        + "\n\nPaired bootstrap 95% intervals (4000 draws) of the per-pair differences; `*`: "
        "the interval excludes 0 in the better direction:\n\n"
        + markdown_table(["difference", *METRICS], diffs)
        + f"\n\nSettings: `{json.dumps(args.overrides)}`; grid: `{args.work / 'grid.png'}`."
    )
    if args.append:
        record("Personalisation on real video (benchmarks/personalize.py)", body)
    else:
        print(body)


if __name__ == "__main__":
    main()
