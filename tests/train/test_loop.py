"""Tests of posetransfer.train.loop.run_training on a tiny regression stage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image
from torch import nn

from posetransfer.config import ConfigError
from posetransfer.train import (
    NonFiniteLossError,
    ShardedEpochSampler,
    Stage,
    make_adam,
    requires_grad,
    run_training,
)

from .tiny_stage import RegressionData, RegressionStage, StageOptions, quiet_config, train


@pytest.fixture(autouse=True)
def _single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


def _stats(run_dir: Path, kind: str = "train") -> list[dict]:
    lines = (run_dir / "stats.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def _steps_with(index: int, n: int, batch: int, max_steps: int, seed: int = 0) -> list[int]:
    """1-based steps whose batch holds sample ``index`` (the sampler's documented order)."""
    sampler = ShardedEpochSampler(n, batch, seed)
    found = []
    for step in range(max_steps):
        epoch, b = divmod(step, sampler.steps_per_epoch)
        if index in sampler.global_order(epoch)[b * batch : (b + 1) * batch]:
            found.append(step + 1)
    return found


def test_loss_falls(tmp_path: Path) -> None:
    result = train(tmp_path, quiet_config(max_steps=60))
    mse = [r["losses"]["mse"] for r in _stats(tmp_path)]
    assert len(mse) == 60
    assert np.mean(mse[-5:]) < 0.2 * np.mean(mse[:5])
    assert result.step == 60 and result.resumed_from is None and result.bad_batches == 0


def test_data_order_follows_the_sampler_and_epochs_reach_the_dataset(tmp_path: Path) -> None:
    data = RegressionData(n=64)
    result = train(tmp_path, quiet_config(max_steps=20, seed=3), data=data)
    sampler = ShardedEpochSampler(64, 8, seed=3)
    expected = [
        sampler.global_order(s // 8)[(s % 8) * 8 : (s % 8 + 1) * 8].tolist() for s in range(20)
    ]
    assert result.stage.seen == expected
    assert data.epochs == [0, 1, 2]


def test_worker_processes_give_the_same_order_and_weights(tmp_path: Path) -> None:
    inline = train(tmp_path / "a", quiet_config(max_steps=12))
    first = train(tmp_path / "b", quiet_config(max_steps=7, num_workers=2))
    second = train(tmp_path / "b", quiet_config(max_steps=12, num_workers=2))
    assert first.stage.seen + second.stage.seen == inline.stage.seen
    a, b = inline.stage.net.state_dict(), second.stage.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_train_step_must_return_a_dict(tmp_path: Path) -> None:
    class Silent(RegressionStage):
        def train_step(self, batch, ctx):  # type: ignore[no-untyped-def]
            super().train_step(batch, ctx)

    cfg = quiet_config(max_steps=2)
    with pytest.raises(TypeError, match=r"Silent\.train_step must return a dict.*NoneType"):
        run_training(
            lambda d: Silent(d, cfg, StageOptions()), RegressionData(), None, cfg, tmp_path
        )


def test_nan_batch_raises_naming_the_step(tmp_path: Path) -> None:
    bad_index = 37
    first = _steps_with(bad_index, 64, 8, 20)[0]
    data = RegressionData(nan_at=[bad_index])
    with pytest.raises(NonFiniteLossError, match=rf"step {first} .*batch\.x.*skip_bad_batches"):
        train(tmp_path, quiet_config(max_steps=20), data=data)


def test_nan_batches_are_counted_and_skipped(tmp_path: Path) -> None:
    bad_index = 37
    expected = _steps_with(bad_index, 64, 8, 20)
    assert len(expected) >= 2  # the sample recurs once per epoch
    cfg = quiet_config(max_steps=20, skip_bad_batches=True)
    result = train(tmp_path, cfg, data=RegressionData(nan_at=[bad_index]))
    assert result.step == 20 and result.bad_batches == len(expected)
    assert all(torch.isfinite(p).all() for p in result.stage.net.parameters())
    counts = {r["step"]: r["bad_batches"] for r in _stats(tmp_path)}
    assert [counts[s] - counts.get(s - 1, 0) for s in expected] == [1] * len(expected)
    assert counts[20] == len(expected)


def test_a_streak_of_bad_batches_stops_training(tmp_path: Path) -> None:
    cfg = quiet_config(max_steps=20, skip_bad_batches=True, max_consecutive_bad_batches=3)
    with pytest.raises(NonFiniteLossError, match=r"step 3 .*3 non-finite batches in a row"):
        train(tmp_path, cfg, data=RegressionData(nan_at=range(64)))


def test_fp16_on_cpu_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"fp16.*needs CUDA"):
        train(tmp_path, quiet_config(amp="fp16"))


def test_bf16_autocast_trains_on_cpu(tmp_path: Path) -> None:
    train(tmp_path, quiet_config(max_steps=40, amp="bf16"))
    mse = [r["losses"]["mse"] for r in _stats(tmp_path)]
    assert np.mean(mse[-5:]) < 0.5 * np.mean(mse[:5])


def test_lr_schedule_reaches_the_optimiser(tmp_path: Path) -> None:
    cfg = quiet_config(max_steps=10, lr=0.01, lr_schedule="step", lr_step_size=4, lr_step_gamma=0.5)
    train(tmp_path, cfg)
    lrs = [r["lr"]["net"] for r in _stats(tmp_path)]  # the lr used by each step
    assert lrs == pytest.approx([0.01] * 4 + [0.005] * 4 + [0.0025] * 2)


def test_unknown_val_metric_lists_the_results(tmp_path: Path) -> None:
    cfg = quiet_config(val_metric="ssim", val_every=5)
    with pytest.raises(ConfigError, match=r"val_metric='ssim'.*\['mse'\]"):
        train(tmp_path, cfg, val=RegressionData(n=8, seed=1))


def test_validation_is_logged(tmp_path: Path) -> None:
    result = train(tmp_path, quiet_config(val_every=5), val=RegressionData(n=12, seed=1))
    val = _stats(tmp_path, "val")
    assert [r["step"] for r in val] == [5, 10]
    assert val[-1]["metrics"] == result.val_metrics
    assert result.stage.net.training  # back in train mode after validation


def test_sample_grids_are_written(tmp_path: Path) -> None:
    cfg = quiet_config(sample_every=4)
    train(tmp_path, cfg, StageOptions(with_samples=True))
    names = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert names == ["step-000004.png", "step-000008.png", "step-000010.png"]
    with Image.open(tmp_path / "samples" / names[0]) as im:
        assert im.size == (4 * (6 + 2) + 2, 5 + 4)  # four 5x6 images, 2-pixel padding


def test_config_is_saved_and_a_changed_one_kept_aside(tmp_path: Path) -> None:
    train(tmp_path, quiet_config(max_steps=5))
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["max_steps"] == 5
    result = train(tmp_path, quiet_config(max_steps=8))
    assert result.resumed_from == 5 and result.step == 8
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["max_steps"] == 8
    old = yaml.safe_load((tmp_path / "config.until-step-000005.yaml").read_text())
    assert old["max_steps"] == 5


@pytest.mark.gpu
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_on_cuda_trains_and_resumes(tmp_path: Path, amp: str) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    cfg = quiet_config(max_steps=40, amp=amp, device="cuda", ckpt_every=20)
    result = train(tmp_path, cfg)
    assert next(result.stage.net.parameters()).is_cuda
    mse = [r["losses"]["mse"] for r in _stats(tmp_path)]
    assert np.mean(mse[-5:]) < 0.5 * np.mean(mse[:5])
    state = torch.load(result.last_checkpoint / "state.pt", weights_only=True)
    assert bool(state["grad_scalers"]["net"]) == (amp == "fp16")
    resumed = train(tmp_path, quiet_config(max_steps=45, amp=amp, device="cuda"))
    assert resumed.resumed_from == 40 and resumed.step == 45


class TwoPhaseStage(Stage):
    """GAN-style: a D phase, then a G phase through the frozen D (as the generator stage does)."""

    def __init__(self, device: torch.device, cfg) -> None:  # type: ignore[no-untyped-def]
        self.g, self.d = nn.Linear(4, 1).to(device), nn.Linear(1, 1).to(device)
        self.opt_g = make_adam(self.g.parameters(), cfg)
        self.opt_d = make_adam(self.d.parameters(), cfg, lr=cfg.lr / 10)

    def modules(self) -> dict[str, nn.Module]:
        return {"g": self.g, "d": self.d}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"g": self.opt_g, "d": self.opt_d}

    def train_step(self, batch, ctx):  # type: ignore[no-untyped-def]
        fake = self.g(batch["x"])
        requires_grad(self.d, True)
        d_loss = F.softplus(self.d(fake.detach())).mean() + F.softplus(-self.d(batch["y"])).mean()
        ctx.update("d", d_loss)
        requires_grad(self.d, False)
        g_loss = F.mse_loss(fake, batch["y"]) + 0.1 * F.softplus(-self.d(fake)).mean()
        ctx.update("g", g_loss)
        return {"d": d_loss.detach(), "g": g_loss.detach()}


