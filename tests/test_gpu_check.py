"""benchmarks/gpu_check.sh, where there is no GPU: it fails fast and says why, and its
``--cpu-smoke`` run writes the whole report from the same code on the CPU."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "benchmarks" / "gpu_check.sh"


def _run(*args: str, python: str = sys.executable, cwd: Path | None = None):  # type: ignore[no-untyped-def]
    env = {**os.environ, "PYTHON": python}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def _rows(text: str, first_cell: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith(f"| {first_cell} |")
    ]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_it_fails_fast_with_a_clear_message(tmp_path: Path) -> None:
    start = time.monotonic()
    result = _run(str(tmp_path / "report.md"))
    assert result.returncode == 3
    assert "no CUDA device" in result.stderr and "--cpu-smoke" in result.stderr
    assert not (tmp_path / "report.md").exists()
    assert time.monotonic() - start < 30  # torch's import, nothing more
    broken = _run(str(tmp_path / "report.md"), python=str(tmp_path / "no-python"))
    assert broken.returncode == 3 and "set PYTHON to a Python" in broken.stderr
    assert _run("--frobnicate").returncode == 2


def test_cpu_smoke_writes_the_report(tmp_path: Path) -> None:
    result = _run("report.md", "--cpu-smoke", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    text = (tmp_path / "report.md").read_text()
    assert "--cpu-smoke" in text and "torch " in text
    # the gpu-marked tests ran (and skipped themselves without CUDA)
    assert re.search(r"`gpu`-marked tests: \d+ skipped.*pytest exit code 0", text)
    infer = _rows(text, "generator")
    assert {(r[2], r[3]) for r in infer} == {
        ("fp32", "eager"),
        ("bf16", "eager"),
        ("fp32", "compile"),
        ("bf16", "compile"),
    }
    train = _rows(text, "G + D, L1 + GAN")
    assert [r[2] for r in train] == ["fp32", "bf16"]
    for row in infer + train:
        assert float(row[4]) > 0 and float(row[5]) > 0, row  # ms / batch, img / s
    assert all(r[8].startswith("first call") for r in infer if r[3] == "compile")


def test_rows_past_the_budget_are_listed_as_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT.with_suffix(".py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_check", module)  # dataclasses look it up
    spec.loader.exec_module(module)
    out = tmp_path / "report.md"
    assert module.main(["--out", str(out), "--cpu-smoke", "--budget-s", "0"]) == 0
    text = out.read_text()
    rows = _rows(text, "generator") + _rows(text, "G + D, L1 + GAN")
    assert len(rows) == 6 and all(r[4] == "skipped: time budget" for r in rows)
    assert "`gpu`-marked tests: not run" in text
