"""Run an exported model with ONNX Runtime: :class:`OnnxEngine`, the pipeline's second backend.

``PoseTransferPipeline.from_run(PATH, backend="onnxruntime")`` (``infer --backend
onnxruntime``) hands its work to an :class:`OnnxEngine`: ``PATH`` is a ``model.onnx`` written by
``posetransfer export`` (:mod:`posetransfer.infer.onnx_export`), or a run folder, which is then
exported into a temporary folder first (:meth:`OnnxEngine.from_networks`; export once with
``posetransfer export`` to skip that). The engine runs

- ``full`` for a batch without a given flow (the regressor's flow, then generator and refiner);
- ``flow`` for :meth:`OnnxEngine.predict_flow` (the photo and video paths, which composite
  with the visibility before rendering);
- ``render`` when the flow is given (``--flow 3d``, ``RePoser``) or a background is given.

ONNX Runtime runs on the CPU (``CPUExecutionProvider``) with ``threads`` intra-op threads (the
command's ``--threads``; default: torch's current count) and one inter-op thread. Inputs are
torch tensors on the CPU, outputs torch tensors on the CPU, as the torch backend's.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from posetransfer.config import from_dict
from posetransfer.infer.onnx_export import export_onnx, require_module
from posetransfer.infer.onnx_graphs import GRAPH_KINDS, Networks, example_inputs, graph_modules
from posetransfer.models.generator import GeneratorOutput
from posetransfer.train.generator_config import GeneratorStageConfig

__all__ = ["OnnxEngine", "compare_with_torch"]

logger = logging.getLogger(__name__)

_DTYPES = {"tensor(float)": torch.float32, "tensor(bool)": torch.bool, "tensor(int64)": torch.int64}


class OnnxEngine:
    """ONNX Runtime sessions of an exported model (its ``full``, ``flow`` and ``render`` graphs).

    Args:
        path: The ``full`` graph, ``model.onnx`` of ``posetransfer export``; its siblings are
            found by the names in its metadata.
        threads: Intra-op threads of every session (None: ``torch.get_num_threads()``).
        preload: Open every graph's session now (else on first use).

    Raises:
        FileNotFoundError: A missing file.
        ValueError: A file that is not the ``full`` graph of a ``posetransfer export``.
        OnnxExtraMissingError: ``onnxruntime`` is not installed (names the extra).
    """

    def __init__(
        self, path: str | os.PathLike[str], threads: int | None = None, preload: bool = False
    ) -> None:
        self._ort = require_module("onnxruntime")
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: ONNX model not found")
        self.threads = int(threads) if threads else torch.get_num_threads()
        self._sessions: dict[str, Any] = {}
        full = self._open(self.path)
        meta = full.get_modelmeta().custom_metadata_map
        if meta.get("posetransfer.graph") != "full":
            raise ValueError(
                f"{self.path}: not the main graph of a `posetransfer export` (graph "
                f"{meta.get('posetransfer.graph')!r}); pass the model.onnx it wrote"
            )
        where = f"{self.path} (metadata posetransfer.config)"
        self.cfg = from_dict(
            GeneratorStageConfig, yaml.safe_load(meta["posetransfer.config"]), where
        )
        names = json.loads(meta["posetransfer.graphs"])
        self.paths = {k: self.path.with_name(names[k]) for k in GRAPH_KINDS if k in names}
        self.paths["full"] = self.path
        self.source = meta.get("posetransfer.source", "")
        self._sessions["full"] = full
        if preload:
            for kind in self.paths:
                self._session(kind)

    @classmethod
    def from_networks(
        cls,
        cfg: GeneratorStageConfig,
        nets: Networks,
        threads: int | None = None,
        source: str = "",
    ) -> OnnxEngine:
        """Export torch networks into a temporary folder and open every graph.

        The sessions hold the graphs in memory, so the folder is removed before this returns.
        """
        with tempfile.TemporaryDirectory(prefix="posetransfer-onnx-") as folder:
            exported = export_onnx(cfg, nets, Path(folder) / "model.onnx", source=source)
            logger.info(
                "exported %s to ONNX in %.1f s (`posetransfer export` writes it once, to pass "
                "as --checkpoint)",
                source or "the networks",
                exported.seconds,
            )
            return cls(exported.paths["full"], threads, preload=True)

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` the graphs take."""
        height, width = self.cfg.generator.image_size
        return int(height), int(width)

    def has(self, kind: str) -> bool:
        """Whether the model has graph ``kind`` (``full``, ``flow``, ``render``)."""
        return kind in self.paths

    def input_names(self, kind: str) -> list[str]:
        """The inputs of graph ``kind``, in order."""
        return [i.name for i in self._session(kind).get_inputs()]

    def predict_flow(
        self,
        src_xy: torch.Tensor,
        src_valid: torch.Tensor,
        tgt_xy: torch.Tensor,
        tgt_valid: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The regressor's ``(flow (B, 2, H, W), visibility codes (B, H, W))`` (graph ``flow``).

        Raises:
            ValueError: If the model has no flow regressor.
        """
        if not self.has("flow"):
            raise ValueError("this run's model has no flow regressor (generator.use_flow=false)")
        poses = {"src_xy": src_xy, "src_valid": src_valid, "tgt_xy": tgt_xy, "tgt_valid": tgt_valid}
        out = self._run("flow", **poses)
        return out["flow"], out["visibility"]

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
        """Render a batch, as ``PoseTransferPipeline.run`` (same arguments and shapes).

        Without ``flow`` and ``background`` the ``full`` graph runs; with either, ``render``
        (the regressor's flow first, from ``flow``, when only a background is given); a model
        that uses no flow runs ``full`` and ignores ``flow``. A ``render`` graph that takes a
        background is fed ``x_src`` when none is given: its blend ``s + p * (b - s)`` is then
        ``s``, the output without a background.

        Raises:
            ValueError: A background for a generator that takes none.
        """
        feeds = {"x_src": x_src, "tgt_xy": tgt_xy, "tgt_valid": tgt_valid}
        if background is not None and not (self.has("render") and self._takes_background()):
            raise ValueError(
                "background needs GeneratorConfig.dual_encoder, use_flow and a visibility mode"
            )
        if self.has("render") and (flow is not None or background is not None):
            if flow is None:
                flow = self.predict_flow(src_xy, src_valid, tgt_xy, tgt_valid)
            feeds.update(flow=flow[0], visibility=flow[1])
            if self._takes_background():
                feeds["background"] = x_src if background is None else background
            out = self._run("render", **feeds)
        else:
            out = self._run("full", src_xy=src_xy, src_valid=src_valid, **feeds)
        return GeneratorOutput(out["image"], out["coarse"], out.get("warped_src"), out.get("mask"))

    # ------------------------------------------------------------------------------ sessions

    def _takes_background(self) -> bool:
        return "background" in self.input_names("render")

    def _open(self, path: Path) -> Any:
        ort = self._ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only (not the optimiser's notes)
        start = time.perf_counter()
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        logger.debug("opened %s in %.2f s", path, time.perf_counter() - start)
        return session

    def _session(self, kind: str) -> Any:
        if kind not in self._sessions:
            if kind not in self.paths:
                raise ValueError(f"{self.path}: the exported model has no {kind!r} graph")
            if not self.paths[kind].is_file():
                raise FileNotFoundError(
                    f"{self.paths[kind]}: the {kind!r} graph of {self.path} is missing (keep the "
                    "files `posetransfer export` wrote together)"
                )
            self._sessions[kind] = self._open(self.paths[kind])
        return self._sessions[kind]

    def _run(self, kind: str, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run graph ``kind`` on the inputs it takes (by name); outputs by name."""
        session = self._session(kind)
        feeds: dict[str, np.ndarray] = {}
        for spec in session.get_inputs():
            tensor = inputs[spec.name].detach().to("cpu", _DTYPES[spec.type])
            feeds[spec.name] = tensor.contiguous().numpy()
        names = [o.name for o in session.get_outputs()]
        values = session.run(names, feeds)
        return {name: torch.from_numpy(value) for name, value in zip(names, values, strict=True)}


def compare_with_torch(
    engine: OnnxEngine,
    cfg: GeneratorStageConfig,
    nets: Networks,
    batch: int = 3,
    seed: int = 1,
) -> dict[str, float]:
    """Largest absolute difference between each graph and its torch modules on random inputs.

    Args:
        engine: The exported model.
        cfg: The run's config.
        nets: The networks it was exported from (eval mode).
        batch: Batch of the random inputs (any: the graphs' batch is dynamic).
        seed: Seed of the inputs.

    Returns:
        By graph kind, the max abs difference over all its outputs (images in ``[-1, 1]``,
        flow in pixels, visibility codes as numbers: a flipped class counts at least 1).
    """
    inputs = example_inputs(cfg, batch, seed)
    result = {}
    for kind, spec in graph_modules(cfg, nets).items():
        with torch.no_grad():
            expected = spec.module(*(inputs[name] for name in spec.inputs))
        got = engine._run(kind, **{name: inputs[name] for name in spec.inputs})
        result[kind] = max(
            float((got[name].double() - want.double()).abs().max())
            for name, want in zip(spec.outputs, expected, strict=True)
        )
    return result
