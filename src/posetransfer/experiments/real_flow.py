"""The flow regressor on real pairs, against the fitted-body flow (issue 13, item 3).

A ``make-dataset`` folder of real video holds the detector's keypoints of every crop; ``synth-flow``
fits the body model to them and renders every pair's fitted-body flow and visibility (the flow
``infer --flow 3d`` uses). :func:`real_flow_pairs` reads those pairs as the regressor takes them
(pairs whose body fit failed have no flow file and are left out), and :func:`evaluate_real_flow`
scores a regressor on them with :func:`~posetransfer.train.flow_eval.evaluate_flow`: end-point
error over the fitted body (``epe_fg``) and its visible part (``epe_visible``), visibility
accuracy and IoU, and the zero-flow (identity) and majority-class baselines on the same pairs;
per split and over all of them (the regressor never saw real pairs, so every split is held out).
``benchmarks/flow_real.py`` compares the demo's regressor trained with and without pose
augmentation this way.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch.utils.data import ConcatDataset

from posetransfer.data.datasets import PairDataset
from posetransfer.models.flow_regressor import FlowRegressor
from posetransfer.pose.maps import PoseMapConfig
from posetransfer.train.flow_eval import evaluate_flow
from posetransfer.train.flow_stage import load_flow_regressor, resolve_flows_dir

__all__ = ["evaluate_real_flow", "evaluate_real_flow_run", "real_flow_pairs"]

logger = logging.getLogger(__name__)

#: Key of the result over every evaluated split together.
ALL = "all"


def real_flow_pairs(
    root: str | os.PathLike[str],
    flows_dir: str | os.PathLike[str],
    split: str,
    *,
    pose_map: PoseMapConfig = PoseMapConfig(),  # noqa: B008 (frozen, immutable)
    protocol: str = "native",
) -> PairDataset:
    """The pairs of one split that have a fitted-body flow, as the regressor takes them.

    Args:
        root: A ``make-dataset`` (or any PATN-layout) folder.
        flows_dir: ``synth-flow``'s output for it (or its ``flows/`` folder).
        split: ``train`` or ``test``.
        pose_map: The regressor's pose-map encoding (its run's ``data.pose_map``).
        protocol: Image protocol (the run's ``data.protocol``).

    Returns:
        The pairs with flow and visibility; no augmentation, no mirroring.

    Raises:
        FileNotFoundError: ``flows_dir`` does not exist, or no pair of ``split`` has a flow file.
    """
    flows = resolve_flows_dir(flows_dir)
    dataset = PairDataset(
        root, split, protocol=protocol, pose_map=pose_map, flows_dir=flows,
        skip_missing_flow=True,
    )  # fmt: skip
    if not dataset.has_flow or not len(dataset):
        raise FileNotFoundError(
            f"{flows}: no flow file for any pair of split {split!r} of {root}; "
            "run `posetransfer synth-flow` on it first"
        )
    return dataset


def evaluate_real_flow(
    model: FlowRegressor,
    root: str | os.PathLike[str],
    flows_dir: str | os.PathLike[str],
    *,
    splits: Sequence[str] = ("train", "test"),
    pose_map: PoseMapConfig = PoseMapConfig(),  # noqa: B008 (frozen, immutable)
    protocol: str = "native",
    batch_size: int = 16,
    device: torch.device | str = "cpu",
) -> dict[str, dict[str, Any]]:
    """EPE and visibility scores of ``model`` against the fitted-body flow on real pairs.

    Args:
        model: The regressor.
        root: A ``make-dataset`` folder.
        flows_dir: Its ``synth-flow`` output.
        splits: Splits to score, each on its own and all together (key ``"all"``).
        pose_map: The regressor's pose-map encoding.
        protocol: Image protocol.
        batch_size: Pairs per forward pass.
        device: Where the model runs.

    Returns:
        ``{split or "all": evaluate_flow's result}`` (``epe_fg``, ``epe_fg_zero_flow``,
        ``vis_accuracy``, ... and ``num_pairs``).
    """
    parts = {
        split: real_flow_pairs(root, flows_dir, split, pose_map=pose_map, protocol=protocol)
        for split in splits
    }
    results = {
        split: evaluate_flow(model, part, batch_size=batch_size, device=device)
        for split, part in parts.items()
    }
    if len(parts) > 1:
        together: ConcatDataset[Any] = ConcatDataset(list(parts.values()))
        results[ALL] = evaluate_flow(model, together, batch_size=batch_size, device=device)
    return results


def evaluate_real_flow_run(
    run_dir: str | os.PathLike[str],
    root: str | os.PathLike[str],
    flows_dir: str | os.PathLike[str],
    *,
    which: Literal["best", "latest"] = "best",
    splits: Sequence[str] = ("train", "test"),
    batch_size: int = 16,
) -> dict[str, dict[str, Any]]:
    """:func:`evaluate_real_flow` of a ``train-flow`` run, with its pose maps and protocol."""
    model, cfg = load_flow_regressor(run_dir, which)
    logger.info("scoring %s (%s) on the real pairs of %s", run_dir, which, root)
    return evaluate_real_flow(
        model, root, flows_dir, splits=splits, pose_map=cfg.data.pose_map,
        protocol=cfg.data.protocol, batch_size=batch_size,
    )  # fmt: skip
