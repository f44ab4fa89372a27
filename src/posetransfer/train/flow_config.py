"""Config of the flow-regression stage (``posetransfer train-flow``), saved as ``RUN/config.yaml``.

Sections: ``data`` (the dataset, its flow files, validation hold-out and pose maps), ``model``
(:class:`~posetransfer.models.flow_regressor.FlowRegressorConfig`), ``loss``
(:class:`~posetransfer.losses.flow.FlowLossConfig`) and ``train`` (the shared loop, with the
original flow regressor's optimiser as defaults). Like the generator stage's config, ``data.root``
names the dataset; config files and runs written before it existed still load (it defaults to
None, and ``--data`` sets it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from posetransfer.config import ConfigError
from posetransfer.data.pose_augment import PoseAugmentConfig
from posetransfer.eval.names import EPE_FG
from posetransfer.losses.flow import FlowLossConfig
from posetransfer.models.flow_regressor import FlowRegressorConfig, flow_input_channels
from posetransfer.pose.maps import PoseMapConfig
from posetransfer.train.settings import TrainConfig

__all__ = ["FlowDataConfig", "FlowStageConfig", "FlowTrainConfig"]


@dataclass(frozen=True)
class FlowDataConfig:
    """Which pairs the flow stage trains and validates on, and how they are prepared.

    Attributes:
        root: Dataset folder (PATN/GFLA or DIAF layout); ``--data`` sets it.
        flows_dir: Flow files: a folder of ``.npz``/``.corr`` files or a ``synth-flow`` output
            (its ``flows/`` is used); None: the dataset's own flow store. ``--flows`` sets it.
        protocol: Image protocol (``native``, ``deepfashion-256x176``, ``market-128x64``, ...).
        pose_map: Pose-map encoding (the original: disks of radius 8 at 256 px, 4 at 128 px).
        hflip_prob: Probability of mirroring a training pair (validation is never flipped).
        augment: Pose augmentation of the training pairs (never of validation pairs):
            ``scale``/``shift`` move the whole sample (images, poses, flow, visibility),
            ``offset``/``jitter``/``drop_prob`` add detector-like errors to the input keypoints
            only (:class:`~posetransfer.data.pose_augment.PoseAugmentConfig`); off by default.
        train_split: Split the training and validation pairs come from.
        val_fraction: Share of the training identities held out for validation (0: none, then
            there is no ``best`` checkpoint).
        val_by: ``identity`` (person, from the image names) or ``image`` (source image).
        val_max_pairs: Cap on validation pairs (a seeded draw), or None.
        val_seed: Seed of the held-out draw (independent of ``train.seed``).
    """

    root: Path | None = None
    flows_dir: Path | None = None
    protocol: str = "native"
    pose_map: PoseMapConfig = field(default_factory=PoseMapConfig)
    hflip_prob: float = 0.5
    augment: PoseAugmentConfig = field(default_factory=PoseAugmentConfig)
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
    val_metric: str = EPE_FG
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
