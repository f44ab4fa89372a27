"""The demo's flow regressor on real pairs, trained with and without pose augmentation (issue 13).

Ground truth: the fitted-body flow. The four Pose2Sim single-person cameras are made into a
dataset by ``make-dataset`` at 128x96 (every 2nd frame; as ``benchmarks/real_video.py``), and
``synth-flow`` fits the body model to the detector's (BlazePose) keypoints of every crop and
renders every pair's flow and visibility, train and test pairs alike (the regressors never see
real data, so all of them are held out).

Regressors: the demo's flow stage exactly as ``posetransfer demo`` trains it (its synthetic
dataset ``configs/demo/default.yaml: synthetic``, its ``synth-flow`` flows, its ``flow`` config:
250 steps of batch 8, seed 0), once as configured (``demo``) and once more per variant with
``data.augment`` set (same data, steps and seed). Scores
(:mod:`posetransfer.experiments.real_flow`): EPE over the fitted body and its visible part,
visibility accuracy and mean IoU, with the zero flow (identity) and majority-class baselines on
the same pairs; and the same on the synthetic test split (other people), to see what
augmentation costs where the training data comes from.

    python benchmarks/flow_real.py [--steps 250] [--variants demo augmented] [--no-record]

Writes ``--work`` (default ``.cache/bench/flow_real``: datasets, runs, ``results.json``); reruns
reuse the datasets and finished runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, markdown_table, peak_rss_mb, record
from posetransfer.config import from_dict, load_config
from posetransfer.data.pose_augment import PoseAugmentConfig
from posetransfer.experiments.demo_config import DemoConfig
from posetransfer.experiments.real_flow import ALL, evaluate_real_flow_run, real_flow_pairs

#: The augmentation variants (``data.augment`` of the flow stage); ``demo`` is the config as is.
VARIANTS: dict[str, dict[str, Any]] = {
    "demo": {},
    "augmented": {
        "scale": [0.7, 1.05], "shift": 0.05, "offset": 0.015, "jitter": 0.01, "drop_prob": 0.05,
    },
    "geometric_only": {"scale": [0.7, 1.05], "shift": 0.05},
    "noise_only": {"offset": 0.015, "jitter": 0.01, "drop_prob": 0.05},
}  # fmt: skip


class Clock:
    """Wall time, CPU time (this process) and the 1-minute load average of each phase."""

    def __init__(self) -> None:
        self.rows: list[list[object]] = []

    def run(self, name: str, fn: Any) -> Any:
        wall, cpu, load = time.perf_counter(), time.process_time(), os.getloadavg()[0]
        out = fn()
        self.rows.append([name, round(time.perf_counter() - wall, 1),
                          round(time.process_time() - cpu, 1),
                          f"{load:.1f} -> {os.getloadavg()[0]:.1f}"])  # fmt: skip
        logging.info("phase %s: %s", name, self.rows[-1][1:])
        return out


def prepare_real(work: Path, model_fn: Any) -> Path:
    """make-dataset of the Pose2Sim single-person videos at 128x96, synth-flow on every pair."""
    from posetransfer.experiments.real_data import make_real_dataset
    from posetransfer.experiments.real_videos import SINGLE_PERSON, ensure_real_videos
    from posetransfer.synth.flow_output import SynthFlowConfig, SynthOutput
    from posetransfer.synth.flow_pipeline import synthesize_flows
    from posetransfer.synth.flow_plan import build_plan

    data, synth = work / "real" / "data", work / "real" / "synth_flow"
    videos = ensure_real_videos(ROOT / ".cache" / "real", SINGLE_PERSON)
    make_real_dataset(list(videos.values()), data, (128, 96), every=2)
    if not (synth / "summary.json").is_file():
        cfg = SynthFlowConfig()
        plan = build_plan(data, fit_batch=cfg.fit_batch, render_block=cfg.render_block)
        synthesize_flows(model_fn(), plan, SynthOutput.create(synth), cfg)
    return data


def prepare_synthetic(work: Path, demo: DemoConfig, model_fn: Any) -> Path:
    """The demo's synthetic dataset and its synth-flow flows (as ``posetransfer demo``)."""
    from posetransfer.synth.dataset_writer import make_synthetic
    from posetransfer.synth.flow_output import SynthOutput
    from posetransfer.synth.flow_pipeline import synthesize_flows
    from posetransfer.synth.flow_plan import build_plan

    data, synth = work / "synthetic" / "data", work / "synthetic" / "synth_flow"
    if not ((data / "config.yaml").is_file() and (data / "parts").is_dir()):
        make_synthetic(data, demo.synthetic, model=model_fn())
    if not (synth / "summary.json").is_file():
        sf = demo.synth_flow
        plan = build_plan(data, fit_batch=sf.fit_batch, render_block=sf.render_block)
        synthesize_flows(model_fn(), plan, SynthOutput.create(synth), sf)
    return data


