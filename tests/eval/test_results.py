"""The typed evaluation report: rendering, strict JSON, and the JSON layout users' scripts read."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from posetransfer.eval.evaluate import EvaluateConfig
from posetransfer.eval.results import (
    EvaluationReport,
    ReportInputs,
    ReportWeights,
    format_table,
    json_float,
    write_report,
)

REPORT = EvaluationReport(
    protocol="native",
    protocol_description="native: as the images are",
    num_images=2,
    metrics={"ssim": 0.91234, "psnr": None},
    skipped={"lpips": "weights 'alexnet' not found: " + "x" * 200},
    notes={"psnr_nonfinite": 2},
    inputs=ReportInputs("pred", "gt", None, "ann.csv", None, {"gfla": 2}),
    weights=ReportWeights(None, None, "inc.pt", "torchscript"),
    config=EvaluateConfig(batch_size=4, per_image=True),
    versions={"posetransfer": "1.0", "torch": "2.0"},
    seconds=0.5,
    per_image=[{"pred": "a.png", "psnr": math.inf, "ssim": math.nan}],
)

#: The JSON ``posetransfer evaluate`` has always written for :data:`REPORT`, key order included.
EXPECTED = {
    "protocol": "native",
    "protocol_description": "native: as the images are",
    "num_images": 2,
    "metrics": {"ssim": 0.91234, "psnr": None},
    "skipped": {"lpips": "weights 'alexnet' not found: " + "x" * 200},
    "notes": {"psnr_nonfinite": 2},
    "inputs": {
        "pred_dir": "pred",
        "gt_dir": "gt",
        "pairs": None,
        "annotations": "ann.csv",
        "fid_real": None,
        "naming": {"gfla": 2},
    },
    "weights": {
        "lpips_backbone": None,
        "lpips_heads": None,
        "inception": "inc.pt",
        "inception_backend": "torchscript",
    },
    "config": {
        "batch_size": 4,
        "lpips": True,
        "fid": True,
        "kid_subsets": 100,
        "kid_subset_size": 1000,
        "seed": 0,
        "device": "cpu",
        "allow_missing": False,
        "per_image": True,
        "num_threads": 0,
    },
    "versions": {"posetransfer": "1.0", "torch": "2.0"},
    "seconds": 0.5,
    "per_image": [{"pred": "a.png", "psnr": None, "ssim": None}],
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
    assert data["skipped"]["lpips"] == REPORT.skipped["lpips"]
    assert json_float(1.5) == 1.5 and json_float(-math.inf) is None


def test_json_layout_is_unchanged_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    write_report(path, REPORT)
    assert path.read_text() == json.dumps(EXPECTED, indent=2) + "\n"
    without = dataclasses.replace(REPORT, per_image=None)
    write_report(path, without)
    assert "per_image" not in json.loads(path.read_text())  # only written when asked for


def test_report_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        REPORT.num_images = 3  # type: ignore[misc]
