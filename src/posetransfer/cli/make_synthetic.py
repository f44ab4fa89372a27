"""The ``posetransfer make-synthetic`` command: a synthetic dataset with exact ground-truth flow.

Command-line flags (``--num-people``, ``--size``, ``--unlit``, ...) are applied on top of the
config (``--config FILE.yaml``, then ``key=value`` overrides) where given, before ``--dry-run``
prints it: the printed config is the one that runs. The shard defaults to torchrun's
``RANK``/``WORLD_SIZE`` when set.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from posetransfer.cli.command import Command
from posetransfer.cli.options import parse_size, with_flags
from posetransfer.runtime import dist_info_from_env, set_torch_threads
from posetransfer.synth.dataset_writer import SyntheticConfig, make_synthetic, merge_parts

__all__ = ["MAKE_SYNTHETIC"]

logger = logging.getLogger("posetransfer.make-synthetic")


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("data/synth"), help="output folder")
    add = parser.add_argument
    # fmt: off
    add("--num-people", type=int, metavar="N", help="people (sets num_people)")
    add("--poses-per-person", type=int, metavar="K", help="per person (sets poses_per_person)")
    add("--size", type=parse_size, metavar="HxW", help="image size, e.g. 128x96 (sets size)")
    add("--seed", type=int, help="dataset seed (sets seed)")
    add("--unlit", action="store_true", help="pure albedo, no shading (sets lit=false)")
    add("--textured-background", action="store_true",
        help="gradient and floor, not plain (sets textured_background=true)")
    add("--preview", action="store_true", help="write OUT/preview.png (sets preview=true)")
    add("--format", choices=("npz", "corr", "both"),
        help="corr/both: also OUT/corr/*.corr (sets flow_format)")
    add("--image-format", choices=("png", "jpg"), help="png is lossless (sets image_format)")
    # fmt: on
    add("--shard", type=int, metavar="I", help="this process's shard (default: $RANK or 0)")
    add("--num-shards", type=int, metavar="N", help="shards (default: $WORLD_SIZE or 1)")
    add("--workers", type=int, default=1, metavar="N", help="local processes, one shard only")
    add("--merge-only", action="store_true", help="only merge the finished shards' labels")


def _configure(args: argparse.Namespace, cfg: SyntheticConfig) -> SyntheticConfig:
    flags = {
        "num_people": args.num_people,
        "poses_per_person": args.poses_per_person,
        "size": args.size,
        "seed": args.seed,
        "flow_format": args.format,
        "image_format": args.image_format,
        "lit": False if args.unlit else None,
        "textured_background": True if args.textured_background else None,
        "preview": True if args.preview else None,
    }
    return with_flags(cfg, flags)


def _shard(args: argparse.Namespace) -> tuple[int, int]:
    shard, count = args.shard, args.num_shards
    if shard is None or count is None:  # torchrun's RANK/WORLD_SIZE, else one shard
        env = dist_info_from_env()
        shard = env.rank if shard is None else shard
        count = env.world_size if count is None else count
    if count < 1 or not 0 <= shard < count:
        raise ValueError(f"need 0 <= --shard < --num-shards, got shard {shard} of {count}")
    return shard, count


def _run(args: argparse.Namespace, cfg: SyntheticConfig) -> int:
    set_torch_threads(1)
    shard, count = _shard(args)
    if args.merge_only:
        merged_cfg = merge_parts(args.out, count)
        if cfg.preview or merged_cfg.preview:
            from posetransfer.synth.contact_sheet import write_contact_sheet

            write_contact_sheet(args.out, args.out / "preview.png", rows=merged_cfg.preview_pairs)
        logger.info("merged %d shard(s) in %s", count, args.out)
        return 0
    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    merged = make_synthetic(
        args.out, cfg, shard=shard, num_shards=count, workers=args.workers,
        progress=sys.stderr.isatty(),
    )  # fmt: skip
    if merged:
        logger.info(
            "wrote %d people x %d poses (%dx%d) to %s", cfg.num_people, cfg.poses_per_person,
            *cfg.size, args.out,
        )  # fmt: skip
    return 0


MAKE_SYNTHETIC = Command(
    name="make-synthetic",
    help="generate a synthetic pose-transfer dataset with exact ground-truth flow",
    config=SyntheticConfig,
    add_arguments=_arguments,
    run=_run,
    configure=_configure,
    description="Render people from the Anny body model (varied shapes, procedural clothing, "
    "skin and hair, fashion-like poses at front, side and back views) and write them in the "
    "PATN layout (images, *-annotation-{train,test}.csv, *-pairs-{train,test}.csv; split by "
    "person) with the exact flow and visibility of every pair in OUT/flows. Shard with "
    "--shard I --num-shards N (same bytes as one process); the labels are merged when the "
    "last shard finishes, or with --merge-only. Flags apply on top of --config and "
    "key=value overrides (--dry-run shows the config with the flags applied).",
)
