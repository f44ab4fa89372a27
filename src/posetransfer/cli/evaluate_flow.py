"""The ``posetransfer evaluate-flow`` command: score a trained flow regressor against the truth.

``evaluate-flow --checkpoint RUN_DIR --data ROOT [--flows DIR] [--split test] --out FILE.json``
writes the metrics and baselines of :mod:`posetransfer.train.flow_eval` as JSON and prints them
as a table. Its flags name inputs and outputs, none sets a config key: ``--dry-run`` prints the
config (batch size, workers, device) that runs.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from posetransfer.cli.command import Command
from posetransfer.cli.options import add_threads_option, positive_int, require
from posetransfer.config import ConfigError
from posetransfer.console import echo
from posetransfer.io import atomic_write_text
from posetransfer.runtime import resolve_device, set_torch_threads
from posetransfer.train.flow_eval import evaluate_flow_run, format_flow_table
from posetransfer.train.stats import json_safe

__all__ = ["EVALUATE_FLOW", "EvalFlowConfig"]

logger = logging.getLogger("posetransfer.evaluate-flow")


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


def _arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--checkpoint", type=Path, metavar="RUN_DIR", help="train-flow run folder (required)")
    add("--data", type=Path, metavar="ROOT", help="dataset folder (required)")
    add("--flows", type=Path, metavar="DIR", help="ground-truth flows (default: ROOT's flows)")
    add("--split", default="test", help="split to evaluate")
    add("--out", type=Path, metavar="FILE.json", help="where to write the JSON (required)")
    add("--which", choices=("best", "latest"), default="best", help="checkpoint of the run")
    add("--max-pairs", type=positive_int, metavar="N", help="only the first N pairs")
    add_threads_option(parser)


def _run(args: argparse.Namespace, cfg: EvalFlowConfig) -> int:
    require(args, "checkpoint", "data", "out")
    set_torch_threads(args.threads)
    result = evaluate_flow_run(
        args.checkpoint, args.data, flows_dir=args.flows, split=args.split, which=args.which,
        max_pairs=args.max_pairs, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
        device=resolve_device(cfg.device), progress=logger.isEnabledFor(logging.INFO),
    )  # fmt: skip
    atomic_write_text(args.out, json.dumps(json_safe(result), indent=2) + "\n")
    echo(format_flow_table(result))
    logger.info("wrote %s", args.out)
    return 0


EVALUATE_FLOW = Command(
    name="evaluate-flow",
    help="evaluate a trained flow regressor: EPE, visibility accuracy, IoU, baselines",
    config=EvalFlowConfig,
    add_arguments=_arguments,
    run=_run,
    description="Evaluate the best (or latest) checkpoint of a train-flow run on a split "
    "(default test) with the run's data settings: EPE over body and visible pixels, "
    "visibility accuracy and per-class IoU, next to a zero-flow and a majority-class "
    "baseline computed on the same pairs. Writes JSON to --out and prints a table.",
)
