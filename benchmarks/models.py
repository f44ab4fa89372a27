"""Flow-regressor throughput and model FLOP utilisation (MFU) on CPU with one thread.

For each model, image size, batch size and memory format it measures inference (eval mode,
``torch.inference_mode``) and a full training step (forward, flow loss, backward, fused Adam step)
in images per second. MFU is the achieved FLOP rate over the FLOP rate of a 2048x2048 float32
matmul measured in the same run; FLOPs are counted by ``posetransfer.models.flops`` (conv
multiply-adds x 2) and a training step counts 3x the forward.

Models: ``default`` is ``FlowRegressorConfig()`` (the efficient preset) and ``paper`` is the
original DeepFashion U-Net (``FlowRegressorConfig.paper("deepfashion")``), measured at 256x256
only (its stride is 64). The original code ran that net at 4.3 img/s (MFU 0.52) on this machine.

Usage:
    python benchmarks/models.py                       # ~2-3 minutes, appends to BENCHMARKS.md
    python benchmarks/models.py --models default --sizes 128x64 --batches 1 --no-record
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from common import markdown_table, peak_rss_mb, record, time_it  # type: ignore[import-not-found]
from posetransfer.conventions import Visibility
from posetransfer.losses.flow import FlowLossConfig, flow_loss_terms, total_loss
from posetransfer.models.flops import count_flops, count_parameters
from posetransfer.models.flow_regressor import FlowRegressor, FlowRegressorConfig

MODELS = {
    "default": FlowRegressorConfig(),
    "paper": FlowRegressorConfig.paper("deepfashion"),
}
PAPER_SIZE = (256, 256)


def matmul_flops_per_s(n: int = 2048, repeat: int = 5) -> float:
    """FLOP/s of an ``n x n`` float32 matmul (the MFU reference)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / time_it(lambda: a @ b, warmup=2, repeat=repeat)


def _inputs(
    batch: int, size: tuple[int, int], fmt: torch.memory_format
) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(0)
    poses = [(torch.rand(batch, 18, *size, generator=gen) > 0.97).float() for _ in "st"]
    flow = torch.randn(batch, 2, *size, generator=gen) * 10
    vis = torch.randint(0, len(Visibility), (batch, *size), generator=gen)
    return (*(p.contiguous(memory_format=fmt) for p in poses), flow, vis)


def measure(
    cfg: FlowRegressorConfig,
    size: tuple[int, int],
    batch: int,
    fmt: torch.memory_format,
    repeat: int,
) -> dict[str, float]:
    """Images/s and FLOP/s of inference and of a training step for one setting."""
    torch.manual_seed(0)
    net = FlowRegressor(cfg).to(memory_format=fmt)
    src, tgt, flow, vis = _inputs(batch, size, fmt)
    flops = count_flops(net.eval(), src, tgt)
    loss_cfg = FlowLossConfig(level_weights=(0.0, *(0.32 / 2**i for i in range(cfg.num_levels))))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4, fused=True)  # fused: ~2x faster step

    def infer() -> None:
        with torch.inference_mode():
            net(src, tgt)

    def train_step() -> None:
        loss = total_loss(flow_loss_terms(net(src, tgt), flow, vis, loss_cfg), loss_cfg)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    net.eval()
    t_infer = time_it(infer, warmup=1, repeat=repeat)
    net.train()
    t_train = time_it(train_step, warmup=1, repeat=repeat)
    return {
        "params": count_parameters(net),
        "flops": flops / batch,
        "infer_ips": batch / t_infer,
        "infer_fps": flops / t_infer,
        "train_ips": batch / t_train,
        "train_fps": 3 * flops / t_train,
    }


def _size(text: str) -> tuple[int, int]:
    height, _, width = text.partition("x")
    return int(height), int(width)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="default,paper", help="comma list of: default, paper")
    parser.add_argument("--sizes", default="256x176,128x64", help="HxW list for 'default'")
    parser.add_argument("--batches", default="1,8", help="comma list of batch sizes")
    parser.add_argument(
        "--formats", default="channels_last,contiguous", help="memory formats to compare"
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per measurement")
    parser.add_argument("--no-record", action="store_true", help="print only, no BENCHMARKS.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    formats = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}
    start = time.perf_counter()
    peak = matmul_flops_per_s()
    rows = []
    for name in args.models.split(","):
        cfg = MODELS[name]
        sizes = [PAPER_SIZE] if name == "paper" else [_size(s) for s in args.sizes.split(",")]
        for size in sizes:
            for batch in (int(b) for b in args.batches.split(",")):
                for fmt_name in args.formats.split(","):
                    r = measure(cfg, size, batch, formats[fmt_name], args.repeat)
                    row = [
                        name, f"{r['params'] / 1e6:.2f}", f"{size[0]}x{size[1]}", batch,
                        fmt_name, r["flops"] / 1e9, r["infer_ips"], r["infer_fps"] / peak,
                        r["train_ips"], r["train_fps"] / peak,
                    ]  # fmt: skip
                    rows.append(row)
                    print(" ".join(str(v) for v in row), file=sys.stderr, flush=True)
    header = [
        "model", "params M", "HxW", "batch", "format", "GFLOP/img",
        "infer img/s", "infer MFU", "train img/s", "train MFU",
    ]  # fmt: skip
    body = (
        f"Reference: 2048x2048 fp32 matmul, 1 thread: {peak / 1e9:.1f} GFLOP/s. "
        f"Train FLOPs = 3 x forward. `default` = `FlowRegressorConfig()` "
        f"({MODELS['default'].variant}, base {MODELS['default'].base_channels}, "
        f"{MODELS['default'].num_levels} levels); `paper` = the original DeepFashion U-Net "
        f"(the original code: 4.3 img/s, MFU 0.52 on this machine).\n\n"
        f"{markdown_table(header, rows)}\n\n"
        f"Peak RSS {peak_rss_mb():.0f} MiB; wall time {time.perf_counter() - start:.0f} s; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}."
    )
    if args.no_record:
        print(body)
    else:
        record("Flow regressor throughput and MFU (CPU, 1 thread)", body)


if __name__ == "__main__":
    main()
