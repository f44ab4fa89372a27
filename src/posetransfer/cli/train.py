"""The ``posetransfer train`` command (pose-transfer stage).

``train --config FILE --data ROOT --flow-checkpoint FLOW_RUN --out RUN_DIR [--max-steps N]
[--init RUN] [key=value ...]`` trains a generator run (:func:`~.generator_stage.train_generator`);
rerunning it resumes. ``--data``, ``--flow-checkpoint``, ``--max-steps`` and ``--init`` set
``data.root``, ``flow.checkpoint``, ``train.max_steps`` and ``init.run`` on top of ``--config``
and the overrides; with an init run (that exists) its architecture and checkpoint are folded in
too (:func:`~posetransfer.train.generator_init.adopt_init`), so ``--dry-run`` prints the
configuration that trains.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from posetransfer.cli.command import Command
from posetransfer.cli.options import add_threads_option, positive_int, require, with_flags
from posetransfer.console import echo
from posetransfer.runtime import set_torch_threads
from posetransfer.train.generator_config import GeneratorStageConfig
from posetransfer.train.generator_init import adopt_init
from posetransfer.train.generator_stage import train_generator

__all__ = ["TRAIN"]


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, metavar="RUN_DIR", help="run folder (required)")
    parser.add_argument("--data", type=Path, metavar="ROOT", help="dataset (sets data.root)")
    parser.add_argument(
        "--flow-checkpoint", type=Path, metavar="FLOW_RUN",
        help="a `posetransfer train-flow` run (sets flow.checkpoint)",
    )  # fmt: skip
    parser.add_argument("--max-steps", type=positive_int, metavar="N", help="sets train.max_steps")
    parser.add_argument(
        "--init", type=Path, metavar="RUN",
        help="fine-tune: start from this `posetransfer train` run's networks (best checkpoint, "
        "else latest; its architecture and flow regressor) with fresh optimisers and step "
        "counter (sets init.run)",
    )  # fmt: skip
    add_threads_option(parser)


def _configure(args: argparse.Namespace, cfg: GeneratorStageConfig) -> GeneratorStageConfig:
    flags = {
        "data.root": args.data,
        "flow.checkpoint": args.flow_checkpoint,
        "train.max_steps": args.max_steps,
        "init.run": args.init,
    }
    cfg = with_flags(cfg, flags)
    if cfg.init.run is not None and Path(cfg.init.run).is_dir():
        cfg = adopt_init(cfg)  # a missing init run is reported when the run starts
    return cfg


def _run(args: argparse.Namespace, cfg: GeneratorStageConfig) -> int:
    require(args, "out")
    set_torch_threads(args.threads)
    result = train_generator(cfg, args.out)
    summary = {
        "run_dir": str(args.out),
        "step": result.step,
        "resumed_from": result.resumed_from,
        f"best_{cfg.train.val_metric}": result.best_value,
        "train_losses": result.train_losses,
        "val_metrics": result.val_metrics,
    }
    echo(json.dumps(summary))  # the summary scripts read
    return 0


TRAIN = Command(
    name="train",
    help="train the pose-transfer generator (paper stage 3)",
    config=GeneratorStageConfig,
    add_arguments=_arguments,
    run=_run,
    configure=_configure,
    description="Train the generator, discriminator and pixel-warp refiner on a dataset with "
    "a trained, frozen flow regressor (`posetransfer train-flow`), in the paper's two stages "
    "(schedule.coarse_steps). Writes RUN_DIR/config.yaml, flow_model.yaml, stats.jsonl, "
    "checkpoints/ and samples/; rerunning on RUN_DIR resumes. Ablations are overrides, e.g. "
    "generator.visibility=none or pixel_warp.enabled=false. Fine-tuning: --init RUN starts "
    "from another run's networks, e.g. with --config configs/generator/finetune-cpu.yaml on a "
    "small real dataset.",
)
