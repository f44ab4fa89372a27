"""Pose-transfer generator: inference and training speed, MFU and peak memory (CPU, 1 thread).

Two model sets, side by side:

``default``
    ``FlowRegressorConfig()``, ``GeneratorConfig()``, ``PixelWarpConfig()``,
    ``DiscriminatorConfig()`` (``configs/generator/default.yaml``; stride 16, so 256x256, 256x176
    and 128x64 all work by setting ``image_size``).
``paper``
    The original's sizes (``configs/generator/paper.yaml``): ``FlowRegressorConfig.paper``,
    ``GeneratorConfig.paper``, ``PixelWarpConfig.paper`` (``"deepfashion"`` at 256x256,
    ``"market"`` at 128x64) and ``DiscriminatorConfig.paper()``. The DeepFashion generator has
    stride 128, which does not divide 256x176: that size is skipped for ``paper`` (padding it
    to 256x256, as one would have to, costs exactly the 256x256 row; the speed-up table compares
    against that).

Rows:
``infer``
    The whole inference, eval mode and ``torch.inference_mode``: flow regressor on the two pose
    maps, :func:`~posetransfer.models.generator.condition_from_prediction`, generator, pixel-warp
    refiner. GFLOP/img from :func:`posetransfer.models.flops.count_flops` (per network).
``train``
    One optimisation step at batch 8 of the coarse stage (the generator's), as the training stage
    runs it once the GAN is on: discriminator phase (real and detached fake, BCE, Adam step), then
    generator phase (L1 + GAN with the discriminator frozen, Adam step). The flow and visibility
    are fixed inputs (ground-truth conditioning; with the frozen regressor the step also pays its
    batch-8 forward). Variants: ``l1`` = generator and L1 only (what the original's 30 s / 6.5 GB
    figure measured), ``gan`` = the step above, ``gan+vgg`` = plus the perceptual loss on
    relu1_1..relu5_1 with a **random-weight** VGG19 (the real ImageNet weights are not available
    offline; the cost is the same). Train FLOPs = 3 x the generator's and discriminator's
    forwards, plus the VGG's, counted by the same counter (``count_flops``).

Every row runs in a fresh subprocess and its peak memory is that child's ``VmHWM`` (peak
resident set, including ~0.3 GB of Python and torch), so rows do not contaminate each other.
Times are the median *CPU* time of the process (``time.process_time``) over the repeats,
because the benchmark machine is shared (the 1-minute load average is recorded); wall times are
printed too. MFU = achieved FLOP/s over the FLOP/s of a 2048x2048 float32 matmul timed the same
way in the same run (mean of a measurement at the start and one at the end). Models and inputs
are ``channels_last`` for inference and training (measured faster for both, and what the
pipeline and, on a CPU, the training stages use); a full run adds one row of each in the
other format at 256x256. Training rows run with the allocator setting of ``posetransfer train``
(:func:`posetransfer.train.allocator.retain_freed_memory`; ``benchmarks/train_mfu.py`` measures
it against glibc's defaults).

Usage:
    python benchmarks/generator.py            # full run, appends to BENCHMARKS.md: ~9 minutes
                                              # of CPU (12 wall with the 2 cores loaded 3-4)
    python benchmarks/generator.py --quick    # inference at all sizes, train at 128x64 (~1.5 min)
    python benchmarks/generator.py --quick --no-record
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from common import markdown_table, record  # type: ignore[import-not-found]
from posetransfer.losses.generator import (
    GeneratorLossConfig,
    discriminator_loss_terms,
    generator_loss_terms,
    weighted_discriminator_total,
    weighted_total,
)
from posetransfer.models.discriminator import DiscriminatorConfig, PatchDiscriminator
from posetransfer.models.flops import count_flops, count_parameters
from posetransfer.models.flow_regressor import FlowRegressor, FlowRegressorConfig
from posetransfer.models.generator import GeneratorConfig, PoseTransferGenerator
from posetransfer.models.generator_inputs import condition_from_prediction
from posetransfer.models.pixel_warp import PixelWarpConfig, PixelWarpRefiner
from posetransfer.models.vgg import load_vgg19
from posetransfer.train.allocator import retain_freed_memory

SIZES = ((256, 256), (256, 176), (128, 64))
TRAIN_VARIANTS = ("l1", "gan", "gan+vgg")
FORMATS = {"infer": "channels_last", "train": "channels_last"}  # what posetransfer runs on a CPU
ORIGINAL = "the original's architecture measured here: 1.10 s/img, 102.8 GFLOP/img, MFU ~0.56"


@dataclass(frozen=True)
class Job:
    """One measurement, run in its own process."""

    config: str  # "default" | "paper"
    kind: str  # "infer" | "train"
    size: tuple[int, int]
    batch: int
    variant: str = ""  # train: one of TRAIN_VARIANTS
    fmt: str = ""  # "channels_last" | "contiguous"; "" = the kind's default (FORMATS)
    warmup: int = 1
    repeat: int = 3


def model_configs(
    name: str, size: tuple[int, int]
) -> tuple[FlowRegressorConfig, GeneratorConfig, PixelWarpConfig, DiscriminatorConfig]:
    """The four network configs of ``name`` at image size ``size`` (ValueError if unsupported)."""
    if name == "default":
        return (
            FlowRegressorConfig(),
            GeneratorConfig(image_size=size),
            PixelWarpConfig(),
            DiscriminatorConfig(),
        )
    dataset = {(256, 256): "deepfashion", (128, 64): "market"}.get(size)
    if name != "paper" or dataset is None:
        raise ValueError(f"no {name!r} config at {size[0]}x{size[1]}")
    return (
        FlowRegressorConfig.paper(dataset),
        GeneratorConfig.paper(dataset),
        PixelWarpConfig.paper(dataset),
        DiscriminatorConfig.paper(),
    )


def supported(name: str, size: tuple[int, int]) -> bool:
    """Whether ``name`` has a config at ``size``."""
    try:
        model_configs(name, size)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------- child side


def _vm_hwm_mb() -> float:
    """Peak resident set of this process (``VmHWM``) in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("VmHWM not found in /proc/self/status")


