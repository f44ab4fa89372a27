"""What a training run keeps between processes: its counters, full checkpoints, resume, config.

:func:`~posetransfer.train.loop.run_training` saves, every ``ckpt_every`` steps, the weights and
everything else needed to continue bit for bit: the :class:`Progress` counters, the optimiser and
grad-scaler states and every rank's RNG states (:func:`save_run_checkpoint`). Rerunning it on the
same run folder calls :func:`resume`, which restores them from the latest checkpoint. The run's
resolved config is written to ``config.yaml`` (:func:`write_run_config`); a different earlier
one is kept aside. The files themselves are :mod:`posetransfer.train.checkpoint`'s.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

import posetransfer.train.checkpoint as ckpt_io
from posetransfer.config import to_dict
from posetransfer.io import atomic_write_text
from posetransfer.train.distributed import (
    ShardedEpochSampler,
    all_gather_objects,
    average_buffers_,
    barrier,
)
from posetransfer.train.stage import Stage, StepContext

__all__ = [
    "CHECKPOINTS_DIR",
    "CONFIG_FILE",
    "Progress",
    "resume",
    "save_run_checkpoint",
    "write_run_config",
]

logger = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
CONFIG_FILE = "config.yaml"


@dataclass
class Progress:
    """Counters that a checkpoint saves and a resume restores."""

    step: int = 0
    epoch: int = 0  # epoch of the next batch
    batch_in_epoch: int = 0  # index of the next batch in that epoch
    bad_batches: int = 0
    best_value: float | None = None
    best_step: int | None = None
    best_group: int = 0  # Stage.best_group of best_step
    train_time_s: float = 0.0


def save_run_checkpoint(
    ckpt_root: Path,
    progress: Progress,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    ctx: StepContext,
    sampler: ShardedEpochSampler,
    keep_last: int | None,
) -> None:
    """Save a ``ckpt-*`` folder: all ranks sync buffers and gather RNG states; rank 0 writes.

    Args:
        ckpt_root: The run's ``checkpoints/`` folder.
        progress: The counters after the last step.
        modules: The stage's modules (their weights).
        optimizers: The stage's optimisers.
        ctx: The step context (distributed info, grad scalers).
        sampler: The training sampler (its batch layout is saved to detect changes on resume).
        keep_last: Checkpoints to keep (older ones are pruned); None keeps all.
    """
    dist = ctx.dist
    for module in modules.values():
        average_buffers_(module, dist)
    rng = all_gather_objects(ckpt_io.capture_rng_state(), dist)
    if dist.is_main:
        state = {
            "format": 1,
            "progress": dataclasses.asdict(progress),
            "world_size": dist.world_size,
            "global_batch_size": sampler.global_batch_size,
            "steps_per_epoch": sampler.steps_per_epoch,
            "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
            "grad_scalers": ctx.scaler_states(),
            "rng": rng,
        }
        meta = {"epoch": progress.epoch}
        path = ckpt_io.save_checkpoint(ckpt_root, progress.step, modules, state, meta)
        ckpt_io.prune_checkpoints(ckpt_root, keep_last)
        logger.info("step %d: saved %s", progress.step, path)
    barrier(dist)


def resume(
    ckpt_root: Path, stage: Stage, ctx: StepContext, sampler: ShardedEpochSampler
) -> Progress:
    """Load weights, optimiser, grad-scaler and RNG states and counters of the latest checkpoint.

    Args:
        ckpt_root: The run's ``checkpoints/`` folder (it holds at least one ``ckpt-*``).
        stage: The freshly built stage; its modules and optimisers are loaded in place.
        ctx: The step context; its grad scalers are loaded in place.
        sampler: The training sampler; a changed batch layout restarts the data order.

    Returns:
        The saved counters.

    Raises:
        CheckpointMismatchError: The checkpoint does not fit the stage's modules or optimisers.
    """
    ckpt = ckpt_io.find_checkpoint(ckpt_root, "latest")
    modules, optimizers = stage.modules(), stage.optimizers()
    ckpt_io.load_module_weights(ckpt, modules, exact=True)
    state = ckpt_io.load_state(ckpt)
    if set(state["optimizers"]) != set(optimizers):
        raise ckpt_io.CheckpointMismatchError(
            f"{ckpt}: holds optimizers {sorted(state['optimizers'])}, "
            f"but the stage has {sorted(optimizers)}"
        )
    for name, opt in optimizers.items():
        try:
            opt.load_state_dict(state["optimizers"][name])
        except ValueError as e:
            raise ckpt_io.CheckpointMismatchError(f"{ckpt}: optimizer '{name}': {e}") from e
    ctx.load_scaler_states(state["grad_scalers"])
    if len(state["rng"]) == ctx.dist.world_size:
        ckpt_io.restore_rng_state(state["rng"][ctx.dist.rank])
    else:
        logger.warning("%s: saved by %d processes, not %d; RNG streams restart from the seed",
                       ckpt, len(state["rng"]), ctx.dist.world_size)  # fmt: skip
    progress = Progress(**state["progress"])
    saved_layout = (state["global_batch_size"], state["steps_per_epoch"])
    if saved_layout != (sampler.global_batch_size, sampler.steps_per_epoch):
        logger.warning("%s: batch size or dataset length changed; the data order differs", ckpt)
        if progress.batch_in_epoch >= sampler.steps_per_epoch:
            progress.epoch, progress.batch_in_epoch = progress.epoch + 1, 0
    logger.info("resuming %s at step %d", ckpt, progress.step)
    return progress


def write_run_config(run_dir: Path, config: Any, step: int) -> None:
    """Write ``config.yaml``; a different earlier one is kept as ``config.until-step-N.yaml``.

    Args:
        run_dir: The run folder.
        config: The resolved config dataclass.
        step: The step the run starts at (names the kept-aside file).

    Raises:
        TypeError: ``config`` is not a dataclass instance.
    """
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"resolved_config must be a config dataclass, got {type(config).__name__}")
    path = run_dir / CONFIG_FILE
    text = yaml.safe_dump(to_dict(config), sort_keys=False)
    if path.is_file():
        if path.read_text(encoding="utf-8") == text:
            return
        aside = run_dir / f"config.until-step-{step:06d}.yaml"
        os.replace(path, aside)
        logger.warning("the config differs from the run's previous one (kept as %s)", aside)
    atomic_write_text(path, text)
