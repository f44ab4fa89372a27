"""Pose transfer with a trained run: :class:`PoseTransferPipeline` and the ``3d`` flow.

``PoseTransferPipeline.from_run(RUN)`` rebuilds the networks of a ``posetransfer train`` run from
``RUN/config.yaml`` and ``RUN/flow_model.yaml`` and loads their weights from a checkpoint (the
safetensors files; nothing pickled is executed). Calling it renders the source person in the
target pose, with the flow from the run's regressor or, for ``--flow 3d``, from the synthesis
stage (:func:`body_flow`: fit the body model to both poses, render the pair). The refiner is
applied once it has trained (``GeneratorStageConfig.refiner_trained_after``), so a checkpoint of
the coarse stage gives the generator's image.

Backends: ``torch`` (the networks above) or ``onnxruntime`` (``from_run(..., backend=
"onnxruntime")``: an exported ``model.onnx``, or the run exported on the fly; the work goes to a
:class:`posetransfer.infer.onnx_backend.OnnxEngine`, inputs and outputs stay torch tensors).

Precision: ``fp32`` (default), or ``bf16`` (torch backend): the networks run under
``torch.autocast`` in bfloat16, about twice as fast on CPUs with native bfloat16 (AVX512-BF16 or
AMX) at a small cost in accuracy (``BENCHMARKS.md``); warping and outputs stay float32.

Pose files, pair lists and output files are in :mod:`posetransfer.infer.inputs`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch

from posetransfer.config import load_config
from posetransfer.infer.body_flow import MIN_VALID_KEYPOINTS, PoseInputError, body_flow, check_pose
from posetransfer.infer.precision import (
    PRECISIONS,
    Precision,
    check_precision,
    float32_output,
    native_bf16,
)
from posetransfer.models.flow_regressor import FlowRegressor
from posetransfer.models.generator import GeneratorOutput, PoseTransferGenerator
from posetransfer.models.generator_inputs import condition_from_prediction
from posetransfer.models.pixel_warp import PixelWarpRefiner, build_refiner, transfer
from posetransfer.ops.memory_format import place
from posetransfer.pose.keypoints import Pose, stack_poses
from posetransfer.pose.maps import PoseMapConfig, pose_maps
from posetransfer.train.checkpoint import CheckpointError, find_checkpoint, load_weights, read_meta
from posetransfer.train.checkpoint_shapes import check_shapes
from posetransfer.train.components import FLOW_REGRESSOR, GENERATOR, PIXEL_WARP
from posetransfer.train.generator_config import (
    FLOW_MODEL_FILE,
    FlowModelRecord,
    GeneratorStageConfig,
)

if TYPE_CHECKING:
    from posetransfer.infer.onnx_backend import OnnxEngine

__all__ = [
    "BACKENDS",
    "MIN_VALID_KEYPOINTS",
    "PRECISIONS",
    "PoseInputError",
    "PoseTransferPipeline",
    "body_flow",
    "check_pose",
    "native_bf16",
]

logger = logging.getLogger(__name__)

#: Where the networks run: torch, or ONNX Runtime on an exported model (the ``onnx`` extra).
Backend = Literal["torch", "onnxruntime"]
BACKENDS: tuple[Backend, ...] = ("torch", "onnxruntime")


def _resolve_run(path: str | os.PathLike[str], which: str) -> tuple[Path, Path]:
    """``(run folder, checkpoint folder)`` for a run folder or one of its checkpoint folders."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: run folder not found")
    if (path / "meta.json").is_file() and path.parent.name == "checkpoints":
        return path.parent.parent, path
    if path.name == "checkpoints":
        path = path.parent
    try:
        return path, find_checkpoint(path, which)  # type: ignore[arg-type]
    except CheckpointError:
        if which != "best":
            raise
        logger.warning("%s: no best checkpoint (no validation?); using the latest", path)
        return path, find_checkpoint(path, "latest")


@dataclass(frozen=True)
class _Networks:
    generator: PoseTransferGenerator | None  # None: an exported model only (``engine``)
    refiner: PixelWarpRefiner | None
    flow_net: FlowRegressor | None
    flow_pose_map: PoseMapConfig | None


