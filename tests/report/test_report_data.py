"""Tests of posetransfer.report.report_data: validation of a report's data, metric directions."""

from __future__ import annotations

import numpy as np
import pytest

from posetransfer.report.report_data import GridRow, ReportData, metric_higher_is_better


@pytest.mark.parametrize(
    ("name", "higher"),
    [
        ("ssim", True),
        ("mask_ssim", True),
        ("ssim_256", True),
        ("psnr", True),
        ("l1", False),
        ("mask_lpips", False),
        ("fid", False),
        ("kid", False),
        ("runtime", None),
    ],
)
def test_metric_direction(name: str, higher: bool | None) -> None:
    assert metric_higher_is_better(name) is higher


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"title": " "}, ValueError, "title must be a non-empty string"),
        (
            {"grids": [GridRow("p0", {"out": np.zeros((4, 4), np.uint8)})]},
            ValueError,
            r"grids\[0\] \('p0'\) column 'out': expected a non-empty \(H, W, 3\) uint8",
        ),
        (
            {"grids": [GridRow("p0", {"out": np.zeros((4, 4, 3), np.float32)})]},
            ValueError,
            "dtype float32",
        ),
        ({"grids": [GridRow("p0", {"out": 3})]}, ValueError, "got <class 'int'>"),
        ({"grids": [GridRow("p0", {})]}, ValueError, r"grids\[0\] must be a GridRow with images"),
        ({"metrics": {"full": {"ssim": "0.8"}}}, ValueError, r"metrics\['full'\]\['ssim'\]"),
        ({"metrics": {"full": {"ssim": True}}}, ValueError, "must be a number or None"),
        ({"timings": {"train": -1.0}}, ValueError, r"timings\['train'\] must be a non-negative"),
    ],
)
def test_bad_report_data(kwargs: dict, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        ReportData(**{"title": "t", **kwargs})
