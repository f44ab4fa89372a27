"""Training MFU of the generator step at 256x256 batch 8 (issue 16 item 3): three ways.

The step is ``benchmarks/generator.py``'s training row (``_run_train``: coarse-stage generator,
PatchGAN, L1 / + GAN / + perceptual with a random-weight VGG19, Adam steps), run in a fresh
child process per row: ``before`` (glibc's default allocator settings, contiguous format: how
training ran before issue 16), ``allocator`` (plus
:func:`posetransfer.train.allocator.retain_freed_memory`, which ``posetransfer train`` calls when
a run starts) and ``channels_last`` (plus the networks and inputs in ``channels_last``, what
``train.memory_format: auto`` now picks on a CPU). The three rows of a variant run back to back
so that the machine's load is alike; the MFU reference (a 2048x2048 float32 matmul by CPU time)
is measured at the start and the end of the same run.

Per row: median CPU time (``process_time``) over the timed steps, its system part (page faults:
``os.times``), wall time, MFU and the child's peak resident set (``VmHWM``). A final pair of
children profiles one ``gan`` step each (``torch.profiler``, CPU, by op, self time) for the
top-ops table.

Usage:
    python benchmarks/train_mfu.py              # ~12 min of CPU; appends to BENCHMARKS.md
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
MODES = ("before", "allocator", "channels_last")
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
    """One row in this process; every mode but "before" first tunes the allocator."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    tuned = retain_freed_memory() if mode != "before" else False
    fmt = torch.channels_last if mode == "channels_last" else torch.contiguous_format
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
    result = gen_bench._run_train(job, fmt)
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
    ops = {
        mode: run_job("gan", mode, profile_op=True)["ops"] for mode in ("before", "channels_last")
    }
    peak_end = gen_bench.matmul_cpu_flops()
    peak = (peak_start + peak_end) / 2
    load_end = os.getloadavg()
    rows = []
    for variant in VARIANTS:
        b, a, c = (results[variant, mode] for mode in MODES)
        mfu = [r["flops"] * 8 / r["cpu_s"] / peak for r in (b, a, c)]
        rows.append([
            variant, b["flops"] / 1e9, b["cpu_s"], a["cpu_s"], c["cpu_s"], b["cpu_s"] / a["cpu_s"],
            b["cpu_s"] / c["cpu_s"], *mfu, " / ".join(f"{r['sys_share']:.0%}" for r in (b, a, c)),
            " / ".join(f"{r['wall_s']:.2f}" for r in (b, a, c)),
            " / ".join(f"{r['peak_mb']:.0f}" for r in (b, a, c)),
        ])  # fmt: skip
    header = [
        "losses", "GFLOP/img", "s/step CPU before", "allocator", "channels_last",
        "speed-up allocator", "speed-up channels_last", "MFU before", "MFU allocator",
        "MFU channels_last", "system share (3 modes)", "wall s (3 modes)", "peak MiB (3 modes)",
    ]  # fmt: skip
    op_header = ["op", "calls", "self CPU s", "share"]
    body = (
        f"Default config, {SIZE[0]}x{SIZE[1]}, batch 8, 1 thread. `before` = glibc's default "
        f"malloc settings and the contiguous format (training before issue 16); `allocator` = "
        f"plus `retain_freed_memory()` (what `posetransfer train` calls when a run starts); "
        f"`channels_last` = plus networks and inputs in `channels_last` (`train.memory_format: "
        f"auto` on a CPU). Speed-ups are over `before`. Median of 3 timed steps after 1 warm-up, "
        f"each row a fresh process, the three modes of a variant back to back. MFU = FLOP/s by "
        f"CPU time over a 2048x2048 fp32 matmul measured in this run: "
        f"{peak_start / 1e9:.1f} GFLOP/s at start, {peak_end / 1e9:.1f} at end (mean used). "
        f"FLOP as in the generator benchmark (G 3 forwards, D 8, VGG 3).\n\n"
        f"{markdown_table(header, rows)}\n\n"
        f"Top ops of one profiled `gan` step, `before` (self CPU time, profiler on):\n\n"
        f"{markdown_table(op_header, ops['before'])}\n\n"
        f"`channels_last`:\n\n{markdown_table(op_header, ops['channels_last'])}\n\n"
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
