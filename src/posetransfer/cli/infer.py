"""The ``posetransfer infer`` command: render people in new poses with a trained ``train`` run.

``infer --checkpoint RUN_DIR`` renders a pair list (``--data ROOT --pairs CSV --out DIR``:
``DIR/<source>_2_<target>.png``), one image of the run's protocol (``--source IMG --source-pose
POSE --target-pose POSE --out OUT.png``), or any photo (``--source PHOTO --target T --out O``,
where ``T`` is a photo, a pose or a driving video: :mod:`posetransfer.cli.infer_photo`);
``--flow 3d`` takes the flow from the synthesis stage (body fit and render)
instead of the run's flow regressor. ``--backend onnxruntime`` runs the networks with ONNX Runtime
(CPU, ``--threads`` threads): ``--checkpoint`` is then a ``model.onnx`` of ``posetransfer export``
or a run folder, exported on the fly. ``--precision bf16`` runs the torch networks in bfloat16
(about twice as fast on CPUs with native bfloat16, slightly different images). ``--flow``,
``--which``, ``--batch-size``, ``--device``, ``--backend`` and ``--precision`` set the config keys
of the same names on top of ``--config`` and the overrides, so ``--dry-run`` prints the
configuration that runs.
"""

from __future__ import annotations

import argparse
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
from posetransfer.cli.infer_photo import PhotoConfig, VideoConfig, run_photo
from posetransfer.cli.options import (
    add_device_option,
    add_threads_option,
    positive_int,
    require,
    with_flags,
)
from posetransfer.config import ConfigError
from posetransfer.infer.inputs import FlowFn, infer_pairs, prepare_source, read_pose
from posetransfer.infer.onnx_export import OnnxExtraMissingError
from posetransfer.infer.pipeline import (
    BACKENDS,
    PRECISIONS,
    PoseTransferPipeline,
    body_flow,
    check_pose,
)
from posetransfer.io import save_png, tensor_to_uint8
from posetransfer.pose.keypoints import Pose
from posetransfer.render.correspondence import DEFAULT_DEPTH_TOLERANCE_M
from posetransfer.runtime import resolve_device, set_torch_threads

__all__ = ["INFER", "InferConfig"]

logger = logging.getLogger("posetransfer.infer")


@dataclass(frozen=True)
class InferConfig:
    """Settings of ``posetransfer infer``.

    Attributes:
        which: Checkpoint of the run: ``"best"`` (else the latest) or ``"latest"``.
        flow: ``"regressor"`` (the run's) or ``"3d"`` (fit the body model to both poses and
            render the pair, as the synthesis stage).
        batch_size: Pairs per forward pass (pair lists; a video's: ``video.batch_size``).
        num_workers: Data-loading processes (pair lists).
        device: ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda"``.
        backend: ``"torch"`` or ``"onnxruntime"`` (ONNX Runtime on the CPU; the ``onnx`` extra).
        precision: ``"fp32"``, or ``"bf16"`` (torch backend): bfloat16 autocast.
        min_valid_keypoints: Fewest valid keypoints a pose needs.
        fit: Body-fit settings for ``flow="3d"``.
        depth_tolerance_m: Occlusion tolerance of the ``3d`` visibility, in metres.
        photo: How a photo is framed, composited and pasted (``--target`` mode).
        video: How a driving video animates the photo (``--target VIDEO``).
    """

    which: Literal["best", "latest"] = "best"
    flow: Literal["regressor", "3d"] = "regressor"
    batch_size: int = 8
    num_workers: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    backend: Literal["torch", "onnxruntime"] = "torch"
    precision: Literal["fp32", "bf16"] = "fp32"
    min_valid_keypoints: int = 4
    fit: FitConfig = field(default_factory=FitConfig)
    depth_tolerance_m: float = DEFAULT_DEPTH_TOLERANCE_M
    photo: PhotoConfig = field(default_factory=PhotoConfig)
    video: VideoConfig = field(default_factory=VideoConfig)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.precision == "bf16" and self.backend == "onnxruntime":
            raise ConfigError(
                "precision bf16 runs on the torch backend; onnxruntime computes in float32"
            )


