"""Settings of the training loop (:class:`TrainConfig`) and its learning-rate schedule.

Every stage config nests one ``TrainConfig`` under ``train:``; the schedule is a pure function of
the step (:func:`lr_factor`), so resuming needs no scheduler state.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from posetransfer.config import ConfigError

__all__ = ["TrainConfig", "lr_factor", "make_adam", "memory_format"]


@dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`run_training` (nested as ``train:`` in each stage's config).

    The optimiser defaults are the original's pose-transfer generator settings (Adam 2e-4,
    betas (0.5, 0.999), no weight decay; ``official_repo.md`` §4.10). The original flow
    regressor used Adam 1e-4, betas (0.9, 0.999), weight decay 4e-4 (§3.5): the flow stage's
    config overrides these. ``amp="fp16"`` needs CUDA (it relies on a CUDA GradScaler);
    ``"bf16"`` also runs on CPU (slowly), which is how its code path is tested.
    """

    max_steps: int = 100_000  # optimisation steps (iterations) in total
    batch_size: int = 8  # global: summed over processes (original: 8)
    num_workers: int = 4  # DataLoader workers per process
    lr: float = 2e-4  # base learning rate (make_adam)
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 0.0
    lr_schedule: Literal["constant", "linear", "cosine", "step"] = "constant"
    lr_warmup_steps: int = 0  # linear ramp from lr/warmup to lr over the first steps
    lr_decay_start: int = 0  # linear/cosine: decay from this step to lr*lr_final_factor at end
    lr_final_factor: float = 0.0
    lr_step_size: int = 1  # step: multiply by lr_step_gamma every lr_step_size steps
    lr_step_gamma: float = 0.5
    grad_clip: float | None = None  # max global L2 norm per optimiser, None = no clipping
    amp: Literal["off", "bf16", "fp16"] = "off"
    # Layout of the networks' weights and activations: "auto" = channels_last on a CPU (1.2x
    # faster generator steps, 1.44x flow regressor; BENCHMARKS.md), contiguous on CUDA
    # and others (unmeasured there). Not bit-equal to contiguous (batch-norm statistics in
    # float32).
    memory_format: Literal["auto", "contiguous", "channels_last"] = "auto"
    log_every: int = 50  # steps between stats.jsonl lines
    val_every: int = 1000  # 0 = only after the last step
    ckpt_every: int = 1000  # 0 = only after the last step
    sample_every: int = 0  # sample grids from Stage.sample_images; 0 = never
    keep_last: int | None = 3  # ckpt-* folders kept; None = all (best/ is separate)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    skip_bad_batches: bool = False  # count and skip non-finite losses instead of raising
    max_consecutive_bad_batches: int = 10  # then raise even when skipping (diverged)
    val_metric: str = "loss"  # key of Stage.validate's result that picks best/
    val_mode: Literal["min", "max"] = "min"
    val_batch_size: int | None = None  # per process; None = the training batch per process
    tensorboard: bool = True
    progress: bool = True  # tqdm bar on rank 0

    def __post_init__(self) -> None:
        checks = [
            ("max_steps", self.max_steps >= 1, ">= 1"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("num_workers", self.num_workers >= 0, ">= 0"),
            ("lr", self.lr > 0, "> 0"),
            ("betas", len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "in [0, 1)"),
            ("weight_decay", self.weight_decay >= 0, ">= 0"),
            ("lr_schedule", self.lr_schedule in ("constant", "linear", "cosine", "step"),
             "constant, linear, cosine or step"),
            ("lr_warmup_steps", self.lr_warmup_steps >= 0, ">= 0"),
            ("lr_decay_start", 0 <= self.lr_decay_start < self.max_steps, "in [0, max_steps)"),
            ("lr_final_factor", 0 <= self.lr_final_factor <= 1, "in [0, 1]"),
            ("lr_step_size", self.lr_step_size >= 1, ">= 1"),
            ("lr_step_gamma", self.lr_step_gamma > 0, "> 0"),
            ("grad_clip", self.grad_clip is None or self.grad_clip > 0, "None or > 0"),
            ("amp", self.amp in ("off", "bf16", "fp16"), "off, bf16 or fp16"),
            ("memory_format", self.memory_format in ("auto", "contiguous", "channels_last"),
             "auto, contiguous or channels_last"),
            ("log_every", self.log_every >= 1, ">= 1"),
            ("val_every", self.val_every >= 0, ">= 0"),
            ("ckpt_every", self.ckpt_every >= 0, ">= 0"),
            ("sample_every", self.sample_every >= 0, ">= 0"),
            ("keep_last", self.keep_last is None or self.keep_last >= 1, "None or >= 1"),
            ("device", self.device in ("auto", "cpu", "cuda"), "auto, cpu or cuda"),
            ("max_consecutive_bad_batches", self.max_consecutive_bad_batches >= 1, ">= 1"),
            ("val_mode", self.val_mode in ("min", "max"), "min or max"),
            ("val_batch_size", self.val_batch_size is None or self.val_batch_size >= 1,
             "None or >= 1"),
        ]  # fmt: skip
        for name, ok, rule in checks:
            if not ok:
                raise ConfigError(f"train.{name} must be {rule}, got {getattr(self, name)!r}")


def memory_format(cfg: TrainConfig, device: torch.device) -> torch.memory_format:
    """The memory format the networks train in: ``cfg.memory_format``, ``"auto"`` resolved.

    Args:
        cfg: The training settings.
        device: The device the stage runs on.

    Returns:
        ``torch.channels_last`` or ``torch.contiguous_format``.
    """
    name = cfg.memory_format
    if name == "auto":
        name = "channels_last" if device.type == "cpu" else "contiguous"
    return torch.channels_last if name == "channels_last" else torch.contiguous_format


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of every optimiser's base lr at 0-based step ``step``.

    ``constant``: 1. ``step``: ``lr_step_gamma ** (step // lr_step_size)``. ``linear`` and
    ``cosine``: 1 until ``lr_decay_start``, then down to ``lr_final_factor`` at ``max_steps``.
    A warm-up, if any, multiplies the result by ``min(1, (step + 1) / lr_warmup_steps)``.
    """
    if cfg.lr_schedule == "constant":
        factor = 1.0
    elif cfg.lr_schedule == "step":
        factor = cfg.lr_step_gamma ** (step // cfg.lr_step_size)
    else:
        t = min(max(step - cfg.lr_decay_start, 0) / (cfg.max_steps - cfg.lr_decay_start), 1.0)
        shape = 1.0 - t if cfg.lr_schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * t))
        factor = cfg.lr_final_factor + (1.0 - cfg.lr_final_factor) * shape
    if cfg.lr_warmup_steps:
        factor *= min(1.0, (step + 1) / cfg.lr_warmup_steps)
    return factor


def make_adam(
    params: Iterable[nn.Parameter] | Iterable[dict[str, Any]],
    cfg: TrainConfig,
    lr: float | None = None,
    weight_decay: float | None = None,
) -> torch.optim.Adam:
    """Adam with ``cfg``'s settings; ``lr``/``weight_decay`` override (e.g. a discriminator's).

    ``params`` are parameters or torch parameter groups (dicts with ``"params"`` and overrides).
    """
    return torch.optim.Adam(
        params,
        lr=cfg.lr if lr is None else lr,
        betas=cfg.betas,
        weight_decay=cfg.weight_decay if weight_decay is None else weight_decay,
    )
