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
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from posetransfer.config import ConfigError, load_config
from posetransfer.conventions import Visibility
from posetransfer.data.datasets import PairBatch, PairDataset, collate_pairs
from posetransfer.data.splits import PairSubset, carve_validation
from posetransfer.io import atomic_write_text, uint8_to_tensor
from posetransfer.losses.flow import (
    FlowLossConfig,
    NonFiniteError,
    flow_loss_terms,
    flow_metrics,
    total_loss,
)
from posetransfer.models.flow_regressor import (
    FlowPrediction,
    FlowRegressor,
    FlowRegressorConfig,
    flow_input_channels,
)
from posetransfer.ops.flow_viz import flow_to_color, visibility_to_color
from posetransfer.ops.warp import warp
from posetransfer.pose.maps import PoseMapConfig
from posetransfer.train.checkpoint import load_weights
from posetransfer.train.loop import CONFIG_FILE, TrainResult, run_training
from posetransfer.train.settings import TrainConfig, make_adam
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
MODULE_NAME = "flow_regressor"
VAL_SPLIT_FILE = "val_split.json"
_SAMPLE_PAIRS = 4


@dataclass(frozen=True)
class FlowDataConfig:
    """Which pairs the flow stage trains and validates on, and how they are prepared.

    Attributes:
        protocol: Image protocol (``native``, ``deepfashion-256x176``, ``market-128x64``, ...).
        pose_map: Pose-map encoding (the original: disks of radius 8 at 256 px, 4 at 128 px).
        hflip_prob: Probability of mirroring a training pair (validation is never flipped).
        train_split: Split the training and validation pairs come from.
        val_fraction: Share of the training identities held out for validation (0: none, then
            there is no ``best`` checkpoint).
        val_by: ``identity`` (person, from the image names) or ``image`` (source image).
        val_max_pairs: Cap on validation pairs (a seeded draw), or None.
        val_seed: Seed of the held-out draw (independent of ``train.seed``).
    """

    protocol: str = "native"
    pose_map: PoseMapConfig = field(default_factory=PoseMapConfig)
    hflip_prob: float = 0.5
    train_split: str = "train"
    val_fraction: float = 0.05
    val_by: Literal["identity", "image"] = "identity"
    val_max_pairs: int | None = 1000
    val_seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.hflip_prob <= 1.0:
            raise ConfigError(f"data.hflip_prob must be in [0, 1], got {self.hflip_prob!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if self.val_max_pairs is not None and self.val_max_pairs < 1:
            raise ConfigError(f"data.val_max_pairs must be None or >= 1, got {self.val_max_pairs}")
        if self.val_seed < 0:
            raise ConfigError(f"data.val_seed must be >= 0, got {self.val_seed}")


@dataclass(frozen=True)
class FlowTrainConfig(TrainConfig):
    """:class:`TrainConfig` with the original flow regressor's settings as defaults.

    Adam lr 1e-4, betas (0.9, 0.999), weight decay 4e-4, lr halved every 8 epochs and 30 epochs
    (``official_repo.md`` §3.5), here in steps of batch 8 on DeepFashion's 101,966 PATN training
    pairs (12,746 steps per epoch); best checkpoint by validation ``epe_fg``. Keys missing from a
    YAML ``train:`` section keep these defaults.
    """

    max_steps: int = 382_380
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 4e-4
    lr_schedule: Literal["constant", "linear", "cosine", "step"] = "step"
    lr_step_size: int = 101_968
    lr_step_gamma: float = 0.5
    val_every: int = 12_746
    ckpt_every: int = 4_000
    sample_every: int = 4_000
    val_metric: str = "epe_fg"
    val_mode: Literal["min", "max"] = "min"


@dataclass(frozen=True)
class FlowStageConfig:
    """Everything ``train-flow`` needs; saved as the run's ``config.yaml``.

    Attributes:
        data: Pairs and their preparation.
        model: The regressor's architecture.
        loss: Loss weights.
        train: Loop settings (:class:`FlowTrainConfig`: the original's optimiser by default).
    """

    data: FlowDataConfig = field(default_factory=FlowDataConfig)
    model: FlowRegressorConfig = field(default_factory=FlowRegressorConfig)
    loss: FlowLossConfig = field(default_factory=FlowLossConfig)
    train: FlowTrainConfig = field(default_factory=FlowTrainConfig)

    def __post_init__(self) -> None:
        channels = flow_input_channels(self.data.pose_map)
        if self.model.in_channels != channels:
            raise ConfigError(
                f"model.in_channels={self.model.in_channels} but data.pose_map gives 2 x "
                f"{channels // 2} = {channels} channels; set model.in_channels={channels}"
            )


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
        self.net = FlowRegressor(cfg.model).to(device)
        self.opt = make_adam(self.net.parameters(), cfg.train)
        self.sample_batch = sample_batch.to(device) if sample_batch is not None else None

    def modules(self) -> dict[str, torch.nn.Module]:
        return {MODULE_NAME: self.net}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"flow": self.opt}

    def _terms(self, batch: PairBatch, ctx: StepContext) -> tuple[FlowPrediction, dict]:
        """Forward pass and loss terms; a non-finite input or output is a NonFiniteLossError."""
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
        ctx.update("flow", loss)
        return {"loss": loss.detach(), **{k: v.detach() for k, v in terms.items()}}

    def validate(self, batches: Iterable[PairBatch], ctx: StepContext) -> dict[str, float]:
        """Per-pair means of ``epe_fg``, ``epe_visible``, ``vis_acc`` and the loss (terms)."""
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for batch in batches:
            pred, terms = self._terms(batch, ctx)
            values = flow_metrics(pred, batch.flow, batch.visibility, per_sample=True)
            size = len(batch)
            per_pair = {k: values[k] for k in ("epe_fg", "epe_visible", "vis_acc")}
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


