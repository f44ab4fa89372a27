"""The ``posetransfer train-flow`` command: train the flow regressor (paper stage 2).

``train-flow --config configs/flow/NAME.yaml --data ROOT --out RUN_DIR [--flows DIR]
[--max-steps N] [key=value ...]`` trains (:func:`~posetransfer.train.flow_stage.train_flow`);
rerunning it on an existing ``RUN_DIR`` resumes. ``--data``, ``--flows`` and ``--max-steps`` set
``data.root``, ``data.flows_dir`` and ``train.max_steps`` on top of ``--config`` and the
overrides, so ``--dry-run`` prints the configuration that trains.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from posetransfer.cli.command import Command
from posetransfer.cli.options import add_threads_option, positive_int, require, with_flags
from posetransfer.console import echo
from posetransfer.runtime import set_torch_threads
from posetransfer.train.flow_stage import FlowStageConfig, train_flow
from posetransfer.train.stats import json_safe

__all__ = ["TRAIN_FLOW"]


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, metavar="ROOT", help="dataset (sets data.root)")
    parser.add_argument("--out", type=Path, metavar="RUN_DIR", help="run folder (required)")
    parser.add_argument(
        "--flows", type=Path, metavar="DIR",
        help="flow files: a folder of .npz/.corr or a synth-flow output (sets data.flows_dir; "
        "default: ROOT's flows)",
    )  # fmt: skip
    parser.add_argument("--max-steps", type=positive_int, metavar="N", help="sets train.max_steps")
    add_threads_option(parser)


def _configure(args: argparse.Namespace, cfg: FlowStageConfig) -> FlowStageConfig:
    flags = {
        "data.root": args.data,
        "data.flows_dir": args.flows,
        "train.max_steps": args.max_steps,
    }
    return with_flags(cfg, flags)


def _run(args: argparse.Namespace, cfg: FlowStageConfig) -> int:
    require(args, "out")
    set_torch_threads(args.threads)
    result = train_flow(cfg, args.out)
    summary = {
        "run_dir": str(args.out),
        "step": result.step,
        "resumed_from": result.resumed_from,
        "best_" + cfg.train.val_metric: result.best_value,
        "bad_batches": result.bad_batches,
        "train_losses": result.train_losses,
        "val_metrics": result.val_metrics,
    }
    echo(json.dumps(json_safe(summary)))
    return 0


TRAIN_FLOW = Command(
    name="train-flow",
    help="train the flow regressor (stage 2) on ground-truth flow",
    config=FlowStageConfig,
    add_arguments=_arguments,
    run=_run,
    configure=_configure,
    description="Train the U-Net that maps the source and target pose maps to flow and "
    "visibility, on the pairs of the training split with their flow files (a missing file "
    "is an error naming it). A validation subset is carved from the training split by "
    "identity (data.val_fraction; the test split is never used) and picks "
    "checkpoints/best by train.val_metric. Writes RUN_DIR/config.yaml, val_split.json, "
    "stats.jsonl, tb/, checkpoints/ and samples/; rerunning on RUN_DIR resumes. Prints a "
    "JSON summary line.",
)
