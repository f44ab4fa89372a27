"""The measuring half of ``benchmarks/gpu_check.sh``: generator throughput and a training step.

Networks: ``configs/generator/default.yaml``'s (``GeneratorConfig()``, ``DiscriminatorConfig()``)
at 256x176, random weights (speed does not depend on them).

``infer``
    ``PoseTransferGenerator.forward`` with a flow and visibility (the regressor's output kind),
    eval mode, ``torch.inference_mode``, ``channels_last``: batch 1 and 64, float32 and
    bfloat16 (``torch.autocast``), eager and ``torch.compile`` (default mode; the compile time
    is its own column). float32 convolutions use TF32 where the card has it (cuDNN's default).
``train``
    One coarse-stage optimisation step at batch 8, as ``benchmarks/generator.py``'s ``gan``
    variant: discriminator phase (real and detached fake, BCE, Adam), then generator phase
    (L1 + GAN through the frozen discriminator, Adam); float32 and bfloat16 autocast, eager.

Times: CUDA-synchronised wall time, median of the repeats after warm-up. TFLOP/s counts the
convolution and linear FLOP of ``posetransfer.models.flops.count_flops`` (train: 3 x G + 8 x D
forwards, as in ``benchmarks/generator.py``). Rows that would not finish inside ``--budget-s``
are listed as skipped. ``--cpu-smoke`` runs the same code on the CPU (one thread) at 32x32,
batch 1, one call per row and ``torch.compile(backend="eager")`` (no code generation), to test
the logic where there is no GPU. Writes the markdown report (with the pytest summary the shell
script passes in) to ``--out``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from posetransfer.losses.generator import (
    GeneratorLossConfig,
    discriminator_loss_terms,
    generator_loss_terms,
    weighted_discriminator_total,
    weighted_total,
)
from posetransfer.models.discriminator import DiscriminatorConfig, PatchDiscriminator
from posetransfer.models.flops import count_flops
from posetransfer.models.generator import GeneratorConfig, PoseTransferGenerator


@dataclass(frozen=True)
class Plan:
    """What to measure."""

    device: torch.device
    size: tuple[int, int]
    infer_batches: tuple[int, ...]
    train_batch: int
    warmup: int
    repeat: int
    compile_backend: str


def plan(cpu_smoke: bool) -> Plan:
    if cpu_smoke:  # one thread: 2 threads on 2 cores were sometimes ~100x slower here
        torch.set_num_threads(1)
        return Plan(torch.device("cpu"), (32, 32), (1,), 1, 0, 1, "eager")
    return Plan(torch.device("cuda"), (256, 176), (1, 64), 8, 3, 10, "inductor")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], p: Plan) -> float:
    """Median synchronised wall seconds of ``fn()`` over ``p.repeat`` runs after warm-up."""
    for _ in range(p.warmup):
        fn()
    _sync(p.device)
    times = []
    for _ in range(p.repeat):
        start = time.perf_counter()
        fn()
        _sync(p.device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _autocast(p: Plan, dtype: str) -> AbstractContextManager[object]:
    if dtype == "fp32":
        return nullcontext()
    return torch.autocast(p.device.type, dtype=torch.bfloat16)


def _inputs(batch: int, p: Plan) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(batch)
    h, w = p.size
    fmt = torch.channels_last
    out = {
        "x_src": torch.rand(batch, 3, h, w, generator=gen) * 2 - 1,
        "x_tgt": torch.rand(batch, 3, h, w, generator=gen) * 2 - 1,
        "pose": (torch.rand(batch, 18, h, w, generator=gen) > 0.97).float(),
        "flow": torch.randn(batch, 2, h, w, generator=gen) * 5,
        "vis": torch.randint(0, 3, (batch, h, w), generator=gen),
    }
    return {
        k: v.to(p.device, memory_format=fmt) if v.ndim == 4 else v.to(p.device)
        for k, v in out.items()
    }


def _peak_gib(p: Plan) -> float | str:
    if p.device.type != "cuda":
        return "-"
    return torch.cuda.max_memory_allocated(p.device) / 2**30


def _reset_peak(p: Plan) -> None:
    if p.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(p.device)


def infer_rows(p: Plan, deadline: float) -> list[list[object]]:
    """Generator inference: batch x dtype x (eager, compile)."""
    torch.manual_seed(0)
    cfg = GeneratorConfig(image_size=p.size)
    net = PoseTransferGenerator(cfg).eval()
    net = net.to(p.device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    probe = _inputs(1, p)
    flop = count_flops(net, probe["x_src"], probe["pose"], probe["flow"], probe["vis"])
    compiled: Callable[..., object] | None = None
    rows: list[list[object]] = []
    for mode in ("eager", "compile"):
        for dtype in ("fp32", "bf16"):
            for batch in p.infer_batches:
                label = ["generator", batch, dtype, mode]
                if time.monotonic() > deadline:
                    rows.append([*label, "skipped: time budget", "", "", "", ""])
                    continue
                x = _inputs(batch, p)
                if mode == "compile" and compiled is None:
                    compiled = torch.compile(net, backend=p.compile_backend)
                model = compiled if mode == "compile" else net

                def run(model: Callable[..., object] = model, x: dict = x, dt: str = dtype) -> None:
                    with torch.inference_mode(), _autocast(p, dt):
                        model(x["x_src"], x["pose"], x["flow"], x["vis"])

                first = time.perf_counter()
                run()  # compiles for this shape and dtype
                _sync(p.device)
                first = time.perf_counter() - first
                _reset_peak(p)
                seconds = _timed(run, p)
                note = f"first call {first:.1f} s" if mode == "compile" else ""
                rows.append([
                    *label, 1000 * seconds, batch / seconds, flop * batch / seconds / 1e12,
                    _peak_gib(p), note,
                ])  # fmt: skip
                print(rows[-1], flush=True)
    return rows


def _train_step(p: Plan, dtype: str) -> tuple[Callable[[], None], int]:
    """A fresh G + D and their step (L1 + GAN, Adam) at ``p.train_batch``; the step's FLOP."""
    torch.manual_seed(0)
    fmt = torch.contiguous_format  # what the training stage uses
    gen = PoseTransferGenerator(GeneratorConfig(image_size=p.size))
    gen = gen.to(p.device, memory_format=fmt).train()  # type: ignore[call-overload]
    disc = PatchDiscriminator(DiscriminatorConfig())
    disc = disc.to(p.device, memory_format=fmt).train()  # type: ignore[call-overload]
    loss_cfg = GeneratorLossConfig(perceptual_weight=0.0, gan_weight=0.01, gan_start_step=0)
    g_opt = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(disc.parameters(), lr=2e-5, betas=(0.5, 0.999))
    x = {k: v.contiguous() for k, v in _inputs(p.train_batch, p).items()}
    src, tgt, pose, flow, vis = x["x_src"], x["x_tgt"], x["pose"], x["flow"], x["vis"]
    flop = 3 * count_flops(gen, src, pose, flow, vis) + 8 * count_flops(disc, src, tgt, pose)

    def step() -> None:
        with _autocast(p, dtype):
            out = gen(src, pose, flow, vis).image
            disc.requires_grad_(True)
            d_terms = discriminator_loss_terms(
                disc(src, tgt, pose), disc(src, out.detach(), pose), loss_cfg
            )
        d_opt.zero_grad(set_to_none=True)
        weighted_discriminator_total(d_terms, loss_cfg).backward()
        d_opt.step()
        disc.requires_grad_(False)
        with _autocast(p, dtype):
            terms = generator_loss_terms(out, tgt, loss_cfg, fake_logits=disc(src, out, pose))
        g_opt.zero_grad(set_to_none=True)
        weighted_total(terms, loss_cfg, step=0).backward()
        g_opt.step()

    return step, flop