def keypoint_stats(root: Path, flows: Path, split: str) -> dict[str, float]:
    """How the people sit in the frame: height of the keypoints' box / H, its centre, and the
    share of missing points (over the pairs' images with flows)."""
    dataset = real_flow_pairs(root, flows, split)
    names = sorted({n for pair in dataset.pairs for n in pair})
    heights, cx, cy, missing = [], [], [], []
    for name in names:
        pose = dataset.poses[name]
        xy = pose.xy[pose.valid]
        missing.append(1.0 - pose.valid.mean())
        if len(xy) >= 2:
            heights.append((xy[:, 1].max() - xy[:, 1].min()) / 128.0)
            cx.append(xy[:, 0].mean() / 96.0)
            cy.append(xy[:, 1].mean() / 128.0)
    h = np.asarray(heights)
    return {
        "images": len(names),
        "height_mean": float(h.mean()),
        "height_p10": float(np.percentile(h, 10)),
        "height_p90": float(np.percentile(h, 90)),
        "centre_x_sd": float(np.std(cx)),
        "centre_y_sd": float(np.std(cy)),
        "missing": float(np.mean(missing)),
    }


def train_variant(work: Path, demo: DemoConfig, data: Path, name: str, steps: int) -> Path:
    """Train the demo's flow stage with ``VARIANTS[name]`` as ``data.augment``."""
    from posetransfer.experiments.compare import run_steps
    from posetransfer.train.flow_stage import train_flow

    augment = from_dict(PoseAugmentConfig, VARIANTS[name], "data.augment")
    cfg = demo.flow
    cfg = replace(
        cfg,
        data=replace(cfg.data, root=data, flows_dir=data.parent / "synth_flow", augment=augment),
        train=replace(cfg.train, max_steps=steps, progress=False),
    )
    run = work / "runs" / f"{name}-{steps}"
    if run_steps(run) < steps:
        train_flow(cfg, run)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / ".cache" / "bench" / "flow_real")
    parser.add_argument("--steps", type=int, default=None, help="default: the demo's")
    parser.add_argument("--variants", nargs="+", default=["demo", "augmented"])
    parser.add_argument("--which", choices=["best", "latest"], default="best")
    parser.add_argument("--prepare-only", action="store_true")
    parser.add_argument("--no-record", action="store_true", help="leave BENCHMARKS.md alone")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    demo = load_config(DemoConfig, ROOT / "configs" / "demo" / "default.yaml")
    steps = args.steps or demo.flow.train.max_steps
    work, clock, start = args.work, Clock(), time.perf_counter()
    load_start = os.getloadavg()

    def body_model() -> Any:
        from posetransfer.body import load_body_model

        return load_body_model()

    real = clock.run(
        "real: videos, make-dataset, synth-flow", lambda: prepare_real(work, body_model)
    )
    synthetic = clock.run("synthetic: make-synthetic, synth-flow",
                          lambda: prepare_synthetic(work, demo, body_model))  # fmt: skip
    if args.prepare_only:
        return
    real_flows, synth_flows = real.parent / "synth_flow", synthetic.parent / "synth_flow"
    stats = {"real (all pairs' images)": keypoint_stats(real, real_flows, "train"),
             "synthetic (train)": keypoint_stats(synthetic, synth_flows, "train")}  # fmt: skip
    results: dict[str, dict[str, Any]] = {}
    for name in args.variants:
        run = clock.run(f"train {name} ({steps} steps)",
                        lambda n=name: train_variant(work, demo, synthetic, n, steps))  # fmt: skip
        scores = clock.run(f"score {name}", lambda r=run: (
            evaluate_real_flow_run(r, real, real_flows, which=args.which),
            evaluate_real_flow_run(r, synthetic, synth_flows, which=args.which, splits=["test"]),
        ))  # fmt: skip
        results[name] = {"real": scores[0], "synthetic": scores[1]["test"]}
    (work / "results.json").write_text(json.dumps({"stats": stats, "results": results}, indent=2))
    report(args, demo, steps, stats, results, clock, start, load_start)


