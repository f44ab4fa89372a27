"""Evidence on synthetic data: the default model vs. the paper's sizes, ablations and baselines.

Uses the data, synth-flow flows and flow regressor of a ``posetransfer demo`` folder (runs the
default demo first when ``--demo`` has no ``metrics.json``). The base config is the demo's
generator stage (batch 8, lr 1e-3, L1 only: no VGG weights offline, GAN after the run) with the
networks of ``--model-config`` (``configs/generator/default.yaml``) at the data's size. Then
:func:`~posetransfer.experiments.compare.compare` trains, on one schedule (``--coarse-steps``
generator steps, then ``--refine-steps`` pixel-warp steps):

- ``full``: the default networks (``no_pixel_warp``'s generator plus the refiner);
- ``paper``: the same with the original's network sizes (its Market nets: the DeepFashion nets'
  stride 128 does not divide 96);
- the ablations, one component off each (:data:`posetransfer.experiments.compare.VARIANTS`);

and scores them with the baselines on the person-disjoint test split (protocol ``native``).
Every model uses the demo's flow regressor. Appends the table to BENCHMARKS.md.

    python benchmarks/generator_evidence.py --demo demo_out --out runs/evidence
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, markdown_table, peak_rss_mb, record
from posetransfer.config import apply_overrides, load_config
from posetransfer.data.formats import read_pairs_csv
from posetransfer.data.layout import discover_dataset
from posetransfer.eval.evaluate import EvaluateConfig, evaluate_folders
from posetransfer.experiments.baselines import BASELINES
from posetransfer.experiments.compare import (
    PAPER,
    VARIANT_NAMES,
    VARIANTS,
    Variant,
    compare,
    resolve_variant,
    run_steps,
    variant_config,
    variant_name,
)
from posetransfer.experiments.demo import DemoConfig, run_demo
from posetransfer.models.flops import count_parameters
from posetransfer.models.generator import PoseTransferGenerator
from posetransfer.models.pixel_warp import build_refiner
from posetransfer.train.generator_config import GeneratorStageConfig

KEYS = ("ssim", "psnr", "l1", "mask_ssim", "mask_l1")


def base_config(demo: DemoConfig, args: argparse.Namespace) -> GeneratorStageConfig:
    """The demo's training settings with ``--model-config``'s networks at the data's size."""
    nets = load_config(GeneratorStageConfig, args.model_config)
    size = tuple(demo.synthetic.size)
    base = replace(
        demo.generator,
        generator=replace(nets.generator, image_size=size),
        pixel_warp=nets.pixel_warp,
        discriminator=nets.discriminator,
        data=replace(demo.generator.data, root=args.demo / "data"),
        flow=replace(demo.generator.flow, checkpoint=args.demo / "runs" / "flow"),
    )
    total = args.coarse_steps + args.refine_steps
    return apply_overrides(
        base,
        [f"schedule.coarse_steps={args.coarse_steps}", f"train.max_steps={total}",
         "train.val_every=50", "train.ckpt_every=50"],
    )  # fmt: skip


def parameters_m(cfg: GeneratorStageConfig) -> str:
    """Generator + refiner parameters in millions (the inference networks besides the flow)."""
    count = count_parameters(PoseTransferGenerator(cfg.generator))
    if cfg.pixel_warp.enabled:
        count += count_parameters(build_refiner(cfg.pixel_warp))
    return f"{count / 1e6:.2f}"


def steps_label(runs: dict[str, Path], name: str, coarse: int) -> str:
    """``generator steps + pixel-warp steps`` a model was trained for (``coarse``: its split)."""
    steps = run_steps(runs[name])
    if name == "full" and "no_pixel_warp" in runs:  # no_pixel_warp's generator + a refiner
        return f"{run_steps(runs['no_pixel_warp'])}+{steps}"
    return f"{min(steps, coarse)}+{max(steps - coarse, 0)}"


