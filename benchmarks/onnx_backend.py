"""torch vs ONNX Runtime: seconds per frame of the whole model at 256x176 (CPU).

The default networks (``configs/generator/default.yaml``, the default flow regressor) at
256x176 with random weights (``real_people.random_pipeline``: speed does not depend on the
weights) are exported with ``posetransfer.infer.onnx_export.export_onnx`` into a temporary
folder, then both backends of ``PoseTransferPipeline`` render the same random batches:

``full``
    ``pipeline.run`` without a flow: flow regressor, generator, refiner (``infer`` on pose
    files and pair lists; ONNX graph ``full``).
``flow+render``
    ``predict_flow`` then ``run`` with that flow and a background, as ``RePoser`` does for
    photos and video frames (ONNX graphs ``flow`` then ``render``).

Batch 1 and 8, 1 and 2 threads (torch intra-op threads and ONNX Runtime's ``intra_op``
threads alike). Each cell is the median over ``--repeat`` calls, torch and ONNX Runtime
interleaved call by call so that a load change on the shared machine hits both; ``s/frame`` is
wall time / batch and ``CPU s/frame`` process time / batch (all threads). ``torch / ort`` > 1
means ONNX Runtime is faster. Parity columns: visibility pixels that differ between the
backends (an argmax of the regressor's logits flips where two classes tie within float error),
and the largest output difference (images in [-1, 1]) over the images whose visibility agrees,
and over all.

Usage: ``python benchmarks/onnx_backend.py [--repeat 5] [--append]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import machine_info, markdown_table, peak_rss_mb, record  # noqa: E402
from posetransfer.infer.onnx_export import export_onnx  # noqa: E402
from posetransfer.infer.onnx_graphs import example_inputs  # noqa: E402
from posetransfer.infer.pipeline import PoseTransferPipeline  # noqa: E402
from posetransfer.models.generator import GeneratorOutput  # noqa: E402
from posetransfer.runtime import set_torch_threads  # noqa: E402
from real_people import SIZE, random_pipeline  # noqa: E402

PATHS = ("full", "flow+render")


def _poses(x: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    return x["src_xy"], x["src_valid"], x["tgt_xy"], x["tgt_valid"]


def _call(pipeline: PoseTransferPipeline, path: str, x: dict[str, torch.Tensor]) -> GeneratorOutput:
    if path == "full":
        return pipeline.run(x["x_src"], *_poses(x))
    flow = pipeline.predict_flow(*_poses(x))
    return pipeline.run(x["x_src"], *_poses(x), flow=flow, background=x["background"])


def _timed(
    pipeline: PoseTransferPipeline, path: str, x: dict[str, torch.Tensor]
) -> tuple[float, float, GeneratorOutput]:
    """``(wall s, process s, output)`` of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = _call(pipeline, path, x)
    return time.perf_counter() - wall, time.process_time() - cpu, out


def _parity(
    pipelines: tuple[PoseTransferPipeline, PoseTransferPipeline],
    outputs: tuple[GeneratorOutput, GeneratorOutput],
    x: dict[str, torch.Tensor],
) -> tuple[int, float, float]:
    """Visibility pixels that differ, then the max abs difference over the images whose
    visibility agrees and over all images (images in [-1, 1])."""
    vis_a, vis_b = (p.predict_flow(*_poses(x))[1] for p in pipelines)
    flips = (vis_a != vis_b).flatten(1).sum(1)
    names = ("image", "coarse", "warped_src", "mask")
    a, b = outputs
    diff = torch.stack(
        [(getattr(a, n) - getattr(b, n)).abs().flatten(1).amax(1) for n in names]
    ).amax(0)
    agree = float(diff[flips == 0].max()) if bool((flips == 0).any()) else float("nan")
    return int(flips.sum()), agree, float(diff.max())


