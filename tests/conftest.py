"""Shared test set-up: one torch thread (2 threads were sometimes ~100x slower on CI machines)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _single_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded numpy generator, fresh for each test."""
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def body_cache_dir() -> Path:
    """Anny's cache folder for the tests: ``$ANNY_CACHE_DIR`` (the Makefile sets it), else the
    git-ignored ``.cache/anny`` of the repository. The first build takes ~60 s and ~1.7 GB."""
    return Path(os.environ.get("ANNY_CACHE_DIR") or REPO_ROOT / ".cache" / "anny")


@pytest.fixture(scope="session")
def body_model(body_cache_dir: Path):
    """The float32 Anny body model, loaded once per session and shared by every test."""
    from posetransfer.body import load_body_model

    return load_body_model(body_cache_dir)
