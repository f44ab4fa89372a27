"""The training loop shared by the flow-regression and pose-transfer stages.

In the style of EDM/StyleGAN3's ``training_loop``: one function, :func:`run_training`, read top
to bottom. It counts optimisation *steps* (not epochs) over an endless, deterministic, resumable
and sharded sampler; a :class:`~posetransfer.train.stage.Stage` supplies modules, optimisers, one
training step and validation; the loop owns seeding, device, the learning-rate schedule,
non-finite batches, checkpoints, statistics, sample grids and the progress bar. A minimal stage::

    class Regression(Stage):
        def __init__(self, device):
            self.net = nn.Linear(4, 1).to(device)
            self.opt = make_adam(self.net.parameters(), cfg)
        def modules(self):
            return {"net": self.net}
        def optimizers(self):
            return {"net": self.opt}
        def train_step(self, batch, ctx):
            x, y = batch
            with ctx.autocast():
                loss = F.mse_loss(self.net(x), y)
            ctx.update("net", loss)          # backward, average over ranks, clip, step
            return {"mse": loss.detach()}    # logged: mean over steps and ranks

    run_training(Regression, train_set, val_set, TrainConfig(max_steps=1000), "runs/reg")

Rerunning :func:`run_training` on a run folder that has checkpoints resumes it: same data order,
same RNG streams, bitwise-identical weights on CPU. A step that hits a non-finite loss raises an
error naming the step and the batch fields holding NaN/inf or, with ``skip_bad_batches``, is
counted and skipped (it still counts as a step, so the schedule is unchanged). Under ``torchrun``
``batch_size`` is the global batch and only rank 0 writes. The step and the events live in
:mod:`.events`, saving and resuming in :mod:`.resume`, the files in :mod:`.checkpoint` and
:mod:`.stats`.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

import posetransfer.train.checkpoint as ckpt_io
from posetransfer.config import ConfigError
from posetransfer.io import remove_stale_temporaries
from posetransfer.train.allocator import retain_freed_memory
from posetransfer.train.distributed import (
    ShardedEpochSampler,
    broadcast_module_,
    distributed_session,
)
from posetransfer.train.events import Run
from posetransfer.train.resume import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    Progress,
    resume,
    write_run_config,
)
from posetransfer.train.settings import TrainConfig
from posetransfer.train.stage import Stage, StepContext
from posetransfer.train.stats import StatsWriter

__all__ = ["CONFIG_FILE", "TrainResult", "run_training", "seed_everything"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """What :func:`run_training` returns.

    Attributes:
        stage: The trained stage (its modules hold the final weights).
        step: Steps completed.
        resumed_from: Step the run resumed at, or None for a fresh run.
        last_checkpoint: Newest ``ckpt-*`` folder, if any.
        best_checkpoint: ``best/`` folder, if a validation set was given.
        best_value: Its ``val_metric`` value.
        bad_batches: Skipped non-finite batches over the whole run.
        train_losses: The last logged means.
        val_metrics: The last validation result.
    """

    stage: Stage
    step: int
    resumed_from: int | None
    last_checkpoint: Path | None
    best_checkpoint: Path | None
    best_value: float | None
    bad_batches: int
    train_losses: dict[str, float]
    val_metrics: dict[str, float]


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators (CUDA included)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def run_training(
    make_stage: Callable[[torch.device], Stage],
    train_dataset: Dataset[Any],
    val_dataset: Dataset[Any] | None,
    cfg: TrainConfig,
    run_dir: str | os.PathLike[str],
    *,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    resolved_config: Any = None,
) -> TrainResult:
    """Train a stage for ``cfg.max_steps`` steps, resuming if ``run_dir`` has checkpoints.

    Under ``torchrun`` every process calls this; ``cfg.batch_size`` is split over them.

    Args:
        make_stage: Builds the stage on the given device. Called after seeding with ``cfg.seed``
            (the same on every rank), so initial weights are reproducible.
        train_dataset: Map-style dataset; its ``set_epoch(epoch)`` is called if it has one.
        val_dataset: The validation split (never the test split): picks ``best/``. None: no
            validation.
        cfg: Loop settings.
        run_dir: Run folder: ``config.yaml``, ``stats.jsonl``, ``tb/``, ``checkpoints/``,
            ``samples/``.
        collate_fn: Batches samples (e.g. ``collate_pairs``); None uses torch's default.
        resolved_config: The full config dataclass for ``config.yaml`` (default: ``cfg``).

    Returns:
        The trained stage and a summary.
    """
    run_dir = Path(run_dir)
    retain_freed_memory()  # no per-step page faults for large tensors (train/allocator.py)
    with distributed_session(cfg.device) as (dist, device):
        if cfg.amp == "fp16" and device.type != "cuda":
            raise ConfigError(
                f"train.amp='fp16' needs CUDA, but the device is {device}; use 'bf16' or 'off'"
            )
        # Build the stage with the same seed on every rank; rank 0's weights win regardless.
        seed_everything(cfg.seed)
        stage = make_stage(device)
        for module in stage.modules().values():
            broadcast_module_(module, dist)
        ctx = StepContext(device, cfg.amp, dist, stage.optimizers(), cfg.grad_clip)

        # Data: rank r reads slice r of each global batch, in an order fixed by (seed, epoch).
        n_train = len(train_dataset)  # type: ignore[arg-type]
        sampler = ShardedEpochSampler(n_train, cfg.batch_size, cfg.seed, dist.rank, dist.world_size)
        loader = _loader(train_dataset, sampler.local_batch_size, sampler, cfg, collate_fn, device)
        val_loader, val_count = None, 0
        if val_dataset is not None:
            shard = range(dist.rank, len(val_dataset), dist.world_size)  # type: ignore[arg-type]
            if not shard:
                raise ValueError(f"the validation set has fewer samples than processes ({shard})")
            val_batch = cfg.val_batch_size or sampler.local_batch_size
            val_loader = _loader(val_dataset, val_batch, shard, cfg, collate_fn, device)
            val_count = len(shard)

        # Start, or resume from the latest checkpoint. From here each rank has its own RNG stream.
        seed_everything((cfg.seed * dist.world_size + dist.rank) % 2**31)
        progress, resumed_from = Progress(), None
        if dist.is_main:
            remove_stale_temporaries(run_dir)  # what a killed run was writing
            ckpt_io.repoint_latest(run_dir / CHECKPOINTS_DIR)
        if ckpt_io.list_checkpoints(run_dir / CHECKPOINTS_DIR):
            progress = resume(run_dir / CHECKPOINTS_DIR, stage, ctx, sampler)
            resumed_from = progress.step
        if dist.is_main:
            write_run_config(run_dir, resolved_config or cfg, progress.step)
        stats = StatsWriter(
            run_dir, enabled=dist.is_main, tensorboard=cfg.tensorboard, start_step=progress.step
        )
        run = Run(cfg, run_dir, stage, ctx, sampler, progress, stats, val_loader, val_count)

        batches = _batch_stream(loader, sampler, train_dataset, run.progress, cfg.seed, dist.rank)
        bar = tqdm(
            total=cfg.max_steps,
            initial=run.progress.step,
            unit="step",
            dynamic_ncols=True,
            disable=not (dist.is_main and cfg.progress),
            desc=run_dir.name,
        )
        try:
            while run.progress.step < cfg.max_steps:
                t0 = time.perf_counter()
                epoch, index, batch = next(batches)
                run.train_step(epoch, index, batch)
                run.progress.train_time_s += time.perf_counter() - t0  # data loading included
                bar.update(1)
                # Events after the step, in this order (a checkpoint captures everything before).
                step = run.progress.step
                if _due(step, cfg.log_every, cfg.max_steps):
                    summary = run.log(epoch)
                    bar.set_postfix_str(summary)
                    if bar.disable and dist.is_main:
                        logger.info("step %d/%d: %s", step, cfg.max_steps, summary)
                if cfg.sample_every and _due(step, cfg.sample_every, cfg.max_steps):
                    run.save_samples()
                if val_loader is not None and _due(step, cfg.val_every, cfg.max_steps):
                    run.validate()
                if _due(step, cfg.ckpt_every, cfg.max_steps):
                    run.save_checkpoint()
        finally:
            batches.close()  # stops DataLoader workers
            bar.close()
            run.stats.close()
        return _result(run, resumed_from)


def _due(step: int, every: int, max_steps: int) -> bool:
    """Whether an event with period ``every`` (0 = only at the end) fires after ``step`` steps."""
    return step == max_steps or (every > 0 and step % every == 0)


def _result(run: Run, resumed_from: int | None) -> TrainResult:
    """The summary of a finished run."""
    found = ckpt_io.list_checkpoints(run.ckpt_root)
    has_best = run.progress.best_value is not None
    return TrainResult(
        stage=run.stage,
        step=run.progress.step,
        resumed_from=resumed_from,
        last_checkpoint=found[-1][1] if found else None,
        best_checkpoint=run.ckpt_root / ckpt_io.BEST_DIR if has_best else None,
        best_value=run.progress.best_value,
        bad_batches=run.progress.bad_batches,
        train_losses=run.train_losses,
        val_metrics=run.val_metrics,
    )


# ------------------------------------------------------------------------------------------------
# Helpers.


def _loader(
    dataset: Dataset[Any],
    batch_size: int,
    sampler: Iterable[int],
    cfg: TrainConfig,
    collate_fn: Callable[[list[Any]], Any] | None,
    device: torch.device,
) -> DataLoader[Any]:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=cfg.num_workers,
        collate_fn=collate_fn,
        pin_memory=device.type == "cuda",
        generator=torch.Generator(),  # seeds the workers; reseeded per epoch
    )


def _batch_stream(
    loader: DataLoader[Any],
    sampler: ShardedEpochSampler,
    dataset: Dataset[Any],
    progress: Progress,
    seed: int,
    rank: int,
) -> Generator[tuple[int, int, Any], None, None]:
    """Endless ``(epoch, batch index in epoch, batch)``, starting where ``progress`` points."""
    epoch, start = progress.epoch, progress.batch_in_epoch
    while True:
        sampler.set_epoch(epoch, start)
        set_epoch = getattr(dataset, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)
        worker_seed = np.random.SeedSequence([seed, epoch, rank, start]).generate_state(1)[0]
        loader.generator.manual_seed(int(worker_seed))
        for index, batch in enumerate(loader, start=start):
            yield epoch, index, batch
        epoch, start = epoch + 1, 0
