"""Shared fixtures for the evaluation tests: tiny image folders and isolated weight locations."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from posetransfer.assets import ENV_WEIGHTS_DIR
from posetransfer.eval.lpips import AlexNetFeatures


@pytest.fixture
def no_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every automatic weights location at an empty folder (results must not depend on
    what the machine has cached)."""
    empty = tmp_path / "no_weights"
    empty.mkdir()
    monkeypatch.setenv(ENV_WEIGHTS_DIR, str(empty))
    monkeypatch.setenv("TORCH_HOME", str(empty))
    return empty


MakeFolder = Callable[..., tuple[Path, Path, list[str]]]


@pytest.fixture
def make_folder(tmp_path: Path) -> MakeFolder:
    """``make(n, size)`` -> (pred_dir, gt_dir, target names): ``n`` noisy predictions named
    ``<source>_2_<target>.png`` of ground-truth PNGs ``t<i>.png`` (the source is the next one)."""

    def make(
        n: int = 6, size: tuple[int, int] = (64, 48), name: str = "set", seed: int = 0
    ) -> tuple[Path, Path, list[str]]:
        rng = np.random.default_rng(seed)
        pred_dir, gt_dir = tmp_path / name / "pred", tmp_path / name / "gt"
        pred_dir.mkdir(parents=True)
        gt_dir.mkdir(parents=True)
        names = [f"t{i}" for i in range(n)]
        yy, xx = np.mgrid[0 : size[0], 0 : size[1]]
        for i, target in enumerate(names):
            base = np.stack([xx * 3 + 7 * i, yy * 2, (xx * yy) % 97], -1) % 200 + 20
            noise = rng.integers(-25, 25, (*size, 3))
            Image.fromarray(base.astype(np.uint8)).save(gt_dir / f"{target}.png")
            pred = np.clip(base + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pred).save(pred_dir / f"{names[(i + 1) % n]}_2_{target}.png")
        return pred_dir, gt_dir, names

    return make


@pytest.fixture
def alexnet_file(tmp_path: Path) -> Path:
    """A randomly initialised AlexNet in torchvision's state-dict format."""
    torch.manual_seed(0)
    path = tmp_path / "alexnet-random.pth"
    torch.save(AlexNetFeatures().state_dict(), path)
    return path


@pytest.fixture
def inception_file(tmp_path: Path) -> Path:
    """A tiny TorchScript stand-in for the Inception extractor: (B, 3, 299, 299) -> (B, 8)."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 7, stride=16), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )
    path = tmp_path / "tiny_inception.pt"
    with warnings.catch_warnings():  # recent torch deprecates TorchScript
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(net).save(str(path))
    return path