def train_rows(p: Plan, deadline: float) -> list[list[object]]:
    """One G + D training step (L1 + GAN) per dtype, eager."""
    rows: list[list[object]] = []
    for dtype in ("fp32", "bf16"):
        label = ["G + D, L1 + GAN", p.train_batch, dtype, "eager"]
        if time.monotonic() > deadline:
            rows.append([*label, "skipped: time budget", "", "", "", ""])
            continue
        step, flop = _train_step(p, dtype)
        _reset_peak(p)
        seconds = _timed(step, p)
        rows.append([
            *label, 1000 * seconds, p.train_batch / seconds, flop / seconds / 1e12,
            _peak_gib(p), "",
        ])  # fmt: skip
        print(rows[-1], flush=True)
    return rows


def _table(header: list[str], rows: list[list[object]]) -> str:
    def fmt(v: object) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows])


def _device_line(p: Plan) -> str:
    if p.device.type == "cuda":
        props = torch.cuda.get_device_properties(p.device)
        memory = props.total_memory / 2**30
        card = f"{props.name}, {memory:.0f} GiB, {props.multi_processor_count} SMs"
        return f"{card}; CUDA {torch.version.cuda}; cuDNN {torch.backends.cudnn.version()}"
    return f"CPU ({os.cpu_count()} cores), --cpu-smoke: sizes and repeats cut, not a measurement"


