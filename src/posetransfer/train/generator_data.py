"""What a pose-transfer run trains on: its pairs and its flow regressor, checked before step one.

:func:`generator_datasets` holds validation pairs out of ``data.train_split`` by person (never the
test split) and checks the image size against ``generator.image_size``; :func:`flow_network`
loads the ``train-flow`` run named by ``flow.checkpoint`` when the generator or the refiner uses
flow.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import torch

from posetransfer.config import ConfigError
from posetransfer.data.datasets import PairDataset
from posetransfer.data.splits import PairSubset, carve_validation
from posetransfer.io import PathLike
from posetransfer.models.flow_regressor import FlowRegressor
from posetransfer.pose.maps import PoseMapConfig
from posetransfer.train.flow_stage import load_flow_regressor
from posetransfer.train.generator_config import GeneratorStageConfig

__all__ = ["flow_network", "generator_datasets", "load_flow_run"]

logger = logging.getLogger(__name__)


def load_flow_run(
    path: PathLike, which: Literal["best", "latest"], device: torch.device | str
) -> tuple[FlowRegressor, PoseMapConfig]:
    """A trained flow regressor and its pose-map settings from a ``train-flow`` run.

    Raises:
        CheckpointError: If the run has no such checkpoint or its weights do not fit.
    """
    net, flow_cfg = load_flow_regressor(path, which=which, device=device)
    return net, flow_cfg.data.pose_map


def flow_network(cfg: GeneratorStageConfig) -> tuple[FlowRegressor | None, PoseMapConfig | None]:
    """The run's flow regressor (on the CPU) and its pose maps, or ``(None, None)`` without flow.

    Raises:
        ConfigError: ``flow.checkpoint`` is not set though flow is used.
        CheckpointError: The flow run has no such checkpoint or its weights do not fit.
    """
    if not cfg.needs_flow:
        return None, None
    if cfg.flow.checkpoint is None:
        raise ConfigError(
            "flow.checkpoint is not set (pass --flow-checkpoint FLOW_RUN, a `posetransfer "
            "train-flow` run); it is needed with generator.use_flow or pixel_warp.enabled"
        )
    net, pose_map = load_flow_run(cfg.flow.checkpoint, cfg.flow.which, "cpu")
    logger.info(
        "flow regressor from %s, %s",
        cfg.flow.checkpoint,
        "fine-tuned" if cfg.flow.finetune else "frozen",
    )
    return net, pose_map


def generator_datasets(cfg: GeneratorStageConfig) -> tuple[PairSubset, PairSubset | None]:
    """Training pairs and validation pairs held out of the same split, by person.

    Raises:
        ValueError: An empty split, or images whose size is not ``generator.image_size``.
    """
    data = cfg.data
    assert data.root is not None
    common: dict[str, Any] = {"protocol": data.protocol, "pose_map": data.pose_map}
    base = PairDataset(
        data.root, data.train_split, hflip_prob=data.hflip_prob, seed=cfg.train.seed, **common
    )
    if len(base) == 0:
        raise ValueError(f"{data.root}: split {data.train_split!r} has no pairs")
    first = base[0]
    size = tuple(first.source_image.shape[-2:])
    if size != tuple(cfg.generator.image_size):
        raise ValueError(
            f"{base.image_path(first.source_name)}: images of {data.root} are "
            f"{size[0]}x{size[1]} after protocol {data.protocol!r}, but generator.image_size is "
            f"{list(cfg.generator.image_size)}; set generator.image_size=[{size[0]},{size[1]}] "
            "or pick another data.protocol"
        )
    split = carve_validation(
        base.pairs, data.val_fraction, by=data.val_by, seed=data.val_seed,
        max_pairs=data.val_max_pairs,
    )  # fmt: skip
    logger.info(
        "%s: %d training pairs, %d validation pairs (%d of %d groups by %s)",
        data.train_split, len(split.train), len(split.val), len(split.val_groups),
        split.num_groups, data.val_by,
    )  # fmt: skip
    if not split.val:
        return PairSubset(base, split.train), None
    val_base = PairDataset(data.root, data.train_split, **common)
    return PairSubset(base, split.train), PairSubset(val_base, split.val)
