"""One ``posetransfer export`` of the tiny fixture run (tests/fixtures/old_run/gen_run), shared
by the ONNX tests of every module: the export traces the model once, 10-30 s on 2 cores."""

from __future__ import annotations

import atexit
import contextlib
import functools
import io
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posetransfer.cli import main

RUN = Path(__file__).resolve().parents[1] / "fixtures" / "old_run" / "gen_run"


@dataclass(frozen=True)
class Exported:
    """The export's exit code, ``model.onnx`` and the JSON line it printed."""

    code: int
    path: Path
    summary: dict[str, Any]


@functools.cache
def exported() -> Exported:
    """``posetransfer export --checkpoint RUN --out TMP/model.onnx``, run once per session."""
    folder = Path(tempfile.mkdtemp(prefix="posetransfer-onnx-test-"))
    atexit.register(shutil.rmtree, folder, True)
    out = folder / "model.onnx"
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        code = main(["export", "--checkpoint", str(RUN), "--out", str(out), "--threads", "1"])
    lines = printed.getvalue().strip().splitlines()
    return Exported(code, out, json.loads(lines[-1]) if lines else {})
