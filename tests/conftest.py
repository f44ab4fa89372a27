"""Shared test set-up: one torch thread (2 threads were sometimes ~100x slower on CI machines)."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _single_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded numpy generator, fresh for each test."""
    return np.random.default_rng(0)
