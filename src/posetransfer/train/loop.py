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
``batch_size`` is the global batch and only rank 0 writes. Files: :mod:`.checkpoint`, :mod:`.stats`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from posetransfer.config import ConfigError, to_dict
from posetransfer.io import atomic_write_text
from posetransfer.train import checkpoint as ckpt_io
from posetransfer.train.distributed import (
    ShardedEpochSampler,
    all_gather_objects,
    all_reduce_sum_,
    average_buffers_,
    barrier,
    broadcast_module_,
    distributed_session,
)
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

__all__ = ["TrainResult", "run_training", "seed_everything"]

logger = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
CONFIG_FILE = "config.yaml"
SAMPLES_DIR = "samples"


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
        progress, resumed_from = _Progress(), None
        if ckpt_io.list_checkpoints(run_dir / CHECKPOINTS_DIR):
            progress = _resume(run_dir / CHECKPOINTS_DIR, stage, ctx, sampler)
            resumed_from = progress.step
        if dist.is_main:
            _write_run_config(run_dir, resolved_config or cfg, progress.step)
        stats = StatsWriter(
            run_dir, enabled=dist.is_main, tensorboard=cfg.tensorboard, start_step=progress.step
        )
        run = _Run(cfg, run_dir, stage, ctx, sampler, progress, stats, val_loader, val_count)

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
        return run.result(resumed_from)


def _due(step: int, every: int, max_steps: int) -> bool:
    """Whether an event with period ``every`` (0 = only at the end) fires after ``step`` steps."""
    return step == max_steps or (every > 0 and step % every == 0)


@dataclass
class _Progress:
    """Counters that a checkpoint saves and a resume restores."""

    step: int = 0
    epoch: int = 0  # epoch of the next batch
    batch_in_epoch: int = 0  # index of the next batch in that epoch
    bad_batches: int = 0
    best_value: float | None = None
    best_step: int | None = None
    best_group: int = 0  # Stage.best_group of best_step
    train_time_s: float = 0.0


@dataclass
class _Run:
    """The state of one run; its methods are the loop's step and events."""

    cfg: TrainConfig
    run_dir: Path
    stage: Stage
    ctx: StepContext
    sampler: ShardedEpochSampler
    progress: _Progress
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
        dist = self.ctx.dist
        for module in self.modules.values():
            average_buffers_(module, dist)
        rng = all_gather_objects(ckpt_io.capture_rng_state(), dist)
        if dist.is_main:
            state = {
                "format": 1,
                "progress": dataclasses.asdict(self.progress),
                "world_size": dist.world_size,
                "global_batch_size": self.sampler.global_batch_size,
                "steps_per_epoch": self.sampler.steps_per_epoch,
                "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
                "grad_scalers": self.ctx.scaler_states(),
                "rng": rng,
            }
            meta = {"epoch": self.progress.epoch}
            path = ckpt_io.save_checkpoint(
                self.ckpt_root, self.progress.step, self.modules, state, meta
            )
            ckpt_io.prune_checkpoints(self.ckpt_root, self.cfg.keep_last)
            logger.info("step %d: saved %s", self.progress.step, path)
        barrier(dist)

    def result(self, resumed_from: int | None) -> TrainResult:
        found = ckpt_io.list_checkpoints(self.ckpt_root)
        has_best = self.progress.best_value is not None
        return TrainResult(
            stage=self.stage,
            step=self.progress.step,
            resumed_from=resumed_from,
            last_checkpoint=found[-1][1] if found else None,
            best_checkpoint=self.ckpt_root / ckpt_io.BEST_DIR if has_best else None,
            best_value=self.progress.best_value,
            bad_batches=self.progress.bad_batches,
            train_losses=self.train_losses,
            val_metrics=self.val_metrics,
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
        sampler=sampler,  # type: ignore[arg-type]
        num_workers=cfg.num_workers,
        collate_fn=collate_fn,
        pin_memory=device.type == "cuda",
        generator=torch.Generator(),  # seeds the workers; reseeded per epoch
    )


def _batch_stream(
    loader: DataLoader[Any],
    sampler: ShardedEpochSampler,
    dataset: Dataset[Any],
    progress: _Progress,
    seed: int,
    rank: int,
) -> Iterator[tuple[int, int, Any]]:
    """Endless ``(epoch, batch index in epoch, batch)``, starting where ``progress`` points."""
    epoch, start = progress.epoch, progress.batch_in_epoch
    while True:
        sampler.set_epoch(epoch, start)
        set_epoch = getattr(dataset, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)
        worker_seed = np.random.SeedSequence([seed, epoch, rank, start]).generate_state(1)[0]
        loader.generator.manual_seed(int(worker_seed))  # type: ignore[union-attr]
        for index, batch in enumerate(loader, start=start):
            yield epoch, index, batch
        epoch, start = epoch + 1, 0


def _set_lr(optimizers: Mapping[str, torch.optim.Optimizer], factor: float) -> dict[str, float]:
    """Set every group's lr to ``initial_lr * factor``; return the first group's lr per name."""
    lrs = {}
    for name, opt in optimizers.items():
        for group in opt.param_groups:
            group.setdefault("initial_lr", group["lr"])
            group["lr"] = group["initial_lr"] * factor
        lrs[name] = opt.param_groups[0]["lr"]
    return lrs


def _resume(
    ckpt_root: Path, stage: Stage, ctx: StepContext, sampler: ShardedEpochSampler
) -> _Progress:
    """Load weights, optimiser, grad-scaler and RNG states and counters of the latest checkpoint."""
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
    progress = _Progress(**state["progress"])
    saved_layout = (state["global_batch_size"], state["steps_per_epoch"])
    if saved_layout != (sampler.global_batch_size, sampler.steps_per_epoch):
        logger.warning("%s: batch size or dataset length changed; the data order differs", ckpt)
        if progress.batch_in_epoch >= sampler.steps_per_epoch:
            progress.epoch, progress.batch_in_epoch = progress.epoch + 1, 0
    logger.info("resuming %s at step %d", ckpt, progress.step)
    return progress


def _write_run_config(run_dir: Path, config: Any, step: int) -> None:
    """Write ``config.yaml``; a different earlier one is kept as ``config.until-step-N.yaml``."""
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
