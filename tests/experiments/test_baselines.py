"""Tests for posetransfer.experiments.baselines: the untrained baselines, test pairs and scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from posetransfer.data.flow_files import flow_filename, read_any_flow
from posetransfer.data.formats import read_pairs_csv, write_pairs_csv
from posetransfer.experiments.baselines import (
    BASELINES,
    METRICS,
    score_methods,
    select_test_pairs,
    write_baselines,
)
from posetransfer.infer.inputs import gfla_name
from posetransfer.io import tensor_to_uint8, uint8_to_tensor
from posetransfer.ops.warp import warp
from tests.train.generator_fixtures import Env, shared_env


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, body_model) -> Env:
    return shared_env(tmp_path_factory, body_model)


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.array(image.convert("RGB"))


def test_baselines_copy_and_warp_the_source_and_score(env: Env, tmp_path: Path) -> None:
    pairs = select_test_pairs(env.data, tmp_path / "pairs.csv", max_pairs=3)
    dirs = write_baselines(
        env.data, pairs, tmp_path / "out", flow_run=env.flow_run, flows_3d=env.data / "flows",
        batch_size=2,
    )  # fmt: skip
    assert set(dirs) == set(BASELINES)
    for source, target in pairs:
        name = gfla_name(source, target)
        src = _png(env.data / "test" / source)
        assert np.array_equal(_png(dirs["copy_source"] / name), src)
        flow = torch.from_numpy(
            read_any_flow(env.data / "flows" / flow_filename(source, target))[0]
        )
        expected = warp(uint8_to_tensor(src)[None], flow.permute(2, 0, 1)[None].float())[0]
        got = _png(dirs["warp_3d"] / name).astype(int)
        assert np.abs(got - tensor_to_uint8(expected).astype(int)).max() <= 1
        assert _png(dirs["warp_pred"] / name).shape == src.shape
    scores = score_methods(dirs, env.data, tmp_path / "pairs.csv")
    assert set(scores) == set(BASELINES)
    assert all(set(s) == set(METRICS) for s in scores.values())
    # The exact 3D flow of the synthetic data moves the person: it beats copying the source.
    assert scores["warp_3d"]["l1"] < scores["copy_source"]["l1"]


def test_baseline_arguments_are_checked(env: Env, tmp_path: Path) -> None:
    pairs = read_pairs_csv(env.data / "fasion-resize-pairs-test.csv")[:1]
    with pytest.raises(ValueError, match="unknown baseline 'bogus'"):
        write_baselines(env.data, pairs, tmp_path, methods=["bogus"])
    with pytest.raises(ValueError, match="warp_pred needs flow_run"):
        write_baselines(env.data, pairs, tmp_path, methods=["warp_pred"])
    with pytest.raises(ValueError, match="warp_3d needs flows_3d"):
        write_baselines(env.data, pairs, tmp_path, methods=["warp_3d"])


def test_test_pairs_subset_is_evenly_spaced(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "test").mkdir(parents=True)
    pairs = [(f"a{k}.png", f"b{k}.png") for k in range(10)]
    write_pairs_csv(root / "fasion-resize-pairs-test.csv", pairs)
    (root / "fasion-resize-annotation-test.csv").write_text("name:keypoints_y:keypoints_x\n")
    got = select_test_pairs(root, tmp_path / "sub.csv", max_pairs=4)
    assert got == [pairs[0], pairs[2], pairs[5], pairs[7]]
    assert read_pairs_csv(tmp_path / "sub.csv") == got
    assert select_test_pairs(root, tmp_path / "all.csv") == pairs
    with pytest.raises(ValueError, match="no split 'val'"):
        select_test_pairs(root, tmp_path / "x.csv", split="val")
