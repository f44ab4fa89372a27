"""Tests of posetransfer.train.checkpoint: layout, atomicity, resume, best, pruning, mismatch."""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from torch import nn

from posetransfer.train import checkpoint as ckpt_io
from posetransfer.train.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    capture_rng_state,
    find_checkpoint,
    load_weights,
    restore_rng_state,
)

from .tiny_stage import RegressionData, StageOptions, quiet_config, train


@pytest.fixture(autouse=True)
def _single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


def _hidden_entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


def test_checkpoint_layout(tmp_path: Path) -> None:
    result = train(tmp_path, quiet_config(max_steps=10, ckpt_every=5))
    root = tmp_path / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["ckpt-000005", "ckpt-000010", "latest"]
    assert (root / "latest").read_text().strip() == "ckpt-000010"
    ckpt = root / "ckpt-000010"
    names = sorted(p.name for p in ckpt.iterdir())
    assert names == ["meta.json", "net.safetensors", "state.pt", "state.pt.sha256"]
    assert json.loads((ckpt / "meta.json").read_text())["step"] == 10
    weights = safetensors.torch.load_file(ckpt / "net.safetensors")
    net = result.stage.net.state_dict()
    assert weights.keys() == net.keys() and all(torch.equal(weights[k], net[k]) for k in net)
    state = torch.load(ckpt / "state.pt", weights_only=True)  # plain containers only
    assert state["progress"]["step"] == 10 and state["progress"]["epoch"] == 1
    assert set(state["optimizers"]) == {"net"}
    assert _hidden_entries(tmp_path) == []  # no temporary files left


