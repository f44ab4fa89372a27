"""The ``posetransfer export`` command: a trained run as ONNX graphs for ONNX Runtime.

``export --checkpoint RUN_DIR --out model.onnx`` writes ``model.onnx`` (flow regressor,
generator and refiner as one graph) and, beside it, ``model.flow.onnx`` and
``model.render.onnx`` (the regressor alone, and the generator and refiner fed a flow: the
``--flow 3d`` and photo paths); see :mod:`posetransfer.infer.onnx_export`. Then it runs every
graph with ONNX Runtime on random inputs next to the torch networks and fails (exit code 1) if
any output differs by more than ``tolerance``. Prints one JSON line: the files, the opset, the
image size (the batch is dynamic), the export time and the differences.
``infer --checkpoint model.onnx --backend onnxruntime`` runs the result.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from posetransfer.cli.command import Command
from posetransfer.cli.options import add_threads_option, require, with_flags
from posetransfer.config import ConfigError
from posetransfer.console import echo
from posetransfer.infer.onnx_export import OPSET, OnnxExtraMissingError, export_onnx
from posetransfer.infer.pipeline import PoseTransferPipeline
from posetransfer.runtime import set_torch_threads

__all__ = ["EXPORT", "ExportConfig"]

logger = logging.getLogger("posetransfer.export")


@dataclass(frozen=True)
class ExportConfig:
    """Settings of ``posetransfer export``.

    Attributes:
        which: Checkpoint of the run: ``"best"`` (else the latest) or ``"latest"``.
        opset: ONNX opset (at least 16, for ``GridSample``).
        verify: Compare every graph with the torch networks after the export.
        tolerance: Largest absolute difference ``verify`` accepts (images in ``[-1, 1]``).
    """

    which: Literal["best", "latest"] = "best"
    opset: int = OPSET
    verify: bool = True
    tolerance: float = 1e-3

    def __post_init__(self) -> None:
        if self.opset < 16:
            raise ConfigError(f"opset must be >= 16 (GridSample), got {self.opset}")
        if not self.tolerance > 0:
            raise ConfigError(f"tolerance must be > 0, got {self.tolerance}")


def _arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--checkpoint", type=Path, metavar="RUN_DIR", help="a `train` run (required)")
    add("--out", type=Path, metavar="FILE.onnx", help="the main graph's file (required)")
    add("--which", choices=("best", "latest"), help="checkpoint (sets which)")
    add("--no-verify", action="store_true", default=None, help="sets verify=false")
    add_threads_option(parser)


def _configure(args: argparse.Namespace, cfg: ExportConfig) -> ExportConfig:
    verify = False if args.no_verify else None
    return with_flags(cfg, {"which": args.which, "verify": verify})


def _run(args: argparse.Namespace, cfg: ExportConfig) -> int:
    require(args, "checkpoint", "out")
    set_torch_threads(args.threads)
    pipeline = PoseTransferPipeline.from_run(args.checkpoint, cfg.which, "cpu")
    source = f"{args.checkpoint} ({cfg.which})"
    diffs: dict[str, float] = {}
    try:
        exported = export_onnx(
            pipeline.cfg, pipeline.nets, args.out, source=source, opset=cfg.opset
        )
        if cfg.verify:
            from posetransfer.infer.onnx_backend import OnnxEngine, compare_with_torch

            engine = OnnxEngine(exported.paths["full"], args.threads)
            diffs = compare_with_torch(engine, pipeline.cfg, pipeline.nets)
    except OnnxExtraMissingError as exc:
        logger.error("%s", exc)
        return 2
    files = {kind: str(path) for kind, path in exported.paths.items()}
    summary = {
        "files": files,
        "opset": exported.opset,
        "image_size": list(exported.size),
        "batch": "dynamic",
        "seconds": round(exported.seconds, 1),
        "max_abs_diff": diffs if cfg.verify else None,
    }
    echo(json.dumps(summary))
    worst = max(diffs.values(), default=0.0)
    if worst > cfg.tolerance:
        logger.error(
            "ONNX Runtime differs from torch by %.3g (> tolerance %g): do not use %s",
            worst,
            cfg.tolerance,
            args.out,
        )
        return 1
    logger.info("wrote %s", ", ".join(files.values()))
    return 0


EXPORT = Command(
    name="export",
    help="export a trained run to ONNX (infer --backend onnxruntime runs it)",
    config=ExportConfig,
    add_arguments=_arguments,
    run=_run,
    configure=_configure,
    description="Export the networks of a `train` run (--checkpoint RUN_DIR, its best or "
    "--which latest checkpoint) to --out FILE.onnx: the flow regressor, generator and refiner "
    "as one graph (inputs: source image, source and target keypoints), plus FILE.flow.onnx "
    "(the regressor alone) and FILE.render.onnx (generator and refiner fed a flow, for --flow "
    "3d and photos) beside it. Batch dynamic, image size the run's. Needs the onnx extra "
    "(pip install 'posetransfer[onnx]'). Verifies every graph against torch on random inputs "
    "unless --no-verify. Run it with infer --checkpoint FILE.onnx --backend onnxruntime.",
)
