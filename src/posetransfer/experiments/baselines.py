"""Baselines that need no training, the scored test pairs, and scoring by method.

Baselines need no training: ``copy_source`` (the output is the source image), ``warp_pred``
(the source warped by the flow regressor's prediction) and ``warp_3d`` (warped by the
``synth-flow`` flow of the pair). Flow is 0 on background by convention, so both warps keep the
source's own pixel wherever the target is background.

Scores are :func:`posetransfer.eval.evaluate.evaluate_folders` with protocol ``native``: SSIM with
a Gaussian window (sigma 1.5) on 8-bit values with the fixed range 255, PSNR and L1 on
``[0, 255]`` (mean absolute difference / 255), plus ``mask_ssim``/``mask_l1`` inside the targets'
keypoint masks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from posetransfer.data.flow_files import flow_filename, read_any_flow
from posetransfer.data.formats import read_pairs_csv, write_pairs_csv
from posetransfer.data.layout import discover_dataset
from posetransfer.eval.evaluate import EvaluateConfig, evaluate_folders
from posetransfer.eval.names import L1, MASK_L1, MASK_SSIM, PSNR, SSIM
from posetransfer.infer.inputs import PairListDataset, gfla_name
from posetransfer.io import PathLike, save_png, tensor_to_uint8
from posetransfer.models.flow_regressor import FlowRegressor
from posetransfer.models.generator_inputs import condition_from_prediction
from posetransfer.ops.warp import warp
from posetransfer.pose.maps import pose_maps
from posetransfer.train.checkpoint import CheckpointError
from posetransfer.train.flow_stage import FlowStageConfig

__all__ = [
    "BASELINES",
    "METRICS",
    "load_flow_net",
    "score_methods",
    "select_test_pairs",
    "write_baselines",
]

#: Baselines without training.
BASELINES: dict[str, str] = {
    "copy_source": "the source image unchanged",
    "warp_pred": "the source warped by the predicted flow",
    "warp_3d": "the source warped by the synth-flow 3D flow (fitted from keypoints)",
}

#: Metrics kept from the evaluation report.
METRICS = (SSIM, PSNR, L1, MASK_SSIM, MASK_L1)


def load_flow_net(run_dir: PathLike) -> tuple[FlowRegressor, FlowStageConfig]:
    """A ``train-flow`` run's best regressor, or its latest when it has no ``best/``."""
    from posetransfer.train.flow_stage import load_flow_regressor

    try:
        return load_flow_regressor(run_dir, "best")
    except CheckpointError:
        return load_flow_regressor(run_dir, "latest")


def select_test_pairs(
    data_root: PathLike, out_csv: PathLike, split: str = "test", max_pairs: int | None = None
) -> list[tuple[str, str]]:
    """The pairs of ``split`` (evenly spaced ``max_pairs`` of them), also written to ``out_csv``."""
    files = discover_dataset(data_root)
    if split not in files.pairs:
        raise ValueError(f"{data_root}: no split {split!r}; available: {files.splits}")
    pairs = read_pairs_csv(files.pairs[split])
    if max_pairs is not None and len(pairs) > max_pairs:
        stride = len(pairs) / max_pairs
        pairs = [pairs[int(k * stride)] for k in range(max_pairs)]
    write_pairs_csv(out_csv, pairs)
    return pairs


def write_baselines(
    data_root: PathLike,
    pairs: Sequence[tuple[str, str]],
    out_root: PathLike,
    *,
    flow_run: PathLike | None = None,
    flows_3d: PathLike | None = None,
    methods: Sequence[str] = tuple(BASELINES),
    protocol: str = "native",
    batch_size: int = 16,
) -> dict[str, Path]:
    """Write each baseline's outputs to ``out_root/<method>/<source>_2_<target>.png``.

    Args:
        data_root: Dataset folder.
        pairs: ``(source, target)`` names.
        out_root: Parent of the output folders.
        flow_run: ``train-flow`` run (needed for ``warp_pred``).
        flows_3d: Folder of the pairs' ``synth-flow`` flow files (needed for ``warp_3d``).
        methods: Keys of :data:`BASELINES`.
        protocol: Image protocol of the images.
        batch_size: Pairs per batch.

    Returns:
        Method -> output folder.
    """
    unknown = [m for m in methods if m not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline {unknown[0]!r}; choose from {', '.join(BASELINES)}")
    if "warp_pred" in methods and flow_run is None:
        raise ValueError("baseline warp_pred needs flow_run (a train-flow run folder)")
    if "warp_3d" in methods and flows_3d is None:
        raise ValueError("baseline warp_3d needs flows_3d (a folder of synth-flow flow files)")
    net, flow_cfg = (
        load_flow_net(flow_run) if "warp_pred" in methods and flow_run is not None else (None, None)
    )
    dataset = PairListDataset(data_root, pairs, protocol)
    dirs = {m: Path(out_root) / m for m in methods}
    for batch in DataLoader(dataset, batch_size=batch_size):
        x_src = batch["source_image"]
        index = batch["index"].tolist()
        outputs: dict[str, torch.Tensor] = {}
        if "copy_source" in methods:
            outputs["copy_source"] = x_src
        if net is not None and flow_cfg is not None:
            size = tuple(x_src.shape[-2:])
            maps = [
                pose_maps(batch[k + "_xy"], batch[k + "_valid"], size, flow_cfg.data.pose_map)
                for k in ("src", "tgt")
            ]
            with torch.no_grad():
                flow, _ = condition_from_prediction(net(*maps))
            outputs["warp_pred"] = warp(x_src, flow)
        if "warp_3d" in methods:
            assert flows_3d is not None
            flows = [
                torch.from_numpy(read_any_flow(Path(flows_3d) / flow_filename(*pairs[i]))[0])
                for i in index
            ]
            outputs["warp_3d"] = warp(x_src, torch.stack(flows).permute(0, 3, 1, 2).float())
        for method, images in outputs.items():
            for i, image in zip(index, images, strict=True):
                save_png(dirs[method] / gfla_name(*pairs[i]), tensor_to_uint8(image))
    return dirs


def score_methods(
    outputs: Mapping[str, PathLike],
    data_root: PathLike,
    pairs_csv: PathLike,
    split: str = "test",
    *,
    progress: bool = False,
) -> dict[str, dict[str, float | None]]:
    """Score each method's folder against the ground truth (protocol ``native``).

    Returns:
        Method -> :data:`METRICS` -> value.
    """
    files = discover_dataset(data_root)
    cfg = EvaluateConfig(lpips=False, fid=False, batch_size=32)
    scores = {}
    for method, folder in outputs.items():
        report = evaluate_folders(
            folder, files.image_dirs[split], "native", cfg, pairs_csv=pairs_csv,
            annotations_csv=files.annotations.get(split), progress=progress,
        )  # fmt: skip
        scores[method] = {k: report.metrics.get(k) for k in METRICS}
    return scores
