"""The ``posetransfer train-flow`` and ``posetransfer evaluate-flow`` commands.

``train-flow --config configs/flow/NAME.yaml --data ROOT --out RUN_DIR [--flows DIR]
[--max-steps N] [key=value ...]`` trains (:func:`~posetransfer.train.flow_stage.train_flow`);
rerunning it on an existing ``RUN_DIR`` resumes. ``evaluate-flow --checkpoint RUN_DIR --data ROOT
[--flows DIR] [--split test] --out FILE.json`` writes the metrics and baselines of
:mod:`posetransfer.train.flow_eval` as JSON and prints them as a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from posetransfer.cli.command import Command
from posetransfer.config import ConfigError
from posetransfer.console import echo
from posetransfer.io import atomic_write_text
from posetransfer.train.flow_eval import evaluate_flow_run, format_flow_table
from posetransfer.train.flow_stage import FlowStageConfig, train_flow

__all__ = ["EvalFlowConfig"]

logger = logging.getLogger("posetransfer.train-flow")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _require(args: argparse.Namespace, *names: str) -> None:
    """Options required to run (not for ``--dry-run``, which exits before ``run``)."""
    missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) is None]
    if missing:
        raise ValueError(f"the following arguments are required: {', '.join(missing)}")


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        torch.set_num_threads(threads)


# -------------------------------------------------------------------------------------- train-flow


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, metavar="ROOT", help="dataset folder (required)")
    parser.add_argument("--out", type=Path, metavar="RUN_DIR", help="run folder (required)")
    parser.add_argument(
        "--flows", type=Path, metavar="DIR",
        help="flow files: a folder of .npz/.corr or a synth-flow output (default: ROOT's flows)",
    )  # fmt: skip
    parser.add_argument("--max-steps", type=_positive_int, metavar="N", help="sets train.max_steps")
    parser.add_argument("--threads", type=_positive_int, metavar="N", help="torch CPU threads")


def _json_safe(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


def _train_run(args: argparse.Namespace, cfg: FlowStageConfig) -> int:
    _require(args, "data", "out")
    _set_threads(args.threads)
    if args.max_steps is not None:
        train = dataclasses.replace(cfg.train, max_steps=args.max_steps)
        cfg = dataclasses.replace(cfg, train=train)
    result = train_flow(cfg, args.data, args.out, flows_dir=args.flows)
    summary = {
        "run_dir": str(args.out),
        "step": result.step,
        "resumed_from": result.resumed_from,
        "best_" + cfg.train.val_metric: result.best_value,
        "bad_batches": result.bad_batches,
        "train_losses": result.train_losses,
        "val_metrics": result.val_metrics,
    }
    echo(json.dumps(_json_safe(summary)))
    return 0


TRAIN_FLOW = Command(
    name="train-flow",
    help="train the flow regressor (stage 2) on ground-truth flow",
    config=FlowStageConfig,
    add_arguments=_train_arguments,
    run=_train_run,
    description="Train the U-Net that maps the source and target pose maps to flow and "
    "visibility, on the pairs of the training split with their flow files (a missing file "
    "is an error naming it). A validation subset is carved from the training split by "
    "identity (data.val_fraction; the test split is never used) and picks "
    "checkpoints/best by train.val_metric. Writes RUN_DIR/config.yaml, val_split.json, "
    "stats.jsonl, tb/, checkpoints/ and samples/; rerunning on RUN_DIR resumes. Prints a "
    "JSON summary line.",
)


# ----------------------------------------------------------------------------------- evaluate-flow


@dataclass(frozen=True)
class EvalFlowConfig:
    """Settings of ``evaluate-flow`` (the data preparation comes from the run's config).

    Attributes:
        batch_size: Pairs per forward pass.
        num_workers: DataLoader workers.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
    """

    batch_size: int = 16
    num_workers: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.num_workers < 0:
            raise ConfigError(
                f"need batch_size >= 1 and num_workers >= 0, got {self.batch_size}, "
                f"{self.num_workers}"
            )


def _eval_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--checkpoint", type=Path, metavar="RUN_DIR", help="train-flow run folder (required)")
    add("--data", type=Path, metavar="ROOT", help="dataset folder (required)")
    add("--flows", type=Path, metavar="DIR", help="ground-truth flows (default: ROOT's flows)")
    add("--split", default="test", help="split to evaluate")
    add("--out", type=Path, metavar="FILE.json", help="where to write the JSON (required)")
    add("--which", choices=("best", "latest"), default="best", help="checkpoint of the run")
    add("--max-pairs", type=_positive_int, metavar="N", help="only the first N pairs")
    add("--threads", type=_positive_int, metavar="N", help="torch CPU threads")


def _eval_run(args: argparse.Namespace, cfg: EvalFlowConfig) -> int:
    _require(args, "checkpoint", "data", "out")
    _set_threads(args.threads)
    device = cfg.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    result = evaluate_flow_run(
        args.checkpoint, args.data, flows_dir=args.flows, split=args.split, which=args.which,
        max_pairs=args.max_pairs, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
        device=device, progress=logger.isEnabledFor(logging.INFO),
    )  # fmt: skip
    atomic_write_text(args.out, json.dumps(_json_safe(result), indent=2) + "\n")
    echo(format_flow_table(result))
    logger.info("wrote %s", args.out)
    return 0


EVALUATE_FLOW = Command(
    name="evaluate-flow",
    help="evaluate a trained flow regressor: EPE, visibility accuracy, IoU, baselines",
    config=EvalFlowConfig,
    add_arguments=_eval_arguments,
    run=_eval_run,
    description="Evaluate the best (or latest) checkpoint of a train-flow run on a split "
    "(default test) with the run's data settings: EPE over body and visible pixels, "
    "visibility accuracy and per-class IoU, next to a zero-flow and a majority-class "
    "baseline computed on the same pairs. Writes JSON to --out and prints a table.",
)
