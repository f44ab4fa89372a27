"""Tests for reading ``stats.jsonl`` and drawing loss curves."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posetransfer.report.curves import StatsFormatError, read_stats, write_loss_curves


def write_lines(path: Path, records: list[dict | str]) -> Path:
    """Write records (dicts as JSON, strings verbatim) one per line."""
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def train(step: int, **losses: float | str) -> dict:
    return {"kind": "train", "step": step, "epoch": 0, "losses": losses, "lr": {"g": 1e-4}}


def val(step: int, **metrics: float) -> dict:
    return {"kind": "val", "step": step, "metrics": metrics, "best": False}


def test_read_stats_series(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "stats.jsonl",
        [
            train(10, l1=0.5, adv=0.7),
            val(10, ssim=0.4),
            {"kind": "other", "step": 10, "losses": {"ignored": 1.0}},
            train(20, l1=0.25, adv="nan", perceptual=2.0),
            train(30, l1=0.125, adv="-inf"),
            val(30, ssim=0.6),
        ],
    )
    stats = read_stats(path)
    assert list(stats.train) == ["l1", "adv", "perceptual"]
    np.testing.assert_array_equal(stats.train["l1"].steps, [10, 20, 30])
    np.testing.assert_array_equal(stats.train["l1"].values, [0.5, 0.25, 0.125])
    adv = stats.train["adv"].values
    assert adv[0] == 0.7 and math.isnan(adv[1]) and adv[2] == -math.inf
    np.testing.assert_array_equal(stats.train["perceptual"].steps, [20])
    np.testing.assert_array_equal(stats.val["ssim"].steps, [10, 30])
    np.testing.assert_array_equal(stats.val["ssim"].values, [0.4, 0.6])


def test_read_stats_skips_a_cut_last_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_lines(tmp_path / "stats.jsonl", [train(1, l1=1.0), '{"kind": "train", "st'])
    with caplog.at_level(logging.WARNING):
        stats = read_stats(path)
    np.testing.assert_array_equal(stats.train["l1"].steps, [1])
    assert f"{path}:2" in caplog.text


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ('{"kind": "train", "st', "stats.jsonl:2: not a JSON object"),
        ("[1, 2]", "stats.jsonl:2: expected a JSON object"),
        ({"kind": "train", "losses": {"l1": 1.0}}, "stats.jsonl:2: field 'step' must be an int"),
        ({"kind": "val", "step": 1.5, "metrics": {}}, "field 'step' must be an int, got 1.5"),
        ({"kind": "train", "step": 2, "losses": [1.0]}, "field 'losses' must be an object"),
        (train(2, l1="big"), "stats.jsonl:2: losses.l1: expected a number, got 'big'"),
        (val(2, ssim=True), "metrics.ssim: expected a number, got True"),
    ],
)
def test_read_stats_errors_name_file_line_and_field(
    tmp_path: Path, bad: dict | str, message: str
) -> None:
    path = write_lines(tmp_path / "stats.jsonl", [train(1, l1=1.0), bad, train(3, l1=0.5)])
    with pytest.raises(StatsFormatError, match=message.replace("[", r"\[").replace("(", r"\(")):
        read_stats(path)


def test_write_loss_curves_png_layout(tmp_path: Path) -> None:
    run_a = write_lines(
        tmp_path / "a.jsonl",
        [train(s, l1=1 / (s + 1), adv=0.5 - s / 10, feat=1.0) for s in range(0, 40, 5)]
        + [val(20, ssim=0.5), val(40, ssim=0.7)],
    )
    out = write_loss_curves({"a": run_a}, tmp_path / "plots" / "a.png", title="run a")
    assert out == tmp_path / "plots" / "a.png"
    with Image.open(out) as image:
        assert image.format == "PNG"
        # 4 panels -> 3 columns x 2 rows of 3.6 x 2.6 inches at 100 dpi.
        assert image.size == (1080, 520)
        pixels = np.asarray(image.convert("RGB"))
    assert (pixels != 255).any(), "the figure is blank"
    assert not list((tmp_path / "plots").glob(".*tmp")), "atomic write left a temporary file"


def test_write_loss_curves_several_runs_and_empty_run(tmp_path: Path) -> None:
    run_a = write_lines(tmp_path / "a.jsonl", [train(s, l1=1.0 / (s + 1)) for s in range(5)])
    run_b = write_lines(tmp_path / "b.jsonl", [train(s, l1=0.5, gan=0.1) for s in range(5)])
    empty = write_lines(tmp_path / "empty.jsonl", [])
    both = write_loss_curves({"a": run_a, "b": run_b}, tmp_path / "both.png")
    with Image.open(both) as image:
        assert image.size == (720, 260)  # the union of terms: l1, gan
    nothing = write_loss_curves({"empty": empty}, tmp_path / "empty.png")
    with Image.open(nothing) as image:
        assert image.size == (360, 260)


def test_write_loss_curves_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one run"):
        write_loss_curves({}, tmp_path / "x.png")
    with pytest.raises(FileNotFoundError, match=r"run 'gen' not found: .*missing\.jsonl"):
        write_loss_curves({"gen": tmp_path / "missing.jsonl"}, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_no_matplotlib_at_import_and_no_pyplot_when_drawing(tmp_path: Path) -> None:
    run = write_lines(tmp_path / "s.jsonl", [train(1, l1=1.0)])
    code = (
        "import sys\n"
        "import posetransfer.report.html_report\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported at import time'\n"
        "from posetransfer.report.curves import write_loss_curves\n"
        f"write_loss_curves({{'r': {str(run)!r}}}, {str(tmp_path / 'r.png')!r})\n"
        "assert 'matplotlib' in sys.modules\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot (global backend state) used'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "r.png").is_file()
