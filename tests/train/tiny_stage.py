"""A tiny stage for the training-loop tests: an MLP (optionally with dropout and input noise)
regressing ``y = x @ w`` on a synthetic dataset whose samples carry their index."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from posetransfer.train import Stage, StepContext, TrainConfig, make_adam, run_training

DIM = 4


class RegressionData(Dataset):
    """``n`` samples ``{"index", "x", "y"}``; samples listed in ``nan_at`` have NaN inputs."""

    def __init__(self, n: int = 64, seed: int = 0, nan_at: Iterable[int] = ()) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, DIM, generator=g)
        w = torch.randn(DIM, 1, generator=torch.Generator().manual_seed(1234))  # shared target
        self.y = self.x @ w
        self.nan_at = set(nan_at)
        self.epochs: list[int] = []

    def __len__(self) -> int:
        return len(self.x)

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        x = torch.full((DIM,), math.nan) if i in self.nan_at else self.x[i]
        return {"index": torch.tensor(i), "x": x, "y": self.y[i]}


@dataclass
class StageOptions:
    hidden: int = 8
    dropout: float = 0.0
    noise: float = 0.0  # std of input noise drawn from torch's global RNG in train_step
    val_script: Mapping[int, float] | None = None  # step -> value reported as "scripted"
    with_samples: bool = False
    group_from: int | None = None  # steps >= this compete for best/ in group 1
    snapshots: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)


class RegressionStage(Stage):
    def __init__(self, device: torch.device, cfg: TrainConfig, opts: StageOptions) -> None:
        self.opts = opts
        self.net = nn.Sequential(
            nn.Linear(DIM, opts.hidden),
            nn.ReLU(),
            nn.Dropout(opts.dropout),
            nn.Linear(opts.hidden, 1),
        ).to(device)
        self.opt = make_adam(self.net.parameters(), cfg)
        self.seen: list[list[int]] = []

    def modules(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"net": self.opt}

    def train_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, Any]:
        self.seen.append(batch["index"].tolist())
        x = batch["x"]
        if self.opts.noise:
            x = x + self.opts.noise * torch.randn_like(x)
        with ctx.autocast():
            pred = self.net(x)
        loss = F.mse_loss(pred.float(), batch["y"])
        ctx.update("net", loss)
        return {"mse": loss.detach()}

    def validate(self, batches: Iterable[dict[str, torch.Tensor]], ctx: StepContext) -> dict:
        total, n = 0.0, 0
        for b in batches:
            total += F.mse_loss(self.net(b["x"]), b["y"], reduction="sum").item()
            n += len(b["x"])
        out = {"mse": total / n}
        if self.opts.val_script is not None:
            out["scripted"] = self.opts.val_script[ctx.step]
            self.opts.snapshots[ctx.step] = {k: v.clone() for k, v in self.net.state_dict().items()}
        return out

    def best_group(self, step: int) -> int:
        return int(self.opts.group_from is not None and step >= self.opts.group_from)

    def sample_images(self, ctx: StepContext) -> torch.Tensor | None:
        if not self.opts.with_samples:
            return None
        return torch.linspace(-1, 1, 4 * 3 * 5 * 6).reshape(4, 3, 5, 6)


def quiet_config(**changes: Any) -> TrainConfig:
    """A fast CPU config: no workers, no progress bar, no TensorBoard, lr 1e-2."""
    base = TrainConfig(
        max_steps=10,
        batch_size=8,
        num_workers=0,
        lr=1e-2,
        betas=(0.9, 0.999),
        device="cpu",
        log_every=1,
        val_every=0,
        ckpt_every=5,
        keep_last=None,
        val_metric="mse",
        tensorboard=False,
        progress=False,
    )
    return replace(base, **changes)


def train(
    run_dir: Path,
    cfg: TrainConfig,
    opts: StageOptions | None = None,
    data: Dataset | None = None,
    val: Dataset | None = None,
):
    """Run :func:`run_training` on the tiny stage; returns the TrainResult."""
    opts = opts or StageOptions()
    return run_training(
        lambda device: RegressionStage(device, cfg, opts),
        data if data is not None else RegressionData(),
        val,
        cfg,
        run_dir,
    )


def ddp_worker(rank: int, world_size: int, port: int, run_dir: str, out_dir: str) -> None:
    """Body of one process of the 2-process gloo test (started by torch.multiprocessing)."""
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    cfg = quiet_config(max_steps=6, ckpt_every=3, log_every=2, val_every=3)
    result = train(Path(run_dir) / f"rank{rank}", cfg, val=RegressionData(n=10, seed=1))
    stage = result.stage
    torch.save(
        {
            "weights": stage.net.state_dict(),
            "seen": stage.seen,
            "val": result.val_metrics,
            "losses": result.train_losses,
        },
        Path(out_dir) / f"rank{rank}.pt",
    )
