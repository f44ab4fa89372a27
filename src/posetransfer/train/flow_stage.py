"""Flow-regression stage (paper stage 2): train a :class:`FlowRegressor` on ground-truth flow.

``posetransfer train-flow`` runs :func:`train_flow`: pairs of the training split with their flow
files (:class:`~posetransfer.data.datasets.PairDataset` with ``require_flow=True``: a missing flow
file is a ``FileNotFoundError`` naming it, never a zero flow), a validation subset carved from the
training split by identity (:mod:`posetransfer.data.splits`; the original selected on the test
split), the shared loop (:func:`~posetransfer.train.run_training`) with :class:`FlowStage`, and
the best checkpoint by validation ``epe_fg``. A non-finite loss (NaN in a flow, a pose map or the
prediction) raises an error naming the step and batch fields, or with
``train.skip_bad_batches=true`` is counted and skipped.

Run folder (see :mod:`posetransfer.train.loop`): ``config.yaml`` (a :class:`FlowStageConfig`),
``val_split.json`` (the held-out groups), ``stats.jsonl``, ``checkpoints/`` with the module
``flow_regressor``, ``samples/``. :func:`load_flow_regressor` reads one back, frozen, for the
pose-transfer stage and for ``evaluate-flow``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from posetransfer.config import ConfigError, load_config
from posetransfer.conventions import Visibility
from posetransfer.data.datasets import PairBatch, PairDataset, collate_pairs
from posetransfer.data.splits import PairSubset, carve_validation
from posetransfer.eval.names import EPE_FG, EPE_VISIBLE
from posetransfer.io import PathLike, atomic_write_text, uint8_to_tensor
from posetransfer.losses.flow import NonFiniteError, flow_loss_terms, flow_metrics, total_loss
from posetransfer.models.flow_regressor import FlowPrediction, FlowRegressor, FlowRegressorConfig
from posetransfer.ops.flow_viz import flow_to_color, visibility_to_color
from posetransfer.ops.memory_format import place
from posetransfer.ops.warp import warp
from posetransfer.runtime import is_main_process
from posetransfer.train.checkpoint import load_weights
from posetransfer.train.components import FLOW_OPTIMIZER, FLOW_REGRESSOR
from posetransfer.train.flow_config import FlowDataConfig, FlowStageConfig, FlowTrainConfig
from posetransfer.train.loop import CONFIG_FILE, TrainResult, run_training
from posetransfer.train.settings import make_adam, memory_format
from posetransfer.train.stage import NonFiniteLossError, Stage, StepContext

__all__ = [
    "MODULE_NAME",
    "FlowDataConfig",
    "FlowStage",
    "FlowStageConfig",
    "FlowTrainConfig",
    "load_flow_regressor",
    "make_flow_datasets",
    "resolve_flows_dir",
    "train_flow",
]

logger = logging.getLogger(__name__)

#: Checkpoint module name of the flow regressor (``flow_regressor.safetensors``).
MODULE_NAME = FLOW_REGRESSOR
VAL_SPLIT_FILE = "val_split.json"
_SAMPLE_PAIRS = 4


class FlowStage(Stage):
    """One optimiser over the regressor; loss :func:`~posetransfer.losses.flow.total_loss`.

    Args:
        cfg: The stage config.
        device: Device of the regressor.
        sample_batch: Fixed pairs drawn in ``samples/`` grids (None: no grids).
    """

    def __init__(
        self, cfg: FlowStageConfig, device: torch.device, sample_batch: PairBatch | None = None
    ) -> None:
        self.cfg = cfg
        self.memory_format = memory_format(cfg.train, device)
        logger.info("networks train in %s on %s", str(self.memory_format).split(".")[-1], device)
        self.net = place(FlowRegressor(cfg.model), device, self.memory_format)
        self.opt = make_adam(self.net.parameters(), cfg.train)
        self.sample_batch = sample_batch.to(device) if sample_batch is not None else None

    def modules(self) -> dict[str, torch.nn.Module]:
        return {MODULE_NAME: self.net}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {FLOW_OPTIMIZER: self.opt}

    def _terms(self, batch: PairBatch, ctx: StepContext) -> tuple[FlowPrediction, dict]:
        """Forward pass and loss terms; a non-finite input or output is a NonFiniteLossError."""
        batch = batch.contiguous(self.memory_format)
        if batch.flow is None or batch.visibility is None:
            raise ValueError("the flow stage needs batches with flow and visibility")
        with ctx.autocast():
            pred = self.net(batch.source_pose_map, batch.target_pose_map)
        pred = FlowPrediction([f.float() for f in pred.flows], [v.float() for v in pred.vis_logits])
        try:
            terms = flow_loss_terms(pred, batch.flow, batch.visibility, self.cfg.loss)
        except NonFiniteError as err:
            raise NonFiniteLossError(str(err)) from err
        return pred, terms

    def train_step(self, batch: PairBatch, ctx: StepContext) -> dict[str, torch.Tensor]:
        """One Adam step on the weighted loss; logs ``loss`` and every unweighted term."""
        _, terms = self._terms(batch, ctx)
        loss = total_loss(terms, self.cfg.loss)
        ctx.update(FLOW_OPTIMIZER, loss)
        return {"loss": loss.detach(), **{k: v.detach() for k, v in terms.items()}}

    def validate(self, batches: Iterable[PairBatch], ctx: StepContext) -> dict[str, float]:
        """Per-pair means of ``epe_fg``, ``epe_visible``, ``vis_acc`` and the loss (terms)."""
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for batch in batches:
            pred, terms = self._terms(batch, ctx)
            assert batch.flow is not None and batch.visibility is not None  # checked by _terms
            values = flow_metrics(pred, batch.flow, batch.visibility, per_sample=True)
            size = len(batch)
            per_pair = {k: values[k] for k in (EPE_FG, EPE_VISIBLE, "vis_acc")}
            per_pair["loss"] = total_loss(terms, self.cfg.loss).expand(size)
            per_pair |= {k: v.expand(size) for k, v in terms.items()}
            for key, value in per_pair.items():
                finite = value[~torch.isnan(value)]
                sums[key] = sums.get(key, 0.0) + float(finite.sum())
                counts[key] = counts.get(key, 0) + finite.numel()
        return {k: sums[k] / counts[k] if counts[k] else float("nan") for k in sums}

    def sample_images(self, ctx: StepContext) -> torch.Tensor | None:
        """One row of 8 tiles per sample pair: source, target, flow (truth, and prediction on the
        predicted body; same colour scale), visibility (truth, predicted), and the source warped by
        the true and by the predicted flow on the true and predicted body (white elsewhere)."""
        if self.sample_batch is None:
            return None
        b = self.sample_batch
        assert b.flow is not None and b.visibility is not None
        pred = self.net(b.source_pose_map, b.target_pose_map)
        tiles = []
        pred_body = pred.visibility != int(Visibility.BACKGROUND)
        for i in range(len(b)):
            scale = max(float(b.flow[i].norm(dim=0).max()), 1.0)
            colours = [
                flow_to_color(b.flow[i].cpu(), scale),
                flow_to_color((pred.flow[i] * pred_body[i]).cpu(), scale),
                visibility_to_color(b.visibility[i].cpu().numpy()),
                visibility_to_color(pred.visibility[i].cpu().numpy()),
            ]
            tiles += [b.source_image[i].cpu(), b.target_image[i].cpu()]
            tiles += [uint8_to_tensor(c) for c in colours]
            for flow, vis in ((b.flow, b.visibility), (pred.flow, pred.visibility)):
                warped = warp(b.source_image[i : i + 1], flow[i : i + 1])[0]
                body = vis[i] != int(Visibility.BACKGROUND)
                tiles.append(torch.where(body, warped, torch.ones_like(warped)).cpu())
        return torch.stack(tiles)


def resolve_flows_dir(path: PathLike | None) -> Path | None:
    """A flows folder: ``path`` itself, or ``path/flows`` for a ``synth-flow`` output folder."""
    if path is None:
        return None
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"flows folder {path} does not exist")
    inner = path / "flows"
    has_files = any(p.suffix in (".npz", ".corr") for p in path.iterdir())
    return inner if inner.is_dir() and not has_files else path


def make_flow_datasets(cfg: FlowStageConfig) -> tuple[PairSubset, PairSubset | None, dict]:
    """The training pairs and the validation pairs carved from the same split.

    Args:
        cfg: The stage config (``data``, with ``data.root`` set, and ``train.seed``).

    Returns:
        ``(train, val or None, record)``; ``record`` describes the held-out groups (JSON-ready).

    Raises:
        ConfigError: ``data.root`` is not set.
        FileNotFoundError: A missing flows folder or flow file (named).
        FormatError: Unreadable dataset files.
    """
    d = cfg.data
    if d.root is None:
        raise ConfigError("data.root is not set; pass --data ROOT")
    data_root = d.root
    flows = resolve_flows_dir(d.flows_dir)
    common: dict[str, Any] = {"protocol": d.protocol, "pose_map": d.pose_map, "flows_dir": flows}
    base = PairDataset(
        data_root, d.train_split, require_flow=True, hflip_prob=d.hflip_prob,
        seed=cfg.train.seed, augment=d.augment, **common,
    )  # fmt: skip
    split = carve_validation(
        base.pairs, d.val_fraction, by=d.val_by, seed=d.val_seed, max_pairs=d.val_max_pairs
    )
    record = {
        "data_root": str(Path(data_root).resolve()),
        "flows_dir": str(base.flows_dir.resolve()) if base.flows_dir else None,
        "split": d.train_split,
        "by": d.val_by,
        "fraction": d.val_fraction,
        "seed": d.val_seed,
        "train_pairs": len(split.train),
        "val_pairs": len(split.val),
        "groups": split.num_groups,
        "pairs_grouped_by_image": split.image_grouped,
        "val_groups": split.val_groups,
    }
    logger.info(
        "%s: %d training pairs, %d validation pairs (%d of %d groups by %s)",
        base.split, len(split.train), len(split.val), len(split.val_groups), split.num_groups,
        d.val_by,
    )  # fmt: skip
    if not split.val:
        return PairSubset(base, split.train), None, record
    val_base = PairDataset(data_root, d.train_split, require_flow=True, **common)
    return PairSubset(base, split.train), PairSubset(val_base, split.val), record


def _check_size(dataset: PairSubset, model: FlowRegressorConfig) -> None:
    """Fail early, naming the pair, when the images do not fit the flow loss's coarsest level
    (the model itself pads any size to its stride)."""
    if not len(dataset):
        raise ValueError("the training set is empty")
    sample = dataset[0]
    height, width = sample.target_image.shape[-2:]
    coarsest = 2**model.num_levels  # stride of the loss's coarsest ground-truth pyramid level
    if height % coarsest or width % coarsest:
        raise ConfigError(
            f"pair ({sample.source_name}, {sample.target_name}) is {height}x{width} after "
            f"data.protocol, not a multiple of {coarsest} = 2**model.num_levels (the coarsest "
            "flow-loss level); pick another protocol or model.num_levels"
        )


def train_flow(cfg: FlowStageConfig, run_dir: PathLike) -> TrainResult:
    """Train the flow regressor; rerunning on a run folder with checkpoints resumes it.

    Args:
        cfg: The stage config (written to ``run_dir/config.yaml``): ``data.root`` is the dataset
            (PATN/GFLA or DIAF layout), ``data.flows_dir`` its flow files (default: the
            dataset's flow store).
        run_dir: Run folder.

    Returns:
        The loop's summary; ``result.stage.net`` holds the final weights.

    Raises:
        ConfigError: ``data.root`` is not set, or sizes that do not fit the model.
    """
    train_set, val_set, record = make_flow_datasets(cfg)
    _check_size(train_set, cfg.model)
    shown = val_set if val_set is not None else train_set
    picks = np.linspace(0, len(shown) - 1, min(_SAMPLE_PAIRS, len(shown))).round().astype(int)
    samples = collate_pairs([shown[int(i)] for i in picks])
    run_dir = Path(run_dir)
    if is_main_process():
        atomic_write_text(run_dir / VAL_SPLIT_FILE, json.dumps(record, indent=2) + "\n")
    return run_training(
        lambda device: FlowStage(cfg, device, samples if cfg.train.sample_every else None),
        train_set,
        val_set,
        cfg.train,
        run_dir,
        collate_fn=collate_pairs,
        resolved_config=cfg,
    )


def load_flow_regressor(
    run_dir: PathLike,
    which: Literal["best", "latest"] = "best",
    device: torch.device | str = "cpu",
) -> tuple[FlowRegressor, FlowStageConfig]:
    """Load a trained regressor, frozen: eval mode, ``requires_grad`` off.

    Args:
        run_dir: A ``train-flow`` run folder (holding ``config.yaml`` and ``checkpoints/``).
        which: ``"best"`` (lowest validation ``epe_fg``) or ``"latest"``.
        device: Device of the returned module.

    Returns:
        The regressor and the run's config (its ``data.pose_map`` and ``data.protocol`` say how
        to make the inputs).

    Raises:
        ConfigError: ``run_dir`` has no readable ``config.yaml``.
        CheckpointError: No such checkpoint, or weights that do not fit the config.
    """
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{run_dir}: not a train-flow run folder (no {CONFIG_FILE})")
    cfg = load_config(FlowStageConfig, path)
    net = FlowRegressor(cfg.model)
    ckpt = load_weights(run_dir, {MODULE_NAME: net}, which)
    logger.info("loaded %s from %s", MODULE_NAME, ckpt)
    net.requires_grad_(False)
    return net.eval().to(device), cfg
