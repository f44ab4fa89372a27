"""Report rendering and strict JSON output."""

from __future__ import annotations

import json
import math
from pathlib import Path

from posetransfer.eval.results import format_table, json_float, write_report

REPORT = {
    "protocol": "native",
    "num_images": 2,
    "metrics": {"ssim": 0.91234, "psnr": None},
    "skipped": {"lpips": "weights 'alexnet' not found: " + "x" * 200},
    "notes": {"psnr_nonfinite": 2},
    "per_image": [{"pred": "a.png", "psnr": math.inf, "ssim": math.nan}],
}


def test_table() -> None:
    table = format_table(REPORT)
    lines = table.splitlines()
    assert lines[0] == "protocol native, 2 images"
    assert "  ssim    0.9123" in lines
    assert "  psnr    n/a" in lines
    skipped = next(line for line in lines if line.startswith("  lpips"))
    assert "skipped: weights 'alexnet' not found" in skipped and skipped.endswith("...")
    assert len(skipped) < 100
    assert lines[-1] == "  (full reasons under 'skipped' in the JSON report)"


def test_json_is_strict(tmp_path: Path) -> None:
    path = tmp_path / "out" / "report.json"
    write_report(path, REPORT)
    text = path.read_text()
    assert "Infinity" not in text and "NaN" not in text
    data = json.loads(text)
    assert data["per_image"][0] == {"pred": "a.png", "psnr": None, "ssim": None}
    assert data["metrics"] == {"ssim": 0.91234, "psnr": None}
    assert data["skipped"]["lpips"] == REPORT["skipped"]["lpips"]
    assert json_float(1.5) == 1.5 and json_float(-math.inf) is None
