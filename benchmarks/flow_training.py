"""Flow regression on synthetic data: a CPU training run of at most ~10 minutes, then test.

1. Builds the synthetic dataset with exact flows if it is missing (``make-synthetic``).
2. Times one training step (forward, loss, backward, Adam) on a fixed batch with 1 and 2 torch
   threads. The run uses ``--threads`` (default 1): on 2 cores shared with other jobs, 2 threads
   were 1.6x faster on a quiet machine but fell to ~1.9 s/step when another process took a
   core, while 1 thread keeps its core.
3. Trains from scratch with ``posetransfer train-flow --config configs/flow/synthetic.yaml``
   (validation on held-out *training* people) within a wall-clock budget (default 600 s): the run
   goes in resumed chunks of ``val_every`` steps and stops before a chunk that would overrun.
4. Runs ``posetransfer evaluate-flow`` on the **test** split (people never seen in training):
   foreground EPE against the zero-flow baseline, visibility accuracy against the majority class,
   per-class IoU; both baselines are computed by ``evaluate-flow`` on the same pairs.

Usage:
    python benchmarks/flow_training.py                    # the recorded run
    python benchmarks/flow_training.py --max-steps 50 --no-record   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import torch

from common import ROOT, markdown_table, peak_rss_mb, record  # type: ignore[import-not-found]
from posetransfer.cli import main as cli
from posetransfer.cli.options import with_flags
from posetransfer.config import load_config
from posetransfer.data.datasets import collate_pairs
from posetransfer.models.flops import count_parameters
from posetransfer.models.flow_regressor import FlowRegressor
from posetransfer.train import StepContext
from posetransfer.train.distributed import DistInfo
from posetransfer.train.flow_stage import FlowStage, FlowStageConfig, make_flow_datasets


def step_seconds(cfg: FlowStageConfig, data: Path, threads: int, repeat: int = 8) -> float:
    """Median seconds of one training step on a fixed batch with ``threads`` torch threads."""
    torch.set_num_threads(threads)
    train_set, _, _ = make_flow_datasets(with_flags(cfg, {"data.root": data}))
    batch = collate_pairs([train_set[i] for i in range(cfg.train.batch_size)])
    stage = FlowStage(cfg, torch.device("cpu"))
    ctx = StepContext(torch.device("cpu"), "off", DistInfo(), stage.optimizers(), None)
    times = []
    for i in range(repeat + 2):
        start = time.perf_counter()
        stage.train_step(batch, ctx)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def _shown(path: Path) -> str:
    """``path`` relative to the repository when inside it."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def train_within(
    train_args: list[str], max_steps: int, chunk: int, budget_s: float
) -> tuple[int | None, float, bool]:
    """Run ``train-flow`` in resumed chunks of ``chunk`` steps while the next one fits the budget.

    Resuming is exact (same data order and RNG streams) and the step lr schedule does not depend
    on ``max_steps``, so the chunks add up to one run of the steps done.

    Returns:
        ``(steps done or None on failure, wall seconds, whether the budget stopped it early)``.
    """
    start, done, per_step = time.perf_counter(), 0, 0.0
    while done < max_steps:
        target = min(done + chunk, max_steps)
        if done and time.perf_counter() - start + per_step * (target - done) > budget_s:
            return done, time.perf_counter() - start, True
        chunk_start = time.perf_counter()
        if cli([*train_args, "--max-steps", str(target)]):
            return None, time.perf_counter() - start, False
        per_step = (time.perf_counter() - chunk_start) / (target - done)
        done = target
    return done, time.perf_counter() - start, False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "synth-flow")
    parser.add_argument("--people", type=int, default=300)
    parser.add_argument("--poses", type=int, default=4)
    parser.add_argument("--size", default="128x96", help="HxW of a dataset that is built")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "flow" / "synthetic.yaml")
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "flow-synthetic-bench")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the run")
    parser.add_argument("--max-steps", type=int, help="override train.max_steps")
    parser.add_argument("--budget", type=float, default=600.0, help="training wall seconds")
    parser.add_argument("--no-record", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args(argv)
    os.environ.setdefault("ANNY_CACHE_DIR", str(ROOT / ".cache" / "anny"))
    os.environ.setdefault("WARP_CACHE_PATH", str(ROOT / ".cache" / "warp"))

    build_s = None
    if not (args.data / "flows").is_dir():
        start = time.perf_counter()
        code = cli(["make-synthetic", "--out", str(args.data), "--num-people", str(args.people),
                    "--poses-per-person", str(args.poses), "--size", args.size])  # fmt: skip
        if code:
            return code
        build_s = time.perf_counter() - start

    cfg = load_config(FlowStageConfig, args.config)
    per_step = {n: step_seconds(cfg, args.data, n) for n in (1, 2)}
    threads = args.threads
    torch.set_num_threads(threads)

    shutil.rmtree(args.run, ignore_errors=True)  # a fresh run: the wall time is the whole run
    train_args = ["train-flow", "--config", str(args.config), "--data", str(args.data),
                  "--out", str(args.run), "--threads", str(threads)]  # fmt: skip
    max_steps = args.max_steps or cfg.train.max_steps
    steps, train_s, stopped = train_within(train_args, max_steps, cfg.train.val_every, args.budget)
    if steps is None:
        return 2
    for aside in args.run.glob("config.until-step-*.yaml"):  # chunks differ only in max_steps
        aside.unlink()

    out = args.run / "eval-test.json"
    eval_args = ["evaluate-flow", "--checkpoint", str(args.run), "--data", str(args.data),
                 "--split", "test", "--out", str(out), "--threads", str(threads)]  # fmt: skip
    start = time.perf_counter()
    if code := cli(eval_args):
        return code
    eval_s = time.perf_counter() - start
    r = json.loads(out.read_text())

    run_cfg = load_config(FlowStageConfig, args.run / "config.yaml")
    t = run_cfg.train
    split = json.loads((args.run / "val_split.json").read_text())
    stats = [json.loads(line) for line in (args.run / "stats.jsonl").read_text().splitlines()]
    val = [s for s in stats if s["kind"] == "val"]
    best = min(val, key=lambda s: s["metrics"]["epe_fg"])
    params = count_parameters(FlowRegressor(run_cfg.model))
    metrics = [
        ("EPE foreground (px)", r["epe_fg"], r["epe_fg_zero_flow"], "zero flow"),
        ("EPE visible (px)", r["epe_visible"], r["epe_visible_zero_flow"], "zero flow"),
        ("visibility accuracy", r["vis_accuracy"], r["vis_accuracy_majority"], "majority class"),
        ("IoU visible", r["iou_visible"], r["iou_visible_majority"], "majority class"),
        ("IoU invisible", r["iou_invisible"], r["iou_invisible_majority"], "majority class"),
        ("IoU background", r["iou_background"], r["iou_background_majority"], "majority class"),
        ("mean IoU", r["miou"], r["miou_majority"], "majority class"),
    ]
    rows = [(name, m, b, m / b if b else "-", kind) for name, m, b, kind in metrics]
    steps_rows = [(n, 1e3 * s, per_step[1] / s) for n, s in per_step.items()]
    built = f"built in {build_s:.0f} s by this run" if build_s else "built before this run"
    body = (
        f"Synthetic data `{args.data.name}` ({built}): {split['train_pairs']} training pairs, "
        f"{split['val_pairs']} validation pairs ({len(split['val_groups'])} held-out training "
        f"people), evaluated on the {r['num_pairs']} pairs of the **test** split (other "
        f"people). Config `{_shown(args.config)}`: {run_cfg.model.variant} "
        f"base_channels={run_cfg.model.base_channels}, num_levels={run_cfg.model.num_levels} "
        f"({params / 1e6:.2f} M parameters), batch {t.batch_size}, Adam lr {t.lr:g} "
        f"betas {tuple(t.betas)} weight decay {t.weight_decay:g}, lr x{t.lr_step_gamma:g} every "
        f"{t.lr_step_size} steps, hflip {run_cfg.data.hflip_prob:g}.\n\n"
        "One training step on a fixed batch (median of 8):\n\n"
        + markdown_table(["torch threads", "ms / step", "x 1 thread"], steps_rows)
        + f"\n\nTraining: {steps} of {max_steps} steps"
        + (f" (stopped by the {args.budget:.0f} s budget)" if stopped else "")
        + f" with {threads} thread(s), **{train_s:.0f} s wall** "
        f"({train_s / steps:.3f} s/step including data loading, validation every "
        f"{t.val_every} steps and checkpoints); best validation epe_fg "
        f"{best['metrics']['epe_fg']:.3f} at step {best['step']}. Evaluation: {eval_s:.0f} s.\n\n"
        f"Test split, checkpoint `best` (step {r['step']}), model against the baselines "
        "computed by `evaluate-flow` on the same pairs (ratio < 1 is better for EPE, > 1 for "
        "accuracy and IoU):\n\n"
        + markdown_table(["metric", "model", "baseline", "model / baseline", "baseline"], rows)
        + f"\n\nMajority class: {r['majority_class']}. os.cpu_count()={os.cpu_count()}, shared "
        f"with other jobs; peak RSS {peak_rss_mb():.0f} MiB."
    )
    if args.no_record:
        print(body)
    else:
        record("Flow regression on synthetic data (CPU, train-flow + evaluate-flow)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