class PoseTransferPipeline:
    """The trained networks of a run, in eval mode, with their input conventions.

    Args:
        cfg: The run's config.
        generator: The generator.
        refiner: The pixel-warp refiner, or None to output the coarse image.
        flow_net: The flow regressor (None when the model uses no flow).
        flow_pose_map: Pose maps the flow regressor expects.
        device: Where the networks live.
        channels_last: Run the networks and their inputs in the ``channels_last`` memory format
            (the same results; whole inference measured 13% faster on one CPU thread at 256x256,
            ``BENCHMARKS.md``).
        engine: ONNX Runtime sessions that run the model instead of the torch networks (which
            may then be None).
        precision: ``"fp32"``, or ``"bf16"``: the torch networks under bfloat16 autocast (not
            with ``engine``; a warning where the device has no native bfloat16).

    Raises:
        ValueError: No generator and no engine, an unknown precision, or ``bf16`` with an
            engine.
    """

    def __init__(
        self,
        cfg: GeneratorStageConfig,
        generator: PoseTransferGenerator | None,
        refiner: PixelWarpRefiner | None,
        flow_net: FlowRegressor | None,
        flow_pose_map: PoseMapConfig | None,
        device: torch.device | str = "cpu",
        channels_last: bool = True,
        engine: OnnxEngine | None = None,
        precision: Precision = "fp32",
    ) -> None:
        if generator is None and engine is None:
            raise ValueError("a pipeline needs a generator or an ONNX engine")
        self.cfg, self.device, self.engine = cfg, torch.device(device), engine
        self.precision = check_precision(precision, self.device, engine is not None)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.nets = _Networks(generator, refiner, flow_net, flow_pose_map)
        for net in (generator, refiner, flow_net):
            if net is not None:
                place(net, self.device, self.memory_format).eval()
                net.requires_grad_(False)

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` the networks take."""
        return tuple(self.cfg.generator.image_size)  # type: ignore[return-value]

    @classmethod
    def from_run(
        cls,
        run_dir: str | os.PathLike[str],
        which: Literal["best", "latest"] = "best",
        device: torch.device | str = "cpu",
        channels_last: bool = True,
        backend: Backend = "torch",
        threads: int | None = None,
        precision: Precision = "fp32",
    ) -> PoseTransferPipeline:
        """Load a ``posetransfer train`` run.

        Args:
            run_dir: The run folder, or one of its ``checkpoints/*`` folders; with the
                ``onnxruntime`` backend also a ``model.onnx`` of ``posetransfer export``.
            which: ``"best"`` (falls back to ``"latest"`` when the run has no best) or
                ``"latest"``; ignored for a checkpoint folder.
            device: Device of the networks (the CPU for ``onnxruntime``).
            channels_last: Memory format of the networks (see the class).
            backend: ``"torch"``, or ``"onnxruntime"`` (a run folder is exported first).
            threads: ONNX Runtime's intra-op threads (default: torch's count).
            precision: ``"fp32"`` or ``"bf16"`` (torch backend only; see the class).

        Raises:
            FileNotFoundError: The folder or its ``config.yaml`` is missing.
            ConfigError: ``config.yaml`` is not a generator run's config.
            CheckpointError: No checkpoint, or weights of another model config (names the
                module and the mismatched keys).
            ValueError: An ``.onnx`` file without the ``onnxruntime`` backend, that backend
                on another device than the CPU or with ``bf16``.
        """
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if backend == "onnxruntime":  # the engine comes after __init__, which checks the rest
            check_precision(precision, torch.device(device), onnx=True)
        if backend == "onnxruntime" and torch.device(device).type != "cpu":
            raise ValueError(f"the onnxruntime backend runs on the CPU, not {device}")
        if Path(run_dir).suffix == ".onnx":
            if backend != "onnxruntime":
                raise ValueError(f"{run_dir} is an exported model: use the onnxruntime backend")
            from posetransfer.infer.onnx_backend import OnnxEngine

            engine = OnnxEngine(run_dir, threads)
            return cls(engine.cfg, None, None, None, None, "cpu", engine=engine)
        run, ckpt = _resolve_run(run_dir, which)
        config_path = run / "config.yaml"
        if not config_path.is_file():
            raise FileNotFoundError(f"{config_path}: missing (not a `posetransfer train` run?)")
        cfg = load_config(GeneratorStageConfig, config_path)
        check_shapes(ckpt, {GENERATOR: lambda: PoseTransferGenerator(cfg.generator)})  # sizes first
        generator = PoseTransferGenerator(cfg.generator)
        modules: dict[str, torch.nn.Module] = {GENERATOR: generator}
        flow_net, flow_pose_map = None, None
        if cfg.needs_flow:
            record = load_config(FlowModelRecord, run / FLOW_MODEL_FILE)
            check_shapes(ckpt, {FLOW_REGRESSOR: lambda: FlowRegressor(record.model)})
            flow_net, flow_pose_map = FlowRegressor(record.model), record.pose_map
            modules[FLOW_REGRESSOR] = flow_net
        steps = read_meta(ckpt)["step"]
        if cfg.refiner_trained_after(steps):
            check_shapes(ckpt, {PIXEL_WARP: lambda: build_refiner(cfg.pixel_warp)})
        refiner = build_refiner(cfg.pixel_warp) if cfg.refiner_trained_after(steps) else None
        if refiner is not None:
            modules[PIXEL_WARP] = refiner
        elif cfg.pixel_warp.enabled:
            logger.info("%s: step %d is in the coarse stage; no pixel warping", ckpt, steps)
        load_weights(ckpt, modules)
        logger.info("loaded %s (%s)", ckpt, ", ".join(modules))
        pipeline = cls(
            cfg, generator, refiner, flow_net, flow_pose_map, device, channels_last,
            precision=precision,
        )  # fmt: skip
        if backend == "onnxruntime":
            from posetransfer.infer.onnx_backend import OnnxEngine

            pipeline.engine = OnnxEngine.from_networks(cfg, pipeline.nets, threads, str(ckpt))
        return pipeline

    @torch.no_grad()
    def run(
        self,
        x_src: torch.Tensor,
        src_xy: torch.Tensor,
        src_valid: torch.Tensor,
        tgt_xy: torch.Tensor,
        tgt_valid: torch.Tensor,
        flow: tuple[torch.Tensor, torch.Tensor] | None = None,
        background: torch.Tensor | None = None,
    ) -> GeneratorOutput:
        """Render a batch.

        Args:
            x_src: ``(B, 3, H, W)`` source images in ``[-1, 1]``, ``(H, W) == image_size``.
            src_xy: ``(B, 18, 2)`` source keypoints ``(x, y)`` in pixels; ``src_valid`` ``(B, 18)``.
            tgt_xy: ``(B, 18, 2)`` target keypoints; ``tgt_valid`` ``(B, 18)``.
            flow: ``(flow (B, 2, H, W), visibility codes (B, H, W))`` to use instead of the
                regressor's (e.g. :func:`body_flow`).
            background: Optional ``(B, 3, H, W)`` sources with the person removed, for the
                generator's background skips (see ``PoseTransferGenerator.forward``).

        Returns:
            The output on ``self.device``.

        Raises:
            ValueError: On an image of another size (naming the expected one).
        """
        size = self.image_size
        if x_src.ndim != 4 or tuple(x_src.shape[-2:]) != size:
            raise ValueError(
                f"source images have shape {tuple(x_src.shape)}, but the model takes (B, 3, "
                f"{size[0]}, {size[1]}) (generator.image_size of the run's config); bring photos "
                "of other sizes into that frame with posetransfer.infer.framing.Frame"
            )
        if self.engine is not None:
            return self.engine.run(x_src, src_xy, src_valid, tgt_xy, tgt_valid, flow, background)
        dev, fmt = self.device, self.memory_format
        x_src = x_src.to(dev, memory_format=fmt)
        src_xy, src_valid = src_xy.to(dev), src_valid.to(dev)
        tgt_xy, tgt_valid = tgt_xy.to(dev), tgt_valid.to(dev)
        nets = self.nets
        maps_tgt = pose_maps(tgt_xy, tgt_valid, size, self.cfg.data.pose_map)
        maps_tgt = maps_tgt.contiguous(memory_format=fmt)
        flow_px: torch.Tensor | None = None
        vis: torch.Tensor | None = None
        if flow is not None:
            flow_px, vis = flow[0].to(dev).float(), flow[1].to(dev).long()
        elif nets.flow_net is not None:
            flow_px, vis = self.predict_flow(src_xy, src_valid, tgt_xy, tgt_valid)
        if background is not None:
            background = background.to(dev, memory_format=fmt)
        assert nets.generator is not None  # only an engine's pipeline has none
        with self._autocast():
            out = transfer(nets.generator, nets.refiner, x_src, maps_tgt, flow_px, vis, background)
        return float32_output(out)

    @torch.no_grad()
    def predict_flow(
        self,
        src_xy: torch.Tensor,
        src_valid: torch.Tensor,
        tgt_xy: torch.Tensor,
        tgt_valid: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The flow regressor's flow and visibility for a batch of pose pairs.

        Args:
            src_xy: ``(B, 18, 2)`` source keypoints in pixels; ``src_valid`` ``(B, 18)``.
            tgt_xy: ``(B, 18, 2)`` target keypoints; ``tgt_valid`` ``(B, 18)``.

        Returns:
            ``(flow (B, 2, H, W) in pixels, visibility (B, H, W) integer codes)``.

        Raises:
            ValueError: If the run's model uses no flow regressor.
        """
        if self.engine is not None:
            return self.engine.predict_flow(src_xy, src_valid, tgt_xy, tgt_valid)
        nets, size, fmt, dev = self.nets, self.image_size, self.memory_format, self.device
        if nets.flow_net is None or nets.flow_pose_map is None:
            raise ValueError("this run's model has no flow regressor (generator.use_flow=false)")
        src, tgt = (
            pose_maps(xy.to(dev), valid.to(dev), size, nets.flow_pose_map).contiguous(
                memory_format=fmt
            )
            for xy, valid in ((src_xy, src_valid), (tgt_xy, tgt_valid))
        )
        with self._autocast():
            flow, vis = condition_from_prediction(nets.flow_net(src, tgt))
        return flow.float(), vis

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        """bfloat16 autocast for ``precision="bf16"``, else nothing."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def __call__(
        self,
        x_src: torch.Tensor,
        pose_src: Pose | Sequence[Pose],
        pose_tgt: Pose | Sequence[Pose],
        flow: tuple[torch.Tensor, torch.Tensor] | None = None,
        background: torch.Tensor | None = None,
    ) -> GeneratorOutput:
        """Render ``B`` source images in target poses (see :meth:`run`).

        Args:
            x_src: ``(B, 3, H, W)`` or ``(3, H, W)`` source images in ``[-1, 1]``.
            pose_src: ``B`` source poses (or one).
            pose_tgt: ``B`` target poses (or one).
            flow: Optional ``(flow, visibility)`` replacing the regressor's.
            background: Optional ``(B, 3, H, W)`` person-free sources (see :meth:`run`).

        Raises:
            PoseInputError: A pose with fewer than :data:`MIN_VALID_KEYPOINTS` valid points.
        """
        x_src = x_src[None] if x_src.ndim == 3 else x_src
        lists = [[p] if isinstance(p, Pose) else list(p) for p in (pose_src, pose_tgt)]
        for role, poses in zip(("source", "target"), lists, strict=True):
            if len(poses) != x_src.shape[0]:
                raise PoseInputError(f"got {len(poses)} {role} poses for {x_src.shape[0]} images")
            for i, pose in enumerate(poses):
                check_pose(pose, f"{role} pose {i}")
        (src_xy, src_valid), (tgt_xy, tgt_valid) = (stack_poses(p) for p in lists)
        return self.run(x_src, src_xy, src_valid, tgt_xy, tgt_valid, flow, background)