def report(
    args: argparse.Namespace, demo: DemoConfig, steps: int, stats: dict, results: dict,
    clock: Clock, start: float, load_start: tuple[float, float, float],
) -> None:  # fmt: skip
    """Print the tables and (unless ``--no-record``) append them to BENCHMARKS.md."""
    first = next(iter(results.values()))
    real_all, real_test = first["real"][ALL], first["real"]["test"]
    rows = []
    for name, res in results.items():
        for where, r in (("real, all pairs", res["real"][ALL]),
                         ("real, test pairs", res["real"]["test"]),
                         ("synthetic test", res["synthetic"])):  # fmt: skip
            rows.append([name, where, r["num_pairs"], r["epe_fg"], r["epe_visible"],
                         r["vis_accuracy"], r["miou"]])  # fmt: skip
    for where, r in (("real, all pairs", real_all), ("real, test pairs", real_test),
                     ("synthetic test", first["synthetic"])):  # fmt: skip
        rows.append(
            [
                "zero flow / majority",
                where,
                r["num_pairs"],
                r["epe_fg_zero_flow"],
                r["epe_visible_zero_flow"],
                r["vis_accuracy_majority"],
                r["miou_majority"],
            ]
        )
    table = markdown_table(
        ["regressor", "pairs", "n", "EPE fg (px)", "EPE visible (px)", "vis accuracy", "mIoU"],
        [[f"{v:.4g}" if isinstance(v, float) else v for v in row] for row in rows],
    )
    ratio_rows = [[name, f"{res['real'][ALL]['epe_fg'] / real_all['epe_fg_zero_flow']:.3f}",
                   f"{res['real'][ALL]['epe_fg'] / real_all['epe_fg']:.3f}"]
                  for name, res in results.items()]  # fmt: skip
    ratios = markdown_table(
        ["regressor", "EPE fg / zero flow (real, all)", f"EPE fg / {next(iter(results))}"],
        ratio_rows,
    )
    stat_rows = [[k, *(f"{v:.3g}" if isinstance(v, float) else v for v in s.values())]
                 for k, s in stats.items()]  # fmt: skip
    stat_table = markdown_table(["data", *next(iter(stats.values())).keys()], stat_rows)
    augments = "; ".join(f"`{n}`: {VARIANTS[n] or 'off'}" for n in results)
    f = demo.flow
    body = (
        f"Flow stage of `configs/demo/default.yaml` ({f.model.variant}, base "
        f"{f.model.base_channels}, {f.model.num_levels} levels; batch {f.train.batch_size}, "
        f"lr {f.train.lr}, "
        f"{steps} steps, seed {f.train.seed}, hflip {f.data.hflip_prob}), checkpoint "
        f"`{args.which}`, trained on the demo's synthetic data and its synth-flow flows; "
        f"`data.augment`: {augments}. Ground truth on real pairs: synth-flow's fitted-body flow "
        f"of make-dataset (Pose2Sim single person, 4 cameras, 128x96, every 2nd frame).\n\n"
        f"{table}\n\n{ratios}\n\nWhere the people sit in the 128x96 frame (keypoint box height "
        f"/ H, spread of its centre / W and / H, share of missing points):\n\n{stat_table}\n\n"
        + markdown_table(["phase", "wall s", "CPU s", "load avg (1 min)"], clock.rows)
        + f"\n\nTotal wall {time.perf_counter() - start:.0f} s, torch threads 1, "
        f"os.cpu_count()={os.cpu_count()}, load average at start {load_start[0]:.2f}; "
        f"peak RSS {peak_rss_mb():.0f} MiB.\n"
    )
    if args.no_record:
        print(body)
    else:
        record("Flow regressor on real pairs: pose augmentation (CPU, 128x96)", body)


if __name__ == "__main__":
    main()
