"""Extra report sections with their own metrics table and image grid (the demo's real people)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posetransfer.report.html_report import GridRow, ReportData, Section, write_report


def _image(value: int) -> np.ndarray:
    return np.full((8, 6, 3), value, np.uint8)


def test_section_grid_and_metrics(tmp_path: Path) -> None:
    main = [GridRow("pair", {"source": _image(10), "output": _image(20)})]
    rows = [GridRow(f"real {k}", {"source": _image(30 + k), "warp": _image(40 + k)})
            for k in range(2)]  # fmt: skip
    metrics = {"warp": {"ssim": 0.5, "l1": 0.2}, "copy": {"ssim": 0.4, "l1": 0.3}}
    section = Section("Real people", "Text **here**.", grids=rows, metrics=metrics)
    data = ReportData("r", grids=main, extra_sections=[section, Section("Next", "plain")])
    html = write_report(data, tmp_path).read_text(encoding="utf-8")
    body = html.split('id="section-0-real-people"')[1].split("</section>")[0]
    assert "<strong>here</strong>" in body
    assert re.search(
        r'data-method="warp"><th[^<]*>warp</th><td[^>]*best[^>]*><strong>0.5000<', body
    )
    sources = re.findall(r'<img src="([^"]+)"', body)
    assert len(sources) == 4 and all("section-0-real-people-" in s for s in sources)
    assert np.asarray(Image.open(tmp_path / sources[3]))[0, 0].tolist() == [41, 41, 41]
    assert "flow colour wheel" not in body  # no flow legend in a section
    main_images = re.findall(r'<img src="([^"]+grid-[^"]+)"', html)
    assert len(main_images) == 2  # the main grid's names do not collide with the section's
    assert 'id="section-1-next"' in html


def test_section_values_are_checked() -> None:
    with pytest.raises(ValueError, match=r"extra_sections\[0\].metrics\['m'\]\['ssim'\]"):
        ReportData("r", extra_sections=[Section("s", "t", metrics={"m": {"ssim": "high"}})])  # type: ignore[dict-item]
    bad = GridRow("row", {"a": np.zeros((4, 4), np.uint8)})
    with pytest.raises(ValueError, match=r"extra_sections\[0\].grids\[0\] \('row'\) column 'a'"):
        ReportData("r", extra_sections=[Section("s", "t", grids=[bad])])