def resolve_flows_dir(path: str | os.PathLike[str] | None) -> Path | None:
    """A flows folder: ``path`` itself, or ``path/flows`` for a ``synth-flow`` output folder."""
    if path is None:
        return None
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"flows folder {path} does not exist")
    inner = path / "flows"
    has_files = any(p.suffix in (".npz", ".corr") for p in path.iterdir())
    return inner if inner.is_dir() and not has_files else path


def make_flow_datasets(
    cfg: FlowStageConfig,
    data_root: str | os.PathLike[str],
    flows_dir: str | os.PathLike[str] | None = None,
) -> tuple[PairSubset, PairSubset | None, dict]:
    """The training pairs and the validation pairs carved from the same split.

    Args:
        cfg: The stage config (``data`` and ``train.seed``).
        data_root: Dataset folder.
        flows_dir: Flow files (or a ``synth-flow`` output); default: the dataset's own.

    Returns:
        ``(train, val or None, record)``; ``record`` describes the held-out groups (JSON-ready).

    Raises:
        FileNotFoundError: A missing flows folder or flow file (named).
        FormatError: Unreadable dataset files.
    """
    d = cfg.data
    flows = resolve_flows_dir(flows_dir)
    common = {"protocol": d.protocol, "pose_map": d.pose_map, "flows_dir": flows}
    base = PairDataset(
        data_root, d.train_split, require_flow=True, hflip_prob=d.hflip_prob,
        seed=cfg.train.seed, **common,
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


def train_flow(
    cfg: FlowStageConfig,
    data_root: str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    flows_dir: str | os.PathLike[str] | None = None,
) -> TrainResult:
    """Train the flow regressor; rerunning on a run folder with checkpoints resumes it.

    Args:
        cfg: The stage config (written to ``run_dir/config.yaml``).
        data_root: Dataset folder (PATN/GFLA or DIAF layout).
        run_dir: Run folder.
        flows_dir: Flow files (a folder of ``.npz``/``.corr`` or a ``synth-flow`` output);
            default: the dataset's flow store.

    Returns:
        The loop's summary; ``result.stage.net`` holds the final weights.
    """
    train_set, val_set, record = make_flow_datasets(cfg, data_root, flows_dir)
    _check_size(train_set, cfg.model)
    shown = val_set if val_set is not None else train_set
    picks = np.linspace(0, len(shown) - 1, min(_SAMPLE_PAIRS, len(shown))).round().astype(int)
    samples = collate_pairs([shown[int(i)] for i in picks])
    run_dir = Path(run_dir)
    if int(os.environ.get("RANK", "0")) == 0:
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
    run_dir: str | os.PathLike[str],
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
