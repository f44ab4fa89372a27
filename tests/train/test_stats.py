"""Tests of posetransfer.train.stats: scalar means, stats.jsonl, TensorBoard, image grids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from posetransfer.train.distributed import DistInfo
from posetransfer.train.stats import (
    ScalarMeans,
    StatsWriter,
    make_grid,
    save_image_grid,
    truncate_jsonl,
)

from .tiny_stage import RegressionData, quiet_config, train

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


def test_scalar_means_average_over_steps() -> None:
    means = ScalarMeans()
    means.add({"a": torch.tensor(1.0), "b": 4})
    means.add({"a": 3.0})
    assert means.pop(DistInfo(), CPU) == {"a": 2.0, "b": 4.0}
    assert means.pop(DistInfo(), CPU) == {}  # reset after pop
    with pytest.raises(ValueError, match=r"'x' must be a scalar, got shape \(2,\)"):
        means.add({"x": torch.ones(2)})
    with pytest.raises(ValueError, match="'y' must be a number"):
        means.add({"y": "high"})


def test_stats_jsonl_and_tensorboard(tmp_path: Path) -> None:
    cfg = quiet_config(max_steps=12, log_every=4, val_every=6, tensorboard=True)
    train(tmp_path, cfg, val=RegressionData(n=8, seed=1))
    records = [json.loads(x) for x in (tmp_path / "stats.jsonl").read_text().splitlines()]
    train_lines = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train_lines] == [4, 8, 12]
    assert [r["step"] for r in records if r["kind"] == "val"] == [6, 12]
    for r in train_lines:
        assert set(r) >= {"time", "lr", "losses", "samples_per_s", "sec_per_step", "epoch"}
        assert r["lr"] == {"net": cfg.lr} and r["samples_per_s"] > 0
        assert set(r["losses"]) == {"mse", "grad_norm/net"}
    times = [r["time"] for r in train_lines]
    assert times == sorted(times)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert len(events) == 1
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/mse")] == [4, 8, 12]
    assert acc.Scalars("train/mse")[-1].value == pytest.approx(train_lines[-1]["losses"]["mse"])
    assert [e.step for e in acc.Scalars("val/mse")] == [6, 12]


def test_disabled_writer_writes_nothing(tmp_path: Path) -> None:
    writer = StatsWriter(tmp_path, enabled=False, tensorboard=True, start_step=0)
    writer.write({"step": 1}, {"a": 1.0})
    writer.close()
    assert list(tmp_path.iterdir()) == []


def test_non_finite_values_are_written_as_strict_json(tmp_path: Path) -> None:
    writer = StatsWriter(tmp_path, enabled=True, tensorboard=False, start_step=0)
    writer.write({"step": 1, "losses": {"a": float("nan"), "b": 1.0}}, {})
    line = (tmp_path / "stats.jsonl").read_text()
    assert json.loads(line, parse_constant=lambda c: pytest.fail(c))["losses"]["a"] == "nan"


def test_truncate_jsonl_drops_later_and_broken_lines(tmp_path: Path) -> None:
    path = tmp_path / "stats.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n{"step": 4, "lo')
    assert truncate_jsonl(path, 2) == 2
    assert path.read_text() == '{"step": 1}\n{"step": 2}\n'
    assert truncate_jsonl(tmp_path / "absent.jsonl", 2) == 0


def test_make_grid_places_images_row_major() -> None:
    images = torch.arange(1, 6, dtype=torch.float32).view(5, 1, 1, 1).expand(5, 1, 2, 3)
    grid = make_grid(images, nrow=3, padding=1)
    assert grid.shape == (1, 2 * 3 + 1, 3 * 4 + 1)
    assert grid[0, 1, 1] == 1 and grid[0, 1, 5] == 2 and grid[0, 1, 9] == 3
    assert grid[0, 4, 1] == 4 and grid[0, 4, 5] == 5 and grid[0, 4, 9] == 0  # empty slot
    assert grid[0, 0].abs().sum() == 0 and grid[0, :, 0].abs().sum() == 0  # padding
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        make_grid(torch.zeros(3, 4, 4))


def test_save_image_grid_maps_range_to_uint8(tmp_path: Path) -> None:
    images = torch.stack([torch.full((3, 2, 2), -1.0), torch.full((3, 2, 2), 1.0)])
    path = save_image_grid(images, tmp_path / "samples" / "g.png", nrow=2)
    array = np.asarray(Image.open(path))
    assert array.shape == (2 + 4, 2 * 4 + 2, 3) and array.dtype == np.uint8
    assert (array[2:4, 2:4] == 0).all() and (array[2:4, 6:8] == 255).all()
    assert [p.name for p in (tmp_path / "samples").iterdir()] == ["g.png"]  # no temp left
    with pytest.raises(ValueError, match=r"\(N, 1 or 3, H, W\)"):
        save_image_grid(torch.zeros(1, 2, 4, 4), tmp_path / "x.png")
