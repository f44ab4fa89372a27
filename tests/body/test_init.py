"""Tests for posetransfer.body's import contract."""

from __future__ import annotations

import subprocess
import sys


def test_import_has_no_anny_or_thread_side_effects() -> None:
    code = (
        "import sys, torch; n = torch.get_num_threads(); import posetransfer.body; "
        "assert 'anny' not in sys.modules and 'warp' not in sys.modules, 'anny imported'; "
        "assert torch.get_num_threads() == n, 'threads changed'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
