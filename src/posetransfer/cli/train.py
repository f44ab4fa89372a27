"""The ``posetransfer train`` and ``posetransfer infer`` commands (pose-transfer stage).

``train --config FILE --data ROOT --flow-checkpoint FLOW_RUN --out RUN_DIR [--max-steps N]
[key=value ...]`` trains a generator run (:func:`~.generator_stage.train_generator`); rerunning
it resumes. ``infer --checkpoint RUN_DIR`` renders either a pair list (``--data ROOT --pairs CSV
--out DIR``: ``DIR/<source>_2_<target>.png``) or one image (``--source IMG --source-pose POSE
--target-pose POSE --out OUT.png``); ``--flow 3d`` takes the flow from the synthesis stage (body
fit and render) instead of the run's flow regressor. Flags apply on top of ``--config`` and the
overrides (``--dry-run`` prints the config before the flags).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from posetransfer.body.fitting import FitConfig
from posetransfer.cli.command import Command
from posetransfer.console import echo
from posetransfer.infer.inputs import FlowFn, infer_pairs, prepare_source, read_pose
from posetransfer.infer.pipeline import PoseTransferPipeline, body_flow, check_pose
from posetransfer.io import save_png, tensor_to_uint8
from posetransfer.pose.keypoints import Pose
from posetransfer.render.correspondence import DEFAULT_DEPTH_TOLERANCE_M
from posetransfer.train.generator_config import GeneratorStageConfig
from posetransfer.train.generator_stage import train_generator

__all__ = ["InferConfig"]

logger = logging.getLogger("posetransfer.train")


# ------------------------------------------------------------------------------------------ train


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, metavar="RUN_DIR", help="run folder (required)")
    parser.add_argument("--data", type=Path, metavar="ROOT", help="dataset (sets data.root)")
    parser.add_argument(
        "--flow-checkpoint", type=Path, metavar="FLOW_RUN",
        help="a `posetransfer train-flow` run (sets flow.checkpoint)",
    )  # fmt: skip
    parser.add_argument("--max-steps", type=int, metavar="N", help="sets train.max_steps")
    parser.add_argument("--threads", type=int, metavar="N", help="torch CPU threads")


def _train_run(args: argparse.Namespace, cfg: GeneratorStageConfig) -> int:
    if args.out is None:
        raise ValueError("the following argument is required: --out RUN_DIR")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.data is not None:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=args.data))
    if args.flow_checkpoint is not None:
        flow = dataclasses.replace(cfg.flow, checkpoint=args.flow_checkpoint)
        cfg = dataclasses.replace(cfg, flow=flow)
    if args.max_steps is not None:
        train = dataclasses.replace(cfg.train, max_steps=args.max_steps)
        cfg = dataclasses.replace(cfg, train=train)
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
    add_arguments=_train_arguments,
    run=_train_run,
    description="Train the generator, discriminator and pixel-warp refiner on a dataset with "
    "a trained, frozen flow regressor (`posetransfer train-flow`), in the paper's two stages "
    "(schedule.coarse_steps). Writes RUN_DIR/config.yaml, flow_model.yaml, stats.jsonl, "
    "checkpoints/ and samples/; rerunning on RUN_DIR resumes. Ablations are overrides, e.g. "
    "generator.visibility=none or pixel_warp.enabled=false.",
)


# ------------------------------------------------------------------------------------------ infer


@dataclass(frozen=True)
class InferConfig:
    """Settings of ``posetransfer infer``.

    Attributes:
        which: Checkpoint of the run: ``"best"`` (else the latest) or ``"latest"``.
        flow: ``"regressor"`` (the run's) or ``"3d"`` (fit the body model to both poses and
            render the pair, as the synthesis stage).
        batch_size: Pairs per forward pass (pair lists).
        num_workers: Data-loading processes (pair lists).
        device: ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda"``.
        min_valid_keypoints: Fewest valid keypoints a pose needs.
        fit: Body-fit settings for ``flow="3d"``.
        depth_tolerance_m: Occlusion tolerance of the ``3d`` visibility, in metres.
    """

    which: Literal["best", "latest"] = "best"
    flow: Literal["regressor", "3d"] = "regressor"
    batch_size: int = 8
    num_workers: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    min_valid_keypoints: int = 4
    fit: FitConfig = field(default_factory=FitConfig)
    depth_tolerance_m: float = DEFAULT_DEPTH_TOLERANCE_M


def _infer_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--checkpoint", type=Path, metavar="RUN_DIR", help="a `train` run (required)")
    add("--out", type=Path, help="output folder (pair list) or OUT.png (one image) (required)")
    add("--data", type=Path, metavar="ROOT", help="dataset holding the pairs' images and keypoints")
    add("--pairs", type=Path, metavar="CSV", help="pair list (from,to) to render")
    add("--source", type=Path, metavar="IMG", help="source image (one-image mode)")
    add("--source-pose", metavar="POSE", help="source pose: JSON, PATN row file[#NAME] or row")
    add("--target-pose", metavar="POSE", help="target pose, as --source-pose")
    add("--flow", choices=("regressor", "3d"), help="flow source (sets flow)")
    add("--which", choices=("best", "latest"), help="checkpoint (sets which)")
    add("--batch-size", type=int, metavar="N", help="sets batch_size")
    add("--device", choices=("auto", "cpu", "cuda"), help="sets device")
    add("--threads", type=int, metavar="N", help="torch CPU threads")


def _pair_mode(args: argparse.Namespace) -> bool:
    """Whether the arguments ask for a pair list (True) or one image (False); errors otherwise."""
    missing = [f"--{n}" for n in ("checkpoint", "out") if getattr(args, n) is None]
    if missing:
        raise ValueError(f"the following arguments are required: {', '.join(missing)}")
    pair_mode = args.data is not None or args.pairs is not None
    single = [args.source, args.source_pose, args.target_pose]
    if pair_mode == any(v is not None for v in single):
        raise ValueError(
            "give either --data ROOT --pairs CSV (a pair list) or --source IMG --source-pose "
            "POSE --target-pose POSE (one image)"
        )
    if pair_mode and (args.data is None or args.pairs is None):
        raise ValueError("a pair list needs both --data ROOT and --pairs CSV")
    if not pair_mode and None in single:
        raise ValueError("one image needs --source, --source-pose and --target-pose")
    return pair_mode


def _infer_run(args: argparse.Namespace, cfg: InferConfig) -> int:
    flags = {"flow": args.flow, "which": args.which, "batch_size": args.batch_size,
             "device": args.device}  # fmt: skip
    cfg = dataclasses.replace(cfg, **{k: v for k, v in flags.items() if v is not None})
    pair_mode = _pair_mode(args)
    if cfg.batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {cfg.batch_size}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if not pair_mode:  # cheap checks before loading anything
        poses = [check_pose(read_pose(spec), spec, cfg.min_valid_keypoints)
                 for spec in (args.source_pose, args.target_pose)]  # fmt: skip
    device = cfg.device if cfg.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
    pipeline = PoseTransferPipeline.from_run(args.checkpoint, cfg.which, device)
    flow_fn = _flow_fn(cfg, pipeline)
    if pair_mode:
        written, skipped = infer_pairs(
            pipeline, args.data, args.pairs, args.out, batch_size=cfg.batch_size,
            num_workers=cfg.num_workers, flow_fn=flow_fn, min_valid=cfg.min_valid_keypoints,
            progress=sys.stderr.isatty(),
        )  # fmt: skip
        logger.info("%s: wrote %d images, %d were there already", args.out, written, skipped)
        return 0
    with Image.open(args.source) as img:
        image = np.array(img.convert("RGB"))
    try:
        x, pose_src, pose_tgt = prepare_source(image, *poses, pipeline.cfg.data.protocol)
    except ValueError as exc:
        raise ValueError(f"{args.source}: {exc}") from None
    size = tuple(x.shape[-2:])
    if size != pipeline.image_size:
        raise ValueError(
            f"{args.source}: image is {size[0]}x{size[1]}, but the model of {args.checkpoint} "
            f"takes {pipeline.image_size[0]}x{pipeline.image_size[1]} (generator.image_size)"
        )
    flow = flow_fn([pose_src], [pose_tgt]) if flow_fn is not None else None
    out = pipeline(x, pose_src, pose_tgt, flow)
    save_png(args.out, tensor_to_uint8(out.image[0]))
    logger.info("wrote %s", args.out)
    return 0


def _flow_fn(cfg: InferConfig, pipeline: PoseTransferPipeline) -> FlowFn | None:
    """``(poses_src, poses_tgt) -> (flow, vis)`` from the body model, or None (regressor)."""
    if cfg.flow != "3d":
        return None
    if not pipeline.cfg.needs_flow:
        logger.warning("the model uses no flow; --flow 3d has no effect")
        return None
    from posetransfer.body import load_body_model

    model = load_body_model()
    size = pipeline.image_size

    def flow_fn(
        poses_src: Sequence[Pose], poses_tgt: Sequence[Pose]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return body_flow(model, poses_src, poses_tgt, size, cfg.fit, cfg.depth_tolerance_m)

    return flow_fn


INFER = Command(
    name="infer",
    help="render people in new poses with a trained `train` run",
    config=InferConfig,
    add_arguments=_infer_arguments,
    run=_infer_run,
    description="Pair list: --checkpoint RUN_DIR --data ROOT --pairs CSV --out DIR writes "
    "DIR/<source>_2_<target>.png (GFLA names, extensions stripped) at the dataset's "
    "resolution, skipping existing files. One image: --checkpoint RUN_DIR --source IMG "
    "--source-pose POSE --target-pose POSE --out OUT.png; a POSE is a JSON file of 18 [x, y] "
    "pixel indices (-1 missing), a PATN annotation file (FILE#NAME picks a row) or a PATN "
    "row 'name: [y...]: [x...]'. --flow 3d fits the body model to both poses and renders "
    "the flow instead of using the run's flow regressor.",
)
