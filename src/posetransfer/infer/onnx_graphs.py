"""The torch side of the exported ONNX graphs: what each graph computes, by name.

:func:`graph_modules` wraps a run's networks into one ``nn.Module`` per graph of
:mod:`posetransfer.infer.onnx_export` (``full``, ``flow``, ``render``), with the graph's input
and output names in order: the modules are what is traced, and the torch reference every parity
check compares ONNX Runtime with. The pose maps are drawn inside (from keypoints), the flow
regressor's output becomes the generator's condition as in
:meth:`posetransfer.infer.pipeline.PoseTransferPipeline.run` (flow zero on predicted background,
visibility codes), and the generator then the refiner run through
:func:`posetransfer.models.pixel_warp.transfer`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from posetransfer.conventions import NUM_KEYPOINTS, NUM_VISIBILITY_CLASSES
from posetransfer.models.flow_regressor import FlowRegressor
from posetransfer.models.generator import GeneratorOutput, PoseTransferGenerator
from posetransfer.models.generator_inputs import condition_from_prediction
from posetransfer.models.pixel_warp import PixelWarpRefiner, transfer
from posetransfer.pose.maps import PoseMapConfig, pose_maps
from posetransfer.train.generator_config import GeneratorStageConfig

__all__ = [
    "FLOW_OUTPUTS",
    "GRAPH_KINDS",
    "GraphSpec",
    "Networks",
    "example_inputs",
    "graph_modules",
    "takes_background",
]

#: The graphs of an export, in order (``flow`` and ``render`` only when the model has them).
GRAPH_KINDS = ("full", "flow", "render")

_IMAGE_OUTPUTS = ("image", "coarse")
_REFINER_OUTPUTS = ("warped_src", "mask")
#: The flow regressor's outputs, as the generator takes them.
FLOW_OUTPUTS = ("flow", "visibility")


class Networks(Protocol):
    """The trained networks of a run (``PoseTransferPipeline.nets``)."""

    @property
    def generator(self) -> PoseTransferGenerator | None: ...
    @property
    def refiner(self) -> PixelWarpRefiner | None: ...
    @property
    def flow_net(self) -> FlowRegressor | None: ...
    @property
    def flow_pose_map(self) -> PoseMapConfig | None: ...


def takes_background(cfg: GeneratorStageConfig) -> bool:
    """Whether the generator takes a person-free background (``PoseTransferGenerator``)."""
    gen = cfg.generator
    return bool(gen.dual_encoder and gen.use_flow and gen.visibility != "none")


def _images(out: GeneratorOutput, refined: bool) -> tuple[torch.Tensor, ...]:
    """``(image, coarse[, warped_src, mask])`` of a generator output."""
    if not refined:
        return out.image, out.coarse
    assert out.warped_src is not None and out.mask is not None
    return out.image, out.coarse, out.warped_src, out.mask


class _FlowGraph(nn.Module):
    """Keypoints -> pose maps -> flow regressor -> ``(flow, visibility codes)``."""

    def __init__(self, flow_net: FlowRegressor, pose_map: PoseMapConfig, size: tuple[int, int]):
        super().__init__()
        self.flow_net, self.pose_map, self.size = flow_net, pose_map, size

    def forward(
        self,
        src_xy: torch.Tensor,
        src_valid: torch.Tensor,
        tgt_xy: torch.Tensor,
        tgt_valid: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        maps_src = pose_maps(src_xy, src_valid, self.size, self.pose_map)
        maps_tgt = pose_maps(tgt_xy, tgt_valid, self.size, self.pose_map)
        return condition_from_prediction(self.flow_net(maps_src, maps_tgt))


class _RenderGraph(nn.Module):
    """Generator then refiner, fed a flow (and a background when the generator takes one)."""

    def __init__(self, cfg: GeneratorStageConfig, nets: Networks) -> None:
        super().__init__()
        assert nets.generator is not None
        self.generator, self.refiner = nets.generator, nets.refiner
        height, width = cfg.generator.image_size
        self.pose_map, self.size = cfg.data.pose_map, (int(height), int(width))

    def forward(
        self,
        x_src: torch.Tensor,
        tgt_xy: torch.Tensor,
        tgt_valid: torch.Tensor,
        flow: torch.Tensor,
        visibility: torch.Tensor,
        background: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        maps = pose_maps(tgt_xy, tgt_valid, self.size, self.pose_map)
        out = transfer(self.generator, self.refiner, x_src, maps, flow, visibility, background)
        return _images(out, self.refiner is not None)


class _ModelGraph(nn.Module):
    """Keypoints and source image -> flow regressor -> generator -> refiner (the ``full`` graph;
    with ``background``, the graph that is traced)."""

    def __init__(self, cfg: GeneratorStageConfig, nets: Networks) -> None:
        super().__init__()
        self.render = _RenderGraph(cfg, nets)
        self.flow: _FlowGraph | None = None
        if nets.flow_net is not None:
            assert nets.flow_pose_map is not None
            self.flow = _FlowGraph(nets.flow_net, nets.flow_pose_map, self.render.size)

    def forward(
        self,
        x_src: torch.Tensor,
        src_xy: torch.Tensor,
        src_valid: torch.Tensor,
        tgt_xy: torch.Tensor,
        tgt_valid: torch.Tensor,
        background: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        if self.flow is None:
            gen = self.render
            maps = pose_maps(tgt_xy, tgt_valid, gen.size, gen.pose_map)
            return _images(transfer(gen.generator, gen.refiner, x_src, maps, None, None), False)
        flow, vis = self.flow(src_xy, src_valid, tgt_xy, tgt_valid)
        return (*self.render(x_src, tgt_xy, tgt_valid, flow, vis, background), flow, vis)


@dataclass(frozen=True)
class GraphSpec:
    """One ONNX graph and the torch module that computes the same: names of its inputs and
    outputs in order (the module takes the inputs positionally)."""

    kind: str
    module: nn.Module
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def graph_modules(cfg: GeneratorStageConfig, nets: Networks) -> dict[str, GraphSpec]:
    """The graphs of a model, as torch modules with their ONNX input and output names.

    Args:
        cfg: The run's config.
        nets: Its networks (in eval mode).

    Returns:
        By kind: ``full``, ``flow`` (with a flow regressor) and ``render`` (when the generator
        or the refiner uses a flow); see the module docstring.

    Raises:
        ValueError: If there is no generator (a pipeline that already runs an ONNX model).
    """
    if nets.generator is None:
        raise ValueError("no torch networks to export (this pipeline runs an ONNX model)")
    refined = nets.refiner is not None
    images = _IMAGE_OUTPUTS + (_REFINER_OUTPUTS if refined else ())
    keypoints = ("src_xy", "src_valid", "tgt_xy", "tgt_valid")
    model = _ModelGraph(cfg, nets)
    flow_out = FLOW_OUTPUTS if model.flow is not None else ()
    specs = {"full": GraphSpec("full", model, ("x_src", *keypoints), images + flow_out)}
    if model.flow is not None:
        specs["flow"] = GraphSpec("flow", model.flow, keypoints, FLOW_OUTPUTS)
        if cfg.generator.use_flow or refined:
            background = ("background",) if takes_background(cfg) else ()
            inputs = ("x_src", "tgt_xy", "tgt_valid", *FLOW_OUTPUTS, *background)
            specs["render"] = GraphSpec("render", model.render, inputs, images)
    return specs


def example_inputs(
    cfg: GeneratorStageConfig, batch: int = 2, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Random inputs of every graph by name (export examples and parity checks).

    Returns:
        ``x_src`` and ``background`` ``(B, 3, H, W)`` in ``[-1, 1]``; keypoints ``(B, 18, 2)``
        inside the image with about one in six invalid; ``flow`` ``(B, 2, H, W)`` of up to
        ``H / 16`` pixels; ``visibility`` ``(B, H, W)`` int64 codes.
    """
    height, width = cfg.generator.image_size
    gen = torch.Generator().manual_seed(seed)

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=gen)

    scale = torch.tensor([width, height], dtype=torch.float32)
    return {
        "x_src": uniform(batch, 3, height, width) * 2 - 1,
        "src_xy": uniform(batch, NUM_KEYPOINTS, 2) * scale,
        "src_valid": uniform(batch, NUM_KEYPOINTS) > 1 / 6,
        "tgt_xy": uniform(batch, NUM_KEYPOINTS, 2) * scale,
        "tgt_valid": uniform(batch, NUM_KEYPOINTS) > 1 / 6,
        "flow": (uniform(batch, 2, height, width) * 2 - 1) * (height / 16),
        "visibility": torch.randint(
            0, NUM_VISIBILITY_CLASSES, (batch, height, width), generator=gen
        ),
        "background": uniform(batch, 3, height, width) * 2 - 1,
    }
