"""``posetransfer make-dataset``: a PATN-layout dataset of real people from videos and photos.

``posetransfer make-dataset VIDEO_OR_FOLDER... --out DIR --size HxW [--every K] [--identity NAME
...] [--gap N] [--test-fraction F] [--split time|person] [--min-pose-change PX] [--preview]``.
The pipeline and the output layout: :mod:`posetransfer.infer.make_dataset`. Every flag is folded
into the config, so ``--dry-run`` prints what would run; ``key=value`` items among the inputs are
overrides. Exit code 0 when the dataset holds at least one image, 1 when it holds none.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path

from posetransfer.cli.command import Command
from posetransfer.cli.options import parse_size, positive_int, with_flags
from posetransfer.config import apply_overrides
from posetransfer.console import echo
from posetransfer.infer.dataset_config import MakeDatasetConfig
from posetransfer.infer.make_dataset import make_dataset

__all__ = ["MAKE_DATASET"]

_OVERRIDE = re.compile(r"-{0,2}[A-Za-z_][\w.]*=")


def _arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    # fmt: off
    add("inputs", nargs="*", metavar="VIDEO_OR_FOLDER",
        help="videos, photo folders (one identity each) and photos")
    add("--out", type=Path, metavar="DIR", help="dataset folder to write (required; sets out)")
    add("--size", type=parse_size, metavar="HxW", help="crop size and box aspect (sets size)")
    add("--every", type=positive_int, metavar="K", help="keep every K-th video frame (sets every)")
    add("--max-frames", type=positive_int, metavar="N",
        help="most frames kept per video (sets max_frames)")
    add("--identity", nargs="+", metavar="NAME",
        help="identity of every input, or one per input in order (default: video file stem, "
             "folder name); put it after the inputs")
    add("--split", choices=("time", "person"),
        help="time: each video's last frames are test frames; person: whole identities "
             "(sets split)")
    add("--test-fraction", type=float, metavar="F",
        help="share of each sequence (time) or of the identities (person) in test "
             "(sets test_fraction)")
    add("--gap", type=int, metavar="N",
        help="video frames between a video's train and test segments (sets gap)")
    add("--test-identity", nargs="+", metavar="NAME",
        help="person split: the test identities (default: the last ones by name)")
    add("--min-keypoints", type=positive_int, metavar="N",
        help="skip frames with fewer valid keypoints in the crop (sets min_keypoints)")
    add("--min-pose-change", type=float, metavar="PX",
        help="least pose change of a pair, crop pixels, position and scale removed "
             "(sets min_pose_change)")
    add("--pairs-per-image", type=positive_int, metavar="K",
        help="most pairs per target image; pairs_per_image=null keeps all (sets "
             "pairs_per_image)")
    add("--preview", action="store_true", help="write DIR/preview.png (sets preview=true)")
    # fmt: on


def _configure(args: argparse.Namespace, cfg: MakeDatasetConfig) -> MakeDatasetConfig:
    """Fold the flags into the config; ``key=value`` items among the inputs are overrides."""
    inputs = [a for a in args.inputs if not (_OVERRIDE.match(a) and not Path(a).exists())]
    overrides = [a for a in args.inputs if a not in inputs]
    if overrides:
        cfg = apply_overrides(cfg, overrides)
    cfg = with_flags(cfg, {
        "inputs": tuple(inputs) or None,
        "out": None if args.out is None else str(args.out),
        "size": args.size,
        "every": args.every,
        "max_frames": args.max_frames,
        "identities": None if args.identity is None else tuple(args.identity),
        "split": args.split,
        "test_fraction": args.test_fraction,
        "gap": args.gap,
        "test_identities": None if args.test_identity is None else tuple(args.test_identity),
        "min_keypoints": args.min_keypoints,
        "min_pose_change": args.min_pose_change,
        "pairs_per_image": args.pairs_per_image,
        "preview": True if args.preview else None,
    })  # fmt: skip
    detector = dataclasses.replace(cfg.detector, aspect=cfg.size)
    return dataclasses.replace(cfg, detector=detector)


def _run(args: argparse.Namespace, cfg: MakeDatasetConfig) -> int:
    if not cfg.inputs:
        raise ValueError("no VIDEO_OR_FOLDER given (videos, photo folders or photos)")
    summary = make_dataset(cfg, progress=sys.stderr.isatty())
    echo(summary.describe())
    return 0 if any(summary.images.values()) else 1


MAKE_DATASET = Command(
    name="make-dataset",
    help="a PATN-layout dataset of real people from videos and photo folders",
    config=MakeDatasetConfig,
    add_arguments=_arguments,
    run=_run,
    configure=_configure,
    description="Detect the largest person in every K-th frame of each video (tracked) and in "
    "each photo with MediaPipe BlazePose (the 'pose' extra), crop the person box (margin "
    "included) at the aspect of --size to HxW, crop the person mask the same way "
    "(DIR/masks/<split>/<name>.png, 8-bit), and write a PATN dataset: DIR/{train,test}/, "
    "*-annotation-*.csv, *-pairs-*.csv (ordered pairs of one identity whose pose change, "
    "position and scale removed, reaches --min-pose-change crop pixels), DIR/frames.csv and "
    "DIR/skipped.csv (frames without a person, and why). Identities come from video file "
    "stems and folder names, or --identity. Split by time (each video's last "
    "--test-fraction of frames, after a --gap) or by person. Reruns skip finished inputs.",
)