def measure(repeat: int) -> tuple[list[list[object]], dict[str, object]]:
    torch_pipeline = random_pipeline(SIZE)
    info: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as folder:
        set_torch_threads(1)
        exported = export_onnx(
            torch_pipeline.cfg, torch_pipeline.nets, Path(folder) / "model.onnx", source="random"
        )
        info["export_s"] = exported.seconds
        info["mib"] = {k: p.stat().st_size / 2**20 for k, p in exported.paths.items()}
        engines = {
            threads: PoseTransferPipeline.from_run(
                exported.paths["full"], backend="onnxruntime", threads=threads
            )
            for threads in (1, 2)
        }
        for pipeline in engines.values():  # open every graph now, not inside a timed call
            assert pipeline.engine is not None
            for kind in pipeline.engine.paths:
                pipeline.engine._session(kind)
    rows: list[list[object]] = []
    for threads in (1, 2):
        set_torch_threads(threads)
        onnx_pipeline = engines[threads]
        for batch in (1, 8):
            x = example_inputs(torch_pipeline.cfg, batch, seed=batch)
            for path in PATHS:
                times: dict[str, list[tuple[float, float]]] = {"torch": [], "ort": []}
                for i in range(repeat + 1):  # the first round warms up
                    wt, ct, out_t = _timed(torch_pipeline, path, x)
                    wo, co, out_o = _timed(onnx_pipeline, path, x)
                    if i:
                        times["torch"].append((wt, ct))
                        times["ort"].append((wo, co))
                flips, agree, worst = _parity((torch_pipeline, onnx_pipeline), (out_t, out_o), x)
                med = {
                    k: (
                        statistics.median(w for w, _ in v) / batch,
                        statistics.median(c for _, c in v) / batch,
                    )
                    for k, v in times.items()
                }
                rows.append([
                    path, batch, threads, med["torch"][0], med["ort"][0],
                    med["torch"][0] / med["ort"][0], med["torch"][1], med["ort"][1],
                    med["torch"][1] / med["ort"][1], flips, agree, worst,
                ])  # fmt: skip
                print(rows[-1], flush=True)
    return rows, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per cell")
    parser.add_argument("--append", action="store_true", help="append to BENCHMARKS.md")
    args = parser.parse_args()
    import onnx
    import onnxruntime

    load = os.getloadavg()[0]
    start = time.perf_counter()
    rows, info = measure(args.repeat)
    header = [
        "path", "batch", "threads", "torch s/frame", "ort s/frame", "torch / ort",
        "torch CPU s/frame", "ort CPU s/frame", "torch / ort (CPU)", "vis px differing",
        "max abs diff, vis equal", "max abs diff, all",
    ]  # fmt: skip
    mib = ", ".join(f"{k} {v:.1f} MiB" for k, v in info["mib"].items())  # type: ignore[attr-defined]
    body = (
        f"Default networks at {SIZE[0]}x{SIZE[1]}, random weights; torch {torch.__version__} "
        f"(channels_last, as the pipeline runs it) vs onnxruntime {onnxruntime.__version__} "
        f"(CPUExecutionProvider, onnx {onnx.__version__}, opset 18; files: {mib}; export "
        f"{info['export_s']:.0f} s). Median of {args.repeat} calls per cell after one warm-up, "
        "backends interleaved; s/frame = wall / batch, CPU = process time / batch (all threads); "
        "torch / ort > 1: ONNX Runtime faster. `full` = regressor + generator + refiner in one "
        "call (graph `full`); `flow+render` = predict_flow, then run with that flow and a "
        "background (graphs `flow`, `render`: the photo and video path). Parity on the timed "
        f"batches ({SIZE[0] * SIZE[1]} pixels per image): visibility pixels whose class (an "
        "argmax of the regressor's logits) differs between the backends; the largest output "
        "difference over the images whose visibility agrees everywhere, and over all images "
        "(a flipped class changes the flow and the blanking there, so the outputs around it).\n\n"
        + markdown_table(header, rows)
        + f"\n\nLoad average (1 min) {load:.2f} at start, {os.getloadavg()[0]:.2f} at end, "
        f"os.cpu_count()={os.cpu_count()}; peak RSS {peak_rss_mb():.0f} MiB; wall "
        f"{time.perf_counter() - start:.0f} s; {machine_info()}."
    )
    if args.append:
        record("ONNX Runtime backend vs torch (CPU, 256x176)", body)
    else:
        print(body)


if __name__ == "__main__":
    main()
