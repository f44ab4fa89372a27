"""The ``posetransfer personalize`` command: fine-tune a trained run to the person of one photo.

``personalize --checkpoint RUN --source PHOTO --out RUN2 [--steps N] [key=value ...]`` detects and
frames the person as ``infer`` does, fine-tunes the generator and the refiner on self-pairs of
that one image (:mod:`posetransfer.infer.personalize`, :mod:`posetransfer.train.personalize`) and
writes RUN2, a run folder that ``infer --checkpoint RUN2`` takes. Rerunning on RUN2 resumes it
(the photo is not needed then). ``--checkpoint``, ``--source``, ``--steps``, ``--person``,
``--framing`` and ``--device`` set their config keys, so ``--dry-run`` prints what runs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from posetransfer.cli.command import Command
from posetransfer.cli.options import (
    add_device_option,
    add_threads_option,
    positive_int,
    require,
    with_flags,
)
from posetransfer.console import echo
from posetransfer.infer.personalize import personalize_photo
from posetransfer.runtime import set_torch_threads
from posetransfer.train.personalize_config import PersonalizeConfig

__all__ = ["PERSONALIZE"]


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", type=Path, metavar="RUN",
        help="the trained run to personalise (`posetransfer train` run; sets checkpoint)",
    )  # fmt: skip
    parser.add_argument(
        "--source", type=Path, metavar="PHOTO", help="the photo of the person (sets source)"
    )
    parser.add_argument(
        "--out", type=Path, metavar="RUN2", help="the personalised run folder (required)"
    )
    parser.add_argument(
        "--steps", type=positive_int, metavar="N", help="fine-tuning steps (sets train.max_steps)"
    )
    parser.add_argument(
        "--person",
        type=int,
        metavar="I",
        help="which person of the photo, 0 = largest (sets person)",
    )
    parser.add_argument(
        "--framing", choices=("crop", "letterbox"),
        help="crop around the person, or the whole photo (sets framing)",
    )  # fmt: skip
    add_device_option(parser, "train.device")
    add_threads_option(parser)


def _configure(args: argparse.Namespace, cfg: PersonalizeConfig) -> PersonalizeConfig:
    flags = {
        "checkpoint": args.checkpoint,
        "source": args.source,
        "train.max_steps": args.steps,
        "person": args.person,
        "framing": args.framing,
        "train.device": args.device,
    }
    return with_flags(cfg, flags)


def _run(args: argparse.Namespace, cfg: PersonalizeConfig) -> int:
    require(args, "out")
    set_torch_threads(args.threads)
    start = time.perf_counter()
    result = personalize_photo(cfg, args.out)
    summary = {
        "run_dir": str(args.out),
        "step": result.step,
        "resumed_from": result.resumed_from,
        "seconds": round(time.perf_counter() - start, 1),
        "train_losses": result.train_losses,
        "val_metrics": result.val_metrics,
        "next": f"posetransfer infer --checkpoint {args.out} --flow 3d --source PHOTO --target T",
    }
    echo(json.dumps(summary))
    return 0


PERSONALIZE = Command(
    name="personalize",
    help="fine-tune a trained run to the person of one photo (test-time personalisation)",
    config=PersonalizeConfig,
    add_arguments=_arguments,
    run=_run,
    configure=_configure,
    description="Detect and frame the person of PHOTO as `infer` does, then fine-tune the "
    "generator and the pixel-warp refiner of RUN on pairs made from that one image: flips, "
    "scale and crop changes with their exact flow, and copies 3D-warped into nearby poses of "
    "the fitted body (L1, more on the person; VGG when loss.perceptual_weight > 0 and its file "
    "is present). Writes RUN2 (config.yaml, flow_model.yaml, checkpoints/, person.npz, "
    "personalize.yaml) for `infer --checkpoint RUN2`, best with --flow 3d; rerunning on RUN2 "
    "resumes. About 1 s per step of batch 6 at 128x96 on one CPU core.",
)
