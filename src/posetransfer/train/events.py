"""One training run's state and the loop's step and events, driven by :mod:`.loop`.

:class:`Run` holds what changes while :func:`~posetransfer.train.loop.run_training` runs (the
:class:`~posetransfer.train.resume.Progress` counters, running means, the last losses and
validation metrics) and does each thing the loop asks for after fetching a batch: the training
step (learning-rate schedule, non-finite batches counted and skipped or raised), and the periodic
events: a ``stats.jsonl`` line, a sample grid, validation with the ``best/`` checkpoint, and a
full checkpoint (:func:`~posetransfer.train.resume.save_run_checkpoint`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

import posetransfer.train.checkpoint as ckpt_io
from posetransfer.config import ConfigError
from posetransfer.train.distributed import ShardedEpochSampler, all_reduce_sum_, average_buffers_
from posetransfer.train.resume import CHECKPOINTS_DIR, Progress, save_run_checkpoint
from posetransfer.train.settings import TrainConfig, lr_factor
from posetransfer.train.stage import (
    NonFiniteLossError,
    Stage,
    StepContext,
    eval_mode,
    move_to_device,
    nonfinite_fields,
)
from posetransfer.train.stats import ScalarMeans, StatsWriter, save_image_grid

__all__ = ["SAMPLES_DIR", "Run"]

logger = logging.getLogger(__name__)

SAMPLES_DIR = "samples"


@dataclass
class Run:
    """The state of one run; its methods are the loop's step and events.

    Attributes:
        ckpt_root: The run's ``checkpoints/`` folder.
        modules: The stage's modules.
        optimizers: The stage's optimisers.
    """

    cfg: TrainConfig
    run_dir: Path
    stage: Stage
    ctx: StepContext
    sampler: ShardedEpochSampler
    progress: Progress
    stats: StatsWriter
    val_loader: DataLoader[Any] | None
    val_count: int  # samples in this rank's validation shard
    means: ScalarMeans = field(default_factory=ScalarMeans)
    in_a_row: int = 0  # consecutive bad batches
    tick: tuple[int, float] = (0, 0.0)  # (step, training seconds) at the last log
    lrs: dict[str, float] = field(default_factory=dict)
    train_losses: dict[str, float] = field(default_factory=dict)
    val_metrics: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ckpt_root = self.run_dir / CHECKPOINTS_DIR
        self.modules = self.stage.modules()
        self.optimizers = self.stage.optimizers()
        self.tick = (self.progress.step, self.progress.train_time_s)

    def train_step(self, epoch: int, index: int, batch: Any) -> None:
        """Set the lr, run the stage's phases, handle a bad batch, advance the counters."""
        p = self.progress
        self.ctx.step, self.ctx.epoch, self.ctx.grad_norms = p.step, epoch, {}
        self.lrs = _set_lr(self.optimizers, lr_factor(p.step, self.cfg))
        try:
            values = self.stage.train_step(move_to_device(batch, self.ctx.device), self.ctx)
        except NonFiniteLossError as err:
            self._bad_batch(err, batch, epoch, index)
        else:
            if not isinstance(values, Mapping):
                raise TypeError(
                    f"{type(self.stage).__name__}.train_step must return a dict of scalars to "
                    f"log, got {type(values).__name__}"
                )
            self.means.add(values)
            self.means.add({f"grad_norm/{k}": v for k, v in self.ctx.grad_norms.items()})
            self.in_a_row = 0
        p.step += 1
        last = index + 1 == self.sampler.steps_per_epoch
        p.epoch, p.batch_in_epoch = (epoch + 1, 0) if last else (epoch, index + 1)

    def _bad_batch(self, err: NonFiniteLossError, batch: Any, epoch: int, index: int) -> None:
        """Raise an error naming the step and batch, or count the batch and skip it."""
        fields = nonfinite_fields(batch)
        where = f"step {self.progress.step + 1} (epoch {epoch}, batch {index})"  # as in stats
        what = f"{err}" + (f"; non-finite values in {', '.join(fields)}" if fields else "")
        if not self.cfg.skip_bad_batches:
            raise NonFiniteLossError(
                f"{where}: {what}. Set train.skip_bad_batches=true to skip and count such batches."
            ) from err
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        self.progress.bad_batches += 1
        self.in_a_row += 1
        logger.warning("%s: %s; skipped (%d so far)", where, what, self.progress.bad_batches)
        if self.in_a_row >= self.cfg.max_consecutive_bad_batches:
            raise NonFiniteLossError(
                f"{where}: {self.in_a_row} non-finite batches in a row "
                f"(train.max_consecutive_bad_batches); training has diverged. Last: {what}"
            ) from err

    def log(self, epoch: int) -> str:
        """Write a ``stats.jsonl`` line and TensorBoard scalars; return a progress-bar summary."""
        p = self.progress
        self.train_losses = self.means.pop(self.ctx.dist, self.ctx.device)
        steps, seconds = p.step - self.tick[0], max(p.train_time_s - self.tick[1], 1e-9)
        self.tick = (p.step, p.train_time_s)
        rate = steps * self.cfg.batch_size / seconds
        record = {
            "kind": "train",
            "step": p.step,
            "epoch": epoch,
            "time": round(p.train_time_s, 3),
            "lr": self.lrs,
            "losses": self.train_losses,
            "sec_per_step": seconds / steps,
            "samples_per_s": rate,
            "bad_batches": p.bad_batches,
        }
        scalars = {f"train/{k}": v for k, v in self.train_losses.items()}
        scalars |= {f"lr/{k}": v for k, v in self.lrs.items()} | {"perf/samples_per_s": rate}
        self.stats.write(record, scalars)
        if not all(math.isfinite(v) for v in self.train_losses.values()):
            logger.warning("step %d: non-finite logged values %s", p.step, self.train_losses)
        return ", ".join(f"{k}={v:.4g}" for k, v in self.train_losses.items())

    def save_samples(self) -> None:
        """Rank 0: write the stage's sample images as ``samples/step-N.png``."""
        if not self.ctx.dist.is_main:
            return
        self.ctx.step = self.progress.step
        with eval_mode(self.modules.values()):
            images = self.stage.sample_images(self.ctx)
        if images is not None:
            path = self.run_dir / SAMPLES_DIR / f"step-{self.progress.step:06d}.png"
            save_image_grid(images, path)

    def validate(self) -> None:
        """Validate on every rank's shard, average, update ``best/`` and write a ``val`` line."""
        cfg, dist, step = self.cfg, self.ctx.dist, self.progress.step
        self.ctx.step = step
        for module in self.modules.values():
            average_buffers_(module, dist)
        assert self.val_loader is not None
        with eval_mode(self.modules.values()):
            batches = (move_to_device(b, self.ctx.device) for b in self.val_loader)
            local = self.stage.validate(batches, self.ctx)
        if cfg.val_metric not in local:
            raise ConfigError(
                f"train.val_metric={cfg.val_metric!r} is not a validation result: {sorted(local)}"
            )
        keys = sorted(local)  # a mean over the whole set: weight each rank by its shard size
        packed = [float(local[k]) * self.val_count for k in keys] + [float(self.val_count)]
        total = all_reduce_sum_(torch.tensor(packed, dtype=torch.float64).to(self.ctx.device), dist)
        sums = total.cpu().tolist()
        self.val_metrics = {k: v / sums[-1] for k, v in zip(keys, sums[:-1], strict=True)}
        is_best = self._update_best(self.val_metrics[cfg.val_metric])
        if is_best and dist.is_main:
            meta = {"val_metric": cfg.val_metric, "value": self.progress.best_value}
            ckpt_io.save_best(
                self.ckpt_root, step, self.modules, meta | {"metrics": self.val_metrics}
            )
        record = {"kind": "val", "step": step, "metrics": self.val_metrics, "best": is_best}
        self.stats.write(record, {f"val/{k}": v for k, v in self.val_metrics.items()})
        logger.info("step %d: validation %s%s", step, self.val_metrics, " (best)" * is_best)

    def _update_best(self, value: float) -> bool:
        p = self.progress
        group = self.stage.best_group(p.step)
        if group != p.best_group:
            if p.best_value is not None:
                logger.info("step %d: best/ restarts (validation group %d)", p.step, group)
            p.best_value, p.best_step, p.best_group = None, None, group
        if not math.isfinite(value):
            logger.warning("step %d: validation metric is %s, not a best candidate", p.step, value)
            return False
        if p.best_value is not None:
            better = value < p.best_value if self.cfg.val_mode == "min" else value > p.best_value
            if not better:
                return False
        p.best_value, p.best_step = value, p.step
        return True

    def save_checkpoint(self) -> None:
        """All ranks sync buffers and gather RNG states; rank 0 writes; then a barrier."""
        save_run_checkpoint(
            self.ckpt_root,
            self.progress,
            self.modules,
            self.optimizers,
            self.ctx,
            self.sampler,
            self.cfg.keep_last,
        )


def _set_lr(optimizers: Mapping[str, torch.optim.Optimizer], factor: float) -> dict[str, float]:
    """Set every group's lr to ``initial_lr * factor``; return the first group's lr per name."""
    lrs = {}
    for name, opt in optimizers.items():
        for group in opt.param_groups:
            group.setdefault("initial_lr", group["lr"])
            group["lr"] = group["initial_lr"] * factor
        lrs[name] = opt.param_groups[0]["lr"]
    return lrs
