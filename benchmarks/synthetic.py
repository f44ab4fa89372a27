"""make-synthetic throughput: time per person, per image and per pair, and the demo-size build.

Part 1 times the stages of one person (``K`` poses, ``K (K - 1)`` pairs) in this process with one
torch thread: drawing the person, rendering (posing, rasterizing, shading, keypoints, flows of
every pair) and writing (PNG images, ``.npz`` flows, bodies). The baseline is one rasterization
of the same ``K`` posed meshes, measured in the same run.

Part 2 builds a whole dataset end to end through ``make_synthetic`` (one process, then
``--workers`` local processes) and reports the wall time, including the merge of the labels.

Usage:
    python benchmarks/synthetic.py                          # demo size: 300 people x 4 poses
    python benchmarks/synthetic.py --people 40 --no-record  # quick look
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import markdown_table, peak_rss_mb, record, time_it  # type: ignore[import-not-found]
from posetransfer.body import load_body_model
from posetransfer.render import rasterize
from posetransfer.render.bodies import body_image_vertices
from posetransfer.synth.dataset_writer import SyntheticConfig, make_synthetic, write_person
from posetransfer.synth.people import frame_cameras, render_person, sample_person


def stage_times(cfg: SyntheticConfig, folder: Path, repeat: int) -> list[tuple[str, float]]:
    """Median seconds per person of each stage, and of the rasterization baseline."""
    model = load_body_model()
    people = iter(range(10**6))

    def spec():
        return sample_person(
            next(people), seed=cfg.seed, poses=cfg.poses_per_person, view_mix=cfg.view_mix
        )

    one = spec()
    with torch.no_grad():
        world = model(one.params)
    verts = body_image_vertices(model, one.params, frame_cameras(world, cfg.size, one.framing))
    baseline = time_it(lambda: rasterize(verts, model.faces, cfg.size), repeat=repeat)
    rendered = render_person(model, one, cfg.size, lit=cfg.lit)
    return [
        (f"rasterize {cfg.poses_per_person} poses (baseline)", baseline),
        ("draw the person", time_it(spec, repeat=repeat)),
        ("render (lit)", time_it(lambda: render_person(model, one, cfg.size), repeat=repeat)),
        (
            "render (unlit)",
            time_it(lambda: render_person(model, one, cfg.size, lit=False), repeat=repeat),
        ),
        ("write", time_it(lambda: write_person(folder, cfg, one, rendered), repeat=repeat)),
    ]


def build_time(cfg: SyntheticConfig, folder: Path, workers: int) -> float:
    """Wall seconds of ``make_synthetic`` into an empty folder (model loading included)."""
    shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    make_synthetic(folder, cfg, workers=workers)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=300, help="people in the end-to-end build")
    parser.add_argument("--poses", type=int, default=4, help="poses per person")
    parser.add_argument("--size", default="128x96", help="HxW")
    parser.add_argument("--workers", type=int, default=2, help="processes of the second build")
    parser.add_argument("--repeat", type=int, default=7, help="runs per stage timing")
    parser.add_argument("--no-record", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    height, width = (int(v) for v in args.size.split("x"))
    cfg = SyntheticConfig(num_people=args.people, poses_per_person=args.poses, size=(height, width))
    pairs = args.poses * (args.poses - 1)
    with tempfile.TemporaryDirectory() as tmp:
        stages = stage_times(cfg, Path(tmp) / "stages", args.repeat)
        baseline = stages[0][1]
        rows = [(name, 1e3 * t, 1e3 * t / pairs, t / baseline) for name, t in stages]
        builds = []
        for workers in sorted({1, args.workers}):
            wall = build_time(cfg, Path(tmp) / f"build{workers}", workers)
            total = cfg.num_people * pairs
            builds.append((workers, wall, 1e3 * wall / total, total / wall))
    body = (
        f"{args.people} people x {args.poses} poses at {height}x{width} ({pairs} pairs per "
        f"person), lit, PNG + npz; os.cpu_count()={os.cpu_count()}.\n\n"
        + markdown_table(["stage (one person)", "ms", "ms / pair", "x baseline"], rows)
        + "\n\n"
        + markdown_table(["workers", "wall s", "ms / pair", "pairs / s"], builds)
        + f"\n\npeak RSS of the benchmark process: {peak_rss_mb():.0f} MiB"
    )
    if args.no_record:
        print(body)
    else:
        record("make-synthetic throughput (CPU, 1 thread per process)", body)


if __name__ == "__main__":
    sys.exit(main())