def paired_difference(
    data_root: Path, pairs_csv: Path, a: Path, b: Path, samples: int = 2000
) -> dict[str, tuple[float, float, float]]:
    """Mean per-pair difference ``a - b`` of SSIM and L1 with a 95% paired-bootstrap interval."""
    files = discover_dataset(data_root)
    cfg = EvaluateConfig(lpips=False, fid=False, batch_size=32, per_image=True)
    reports = [
        evaluate_folders(folder, files.image_dirs["test"], "native", cfg, pairs_csv=pairs_csv,
                         progress=False).per_image
        for folder in (a, b)
    ]  # fmt: skip
    rng = np.random.default_rng(0)
    out = {}
    for key in ("ssim", "l1"):
        diff = np.array([x[key] - y[key] for x, y in zip(*reports, strict=True)])
        means = diff[rng.integers(0, len(diff), (samples, len(diff)))].mean(axis=1)
        out[key] = (float(diff.mean()), *np.quantile(means, [0.025, 0.975]).tolist())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, default=Path("demo_out"), help="demo output folder")
    parser.add_argument("--out", type=Path, default=Path("runs/evidence"), help="output folder")
    parser.add_argument(
        "--model-config", type=Path, default=ROOT / "configs" / "generator" / "default.yaml",
        help="generator config whose networks are the full model",
    )  # fmt: skip
    parser.add_argument("--coarse-steps", type=int, default=300, help="generator steps")
    parser.add_argument("--refine-steps", type=int, default=100, help="pixel-warp steps")
    parser.add_argument(
        "--variants", nargs="+", default=[PAPER, *VARIANTS], choices=VARIANT_NAMES,
        help="models to train (full is always scored; list the longest first)",
    )  # fmt: skip
    parser.add_argument(
        "--paper-steps", type=int, nargs=2, metavar=("COARSE", "REFINE"),
        help="a schedule of its own for `paper` (default: the others')",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, default=2, help="models trained at once")
    parser.add_argument("--no-record", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    start = time.perf_counter()
    demo = DemoConfig()
    if not (args.demo / "metrics.json").is_file():
        run_demo(demo, args.demo, progress=sys.stderr.isatty())
    base = base_config(demo, args)
    variants: list[str | Variant] = list(dict.fromkeys(args.variants))
    if "full" not in variants:
        variants.append("full")
    if args.paper_steps and PAPER in variants:
        paper = resolve_variant(base, PAPER)
        coarse, refine = args.paper_steps
        schedule = (f"schedule.coarse_steps={coarse}", f"train.max_steps={coarse + refine}")
        variants[variants.index(PAPER)] = replace(paper, overrides=(*paper.overrides, *schedule))
    result = compare(
        base, args.out, flows_3d=args.demo / "synth_flow" / "flows", variants=variants,
        workers=args.workers, progress=sys.stderr.isatty(),
    )  # fmt: skip
    wall = time.perf_counter() - start
    names = [variant_name(v) for v in variants]
    cfgs = {variant_name(v): variant_config(base, v, args.out / "runs", variants) for v in variants}
    notes = {variant_name(v): resolve_variant(base, v).description for v in variants} | BASELINES
    order = ["full", *[n for n in result.metrics if n != "full"]]
    params = {n: parameters_m(cfg) for n, cfg in cfgs.items()}
    steps = {n: steps_label(result.runs, n, cfgs[n].schedule.coarse_steps) for n in names}
    reused = [n for n in names if result.seconds.get(f"train {n}") == 0.0]
    rows = [
        [m, *(result.metrics[m][k] for k in KEYS), params.get(m, "-"), steps.get(m, "-"), notes[m]]
        for m in order
    ]
    times = [[k, round(v, 1)] for k, v in result.seconds.items()]
    full = result.metrics["full"]
    verdict = [
        f"- full vs {o}: SSIM {full['ssim'] - result.metrics[o]['ssim']:+.4f}, "
        f"L1 {full['l1'] - result.metrics[o]['l1']:+.4f} (full better: SSIM "
        f"{full['ssim'] >= result.metrics[o]['ssim']}, L1 {full['l1'] <= result.metrics[o]['l1']})"
        for o in (PAPER, *BASELINES)
        if o in result.metrics
    ]
    if PAPER in result.metrics:
        assert base.data.root is not None
        diff = paired_difference(
            base.data.root, result.pairs_csv, result.outputs["full"], result.outputs[PAPER]
        )
        verdict.append(
            "- full - paper per test pair, mean [95% paired-bootstrap interval]: "
            + ", ".join(f"{k} {m:+.4f} [{lo:+.4f}, {hi:+.4f}]" for k, (m, lo, hi) in diff.items())
        )
    if reused:
        verdict.append(f"- reused finished runs (trained earlier, not timed here): {reused}")
    body = (
        f"Demo data `{args.demo}` ({demo.synthetic.num_people} people x "
        f"{demo.synthetic.poses_per_person} poses at {demo.synthetic.size[0]}x"
        f"{demo.synthetic.size[1]}; flows from synth-flow, i.e. fitted to keypoints); "
        f"{len(read_pairs_csv(result.pairs_csv))} test pairs of unseen people. `full` = the "
        f"networks of `{Path(args.model_config).name}` at the data's size; `paper` = the "
        "original's network sizes (its Market nets: stride 32); both with the demo's flow "
        "regressor and training settings (batch 8, Adam lr 1e-3, L1 only: no VGG weights "
        f"offline, GAN after the run), {args.coarse_steps} generator steps then "
        f"{args.refine_steps} pixel-warp steps (`paper`: see `steps`). Ablations: one "
        "component off each, same schedule (without pixel warping: the generator steps only). "
        f"{args.workers} models trained at once, 1 torch thread each. Protocol `native`: SSIM "
        "Gaussian sigma 1.5, range 255; L1 on [0, 1]. `params M` = generator + refiner; "
        "`steps` = generator + pixel-warp steps.\n\n"
        + markdown_table(["method", *KEYS, "params M", "steps", "what"], rows)
        + "\n\n" + "\n".join(verdict) + "\n\n"
        + markdown_table(["phase", "wall s"], times)
        + f"\n\nTotal wall time {wall:.0f} s; peak RSS of the parent {peak_rss_mb():.0f} MiB."
    )  # fmt: skip
    if args.no_record:
        print(body)
    else:
        record("Pose-transfer evidence on synthetic data (CPU, default vs paper sizes)", body)


if __name__ == "__main__":
    main()