def test_two_optimiser_phases_train_checkpoint_and_resume(tmp_path: Path) -> None:
    cfg = quiet_config(max_steps=6, ckpt_every=3)
    straight = run_training(
        lambda d: TwoPhaseStage(d, cfg), RegressionData(), None, cfg, tmp_path / "a"
    )
    first_cfg = quiet_config(max_steps=3, ckpt_every=3)
    run_training(
        lambda d: TwoPhaseStage(d, first_cfg), RegressionData(), None, first_cfg, tmp_path / "b"
    )
    resumed = run_training(
        lambda d: TwoPhaseStage(d, cfg), RegressionData(), None, cfg, tmp_path / "b"
    )
    assert resumed.resumed_from == 3
    for name in ("g", "d"):
        a = straight.stage.modules()[name].state_dict()
        b = resumed.stage.modules()[name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    ckpt = tmp_path / "a" / "checkpoints" / "ckpt-000006"
    assert {p.name for p in ckpt.glob("*.safetensors")} == {"g.safetensors", "d.safetensors"}
    line = _stats(tmp_path / "a")[-1]
    assert line["lr"] == pytest.approx({"g": cfg.lr, "d": cfg.lr / 10})
    assert set(line["losses"]) == {"d", "g", "grad_norm/d", "grad_norm/g"}
    assert all(p.requires_grad is False for p in straight.stage.d.parameters())
