"""Tests of posetransfer.train.distributed: sharded sampling, env parsing, a 2-process gloo run."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from posetransfer.train.distributed import ShardedEpochSampler, dist_info_from_env, resolve_device

from .tiny_stage import RegressionData, ddp_worker, quiet_config, train


def test_shards_split_each_global_batch() -> None:
    n, batch, world = 50, 8, 2
    shards = [
        list(ShardedEpochSampler(n, batch, seed=5, rank=r, world_size=world)) for r in range(2)
    ]
    order = ShardedEpochSampler(n, batch, seed=5).global_order(0)
    assert len(order) == 48 and len(set(order.tolist())) == 48  # the tail of 2 is dropped
    for step in range(6):
        halves = [s[step * 4 : (step + 1) * 4] for s in shards]
        assert halves[0] + halves[1] == order[step * 8 : (step + 1) * 8].tolist()
    assert set(shards[0]).isdisjoint(shards[1])


def test_order_is_a_function_of_seed_and_epoch() -> None:
    a, b = ShardedEpochSampler(40, 4, seed=1), ShardedEpochSampler(40, 4, seed=1)
    assert np.array_equal(a.global_order(3), b.global_order(3))
    assert not np.array_equal(a.global_order(0), a.global_order(1))
    assert not np.array_equal(a.global_order(0), ShardedEpochSampler(40, 4, seed=2).global_order(0))
    assert list(a) == a.global_order(0).tolist()  # epoch 0 by default
    a.set_epoch(2, start_batch=7)
    assert list(a) == a.global_order(2)[28:].tolist() and len(a) == 12


def test_unshuffled_order_and_errors() -> None:
    assert list(ShardedEpochSampler(10, 4, seed=0, shuffle=False)) == list(range(8))
    with pytest.raises(ValueError, match=r"batch_size=6 must be a positive multiple .* \(4\)"):
        ShardedEpochSampler(10, 6, seed=0, rank=0, world_size=4)
    with pytest.raises(ValueError, match="3 samples, fewer than one batch"):
        ShardedEpochSampler(3, 4, seed=0)
    with pytest.raises(ValueError, match="start_batch=2"):
        ShardedEpochSampler(10, 4, seed=0).set_epoch(0, start_batch=2)


def test_env_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    info = dist_info_from_env()
    assert (info.rank, info.world_size, info.enabled, info.is_main) == (0, 1, False, True)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    info = dist_info_from_env()
    assert (info.rank, info.local_rank, info.enabled, info.is_main) == (2, 0, True, False)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match="RANK=4 WORLD_SIZE=4"):
        dist_info_from_env()
    monkeypatch.setenv("RANK", "two")
    with pytest.raises(ValueError, match="RANK='two' is not an integer"):
        dist_info_from_env()


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="CUDA"):
            resolve_device("cuda")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_match_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    # Each rank gets its own run folder here, so that anything rank 1 wrote would show.
    mp.spawn(ddp_worker, args=(2, _free_port(), str(tmp_path / "run"), str(out)), nprocs=2)
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert not (tmp_path / "run" / "rank1").exists()
    written = sorted(
        p.relative_to(tmp_path / "run" / "rank0").as_posix()
        for p in (tmp_path / "run" / "rank0").rglob("*")
    )
    assert "checkpoints/ckpt-000006/net.safetensors" in written and "stats.jsonl" in written

    # Both ranks end with identical weights and identical (all-reduced) logs.
    w0, w1 = ranks[0]["weights"], ranks[1]["weights"]
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    assert ranks[0]["losses"] == ranks[1]["losses"] and ranks[0]["val"] == ranks[1]["val"]

    # One process with the global batch sees the same samples and reaches the same weights.
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    cfg = quiet_config(max_steps=6, ckpt_every=3, log_every=2, val_every=3)
    single = train(tmp_path / "single", cfg, val=RegressionData(n=10, seed=1))
    assert [
        a + b for a, b in zip(ranks[0]["seen"], ranks[1]["seen"], strict=True)
    ] == single.stage.seen
    ref = single.stage.net.state_dict()
    assert all(torch.allclose(w0[k], ref[k], rtol=1e-5, atol=1e-6) for k in ref)
    assert single.val_metrics["mse"] == pytest.approx(ranks[0]["val"]["mse"], rel=1e-5)
    assert single.train_losses["mse"] == pytest.approx(ranks[0]["losses"]["mse"], rel=1e-5)
