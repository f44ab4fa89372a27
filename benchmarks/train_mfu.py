"""Training MFU of the generator step at 256x256 batch 8 (issue 16 item 3): before / after.

The step is ``benchmarks/generator.py``'s training row (``_run_train``: coarse-stage generator,
PatchGAN, L1 / + GAN / + perceptual with a random-weight VGG19, Adam steps, contiguous format),
run in a fresh child process per row, once as the code ran before (``before``: glibc's default
allocator settings) and once with what ``posetransfer train`` now does when a run starts
(``after``: :func:`posetransfer.train.allocator.retain_freed_memory`). The two columns of a
variant run back to back so that the machine's load is alike; the MFU reference (a 2048x2048
float32 matmul by CPU time) is measured at the start and the end of the same run.

Per row: median CPU time (``process_time``) over the timed steps, its system part (page faults:
``os.times``), wall time, MFU and the child's peak resident set (``VmHWM``). A final pair of
children profiles one ``gan`` step each (``torch.profiler``, CPU, by op, self time) for the
top-ops table.

Usage:
    python benchmarks/train_mfu.py              # ~8 min of CPU; appends to BENCHMARKS.md
    python benchmarks/train_mfu.py --no-record  # print only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import generator as gen_bench  # type: ignore[import-not-found]
from common import markdown_table, record  # type: ignore[import-not-found]
from posetransfer.train.allocator import retain_freed_memory

SIZE = (256, 256)
VARIANTS = ("l1", "gan", "gan+vgg")
MODES = ("before", "after")
TOP_OPS = 14


def _profiled(table: list[list[object]]) -> Callable[..., tuple[float, float]]:
    """A stand-in for ``generator._timed`` that profiles one call after one warm-up."""

    def timed(fn: Callable[[], object], warmup: int, repeat: int) -> tuple[float, float]:
        from torch.profiler import ProfilerActivity, profile

        fn()
        c0, w0 = time.process_time(), time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
        total = sum(e.self_cpu_time_total for e in events)
        for e in events[:TOP_OPS]:
            share = e.self_cpu_time_total / total
            table.append([e.key, e.count, e.self_cpu_time_total / 1e6, share])
        return cpu, wall

    return timed


def run_child(variant: str, mode: str, profile_op: bool) -> dict[str, Any]:
    """One row in this process: ``mode`` "after" first tunes the allocator."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    tuned = retain_freed_memory() if mode == "after" else False
    job = gen_bench.Job("default", "train", SIZE, 8, variant, repeat=1 if profile_op else 3)
    ops: list[list[object]] = []
    if profile_op:
        gen_bench._timed = _profiled(ops)
    else:
        inner = gen_bench._timed

        def with_sys(fn: Callable[[], object], warmup: int, repeat: int) -> tuple[float, float]:
            t0 = os.times()
            out = inner(fn, warmup, repeat)
            t1 = os.times()
            sys_share.append((t1.system - t0.system) / (t1.user - t0.user + t1.system - t0.system))
            return out

        sys_share: list[float] = []
        gen_bench._timed = with_sys
    result = gen_bench._run_train(job, torch.contiguous_format)
    extra = {"ops": ops} if profile_op else {"sys_share": sys_share[0]}
    return result | extra | {"tuned": tuned, "peak_mb": gen_bench._vm_hwm_mb()}


def run_job(variant: str, mode: str, profile_op: bool = False) -> dict:
    """``run_child`` in a fresh process."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    args = json.dumps([variant, mode, profile_op])
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-record", action="store_true", help="print only, no BENCHMARKS.md")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        variant, mode, profile_op = json.loads(args.child)
        print(json.dumps(run_child(variant, mode, profile_op)))
        return
    start, load_start = time.perf_counter(), os.getloadavg()
    peak_start = gen_bench.matmul_cpu_flops()
    results: dict[tuple[str, str], dict] = {}
    for variant in VARIANTS:
        for mode in MODES:
            results[variant, mode] = r = run_job(variant, mode)
            print(f"{variant} {mode}: cpu {r['cpu_s']:.3f} s, sys {r['sys_share']:.0%}, "
                  f"peak {r['peak_mb']:.0f} MiB, load {os.getloadavg()[0]:.2f}",
                  file=sys.stderr, flush=True)  # fmt: skip
    ops = {mode: run_job("gan", mode, profile_op=True)["ops"] for mode in MODES}
    peak_end = gen_bench.matmul_cpu_flops()
    peak = (peak_start + peak_end) / 2
    load_end = os.getloadavg()
    rows = []
    for variant in VARIANTS:
        b, a = results[variant, "before"], results[variant, "after"]
        mfu_b, mfu_a = (b["flops"] * 8 / b["cpu_s"] / peak, a["flops"] * 8 / a["cpu_s"] / peak)
        rows.append([
            variant, b["flops"] / 1e9, b["cpu_s"], a["cpu_s"], b["cpu_s"] / a["cpu_s"],
            f"{b['sys_share']:.0%} / {a['sys_share']:.0%}", b["wall_s"], a["wall_s"],
            mfu_b, mfu_a, f"{b['peak_mb']:.0f} / {a['peak_mb']:.0f}", a["tuned"],
        ])  # fmt: skip
    header = [
        "losses", "GFLOP/img", "s/step CPU before", "s/step CPU after", "speed-up",
        "system share before / after", "wall before", "wall after", "MFU before", "MFU after",
        "peak MiB before / after", "allocator tuned",
    ]  # fmt: skip
    op_header = ["op", "calls", "self CPU s", "share"]
    body = (
        f"Default config, {SIZE[0]}x{SIZE[1]}, batch 8, 1 thread, contiguous format; `before` = "
        f"glibc's default malloc settings (the code before this change), `after` = "
        f"`retain_freed_memory()` (what `posetransfer train` calls when a run starts). Median "
        f"of 3 timed steps after 1 warm-up, each row a fresh process, before/after of a variant "
        f"back to back. MFU = FLOP/s by CPU time over a 2048x2048 fp32 matmul measured in this "
        f"run: {peak_start / 1e9:.1f} GFLOP/s at start, {peak_end / 1e9:.1f} at end (mean used). "
        f"FLOP as in the generator benchmark (G 3 forwards, D 8, VGG 3).\n\n"
        f"{markdown_table(header, rows)}\n\n"
        f"Top ops of one profiled `gan` step, before (self CPU time, profiler on):\n\n"
        f"{markdown_table(op_header, ops['before'])}\n\n"
        f"After:\n\n{markdown_table(op_header, ops['after'])}\n\n"
        f"Load average (1/5/15 min, 2 cores): {load_start[0]:.2f}/{load_start[1]:.2f}/"
        f"{load_start[2]:.2f} at start, {load_end[0]:.2f}/{load_end[1]:.2f}/{load_end[2]:.2f} at "
        f"end. Wall time of the benchmark {time.perf_counter() - start:.0f} s."
    )
    if args.no_record:
        print(body)
    else:
        record("Training MFU of the generator step, 256x256 batch 8 (issue 16 item 3)", body)


if __name__ == "__main__":
    main()