def _timed(fn: Callable[[], object], warmup: int, repeat: int) -> tuple[float, float]:
    """Median (CPU seconds, wall seconds) of ``fn()`` over ``repeat`` runs after ``warmup``."""
    for _ in range(warmup):
        fn()
    cpu, wall = [], []
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    cpu.sort()
    wall.sort()
    return cpu[len(cpu) // 2], wall[len(wall) // 2]


def _inputs(batch: int, size: tuple[int, int], fmt: torch.memory_format) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    h, w = size

    def image() -> torch.Tensor:
        return (torch.rand(batch, 3, h, w, generator=gen) * 2 - 1).contiguous(memory_format=fmt)

    def pose() -> torch.Tensor:
        maps = (torch.rand(batch, 18, h, w, generator=gen) > 0.97).float()
        return maps.contiguous(memory_format=fmt)

    return {
        "x_src": image(),
        "x_tgt": image(),
        "pose_src": pose(),
        "pose_tgt": pose(),
        "flow": torch.randn(batch, 2, h, w, generator=gen) * 5,
        "vis": torch.randint(0, 3, (batch, h, w), generator=gen),
    }


def _run_infer(job: Job, fmt: torch.memory_format) -> dict[str, float]:
    f_cfg, g_cfg, p_cfg, _ = model_configs(job.config, job.size)
    flow_net = FlowRegressor(f_cfg).eval().to(memory_format=fmt)
    gen = PoseTransferGenerator(g_cfg).eval().to(memory_format=fmt)
    ref = PixelWarpRefiner(p_cfg).eval().to(memory_format=fmt)
    x = _inputs(job.batch, job.size, fmt)
    with torch.inference_mode():
        f_flops = count_flops(flow_net, x["pose_src"], x["pose_tgt"])
        flow, vis = condition_from_prediction(flow_net(x["pose_src"], x["pose_tgt"]))
        g_flops = count_flops(gen, x["x_src"], x["pose_tgt"], flow, vis)
        coarse = gen(x["x_src"], x["pose_tgt"], flow, vis)
        p_flops = count_flops(ref, x["x_src"], coarse, flow, vis)

    def infer() -> None:
        with torch.inference_mode():
            fl, vi = condition_from_prediction(flow_net(x["pose_src"], x["pose_tgt"]))
            ref(x["x_src"], gen(x["x_src"], x["pose_tgt"], fl, vi), fl, vi)

    cpu, wall = _timed(infer, job.warmup, job.repeat)
    params = sum(count_parameters(m) for m in (flow_net, gen, ref))
    return {
        "params": params,
        "flops": (f_flops + g_flops + p_flops) / job.batch,
        "flops_parts": [f_flops / job.batch, g_flops / job.batch, p_flops / job.batch],
        "cpu_s": cpu,
        "wall_s": wall,
    }


def _run_train(job: Job, fmt: torch.memory_format) -> dict[str, float]:
    _, g_cfg, _, d_cfg = model_configs(job.config, job.size)
    gen = PoseTransferGenerator(g_cfg).train().to(memory_format=fmt)
    disc = PatchDiscriminator(d_cfg).train().to(memory_format=fmt)
    use_gan = job.variant != "l1"
    use_vgg = job.variant == "gan+vgg"
    loss_cfg = GeneratorLossConfig(
        perceptual_weight=1.0 if use_vgg else 0.0,
        gan_weight=0.01 if use_gan else 0.0,
        gan_start_step=0,
        discriminator_weight=0.01 if job.config == "paper" else 1.0,
    )
    vgg = load_vgg19(random_weights=True).to(memory_format=fmt) if use_vgg else None
    # The training stage's optimisers (train.settings.make_adam with the paper's settings).
    g_opt = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(disc.parameters(), lr=2e-5, betas=(0.5, 0.999), weight_decay=4e-4)
    x = _inputs(job.batch, job.size, fmt)
    src, tgt, pose = x["x_src"], x["x_tgt"], x["pose_tgt"]
    g_flops = count_flops(gen, src, pose, x["flow"], x["vis"])
    d_flops = count_flops(disc, src, tgt, pose)
    v_flops = count_flops(vgg, tgt) if vgg is not None else 0
    # In forward-equivalents: G 3 (forward, input and weight gradients); D 8 (its phase: real and
    # fake forwards and their backward, 2 x 2; G's phase: forward and input gradients, 2); the
    # frozen VGG 3 (target forward; output forward and input gradients).
    flops = 3 * g_flops + (8 * d_flops if use_gan else 0) + 3 * v_flops

    def step() -> None:
        out = gen(src, pose, x["flow"], x["vis"]).image
        fake = None
        if use_gan:
            disc.requires_grad_(True)
            d_terms = discriminator_loss_terms(
                disc(src, tgt, pose), disc(src, out.detach(), pose), loss_cfg
            )
            d_opt.zero_grad(set_to_none=True)
            weighted_discriminator_total(d_terms, loss_cfg).backward()
            d_opt.step()
            disc.requires_grad_(False)
            fake = disc(src, out, pose)
        terms = generator_loss_terms(out, tgt, loss_cfg, vgg=vgg, fake_logits=fake)
        g_opt.zero_grad(set_to_none=True)
        weighted_total(terms, loss_cfg, step=0).backward()
        g_opt.step()

    cpu, wall = _timed(step, job.warmup, job.repeat)
    return {
        "params": count_parameters(gen) + (count_parameters(disc) if use_gan else 0),
        "flops": flops / job.batch,
        "cpu_s": cpu,
        "wall_s": wall,
    }


def run_child(job: Job) -> dict[str, float]:
    """Measure ``job`` in this process (1 torch thread); adds ``base_mb`` and ``peak_mb``."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    formats = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}
    fmt = formats[job.fmt or FORMATS[job.kind]]
    if job.kind == "train":  # what posetransfer train does when a run starts
        retain_freed_memory()
    base = _vm_hwm_mb()
    result = (_run_infer if job.kind == "infer" else _run_train)(job, fmt)
    return result | {"base_mb": base, "peak_mb": _vm_hwm_mb()}


# --------------------------------------------------------------------------------- parent side


def matmul_cpu_flops(n: int = 2048, repeat: int = 7) -> float:
    """FLOP/s of an ``n x n`` float32 matmul on 1 thread, by CPU time (the MFU reference)."""
    torch.set_num_threads(1)
    a, b = torch.randn(n, n), torch.randn(n, n)
    cpu, _ = _timed(lambda: a @ b, warmup=2, repeat=repeat)
    return 2 * n**3 / cpu


def run_job(job: Job) -> dict[str, float]:
    """Run ``job`` in a fresh ``python benchmarks/generator.py --child`` process."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(asdict(job))]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child {job} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def plan(quick: bool) -> list[Job]:
    """The measurements of a full or ``--quick`` run."""
    jobs: list[Job] = []
    for config in ("default", "paper"):
        for size in SIZES:
            if not supported(config, size):
                continue
            jobs.append(Job(config, "infer", size, 1, repeat=3 if config == "paper" else 5))
            if size == (128, 64):
                jobs.append(Job(config, "infer", size, 8))
    if not quick:  # the other memory format at 256x256
        for config in ("default", "paper"):
            jobs.append(Job(config, "infer", (256, 256), 1, fmt="contiguous", repeat=3))
    for config in ("default", "paper"):
        for size in [(128, 64)] if quick else [(256, 256), (256, 176), (128, 64)]:
            if not supported(config, size):
                continue
            for variant in TRAIN_VARIANTS:
                big = config == "paper" and size == (256, 256)
                # The paper net at 256x256 takes ~30-45 s a step: 1 warm-up + 1 timed step.
                jobs.append(Job(config, "train", size, 8, variant, repeat=1 if big else 2))
    if not quick:
        jobs.append(Job("default", "train", (256, 256), 8, "gan", fmt="contiguous", repeat=2))
    return jobs


def _hw(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def tables(
    jobs: list[Job], results: list[dict], peak: float
) -> tuple[str, list[list], list[list], list[list]]:
    """Targets text and the rows of the inference, training and paper/default tables."""
    by_key = {
        (j.config, j.kind, j.size, j.batch, j.variant, j.fmt): r
        for j, r in zip(jobs, results, strict=True)
    }
    infer_rows, train_rows = [], []
    for j, r in zip(jobs, results, strict=True):
        mfu = r["flops"] * j.batch / r["cpu_s"] / peak
        fmt = j.fmt or FORMATS[j.kind]
        params, gflop, peak_mb = f"{r['params'] / 1e6:.2f}", r["flops"] / 1e9, f"{r['peak_mb']:.0f}"
        if j.kind == "infer":
            parts = "+".join(f"{p / 1e9:.1f}" for p in r["flops_parts"])
            infer_rows.append([
                j.config, _hw(j.size), j.batch, fmt, params, gflop, parts, r["cpu_s"] / j.batch,
                j.batch / r["cpu_s"], r["wall_s"] / j.batch, mfu, peak_mb,
            ])  # fmt: skip
        else:
            train_rows.append([
                j.config, _hw(j.size), j.batch, j.variant, fmt, params, gflop, r["cpu_s"],
                j.batch / r["cpu_s"], r["wall_s"], mfu, peak_mb,
            ])  # fmt: skip
    ratio_rows = []
    for size in SIZES:
        paper_size = size if supported("paper", size) else (256, 256)
        note = "" if paper_size == size else " (paper padded to 256x256)"
        d = by_key.get(("default", "infer", size, 1, "", ""))
        p = by_key.get(("paper", "infer", paper_size, 1, "", ""))
        if d and p:
            ratio_rows.append([
                f"infer {_hw(size)} b1{note}", p["cpu_s"] / d["cpu_s"],
                p["flops"] / d["flops"], p["peak_mb"] / d["peak_mb"],
            ])  # fmt: skip
        for variant in TRAIN_VARIANTS:
            d = by_key.get(("default", "train", size, 8, variant, ""))
            p = by_key.get(("paper", "train", paper_size, 8, variant, ""))
            if d and p:
                ratio_rows.append([
                    f"train {variant} {_hw(size)} b8{note}", p["cpu_s"] / d["cpu_s"],
                    p["flops"] / d["flops"], p["peak_mb"] / d["peak_mb"],
                ])  # fmt: skip
    return targets_text(by_key), infer_rows, train_rows, ratio_rows


def targets_text(by_key: dict[tuple, dict]) -> str:
    """The issue's targets for the default config at 256x256, checked against this run."""
    lines = []
    d_inf = by_key.get(("default", "infer", (256, 256), 1, "", ""))
    p_inf = by_key.get(("paper", "infer", (256, 256), 1, "", ""))
    if d_inf:
        ok = "met" if d_inf["cpu_s"] <= 0.37 else "NOT met"
        speed = f", {p_inf['cpu_s'] / d_inf['cpu_s']:.2f}x faster than `paper`" if p_inf else ""
        lines.append(
            f"- whole inference, default, 256x256, batch 1: {d_inf['cpu_s']:.3f} s/img "
            f"(target <= 0.37 s/img, 3x faster than the original's 1.10){speed}: **{ok}**"
        )
    d_tr = by_key.get(("default", "train", (256, 256), 8, "gan", ""))
    p_tr = by_key.get(("paper", "train", (256, 256), 8, "gan", ""))
    if d_tr:
        ok = "met" if d_tr["peak_mb"] * 2**20 <= 3e9 else "NOT met"
        versus = (
            f"; `paper` same step {p_tr['cpu_s']:.1f} s, {p_tr['peak_mb'] / 1024:.2f} GiB"
            if p_tr
            else ""
        )
        lines.append(
            f"- train step, default, 256x256, batch 8 (G + D, L1 + GAN, Adam): peak "
            f"{d_tr['peak_mb']:.0f} MiB = {d_tr['peak_mb'] * 2**20 / 1e9:.2f} GB (target <= 3 GB "
            f"= 2861 MiB): **{ok}**; {d_tr['cpu_s']:.1f} s/step{versus}"
        )
    d_vgg = by_key.get(("default", "train", (256, 256), 8, "gan+vgg", ""))
    if d_vgg:
        lines.append(
            f"- the same with the perceptual loss (random-weight VGG19): peak "
            f"{d_vgg['peak_mb']:.0f} MiB = {d_vgg['peak_mb'] * 2**20 / 1e9:.2f} GB, "
            f"{d_vgg['cpu_s']:.1f} s/step"
        )
    return "\n".join(lines)


def report(jobs: list[Job], results: list[dict], run: dict[str, float]) -> str:
    """Markdown body: inference table, train table, ratio table, targets and run notes.

    ``run`` holds ``peak`` (the MFU reference FLOP/s), ``peak_start``, ``peak_end``,
    ``load_start``, ``load_end`` and ``wall`` (seconds).
    """
    targets, infer_rows, train_rows, ratio_rows = tables(jobs, results, run["peak"])
    infer_header = [
        "config", "HxW", "batch", "format", "params M", "GFLOP/img", "flow+G+PW GFLOP",
        "s/img (CPU)", "img/s (CPU)", "s/img (wall)", "MFU", "peak MiB",
    ]  # fmt: skip
    train_header = [
        "config", "HxW", "batch", "losses", "format", "params M (G+D)", "GFLOP/img",
        "s/step (CPU)", "img/s (CPU)", "s/step (wall)", "MFU", "peak MiB",
    ]  # fmt: skip
    ratio_header = ["comparison", "paper/default time", "paper/default FLOP",
                    "paper/default peak mem"]  # fmt: skip
    return (
        f"`default` = configs/generator/default.yaml (the fast preset), `paper` = "
        f"configs/generator/paper.yaml (the original's sizes: DeepFashion nets at 256x256, Market "
        f"nets at 128x64; its stride 128 does not divide 256x176, so that size is skipped for "
        f"`paper`, and the ratio rows at 256x176 compare with it padded to 256x256). Inference = "
        f"flow regressor + generator + pixel-warp refiner, eval + inference_mode. Train = one "
        f"coarse-stage step at batch 8 with fixed flow/visibility: `l1` = G only, `gan` = D phase "
        f"+ G phase with L1 + GAN (BCE), `gan+vgg` = plus the perceptual loss with a "
        f"**random-weight VGG19** (real weights unavailable offline; same cost); Adam steps "
        f"included. Each row in a fresh subprocess; peak MiB = the child's VmHWM (whole process, "
        f"incl. ~0.3 GB of Python + torch). Times are median CPU time (process_time) because the "
        f"machine is shared; wall times beside them. MFU = FLOP/s over a 2048x2048 fp32 matmul "
        f"by CPU time in this run: {run['peak'] / 1e9:.1f} GFLOP/s. Train FLOP, in forwards: G 3, "
        f"D 8 (3 calls, 2 with weight gradients), VGG 3. Memory format: channels_last (what "
        f"inference and, on a CPU, training use), contiguous in the rows that say so. "
        f"Reference ({ORIGINAL}; train step 30 s, 6.5 GB for G + L1).\n\n"
        f"Inference:\n\n{markdown_table(infer_header, infer_rows)}\n\n"
        f"Training step:\n\n{markdown_table(train_header, train_rows)}\n\n"
        f"Paper over default, same run:\n\n{markdown_table(ratio_header, ratio_rows)}\n\n"
        f"Targets:\n\n{targets}\n\n"
        f"1-minute load average (2 cores): {run['load_start']:.2f} at start, "
        f"{run['load_end']:.2f} at end: other jobs were running, so wall times are inflated and "
        f"the CPU times are the figures. Matmul reference at start / end: "
        f"{run['peak_start'] / 1e9:.1f} / {run['peak_end'] / 1e9:.1f} GFLOP/s. Peak memory of a "
        f"child before building its models: {min(r['base_mb'] for r in results):.0f}-"
        f"{max(r['base_mb'] for r in results):.0f} MiB. Wall time of the benchmark "
        f"{run['wall']:.0f} s."
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="inference + train at 128x64 only")
    parser.add_argument("--no-record", action="store_true", help="print only, no BENCHMARKS.md")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        fields = json.loads(args.child)
        job = Job(**(fields | {"size": tuple(fields["size"])}))
        print(json.dumps(run_child(job)))
        return
    start = time.perf_counter()
    load_start = os.getloadavg()[0]
    peak_start = matmul_cpu_flops()
    jobs = plan(args.quick)
    results = []
    for job in jobs:
        t0 = time.perf_counter()
        results.append(run_job(job))
        r = results[-1]
        print(
            f"{job.config} {job.kind} {_hw(job.size)} b{job.batch} {job.variant} {job.fmt}: "
            f"cpu {r['cpu_s']:.3f} s wall {r['wall_s']:.3f} s peak {r['peak_mb']:.0f} MiB "
            f"({time.perf_counter() - t0:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    peak_end = matmul_cpu_flops()
    run = {
        "peak": (peak_start + peak_end) / 2,
        "peak_start": peak_start,
        "peak_end": peak_end,
        "load_start": load_start,
        "load_end": os.getloadavg()[0],
        "wall": time.perf_counter() - start,
    }
    body = report(jobs, results, run)
    if args.no_record:
        print(body)
    else:
        record("Pose-transfer generator: inference, train step, MFU, memory (CPU, 1 thread)", body)


if __name__ == "__main__":
    main()