def _tests_summary(log: Path | None, code: int | None, seconds: float | None) -> str:
    if log is None:
        return "not run"
    text = log.read_text(errors="replace") if log.is_file() else ""
    lines = [ln for ln in text.splitlines() if re.search(r"\d+ (passed|failed|skipped|error)", ln)]
    summary = lines[-1].strip("= ") if lines else "no pytest summary line"
    failed = [ln for ln in text.splitlines() if ln.startswith(("FAILED", "ERROR"))]
    out = f"{summary} (pytest exit code {code}, {seconds:.0f} s)"
    return out + "".join(f"\n- {ln}" for ln in failed[:20])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="markdown report")
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny run on the CPU")
    parser.add_argument("--budget-s", type=float, default=300.0, help="time for the rows")
    parser.add_argument("--tests-log", type=Path, help="pytest output of the gpu tests")
    parser.add_argument("--tests-rc", type=int, help="pytest exit code")
    parser.add_argument("--tests-s", type=float, default=0.0, help="pytest wall seconds")
    parser.add_argument("--command", default="bash benchmarks/gpu_check.sh", help="for the report")
    args = parser.parse_args(argv)
    p = plan(args.cpu_smoke)
    if p.device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check.py: no CUDA device (use --cpu-smoke)", file=sys.stderr)
        return 3
    start = time.monotonic()
    deadline = start + args.budget_s
    infer = infer_rows(p, deadline)
    train = train_rows(p, deadline)
    header = ["network", "batch", "dtype", "mode", "ms / batch", "img / s", "TFLOP/s", "peak GiB"]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    report = (
        f"## GPU check: tests, generator throughput, training step\n\n"
        f"- date: {stamp}\n- device: {_device_line(p)}\n"
        f"- torch {torch.__version__}; python {platform.python_version()}; "
        f"{os.cpu_count()} CPU cores\n- command: `{args.command}`\n\n"
        f"`gpu`-marked tests: {_tests_summary(args.tests_log, args.tests_rc, args.tests_s)}\n\n"
        f"Generator inference ({p.size[0]}x{p.size[1]}, default networks, random weights; "
        "channels_last, inference_mode; bf16 = autocast; compile = torch.compile "
        f"(backend {p.compile_backend}), first call = compile time):\n\n"
        + _table([*header, "note"], infer)
        + f"\n\nTraining step (batch {p.train_batch}, G + D, L1 + GAN, Adam, contiguous):\n\n"
        + _table([*header, "note"], train)
        + f"\n\nMeasuring took {time.monotonic() - start:.0f} s.\n"
    )
    args.out.write_text(report, encoding="utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