def test_failed_write_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = nn.Linear(2, 2)
    ckpt_io.save_checkpoint(tmp_path, 1, {"net": net}, {"x": torch.ones(1)})

    def boom(*args: object, **kwargs: object) -> bytes:
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_io.safetensors.torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        ckpt_io.save_checkpoint(tmp_path, 2, {"net": net}, {"x": torch.ones(1)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-000001", "latest"]
    assert find_checkpoint(tmp_path).name == "ckpt-000001"


def test_resume_is_bitwise_identical(tmp_path: Path) -> None:
    opts = dict(hidden=16, dropout=0.2, noise=0.1)  # both draw from torch's global RNG
    straight = train(tmp_path / "a", quiet_config(max_steps=10), StageOptions(**opts))
    first = train(tmp_path / "b", quiet_config(max_steps=5), StageOptions(**opts))
    second = train(tmp_path / "b", quiet_config(max_steps=10), StageOptions(**opts))
    assert second.resumed_from == 5 and second.step == 10
    assert first.stage.seen + second.stage.seen == straight.stage.seen
    a, b = straight.stage.net.state_dict(), second.stage.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    a_opt = straight.stage.opt.state_dict()["state"]
    b_opt = second.stage.opt.state_dict()["state"]
    assert all(torch.equal(a_opt[i]["exp_avg_sq"], b_opt[i]["exp_avg_sq"]) for i in a_opt)
    lines = [json.loads(x) for x in (tmp_path / "b" / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(1, 11))


def test_resume_after_a_crash_past_the_last_checkpoint(tmp_path: Path) -> None:
    cfg = quiet_config(max_steps=8, ckpt_every=5, seed=1)
    straight = train(tmp_path / "a", cfg, StageOptions(dropout=0.3))
    train(tmp_path / "b", cfg, StageOptions(dropout=0.3))
    # Simulate a crash after step 8's lines but before its checkpoint and pointer were written.
    shutil.rmtree(tmp_path / "b" / "checkpoints" / "ckpt-000008")
    (tmp_path / "b" / "checkpoints" / "latest").unlink()
    with open(tmp_path / "b" / "stats.jsonl", "a") as f:
        f.write('{"kind": "train", "st')  # a line cut short
    resumed = train(tmp_path / "b", cfg, StageOptions(dropout=0.3))
    assert resumed.resumed_from == 5 and resumed.stage.seen == straight.stage.seen[5:]
    a, b = straight.stage.net.state_dict(), resumed.stage.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    lines = (tmp_path / "b" / "stats.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == list(range(1, 9))


def test_finished_run_is_not_retrained(tmp_path: Path) -> None:
    train(tmp_path, quiet_config(max_steps=5))
    again = train(tmp_path, quiet_config(max_steps=5))
    assert again.resumed_from == 5 and again.stage.seen == []


@pytest.mark.parametrize(("mode", "best_step"), [("min", 8), ("max", 2)])
def test_best_follows_the_validation_metric(tmp_path: Path, mode: str, best_step: int) -> None:
    script = {2: 3.0, 4: 1.0, 6: 2.0, 8: 0.5, 10: 0.7}
    opts = StageOptions(val_script=script)
    cfg = quiet_config(val_every=2, val_metric="scripted", val_mode=mode, ckpt_every=5)
    result = train(tmp_path, cfg, opts, val=RegressionData(n=8, seed=1))
    assert result.best_value == script[best_step]
    meta = json.loads((tmp_path / "checkpoints" / "best" / "meta.json").read_text())
    assert (meta["step"], meta["value"], meta["val_metric"]) == (
        best_step,
        script[best_step],
        "scripted",
    )
    assert not (tmp_path / "checkpoints" / "best" / "state.pt").exists()
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.0), nn.Linear(8, 1))
    assert load_weights(tmp_path, {"net": net}, which="best") == tmp_path / "checkpoints" / "best"
    snap = opts.snapshots[best_step]
    assert all(torch.equal(net.state_dict()[k], snap[k]) for k in snap)


@pytest.mark.parametrize("resume_at", [None, 6])
def test_best_restarts_when_the_stage_changes_group(tmp_path: Path, resume_at: int | None) -> None:
    # max mode: step 4 is the best of all, but steps >= 6 are another model structure.
    script = {2: 0.5, 4: 0.9, 6: 0.2, 8: 0.4, 10: 0.3}
    opts = StageOptions(val_script=script, group_from=6)
    cfg = quiet_config(val_every=2, val_metric="scripted", val_mode="max", ckpt_every=2)
    val = RegressionData(n=8, seed=1)
    if resume_at is not None:  # stop inside group 0, resume into group 1
        first = train(tmp_path, replace(cfg, max_steps=resume_at - 2), opts, val=val)
        assert first.best_value == 0.9
    result = train(tmp_path, cfg, opts, val=val)
    assert result.best_value == 0.4
    meta = json.loads((tmp_path / "checkpoints" / "best" / "meta.json").read_text())
    assert (meta["step"], meta["value"]) == (8, 0.4)
    val_lines = [json.loads(x) for x in (tmp_path / "stats.jsonl").read_text().splitlines()]
    flags = {r["step"]: r["best"] for r in val_lines if r["kind"] == "val"}
    assert flags == {2: True, 4: True, 6: True, 8: True, 10: False}


def test_keep_last_prunes_old_checkpoints(tmp_path: Path) -> None:
    cfg = quiet_config(max_steps=11, ckpt_every=2, keep_last=2)
    result = train(tmp_path, cfg)
    names = sorted(p.name for p in (tmp_path / "checkpoints").glob("ckpt-*"))
    assert names == ["ckpt-000010", "ckpt-000011"]
    assert result.last_checkpoint == tmp_path / "checkpoints" / "ckpt-000011"


def test_load_weights_latest_and_errors(tmp_path: Path) -> None:
    result = train(tmp_path, quiet_config(max_steps=6, ckpt_every=3))
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.0), nn.Linear(8, 1))
    assert load_weights(tmp_path, {"net": net}, which="latest").name == "ckpt-000006"
    trained = result.stage.net.state_dict()
    assert all(torch.equal(net.state_dict()[k], trained[k]) for k in trained)
    load_weights(tmp_path / "checkpoints" / "ckpt-000003", {"net": net})  # a folder directly
    with pytest.raises(CheckpointError, match="no best checkpoint"):
        load_weights(tmp_path, {"net": net}, which="best")
    with pytest.raises(CheckpointMismatchError, match=r"holds modules \['net'\].*\['flow'\]"):
        load_weights(tmp_path, {"flow": net}, which="latest")
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        find_checkpoint(tmp_path / "elsewhere")


def test_different_model_config_names_the_mismatch(tmp_path: Path) -> None:
    train(tmp_path, quiet_config(max_steps=5), StageOptions(hidden=8))
    with pytest.raises(
        CheckpointMismatchError, match=r"0\.weight: checkpoint \(8, 4\) vs model \(16, 4\)"
    ):
        train(tmp_path, quiet_config(max_steps=10), StageOptions(hidden=16))
    other = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))  # no dropout slot
    with pytest.raises(CheckpointMismatchError, match=r"missing keys \[2\.bias, 2\.weight\]"):
        load_weights(tmp_path, {"net": other}, which="latest")


def test_rng_state_round_trip() -> None:
    state = capture_rng_state()
    draws = (random.random(), np.random.rand(), torch.rand(1).item(), np.random.randn())
    restore_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item(), np.random.randn()) == draws
