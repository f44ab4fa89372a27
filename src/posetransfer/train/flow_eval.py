"""Evaluate a flow regressor on ground-truth flow, with two trivial baselines on the same pairs.

Metrics (all at full resolution, pairs weighted equally):

``epe_fg``
    End-point error in pixels over the body pixels of the ground truth (VISIBLE and INVISIBLE, the
    original's reported EPE), a mean per pair, then over pairs. ``epe_visible``: over VISIBLE
    pixels. A pair without such pixels is left out of that mean (``num_pairs_no_body`` counts
    them for ``epe_fg``). The flow is the raw prediction, not masked by the predicted visibility.
``vis_accuracy``
    Pixel accuracy of the argmax visibility, a mean per pair, then over pairs.
``iou_visible``, ``iou_invisible``, ``iou_background``, ``miou``
    Intersection over union of each class, summed over all pixels of all pairs (the usual
    segmentation IoU), and their mean.

Baselines, computed by the same code on the same pairs:

``*_zero_flow``
    A zero flow (every target pixel copies the source pixel at the same place): ``epe_fg`` is then
    the mean ground-truth flow magnitude.
``*_majority``
    A constant visibility map of the class with the most pixels in the evaluated pairs (usually
    BACKGROUND): an upper bound on what any constant guess scores, chosen with the test labels.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from posetransfer.conventions import NUM_VISIBILITY_CLASSES, Visibility
from posetransfer.data.datasets import PairBatch, PairDataset, collate_pairs
from posetransfer.data.splits import PairSubset
from posetransfer.eval.names import EPE_FG, EPE_VISIBLE, VIS_ACCURACY
from posetransfer.losses.flow import flow_metrics, per_sample_epe
from posetransfer.models.flow_regressor import FlowRegressor
from posetransfer.train.checkpoint import find_checkpoint
from posetransfer.train.flow_stage import load_flow_regressor, resolve_flows_dir

__all__ = ["evaluate_flow", "evaluate_flow_run", "format_flow_table"]

logger = logging.getLogger(__name__)

_CLASSES = [code.name.lower() for code in Visibility]
_ZERO, _MAJORITY = "_zero_flow", "_majority"  # suffixes of the two baselines' keys


class _Totals:
    """Per-pair values and pixel counts gathered over batches."""

    def __init__(self) -> None:
        self.per_pair: dict[str, list[torch.Tensor]] = {}
        self.class_pixels = torch.zeros(NUM_VISIBILITY_CLASSES, dtype=torch.float64)
        self.inter = torch.zeros(NUM_VISIBILITY_CLASSES, dtype=torch.float64)
        self.union = torch.zeros(NUM_VISIBILITY_CLASSES, dtype=torch.float64)
        self.fractions: list[torch.Tensor] = []  # (B, classes): share of each class per pair

    def add(self, batch: PairBatch, vis_pred: torch.Tensor) -> None:
        """Baselines, class pixel counts and IoU counts of one batch."""
        gt_flow, gt_vis = batch.flow, batch.visibility
        assert gt_flow is not None and gt_vis is not None
        zero = torch.zeros_like(gt_flow)
        body, visible = gt_vis != int(Visibility.BACKGROUND), gt_vis == int(Visibility.VISIBLE)
        nan = float("nan")
        values = {
            EPE_FG + _ZERO: per_sample_epe(zero, gt_flow, body, empty=nan),
            EPE_VISIBLE + _ZERO: per_sample_epe(zero, gt_flow, visible, empty=nan),
        }
        for key, value in values.items():
            self.per_pair.setdefault(key, []).append(value.double().cpu())
        pixels = gt_vis[0].numel()
        codes = range(NUM_VISIBILITY_CLASSES)
        onehot = torch.stack([(gt_vis == c).flatten(1).sum(1) for c in codes], dim=1)
        self.fractions.append(onehot.double().cpu() / pixels)
        self.class_pixels += onehot.sum(0).double().cpu()
        for c in range(NUM_VISIBILITY_CLASSES):
            is_pred, is_gt = vis_pred == c, gt_vis == c
            self.inter[c] += float((is_pred & is_gt).sum())
            self.union[c] += float((is_pred | is_gt).sum())

    def add_model(self, values: dict[str, torch.Tensor]) -> None:
        for key, value in values.items():
            self.per_pair.setdefault(key, []).append(value.double().cpu())

    def mean(self, key: str) -> float:
        values = torch.cat(self.per_pair[key])
        finite = values[~torch.isnan(values)]
        return float(finite.mean()) if finite.numel() else float("nan")


def _iou(inter: torch.Tensor, union: torch.Tensor) -> list[float]:
    return [float(i / u) if u > 0 else float("nan") for i, u in zip(inter, union, strict=True)]


@torch.no_grad()
def evaluate_flow(
    model: FlowRegressor,
    dataset: Dataset[Any],
    *,
    batch_size: int = 16,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """Metrics of ``model`` and of the zero-flow and majority-class baselines on ``dataset``.

    Args:
        model: The regressor (evaluated in eval mode; its mode is restored after).
        dataset: Pairs with flow and visibility (``PairDataset(require_flow=True)`` or a subset).
        batch_size: Pairs per forward pass.
        num_workers: DataLoader workers.
        device: Where the model runs (the model is moved there).
        progress: Show a progress bar.

    Returns:
        ``epe_fg``, ``epe_visible``, ``vis_accuracy``, ``iou_<class>``, ``miou``, the same with
        ``_zero_flow`` (EPE) and ``_majority`` (visibility) suffixes, ``majority_class``,
        ``num_pairs``, ``num_pairs_no_body`` (see the module docstring).

    Raises:
        ValueError: An empty dataset or samples without flow.
    """
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise ValueError("cannot evaluate on an empty set of pairs")
    device = torch.device(device)
    loader = DataLoader(
        dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_pairs
    )
    was_training = model.training
    model.eval().to(device)
    totals = _Totals()
    try:
        for batch in tqdm(loader, desc="evaluate-flow", unit="batch", disable=not progress):
            if batch.flow is None or batch.visibility is None:
                raise ValueError(f"pairs {batch.source_name[:2]}... have no flow to compare with")
            batch = batch.to(device)
            pred = model(batch.source_pose_map, batch.target_pose_map)
            values = flow_metrics(pred, batch.flow, batch.visibility, per_sample=True)
            keys = {EPE_FG: EPE_FG, EPE_VISIBLE: EPE_VISIBLE, VIS_ACCURACY: "vis_acc"}
            totals.add_model({key: values[source] for key, source in keys.items()})
            totals.add(batch, pred.visibility)
    finally:
        model.train(was_training)
    majority = int(totals.class_pixels.argmax())
    fractions = torch.cat(totals.fractions)
    iou = _iou(totals.inter, totals.union)
    iou_majority = _iou(
        torch.where(torch.arange(3) == majority, totals.class_pixels, 0.0),
        torch.where(torch.arange(3) == majority, totals.class_pixels.sum(), totals.class_pixels),
    )
    epe_fg = torch.cat(totals.per_pair[EPE_FG])
    result: dict[str, Any] = {
        EPE_FG: totals.mean(EPE_FG),
        EPE_VISIBLE: totals.mean(EPE_VISIBLE),
        VIS_ACCURACY: totals.mean(VIS_ACCURACY),
        **{f"iou_{name}": value for name, value in zip(_CLASSES, iou, strict=True)},
        "miou": _nanmean(iou),
        EPE_FG + _ZERO: totals.mean(EPE_FG + _ZERO),
        EPE_VISIBLE + _ZERO: totals.mean(EPE_VISIBLE + _ZERO),
        VIS_ACCURACY + _MAJORITY: float(fractions[:, majority].mean()),
        **{f"iou_{n}_majority": v for n, v in zip(_CLASSES, iou_majority, strict=True)},
        "miou_majority": _nanmean(iou_majority),
        "majority_class": Visibility(majority).name,
        "num_pairs": int(epe_fg.numel()),
        "num_pairs_no_body": int(torch.isnan(epe_fg).sum()),
    }
    return result


def _nanmean(values: Sequence[float]) -> float:
    kept = [v for v in values if v == v]
    return sum(kept) / len(kept) if kept else float("nan")


def evaluate_flow_run(
    run_dir: str | os.PathLike[str],
    data_root: str | os.PathLike[str],
    *,
    flows_dir: str | os.PathLike[str] | None = None,
    split: str = "test",
    which: Literal["best", "latest"] = "best",
    max_pairs: int | None = None,
    batch_size: int = 16,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate a ``train-flow`` run on one split of a dataset, prepared as the run's config says.

    Args:
        run_dir: The run folder.
        data_root: Dataset folder.
        flows_dir: Ground-truth flow files (or a ``synth-flow`` output); default: the dataset's.
        split: Split to evaluate (``test``; the run's validation pairs come from ``train``).
        which: Checkpoint, ``"best"`` or ``"latest"``.
        max_pairs: Evaluate only the first ``max_pairs`` pairs (None: all).
        batch_size: Pairs per forward pass.
        num_workers: DataLoader workers.
        device: Where the model runs.
        progress: Show a progress bar.

    Returns:
        :func:`evaluate_flow`'s result plus ``split``, ``checkpoint``, ``step``, ``data_root``,
        ``flows_dir`` and ``seconds``.
    """
    start = time.perf_counter()
    model, cfg = load_flow_regressor(run_dir, which, device)
    ckpt = find_checkpoint(run_dir, which)
    dataset = PairDataset(
        data_root,
        split,
        protocol=cfg.data.protocol,
        pose_map=cfg.data.pose_map,
        flows_dir=resolve_flows_dir(flows_dir),
        require_flow=True,
    )
    subset = PairSubset(dataset, range(min(len(dataset), max_pairs or len(dataset))))
    logger.info("evaluating %s on %d pairs of %s/%s", ckpt, len(subset), data_root, split)
    result = evaluate_flow(
        model, subset, batch_size=batch_size, num_workers=num_workers, device=device,
        progress=progress,
    )  # fmt: skip
    step = int(json.loads((ckpt / "meta.json").read_text(encoding="utf-8"))["step"])
    return result | {
        "split": split,
        "checkpoint": str(ckpt),
        "which": which,
        "step": step,
        "data_root": str(Path(data_root)),
        "flows_dir": str(dataset.flows_dir) if dataset.flows_dir else None,
        "seconds": round(time.perf_counter() - start, 3),
    }


def format_flow_table(result: dict[str, Any]) -> str:
    """A plain-text table of the model's metrics next to the baselines'."""
    rows = [(f"{key} (px)", key, key + _ZERO, "zero flow") for key in (EPE_FG, EPE_VISIBLE)]
    rows.append((VIS_ACCURACY, VIS_ACCURACY, VIS_ACCURACY + _MAJORITY, "majority class"))
    rows += [(f"iou_{c}", f"iou_{c}", f"iou_{c}_majority", "majority class") for c in _CLASSES]
    rows.append(("miou", "miou", "miou_majority", "majority class"))
    lines = [f"{'metric':<18} {'model':>10} {'baseline':>10}  baseline kind"]
    for label, key, base, kind in rows:
        lines.append(f"{label:<18} {result[key]:>10.4f} {result[base]:>10.4f}  {kind}")
    lines.append(
        f"{result['num_pairs']} pairs ({result['num_pairs_no_body']} without body pixels); "
        f"majority class {result['majority_class']}"
    )
    return "\n".join(lines)
