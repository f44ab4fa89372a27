"""Evidence on synthetic data: full model vs. baselines and ablations, trained on the CPU.

Uses the data, synth-flow flows and flow regressor of a ``posetransfer demo`` folder (runs the
default demo first when ``--demo`` has no ``metrics.json``), then
:func:`posetransfer.train.compare.compare` with a longer schedule than the demo's: every
ablation trains ``--coarse-steps`` generator steps, and the full model is ``no_pixel_warp``'s
generator plus ``--refine-steps`` pixel-warp steps (paper Table 2 protocol). Scores are on the
person-disjoint test split (protocol ``native``). Appends the table and wall times to
BENCHMARKS.md.

    python benchmarks/generator_evidence.py --demo demo_out --out runs/evidence
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, peak_rss_mb, record
from posetransfer.config import apply_overrides
from posetransfer.data.formats import read_pairs_csv
from posetransfer.demo import DemoConfig, run_demo
from posetransfer.train.compare import BASELINES, VARIANTS, compare, run_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, default=Path("demo_out"), help="demo output folder")
    parser.add_argument("--out", type=Path, default=Path("runs/evidence"), help="output folder")
    parser.add_argument("--coarse-steps", type=int, default=600, help="generator steps")
    parser.add_argument("--refine-steps", type=int, default=300, help="pixel-warp steps (full)")
    parser.add_argument("--workers", type=int, default=2, help="models trained at once")
    parser.add_argument("--no-record", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    start = time.perf_counter()
    demo = DemoConfig()
    if not (args.demo / "metrics.json").is_file():
        run_demo(demo, args.demo, progress=sys.stderr.isatty())
    total = args.coarse_steps + args.refine_steps
    base = apply_overrides(
        demo.generator,
        [f"schedule.coarse_steps={args.coarse_steps}", f"train.max_steps={total}",
         "train.val_every=100", "train.ckpt_every=100"],
    )  # fmt: skip
    base = replace(
        base,
        data=replace(base.data, root=args.demo / "data"),
        flow=replace(base.flow, checkpoint=args.demo / "runs" / "flow"),
    )
    result = compare(
        base, args.out, flows_3d=args.demo / "synth_flow" / "flows", workers=args.workers,
        progress=sys.stderr.isatty(),
    )  # fmt: skip
    wall = time.perf_counter() - start
    keys = ("ssim", "psnr", "l1", "mask_ssim", "mask_l1")
    notes = {**{k: v.description for k, v in VARIANTS.items()}, **BASELINES}
    rows = [[m, *(result.metrics[m][k] for k in keys), notes[m]] for m in result.metrics]
    steps = {n: run_steps(p) for n, p in result.runs.items()}
    times = [[k, round(v, 1)] for k, v in result.seconds.items()]
    full, others = result.metrics["full"], ("copy_source", "warp_pred", "warp_3d")
    verdict = [
        f"- full vs {o}: SSIM {full['ssim'] - result.metrics[o]['ssim']:+.4f}, "
        f"L1 {full['l1'] - result.metrics[o]['l1']:+.4f} (full better: SSIM "
        f"{full['ssim'] > result.metrics[o]['ssim']}, L1 {full['l1'] < result.metrics[o]['l1']})"
        for o in others
    ]
    body = (
        f"Demo data `{args.demo}` ({demo.synthetic.num_people} people x "
        f"{demo.synthetic.poses_per_person} poses at {demo.synthetic.size[0]}x"
        f"{demo.synthetic.size[1]}; flows from synth-flow, i.e. fitted to keypoints); "
        f"{len(read_pairs_csv(result.pairs_csv))} test pairs of unseen people. Generator "
        f"config: the demo's (`configs/demo/default.yaml`, `generator`), batch 8, lr 1e-3, no "
        f"VGG, GAN off (`gan_start_step` beyond the run); ablations: {args.coarse_steps} "
        f"generator steps each; full: the same generator as no_pixel_warp + {args.refine_steps} "
        f"pixel-warp steps. Steps trained: {steps}. {args.workers} models trained at once, "
        "1 torch thread each. Protocol `native`: SSIM Gaussian sigma 1.5, range 255; L1 on "
        "[0, 1].\n\n"
        + markdown_table(["method", *keys, "what"], rows)
        + "\n\n" + "\n".join(verdict) + "\n\n"
        + markdown_table(["phase", "wall s"], times)
        + f"\n\nTotal wall time {wall:.0f} s; peak RSS of the parent {peak_rss_mb():.0f} MiB."
    )  # fmt: skip
    if args.no_record:
        print(body)
    else:
        record("Pose-transfer evidence on synthetic data (CPU, tiny config)", body)


if __name__ == "__main__":
    main()
