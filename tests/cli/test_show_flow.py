"""Tests for the ``show-flow`` panel (the command on real flows: tests/cli/test_synth_flow.py)."""

from __future__ import annotations

import numpy as np
import pytest

from posetransfer.cli.show_flow import make_flow_panel
from posetransfer.conventions import Visibility


def test_flow_panel_zero_flow_reproduces_the_source() -> None:
    rng = np.random.default_rng(0)
    source = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    target = np.zeros_like(source)
    vis = np.full((32, 32), int(Visibility.VISIBLE), np.uint8)
    vis[:, :8] = Visibility.BACKGROUND
    vis[:8, 8:] = Visibility.INVISIBLE
    panel = make_flow_panel(source, target, np.zeros((32, 32, 2), np.float32), vis)
    top = panel.shape[0] - 4 - 32
    warped = panel[top : top + 32, 4 + 4 * 36 : 4 + 4 * 36 + 32]
    np.testing.assert_array_equal(warped[8:, 8:], source[8:, 8:])
    np.testing.assert_array_equal(warped[:8, 8:], source[:8, 8:] // 2)
    assert (warped[:, :8] == 255).all()
    with pytest.raises(ValueError, match="share"):
        make_flow_panel(source, target[:16], np.zeros((32, 32, 2)), vis)
