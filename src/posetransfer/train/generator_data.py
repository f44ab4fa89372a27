"""What a pose-transfer run trains on: its pairs and its flow regressor, checked before step one.

:func:`generator_datasets` holds validation pairs out of ``data.train_split`` by person (never the
test split) and checks the image size against ``generator.image_size``; :func:`flow_network`
loads the ``train-flow`` run named by ``flow.checkpoint`` when the generator or the refiner uses
flow (or takes the regressor of the ``init.run`` being fine-tuned).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import torch

from posetransfer.config import ConfigError, load_config
from posetransfer.data.datasets import PairDataset
from posetransfer.data.splits import PairSubset, carve_validation
from posetransfer.io import PathLike
from posetransfer.models.flow_regressor import FlowRegressor
from posetransfer.pose.maps import PoseMapConfig
from posetransfer.train.flow_stage import load_flow_regressor
from posetransfer.train.generator_config import (
    FLOW_MODEL_FILE,
    FlowModelRecord,
    GeneratorStageConfig,
)
from posetransfer.train.generator_init import init_flow_network

__all__ = ["flow_network", "generator_datasets", "load_flow_run", "recorded_flow_network"]

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


def recorded_flow_network(run_dir: PathLike) -> tuple[FlowRegressor, PoseMapConfig]:
    """A regressor built from ``RUN/flow_model.yaml`` (random weights: a resumed checkpoint
    fills them), so resuming a fine-tuning run does not need its init run.

    Raises:
        FileNotFoundError: The run has no ``flow_model.yaml``.
    """
    path = Path(run_dir) / FLOW_MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; cannot rebuild the run's flow regressor")
    record = load_config(FlowModelRecord, path)
    return FlowRegressor(record.model), record.pose_map


def flow_network(cfg: GeneratorStageConfig) -> tuple[FlowRegressor | None, PoseMapConfig | None]:
    """The run's flow regressor (on the CPU) and its pose maps, or ``(None, None)`` without flow.

    The regressor comes from ``flow.checkpoint`` (a ``train-flow`` run) or, without one, from
    the run named by ``init.run``.

    Raises:
        ConfigError: Neither ``flow.checkpoint`` nor ``init.run`` is set though flow is used.
        CheckpointError: The flow run has no such checkpoint or its weights do not fit.
    """
    if not cfg.needs_flow:
        return None, None
    if cfg.flow.checkpoint is not None:
        net, pose_map = load_flow_run(cfg.flow.checkpoint, cfg.flow.which, "cpu")
        where = str(cfg.flow.checkpoint)
    elif cfg.init.run is not None:
        net, pose_map = init_flow_network(cfg)
        where = f"the init run {cfg.init.run}"
    else:
        raise ConfigError(
            "flow.checkpoint is not set (pass --flow-checkpoint FLOW_RUN, a `posetransfer "
            "train-flow` run, or --init RUN, a generator run whose regressor is taken); it is "
            "needed with generator.use_flow or pixel_warp.enabled"
        )
    mode = "fine-tuned" if cfg.flow.finetune else "frozen"
    logger.info("flow regressor from %s, %s", where, mode)
    return net, pose_map


def generator_datasets(cfg: GeneratorStageConfig) -> tuple[PairSubset, PairSubset | None]:
    """Training pairs and validation pairs held out of the same split, by person.

    With ``flow.source="data"`` every pair must have its flow file.

    Raises:
        ValueError: An empty split, or images whose size is not ``generator.image_size``.
        FileNotFoundError: ``flow.source="data"`` and a pair has no flow file.
    """
    data = cfg.data
    assert data.root is not None
    common: dict[str, Any] = {"protocol": data.protocol, "pose_map": data.pose_map}
    if cfg.flow.source == "data" and cfg.needs_flow:
        common["require_flow"] = True  # flow.source=data: every pair needs its flow file
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
