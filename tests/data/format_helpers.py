"""Helpers shared by the label-format tests (test_formats, test_diaf_formats)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from posetransfer.pose.keypoints import Pose


def make_pose(rng: np.random.Generator, missing: tuple[int, ...] = ()) -> Pose:
    """A pose at random pixel centres with the given keypoints missing."""
    indices = rng.integers(0, 200, size=(18, 2))
    indices[list(missing)] = -1
    return Pose.from_indices(indices)


def assert_error(excinfo: pytest.ExceptionInfo, path: Path, line: int | None, field: str | None):
    message = str(excinfo.value)
    assert str(path) in message
    assert excinfo.value.path == path
    assert excinfo.value.line == line
    assert excinfo.value.field == field
    if line is not None:
        assert f"line {line}" in message
    if field is not None:
        assert field in message
