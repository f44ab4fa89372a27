"""Export a trained run's networks to ONNX: the whole model as one graph, and its two halves.

:func:`export_onnx` writes, for ``OUT = model.onnx`` (``posetransfer export``):

``model.onnx``, graph ``full``
    Flow regressor, generator and pixel-warp refiner as one graph; the pose maps are drawn
    inside it from the keypoints. Inputs: ``x_src`` ``(B, 3, H, W)`` float32 in ``[-1, 1]``;
    ``src_xy`` and ``tgt_xy`` ``(B, 18, 2)`` float32 keypoints ``(x, y)`` in pixels;
    ``src_valid`` and ``tgt_valid`` ``(B, 18)`` bool. Outputs: ``image`` and ``coarse``
    ``(B, 3, H, W)``; with a trained refiner ``warped_src`` ``(B, 3, H, W)`` and ``mask``
    ``(B, 1, H, W)``; with a flow regressor ``flow`` ``(B, 2, H, W)`` (pixels) and
    ``visibility`` ``(B, H, W)`` int64 codes.
``model.flow.onnx``, graph ``flow`` (models with a flow regressor)
    The regressor alone: the four keypoint inputs -> ``flow``, ``visibility``.
``model.render.onnx``, graph ``render`` (models whose generator or refiner uses a flow)
    Generator and refiner fed a flow: ``x_src``, ``tgt_xy``, ``tgt_valid``, ``flow``
    ``(B, 2, H, W)`` float32 pixels and ``visibility`` ``(B, H, W)`` int64 codes, plus
    ``background`` ``(B, 3, H, W)`` (the person-free source) when the generator takes one ->
    the image outputs of ``full``. ``--flow 3d`` feeds the fitted body's flow here, and the
    photo and video paths (``RePoser``) run ``flow`` then ``render``, because they composite
    with the visibility. A second graph rather than a switch inside one: a switch needs control
    flow in the graph and would load the regressor's weights for every flow-fed run.

How: one ``torch.onnx.export(..., dynamo=True)`` (``torch.export``, then onnxscript's
translation) of the whole model with a ``background`` input; ``flow`` and ``render`` are cut out
of it at the ``flow``/``visibility`` tensors (``onnx.utils.Extractor``), and ``full`` is it with
``background`` wired to ``x_src`` and the then identical appearance-encoder branches merged
(common-subexpression elimination): the generator's background blend ``s + p * (b - s)`` is then
``s`` exactly, as without a background. One trace instead of three (a trace of the tiny test
model takes 10-20 s on this 2-core machine). The TorchScript exporter (``dynamo=False``) was
tried and rejected: it baked the example's batch size into reshapes (wrong outputs at any other
batch).

Shapes: the batch is dynamic in every graph. ``H`` and ``W`` are fixed at the run's
``generator.image_size``: the generator checks its input size against its config (the size it
was trained at), so ``torch.export`` specialises them; the regressor and the refiner alone would
take any size (they pad to their stride), but the pipeline feeds only that size anyway.

Opset :data:`OPSET` (18; ONNX Runtime >= 1.14 runs it). Each file carries ``metadata_props``:
``posetransfer.graph`` (its kind), ``posetransfer.config`` (the run's config as YAML),
``posetransfer.flow_pose_map`` (JSON), ``posetransfer.source`` (the checkpoint),
``posetransfer.opset`` and, in ``full``, ``posetransfer.graphs`` (the file names of the three
graphs), so an exported model runs without the run folder
(:class:`posetransfer.infer.onnx_backend.OnnxEngine`).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from posetransfer.config import to_dict
from posetransfer.infer.onnx_graphs import GraphSpec, Networks, example_inputs, graph_modules
from posetransfer.io import atomic_write_bytes
from posetransfer.train.generator_config import GeneratorStageConfig

__all__ = [
    "INSTALL_HINT",
    "OPSET",
    "ExportedModel",
    "OnnxExtraMissingError",
    "export_onnx",
    "require_module",
    "sibling_path",
]

logger = logging.getLogger(__name__)

#: ONNX opset of the exported graphs.
OPSET = 18

#: What to run when the ``onnx`` extra is missing.
INSTALL_HINT = "pip install 'posetransfer[onnx]'"


class OnnxExtraMissingError(ImportError):
    """A package of the ``onnx`` extra is missing; the message says what to install."""


def require_module(name: str) -> Any:
    """Import a package of the ``onnx`` extra (``onnx``, ``onnxscript``, ``onnxruntime``).

    Raises:
        OnnxExtraMissingError: Naming the package and the install command.
    """
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise OnnxExtraMissingError(
            f"{name} is not installed; ONNX export and the onnxruntime backend need the onnx "
            f"extra: {INSTALL_HINT}"
        ) from exc


@dataclass(frozen=True)
class ExportedModel:
    """What :func:`export_onnx` wrote.

    Attributes:
        paths: File by graph kind (``full`` always; ``flow``, ``render`` when the model has them).
        opset: The ONNX opset.
        size: ``(H, W)`` of the graphs' images (fixed; the batch is dynamic).
        seconds: Wall time of the export.
    """

    paths: dict[str, Path]
    opset: int
    size: tuple[int, int]
    seconds: float


def sibling_path(out: Path, kind: str) -> Path:
    """The file of graph ``kind`` beside ``out`` (``model.onnx`` -> ``model.flow.onnx``)."""
    return out if kind == "full" else out.with_name(f"{out.stem}.{kind}{out.suffix}")


def export_onnx(
    cfg: GeneratorStageConfig,
    nets: Networks,
    out: str | Path,
    *,
    source: str = "",
    opset: int = OPSET,
) -> ExportedModel:
    """Export the networks of a run to ONNX files (see the module docstring).

    Args:
        cfg: The run's config.
        nets: The run's networks, in eval mode on the CPU (float32).
        out: Path of the ``full`` graph; must end in ``.onnx``. The others go beside it.
        source: Where the weights came from (recorded in the metadata).
        opset: ONNX opset.

    Returns:
        The written files.

    Raises:
        ValueError: ``out`` does not end in ``.onnx``, or there is nothing to export.
        OnnxExtraMissingError: The ``onnx`` extra is missing (names the install command).
    """
    out = Path(out)
    if out.suffix != ".onnx":
        raise ValueError(f"{out}: the exported model's file name must end in .onnx")
    onnx = require_module("onnx")
    require_module("onnxscript")
    start = time.perf_counter()
    specs = graph_modules(cfg, nets)
    full = specs["full"]
    traced = full.inputs + (("background",) if "background" in _render_inputs(specs) else ())
    examples = example_inputs(cfg)
    model = _trace(full.module, [examples[name] for name in traced], traced, full.outputs, opset)
    paths = {kind: sibling_path(out, kind) for kind in specs}
    common = {
        "posetransfer.config": yaml.safe_dump(to_dict(cfg), sort_keys=False),
        "posetransfer.flow_pose_map": json.dumps(
            None if nets.flow_pose_map is None else to_dict(nets.flow_pose_map)
        ),
        "posetransfer.source": source,
        "posetransfer.opset": str(opset),
    }
    graphs = json.dumps({kind: path.name for kind, path in paths.items()})
    for kind, spec in specs.items():
        if kind == "full":
            proto = _without_background(model)
        else:
            proto = onnx.utils.Extractor(model).extract_model(list(spec.inputs), list(spec.outputs))
        meta = {**common, "posetransfer.graph": kind}
        if kind == "full":
            meta["posetransfer.graphs"] = graphs
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(proto)
        names = tuple(v.name for v in proto.graph.input)
        if names != spec.inputs:  # a cut that needs more than the graph's inputs
            raise RuntimeError(f"graph {kind}: inputs {names}, expected {spec.inputs}")
        atomic_write_bytes(paths[kind], proto.SerializeToString())
        logger.info("wrote %s (graph %s)", paths[kind], kind)
    height, width = cfg.generator.image_size
    return ExportedModel(paths, opset, (int(height), int(width)), time.perf_counter() - start)


def _render_inputs(specs: dict[str, GraphSpec]) -> tuple[str, ...]:
    return specs["render"].inputs if "render" in specs else ()


def _trace(
    module: nn.Module,
    args: Sequence[torch.Tensor],
    inputs: tuple[str, ...],
    outputs: tuple[str, ...],
    opset: int,
) -> Any:
    """``module`` as an ``onnx.ModelProto``: dynamic batch, weights inside, exporter optimised."""
    batch = torch.export.Dim("batch", min=1, max=65536)
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            module.eval(),
            tuple(args),
            dynamo=True,
            input_names=list(inputs),
            output_names=list(outputs),
            dynamic_shapes={name: {0: batch} for name in inputs},
            opset_version=opset,
            verbose=False,
            external_data=False,
        )
    assert program is not None
    return program.model_proto


def _without_background(model: Any) -> Any:
    """The traced graph with ``background`` replaced by ``x_src`` and its duplicate branch merged.

    With ``b`` computed like ``s`` from the same tensor, the generator's blend ``s + p * (b - s)``
    is ``s`` exactly; merging the identical nodes (common-subexpression elimination) keeps the
    appearance encoder to one pass.
    """
    ir = require_module("onnxscript").ir  # onnx_ir, which onnxscript ships and re-exports
    passes = ir.passes.common
    graph = ir.from_proto(model)
    inputs = {value.name: value for value in graph.graph.inputs}
    if "background" not in inputs:
        return ir.to_proto(graph)
    background = inputs["background"]
    background.replace_all_uses_with(inputs["x_src"])
    graph.graph.inputs.remove(background)
    passes.CommonSubexpressionEliminationPass()(graph)
    passes.RemoveUnusedNodesPass()(graph)
    return ir.to_proto(graph)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Send the exporter's progress lines, notes and warnings to this module's debug log."""
    names = ("torch.onnx", "torch.export", "torch._export", "torch.fx", "onnx_ir", "onnxscript")
    loggers = [logging.getLogger(name) for name in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(_LogWriter()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


class _LogWriter(io.TextIOBase):
    """A text stream that sends its lines to this module's debug log."""

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                logger.debug("%s", line)
        return len(text)
