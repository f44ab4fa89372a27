"""Real-video benchmark: pose transfer on real people, synthetic-trained vs person-specific models.

Data: the four synchronised cameras of Pose2Sim's ``Demo_SinglePerson`` (one man, 100 frames
each; BSD-3, fetched by :func:`posetransfer.experiments.real_videos.ensure_real_videos` into
``.cache/real`` with the wheel's and the videos' SHA-256 checked), made into a dataset by
``make-dataset`` at 128x96 (the demo model's size, so nothing is resized), every 2nd frame, one
identity, time split (each camera's last 20% of frames are test frames, after a 15-frame gap).
Sports2D's demo is left out: its identity covers two people (the man on the roof and the woman
walking in the training segment, the man sprinting in the test segment), so "fine-tuned on the
person's training segment" is not defined for its test person.

Pairs: per camera ``--sources-per-camera`` test images are sources (the first test frame
first); each is paired with every other test image whose pose changed by >= 8 crop pixels
(make-dataset's rule): same camera = **pose change**, other cameras = **view change**, reported
apart. Images whose body fit fails (as ``synth-flow`` rejects them) are left out.

Methods (:mod:`posetransfer.experiments.real_eval`): ``copy_source``; ``warp_3d`` (the source
warped by the fitted-body flow); ``demo/regressor`` and ``demo/3d`` (the run ``make demo``
trains on synthetic people, with its flow regressor / the fitted-body flow); ``finetuned/3d``
(that run after ``train --init RUN --config configs/generator/finetune-cpu.yaml`` on the
dataset's training split with its ``synth-flow`` flows); ``personal/3d`` (that run after
``personalize`` on the pair's source image alone: the command's settings with
``--personal-steps`` 150 steps instead of its default 300, to stay under 30 minutes). Each is
scored **composited** (as ``infer`` writes a photo: the person over the source's inpainted
plate) and **raw** (the networks' output, as ``infer --data --pairs`` writes it).

Metrics: SSIM, PSNR, L1, and the same inside the target's person mask (make-dataset's
segmentation); LPIPS when its AlexNet weights are found. Paired-bootstrap 95% intervals of the
comparisons the issue names. Training runs in ``--workers`` processes with one torch thread
each. Writes ``WORK/`` (dataset, runs, ``results.json``, ``grid.png``) and, unless
``--no-record``, ``docs/images/real_video_grid.png`` and a section of BENCHMARKS.md.

    python benchmarks/real_video.py [--run RUN] [--work DIR] [--personal-steps 150]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, markdown_table, peak_rss_mb, record
from posetransfer.config import apply_overrides
from posetransfer.experiments.real_data import make_real_dataset, person_crop
from posetransfer.experiments.real_eval import (
    BASELINE_NOTES,
    RunMethod,
    prepare_pairs,
    render_methods,
    score_methods,
)
from posetransfer.experiments.real_figure import grid_figure, pick_rows, save_small_png
from posetransfer.experiments.real_scores import (
    HIGHER_IS_BETTER,
    lpips_model,
    mean_scores,
    paired_interval,
)
from posetransfer.experiments.real_training import (
    FinetuneJob,
    JobRunner,
    PersonalizeJob,
    finetune_config,
)
from posetransfer.experiments.real_videos import SINGLE_PERSON, ensure_real_videos
from posetransfer.infer.pipeline import PoseTransferPipeline
from posetransfer.train.personalize_config import PersonalizeConfig

RUNS = [Path("/work/demo_run/work/runs/full"), ROOT / "demo_out" / "work" / "runs" / "full"]
NOTES = BASELINE_NOTES | {
    "demo/regressor": "the demo run (synthetic people), its flow regressor",
    "demo/3d": "the demo run, the fitted-body flow",
    "finetuned/3d": "the demo run fine-tuned on the person's training frames (train --init)",
    "personal/3d": "the demo run personalised on the pair's source image (personalize)",
}
#: (method, baseline) differences with intervals: the issue's claims, and the 3D-flow model.
COMPARISONS = [("demo/regressor", "copy_source"), ("demo/3d", "warp_3d"),
               ("finetuned/3d", "warp_3d"), ("finetuned/3d", "copy_source"),
               ("personal/3d", "warp_3d"), ("personal/3d", "copy_source")]  # fmt: skip
INTERVAL_METRICS = ("ssim", "l1", "mask_ssim", "mask_l1")
GROUPS = {"pose": "same camera (pose change)", "view": "another camera (view change)"}


class Clock:
    """Wall and CPU seconds and the 1-minute load average of each phase."""

    def __init__(self) -> None:
        self.rows: list[list[object]] = []
        self.start = time.perf_counter()

    def phase(self, name: str, wall0: float, cpu0: float, load0: float) -> None:
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        load = f"{load0:.1f} -> {os.getloadavg()[0]:.1f}"
        self.rows.append([name, round(wall, 1), round(cpu, 1), load])
        logging.info("phase %s: %.1f s wall, %.1f s CPU, load %s", name, wall, cpu, load)

    @staticmethod
    def now() -> tuple[float, float, float]:
        return time.perf_counter(), time.process_time(), os.getloadavg()[0]


def default_run() -> Path:
    run = next((r for r in RUNS if (r / "checkpoints").is_dir()), None)
    if run is None:
        raise SystemExit("no demo run found: run `make demo` or pass --run RUN")
    return run


def interval_cell(a: np.ndarray, b: np.ndarray, metric: str) -> str:
    mean, lo, hi = paired_interval(a, b)
    better = lo > 0 if HIGHER_IS_BETTER[metric] else hi < 0
    worse = hi < 0 if HIGHER_IS_BETTER[metric] else lo > 0
    mark = " better" if better else " worse" if worse else ""
    return f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]{mark}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="synthetic-trained run (default: the demo's)")
    parser.add_argument("--work", type=Path, default=ROOT / ".cache" / "bench" / "real_video")
    parser.add_argument("--every", type=int, default=2, help="keep every k-th video frame")
    parser.add_argument("--sources-per-camera", type=int, default=1)
    parser.add_argument("--personal-steps", type=int, default=150, help="personalize --steps")
    parser.add_argument("--finetune", nargs="*", default=[], help="train overrides key=value")
    parser.add_argument("--workers", type=int, default=2, help="training processes at once")
    parser.add_argument("--no-record", action="store_true", help="leave BENCHMARKS.md alone")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    run, work, clock = args.run or default_run(), args.work, Clock()
    height, width = PoseTransferPipeline.from_run(run).image_size
    size = (height, width)
    t = clock.now()
    videos = ensure_real_videos(ROOT / ".cache" / "real", SINGLE_PERSON)
    summary = make_real_dataset(list(videos.values()), work / "data", size, every=args.every)
    clock.phase("videos + make-dataset", *t)

    from posetransfer.body import load_body_model

    t = clock.now()
    model = load_body_model()
    test = prepare_pairs(model, work / "data", sources_per_origin=args.sources_per_camera)
    clock.phase("body fits + pair flows (test)", *t)
    steps = [f"train.max_steps={args.personal_steps}", "train.progress=false"]
    personal_cfg = apply_overrides(PersonalizeConfig(checkpoint=run), steps)
    jobs = {s: PersonalizeJob(f"personalize {s}", personal_cfg, person_crop(test.images[s]),
                              work / "personal" / Path(s).stem) for s in test.sources}  # fmt: skip
    with JobRunner(args.workers) as runner:
        t = clock.now()
        for job in jobs.values():
            runner.submit(job)
        from posetransfer.synth.flow_output import SynthFlowConfig, SynthOutput
        from posetransfer.synth.flow_pipeline import synthesize_flows
        from posetransfer.synth.flow_plan import build_plan

        synth_cfg = SynthFlowConfig()
        plan = build_plan(work / "data", splits=["train"], fit_batch=synth_cfg.fit_batch,
                          render_block=synth_cfg.render_block)  # fmt: skip
        synth = synthesize_flows(model, plan, SynthOutput.create(work / "data"), synth_cfg)
        clock.phase("synth-flow (train pairs)", *t)
        preset = ROOT / "configs" / "generator" / "finetune-cpu.yaml"
        ft_cfg = finetune_config(run, work / "data", preset, args.finetune)
        runner.submit(FinetuneJob("finetune", ft_cfg, work / "finetuned"))
        t = clock.now()
        demo = PoseTransferPipeline.from_run(run)
        rendered = render_methods(test, {"demo/regressor": RunMethod(lambda s: demo, "regressor"),
                                         "demo/3d": RunMethod(lambda s: demo)})  # fmt: skip
        clock.phase("render baselines + demo run", *t)
        t = clock.now()
        trained = runner.wait()
        clock.phase("wait for training", *t)
    t = clock.now()
    tuned = PoseTransferPipeline.from_run(work / "finetuned")
    personal = {s: PoseTransferPipeline.from_run(job.run_dir) for s, job in jobs.items()}
    rendered |= render_methods(test, {"finetuned/3d": RunMethod(lambda s: tuned),
                                      "personal/3d": RunMethod(lambda s: personal[s])},
                               baselines=False)  # fmt: skip
    clock.phase("render person-specific runs", *t)
    t = clock.now()
    lpips = lpips_model()
    scores = score_methods(test, rendered, lpips)
    clock.phase("score", *t)
    wall = time.perf_counter() - clock.start

    kinds = test.kinds()
    methods = list(rendered)
    metrics = list(next(iter(scores.values()))["composited"])
    results = {m: {r: {g: mean_scores(s, kinds == g) for g in GROUPS} | {"all": mean_scores(s)}
                   for r, s in by_r.items()} for m, by_r in scores.items()}  # fmt: skip
    tables = []
    for group, title in GROUPS.items():
        rows = [[m, *(results[m]["composited"][group][k] for k in metrics), NOTES[m]]
                for m in methods]  # fmt: skip
        count = int((kinds == group).sum())
        tables.append(f"Composited, {title}, {count} pairs:\n\n"
                      + markdown_table(["method", *metrics, "what"], rows))  # fmt: skip
    rows = [[m, *(results[m]["raw"]["all"][k] for k in metrics)] for m in methods]
    raw_title = f"Raw network outputs (as `infer --data --pairs` writes them), {len(kinds)} pairs"
    tables.append(f"{raw_title}:\n\n" + markdown_table(["method", *metrics], rows))
    diff_rows = []
    for rendering, groups in (("composited", list(GROUPS)), ("raw", ["all"])):
        for a, b in COMPARISONS:
            for group in groups:
                keep = np.ones(len(kinds), bool) if group == "all" else kinds == group
                sa, sb = scores[a][rendering], scores[b][rendering]
                cells = [interval_cell(sa[k][keep], sb[k][keep], k) for k in INTERVAL_METRICS]
                diff_rows.append([f"{a} - {b}", rendering, group, *cells])
    shares = ", ".join(f"{m} {np.mean(r.warp_share):.2f}" for m, r in rendered.items()
                       if r.warp_share)  # fmt: skip
    grid_rows = pick_rows(test, per_kind=2)
    columns = ["warp_3d", "demo/regressor", "demo/3d", "finetuned/3d", "personal/3d"]
    grid = grid_figure(test, rendered, grid_rows, columns)
    save_small_png(work / "grid.png", grid)
    figure = ROOT / "docs" / "images" / "real_video_grid.png"
    if not args.no_record:
        save_small_png(figure, grid)
    times = [*clock.rows, *[[f"  {name} (worker)", round(jt.wall, 1), round(jt.cpu, 1), ""]
                            for name, jt in trained.items()]]  # fmt: skip
    payload = {"pairs": [vars(p) for p in test.pairs], "left_out": test.left_out,
               "results": results, "times": times, "wall_s": wall,
               "warp_share": {m: r.warp_share for m, r in rendered.items()}}  # fmt: skip
    (work / "results.json").write_text(json.dumps(payload, indent=1) + "\n")
    dataset = (f"{summary.images.get('train', 0)} train / {summary.images.get('test', 0)} test "
               f"images, {summary.pairs.get('train', 0)} train pairs")  # fmt: skip
    body = (
        f"Run `{run}` ({size[0]}x{size[1]}, synthetic people). Dataset: Pose2Sim "
        f"Demo_SinglePerson cam01-04, every {args.every}nd frame, {dataset}; synth-flow: "
        f"{synth.pairs.get('rendered', 0)} pairs rendered, {synth.pairs.get('failed', 0)} failed. "
        f"Test: {len(test.sources)} sources ({', '.join(test.sources)}), "
        f"{int((kinds == 'pose').sum())} same-camera and {int((kinds == 'view').sum())} "
        f"other-camera pairs; left out (body fit): {test.left_out or 'none'}. Fine-tuning: "
        f"`{preset.relative_to(ROOT)}` ({ft_cfg.train.max_steps} steps of batch "
        f"{ft_cfg.train.batch_size}); personalisation: {args.personal_steps} steps of batch "
        f"{personal_cfg.train.batch_size}, one run per source. {args.workers} training "
        "processes, 1 torch thread each. Masks: the targets' make-dataset person masks. "
        + ("LPIPS: AlexNet v0.1. " if lpips is not None else
           "LPIPS: not computed (alexnet-owt-7be5be79.pth not found; nothing is downloaded). ")
        + "\n\n" + "\n\n".join(tables)
        + "\n\nPer-pair differences (method - baseline), mean [95% paired-bootstrap interval, "
        "4000 draws]; `better`/`worse`: the interval excludes 0:\n\n"
        + markdown_table(["difference", "rendering", "pairs", *INTERVAL_METRICS], diff_rows)
        + "\n\nShare of the target silhouette where the pixel-warp refiner takes the warped "
        f"source (mean of its mask m; `warp_3d` is 1): {shares}."
        + f"\n\nGrid: `{figure.relative_to(ROOT)}` (frames BSD-3, tests/fixtures/real/NOTICE)."
        "\n\n" + markdown_table(["phase", "wall s", "CPU s", "load avg (1 min)"], times)
        + f"\n\nTotal wall time {wall:.0f} s ({wall / 60:.1f} min) on os.cpu_count()="
        f"{os.cpu_count()}; peak RSS of the parent {peak_rss_mb():.0f} MiB."
    )  # fmt: skip
    if args.no_record:
        print(body)
    else:
        record("Real-video benchmark (CPU, Pose2Sim single person, 128x96)", body)


if __name__ == "__main__":
    main()
