"""Shared helpers for the benchmark scripts: timing, peak memory, machine info, BENCHMARKS.md.

Benchmarks are scripts, never timed tests. Each prints a table and appends a section to
``BENCHMARKS.md`` with the machine, the command and the date; the figures that count are ratios
against a baseline measured in the same run.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"


def machine_info() -> str:
    """One line describing the machine, torch and thread settings."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        if names:
            cpu = f"{names[0]} x{len(names)}"
    except OSError:
        pass
    return (
        f"{cpu}; torch {torch.__version__}; threads {torch.get_num_threads()}; "
        f"python {platform.python_version()}"
    )


def time_it(fn: Callable[[], object], *, warmup: int = 1, repeat: int = 5) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Format rows as a GitHub markdown table."""

    def fmt(v: object) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def record(title: str, body: str, *, path: Path = BENCHMARKS_MD) -> None:
    """Print ``body`` and append it to BENCHMARKS.md under a dated heading with the command."""
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"\n## {title}\n\n"
        f"- date: {stamp}\n- machine: {machine_info()}\n- command: `python benchmarks/{command}`\n"
        f"- env: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}\n\n{body}\n"
    )
    print(section)
    if not path.exists():
        path.write_text("# Benchmarks\n\nAppended by the scripts in `benchmarks/`; newest last.\n")
    with path.open("a") as f:
        f.write(section)