def _arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--checkpoint", type=Path, metavar="RUN_DIR",
        help="a `train` run, or a model.onnx with --backend onnxruntime (required)")  # fmt: skip
    add("--out", type=Path, help="output folder (pair list) or OUT.png (one image) (required)")
    add("--data", type=Path, metavar="ROOT", help="dataset holding the pairs' images and keypoints")
    add("--pairs", type=Path, metavar="CSV", help="pair list (from,to) to render")
    add("--source", type=Path, metavar="IMG", help="source photo (any size; one-image mode)")
    add("--target", metavar="T", help="target photo, pose or driving video (photo mode)")
    add("--source-pose", metavar="POSE", help="source pose: JSON, PATN row file[#NAME] or row")
    add("--target-pose", metavar="POSE", help="target pose, as --source-pose")
    looks = parser.add_mutually_exclusive_group()  # pasting keeps the photo's own background
    looks.add_argument("--paste", action="store_true", default=None, help="sets photo.paste=true")
    looks.add_argument("--background", metavar="source|white|IMAGE", help="sets photo.background")
    add("--person", type=int, metavar="N", help="sets photo.person (0: the largest)")
    add("--every", type=positive_int, metavar="K", help="sets video.every")
    add("--max-frames", type=positive_int, metavar="N", help="sets video.max_frames")
    add("--side-by-side", action="store_true", default=None, help="sets video.side_by_side=true")
    add("--detect-workers", type=positive_int, metavar="N", help="sets video.detect_workers")
    add("--flow", choices=("regressor", "3d"), help="flow source (sets flow)")
    add("--which", choices=("best", "latest"), help="checkpoint (sets which)")
    add("--batch-size", type=positive_int, metavar="N",
        help="sets batch_size (pair lists; videos: video.batch_size)")  # fmt: skip
    add("--backend", choices=BACKENDS, help="sets backend (onnxruntime: the CPU)")
    add("--precision", choices=PRECISIONS,
        help="sets precision (bf16: torch backend, ~2x faster with native bfloat16)")  # fmt: skip
    add_device_option(parser)
    add_threads_option(parser)


def _configure(args: argparse.Namespace, cfg: InferConfig) -> InferConfig:
    flags = {"flow": args.flow, "which": args.which, "batch_size": args.batch_size,
             "device": args.device, "backend": args.backend,
             "precision": args.precision}  # fmt: skip
    photo = {
        "photo.background": args.background,
        "photo.paste": args.paste,
        "photo.person": args.person,
        "video.every": args.every,
        "video.max_frames": args.max_frames,
        "video.side_by_side": args.side_by_side,
        "video.detect_workers": args.detect_workers,
    }
    return with_flags(cfg, {**flags, **photo})


def _photo_mode(args: argparse.Namespace) -> bool:
    """Any photo: ``--target``, or ``--target-pose`` without ``--source-pose`` (detected)."""
    if args.target is not None and args.target_pose is not None:
        raise ValueError("give --target T or --target-pose POSE, not both")
    legacy = args.source_pose is not None and args.target_pose is not None
    return args.source is not None and (args.target is not None or not legacy)


def _pair_mode(args: argparse.Namespace) -> bool:
    """Whether the arguments ask for a pair list (True) or one image (False); errors otherwise."""
    require(args, "checkpoint", "out")
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


def _run(args: argparse.Namespace, cfg: InferConfig) -> int:
    if _photo_mode(args):
        require(args, "checkpoint", "out")
        if args.target is None and args.target_pose is None:
            raise ValueError("photo mode needs --target T (a photo, pose or video)")
        set_torch_threads(args.threads)
        pipeline = _load(args, cfg)
        return run_photo(args, pipeline, cfg.flow, cfg.photo, cfg.video)
    pair_mode = _pair_mode(args)
    set_torch_threads(args.threads)
    if not pair_mode:  # cheap checks before loading anything
        poses = [check_pose(read_pose(spec), spec, cfg.min_valid_keypoints)
                 for spec in (args.source_pose, args.target_pose)]  # fmt: skip
    pipeline = _load(args, cfg)
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
        x, pose_src, pose_tgt = prepare_source(
            image, poses[0], poses[1], pipeline.cfg.data.protocol
        )
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


def _load(args: argparse.Namespace, cfg: InferConfig) -> PoseTransferPipeline:
    """The run (or exported model) on the configured backend; ONNX Runtime on the CPU."""
    onnx = cfg.backend == "onnxruntime"
    device = "cpu" if onnx and cfg.device == "auto" else resolve_device(cfg.device)
    try:
        return PoseTransferPipeline.from_run(
            args.checkpoint,
            cfg.which,
            device,
            backend=cfg.backend,
            threads=args.threads,
            precision=cfg.precision,
        )
    except OnnxExtraMissingError as exc:
        raise ValueError(str(exc)) from None


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
    add_arguments=_arguments,
    run=_run,
    configure=_configure,
    description="Pair list: --checkpoint RUN_DIR --data ROOT --pairs CSV --out DIR writes "
    "DIR/<source>_2_<target>.png (GFLA names, extensions stripped) at the dataset's "
    "resolution, skipping existing files. One image: --checkpoint RUN_DIR --source IMG "
    "--source-pose POSE --target-pose POSE --out OUT.png; a POSE is a JSON file of 18 [x, y] "
    "pixel indices (-1 missing), a PATN annotation file (FILE#NAME picks a row) or a PATN "
    "row 'name: [y...]: [x...]'. --flow 3d fits the body model to both poses and renders "
    "the flow instead of using the run's flow regressor. Any photo: --checkpoint RUN_DIR "
    "--source PHOTO --target T --out O, T a photo (its pose is detected), a pose or a video: "
    "the source person is detected (or --source-pose), framed, re-posed and composited over "
    "the photo's background (--background source|white|IMAGE; --paste puts it back into the "
    "whole photo); a video target writes O.mp4 (every --every K-th frame, smoothed, "
    "retargeted to the source person; --side-by-side), else O.png. --backend onnxruntime "
    "runs the networks with ONNX Runtime on the CPU (--checkpoint FILE.onnx from `posetransfer "
    "export`, or a run folder exported on the fly).",
)
