"""``posetransfer synth-flow``: fit the body model to every image's keypoints, render the flows.

The command maps its arguments onto :func:`posetransfer.synth.flow_pipeline.synthesize_flows`
(the output layout is described there) and prints the summary. Its flags name inputs, outputs
and the shard, none sets a config key: ``--dry-run`` prints the config that runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from posetransfer.cli.command import Command
from posetransfer.cli.options import parse_size
from posetransfer.console import echo
from posetransfer.runtime import set_torch_threads
from posetransfer.synth.flow_pipeline import SynthFlowConfig

__all__ = ["SYNTH_FLOW"]


def _synth_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", type=Path, help="dataset folder (PATN/GFLA or DIAF layout)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (may be ROOT)")
    parser.add_argument("--format", choices=("npz", "corr"), default="npz", help="flow file format")
    parser.add_argument(
        "--size", type=parse_size, metavar="HxW", help="render size (default: each image's size)"
    )
    parser.add_argument(
        "--split", action="append", metavar="NAME", help="split to process (repeat; default all)"
    )
    parser.add_argument("--shard", type=int, help="this shard's index (default: $RANK or 0)")
    parser.add_argument(
        "--num-shards", type=int, help="number of shards (default: $WORLD_SIZE or 1)"
    )
    parser.add_argument(
        "--from-fits",
        type=Path,
        metavar="DIR",
        help="render from the stored fits of an earlier run (its OUT or OUT/fits); fit nothing",
    )
    parser.add_argument(
        "--flows-dir",
        type=Path,
        metavar="DIR",
        help="where flow files go (default: OUT/flows; with --out ROOT of a DIAF dataset, "
        "ROOT/3d/hmr/corr)",
    )
    parser.add_argument("--layout", choices=("patn", "diaf"), help="force the dataset layout")
    parser.add_argument("--prefix", help="PATN file prefix when several are present")


def _synth_run(args: argparse.Namespace, cfg: SynthFlowConfig) -> int:
    from posetransfer.body import load_body_model
    from posetransfer.synth.flow_output import default_flows_dir
    from posetransfer.synth.flow_pipeline import (
        SynthOutput,
        format_summary,
        resolve_shard,
        synthesize_flows,
    )
    from posetransfer.synth.flow_plan import build_plan

    set_torch_threads(cfg.threads)
    shard, num_shards = resolve_shard(args.shard, args.num_shards)
    plan = build_plan(
        args.root,
        splits=args.split,
        fmt=args.format,
        fit_batch=cfg.fit_batch,
        render_block=cfg.render_block,
        layout=args.layout,
        prefix=args.prefix,
    )
    out = SynthOutput.create(
        args.out,
        fmt=args.format,
        flows_dir=args.flows_dir or default_flows_dir(plan.files, args.out),
        from_fits=args.from_fits,
        shard=shard,
        num_shards=num_shards,
    )
    model = load_body_model()
    summary = synthesize_flows(
        model,
        plan,
        out,
        cfg,
        size=args.size,
        refit=args.from_fits is None,
        progress=sys.stderr.isatty() and args.quiet == 0,
    )
    echo(format_summary(summary))
    return 0


SYNTH_FLOW = Command(
    name="synth-flow",
    help="fit the body model to every image's keypoints and render every pair's flow",
    config=SynthFlowConfig,
    add_arguments=_synth_arguments,
    run=_synth_run,
    description="Fit Anny to each image's 2D keypoints once (batched), render the dense flow "
    "and visibility of every pair of the pair lists, and write OUT/fits/<image>.npz, "
    "OUT/flows/<target>_<source>.npz (or .corr with --format corr), a manifest of failures "
    "with reasons (OUT/manifest.jsonl) and a summary (OUT/summary.json). Reruns skip "
    "finished files. Shard with --shard i --num-shards n or torchrun's RANK/WORLD_SIZE; "
    "re-render stored fits at another size with --from-fits OUT --size HxW. Bad images and "
    "pairs are listed in the manifest and the run goes on (exit code 0).",
)
