"""Reliability tests: fuzzed readers, kill -9 and resume, corruption, full and read-only disks.

With ``POSETRANSFER_FUZZ_REPORT=FILE`` the fuzzers' counts (inputs tried, results by kind per
reader) and the byte-flip outcomes per file are written to ``FILE`` as JSON at the end of the
session.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .fuzzing import FLIPS, TALLIES


@pytest.fixture(scope="session", autouse=True)
def _fuzz_report() -> Iterator[None]:
    yield
    target = os.environ.get("POSETRANSFER_FUZZ_REPORT")
    if target and (TALLIES or FLIPS):
        counts = {name: tally.to_dict() for name, tally in sorted(TALLIES.items())}
        report = {"fuzz": counts, "byte_flips": dict(sorted(FLIPS.items()))}
        Path(target).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
