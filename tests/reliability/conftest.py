"""Reliability tests: fuzzed readers, kill -9 and resume, corruption, full and read-only disks.

With ``POSETRANSFER_FUZZ_REPORT=FILE`` the fuzzers' counts (inputs tried, results by kind per
reader) are written to ``FILE`` as JSON at the end of the session.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .fuzzing import TALLIES


@pytest.fixture(scope="session", autouse=True)
def _fuzz_report() -> Iterator[None]:
    yield
    target = os.environ.get("POSETRANSFER_FUZZ_REPORT")
    if target and TALLIES:
        counts = {name: tally.to_dict() for name, tally in sorted(TALLIES.items())}
        Path(target).write_text(json.dumps(counts, indent=2) + "\n", encoding="utf-8")
