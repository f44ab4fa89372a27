"""Tests for the HTML report: structure, escaping, assets, and every image loading in Chromium.

The browser test needs Debian's ``chromium`` (``apt-get install chromium``); without it the test
fails with instructions, unless ``POSETRANSFER_SKIP_BROWSER_TESTS=1`` is set.
"""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from PIL import Image

from posetransfer.ops.flow_viz import flow_to_color, visibility_to_color
from posetransfer.pose.draw import draw_pose
from posetransfer.pose.keypoints import Pose
from posetransfer.report.html_report import (
    ASSETS_DIR,
    GridRow,
    ReportData,
    Section,
    write_report,
)
from tests.browser import load_in_chromium

COLUMNS = ("source", "target pose", "3D flow", "predicted flow", "visibility", "output", "gt")
H, W = 32, 24


class PageParser(HTMLParser):
    """Collects tags, image sources, links, metric cells and text of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self.hrefs: list[str] = []
        self.cells: dict[tuple[str, str], tuple[str, bool]] = {}  # (method, metric) -> text, best
        self.text: list[str] = []
        self._method: str | None = None
        self._cell: tuple[str, bool] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.images.append(a)
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])
        if tag == "tr" and "data-method" in a:
            self._method = a["data-method"]
        if tag == "td" and "data-metric" in a:
            self._cell = (a["data-metric"], "best" in (a.get("class") or "").split())

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None and self._method is not None and data.strip():
            metric, best = self._cell
            self.cells[(self._method, metric)] = (data.strip(), best)


def parse(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


def write_stats(path: Path) -> Path:
    lines = [
        {"kind": "train", "step": s, "losses": {"l1": 1.0 / (s + 1), "adv": 0.5 - s / 40}}
        for s in range(0, 50, 10)
    ] + [{"kind": "val", "step": 40, "metrics": {"ssim": 0.7}, "best": True}]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    return path


def sample_images(seed: int) -> dict[str, np.ndarray]:
    """The demo's seven columns as small arrays: random photos, real pose/flow/visibility art."""
    rng = np.random.default_rng(seed)

    def photo() -> np.ndarray:
        return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)

    def flow() -> np.ndarray:
        return flow_to_color(rng.normal(size=(2, H, W)) * 3)

    pose = Pose(xy=rng.uniform(0, [W, H], (18, 2)), valid=rng.random(18) < 0.8)
    skeleton = draw_pose(np.full((H, W, 3), 255, np.uint8), pose)
    visibility = visibility_to_color(rng.integers(0, 3, (H, W)))
    arrays = [photo(), skeleton, flow(), flow(), visibility, photo(), photo()]
    return dict(zip(COLUMNS, arrays, strict=True))


@pytest.fixture
def data(tmp_path: Path) -> ReportData:
    stats = write_stats(tmp_path / "runs" / "gen" / "stats.jsonl")
    return ReportData(
        title="Demo <synthetic> & co",
        subtitle="3 pairs, 32x24",
        notes="Trained for **5** steps; see `configs/demo.yaml`.\n\n- one\n- two",
        grids=[GridRow(f"pair {i}: a_{i} -> b_{i}", sample_images(i)) for i in range(3)],
        metrics={
            "full": {"ssim": 0.81, "psnr": 20.5, "l1": 0.05, "lpips": None, "fid": 30.0},
            "copy_source": {"ssim": 0.62, "psnr": 17.0, "l1": 0.12, "lpips": 0.31, "fid": 30.0},
            "warp_3d": {"ssim": 0.81, "psnr": 19.0, "l1": 0.07, "lpips": 0.22, "fid": 45.0},
            "no_flow": {"ssim": 0.7, "psnr": float("nan"), "l1": 0.09, "lpips": 0.25},
        },
        method_notes={"copy_source": "output = source image"},
        curves={"generator": stats},
        timings={"make-synthetic": 12.5, "train": 330.0},
        extra_sections=[Section("Notes <b>", "<script>alert(1)</script> stays text")],
        config_text="model:\n  name: <full>\n",
    )


def test_images_are_relative_existing_files_with_the_given_pixels(
    data: ReportData, tmp_path: Path
) -> None:
    path = write_report(data, tmp_path / "out")
    assert path == tmp_path / "out" / "report.html"
    moved = tmp_path / "moved"  # relative links: the folder works anywhere
    shutil.move(tmp_path / "out", moved)
    page = parse(moved / "report.html")
    srcs = [img["src"] for img in page.images]
    # 3 rows x 7 columns, the flow-wheel legend, one loss-curve figure.
    assert len(srcs) == 3 * len(COLUMNS) + 2 == len(set(srcs))
    for src in srcs:
        parts = urlsplit(src)
        assert not parts.scheme and not parts.netloc and not src.startswith("/"), src
        assert src.startswith(f"{ASSETS_DIR}/") and (moved / unquote(src)).is_file(), src
    assert sorted(p.name for p in (moved / ASSETS_DIR).iterdir()) == sorted(
        unquote(s).split("/", 1)[1] for s in srcs
    )
    # Grid images hold exactly the arrays, in row-major order, and declare their size.
    grid_imgs = [img for img in page.images if "grid-" in img["src"]]
    for k, img in enumerate(grid_imgs):
        expected = data.grids[k // len(COLUMNS)].images[COLUMNS[k % len(COLUMNS)]]
        with Image.open(moved / unquote(img["src"])) as png:
            np.testing.assert_array_equal(np.asarray(png.convert("RGB")), expected)
        assert (img["width"], img["height"]) == (str(W), str(H))
        assert img["alt"].endswith(COLUMNS[k % len(COLUMNS)])


def test_page_is_self_contained_and_escaped(data: ReportData, tmp_path: Path) -> None:
    page = parse(write_report(data, tmp_path))
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    for ref in [img["src"] for img in page.images] + page.hrefs:
        assert not urlsplit(ref).scheme, f"external or absolute reference {ref!r}"
    text = "".join(page.text)
    for literal in ["Demo <synthetic> & co", "<script>alert(1)</script> stays text", "<full>"]:
        assert literal in text
    assert "Notes <b>" in text and "a_0 -> b_0" in text
    assert {"strong", "code", "ul", "pre", "table", "nav"} <= set(page.tags)


def test_metrics_table_highlights_the_best_value_per_column(
    data: ReportData, tmp_path: Path
) -> None:
    page = parse(write_report(data, tmp_path))
    methods = list(data.metrics)
    metrics = ["ssim", "psnr", "l1", "lpips", "fid"]
    assert {m for m, _ in page.cells} == set(methods)
    assert {k for _, k in page.cells} == set(metrics)
    best = {k: {m for m in methods if page.cells.get((m, k), ("", False))[1]} for k in metrics}
    assert best == {
        "ssim": {"full", "warp_3d"},  # a tie: both
        "psnr": {"full"},  # NaN is not a candidate
        "l1": {"full"},  # lower is better
        "lpips": {"warp_3d"},  # None is not a candidate
        "fid": {"full", "copy_source"},
    }
    assert page.cells[("full", "lpips")] == ("n/a", False)
    assert page.cells[("no_flow", "psnr")] == ("n/a", False)
    assert page.cells[("full", "psnr")] == ("20.50", True)
    assert page.cells[("warp_3d", "l1")] == ("0.0700", False)
    assert page.cells[("no_flow", "fid")] == ("n/a", False)  # a metric the method lacks


def test_direction_override_and_unknown_metric(tmp_path: Path) -> None:
    metrics = {"a": {"ssim": 0.5, "score": 1.0}, "b": {"ssim": 0.9, "score": 2.0}}
    plain = parse(write_report(ReportData("t", metrics=metrics), tmp_path / "plain"))
    assert not plain.cells[("a", "score")][1] and not plain.cells[("b", "score")][1]
    assert plain.cells[("b", "ssim")][1]
    flipped = ReportData("t", metrics=metrics, higher_is_better={"ssim": False, "score": True})
    page = parse(write_report(flipped, tmp_path / "flipped"))
    assert page.cells[("a", "ssim")][1] and not page.cells[("b", "ssim")][1]
    assert page.cells[("b", "score")][1]


def test_image_files_are_copied_and_stale_assets_removed(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    jpeg = tmp_path / "photo.JPG"
    Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(jpeg, format="JPEG")
    rows = [GridRow(f"r{i}", {"a": rng.integers(0, 256, (H, W, 3), np.uint8)}) for i in range(3)]
    out = tmp_path / "out"
    write_report(ReportData("t", grids=rows), out)
    assert len(list((out / ASSETS_DIR).glob("grid-*"))) == 3
    path = write_report(ReportData("t", grids=[GridRow("one", {"a": jpeg, "b": jpeg})]), out)
    page = parse(path)
    assert sorted(p.name for p in (out / ASSETS_DIR).iterdir()) == sorted(
        Path(img["src"]).name for img in page.images
    )
    copies = [out / img["src"] for img in page.images if "grid-" in img["src"]]
    assert [c.suffix for c in copies] == [".jpg", ".jpg"]
    assert all(c.read_bytes() == jpeg.read_bytes() for c in copies)


def test_missing_cells_and_empty_parts(tmp_path: Path) -> None:
    image = np.zeros((H, W, 3), np.uint8)
    rows = [GridRow("r0", {"a": image}), GridRow("r1", {"b": image})]
    path = write_report(ReportData("only grids", grids=rows), tmp_path)
    html_text = path.read_text(encoding="utf-8")
    assert html_text.count('class="cell empty"') == 2
    assert 'id="metrics"' not in html_text and 'id="curves"' not in html_text
    assert 'id="timings"' not in html_text and 'id="samples"' in html_text


def test_bad_files_name_row_and_column(tmp_path: Path) -> None:
    missing = ReportData("t", grids=[GridRow("p0", {"gt": tmp_path / "nope.png"})])
    with pytest.raises(FileNotFoundError, match=r"row 0 \('p0'\) column 'gt'.*nope\.png"):
        write_report(missing, tmp_path / "a")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"column 'gt'.*notes\.txt is not a"):
        write_report(ReportData("t", grids=[GridRow("p0", {"gt": text})]), tmp_path / "b")
    fake = tmp_path / "fake.png"
    fake.write_text("not a png")
    with pytest.raises(ValueError, match=r"fake\.png is not a readable image"):
        write_report(ReportData("t", grids=[GridRow("p0", {"gt": fake})]), tmp_path / "c")
    with pytest.raises(FileNotFoundError, match="run 'gen' not found"):
        write_report(ReportData("t", curves={"gen": tmp_path / "x.jsonl"}), tmp_path / "d")
    assert not any((tmp_path / d / "report.html").exists() for d in "abcd")


# ------------------------------------------------------------------------------------------------
# Headless Chromium.


def test_every_image_loads_in_headless_chromium(data: ReportData, tmp_path: Path) -> None:
    good = write_report(data, tmp_path / "good")
    shutil.copytree(tmp_path / "good", tmp_path / "broken")  # control: one asset removed
    removed = sorted((tmp_path / "broken" / ASSETS_DIR).glob("grid-001-02-*"))[0]
    removed.unlink()
    seen = load_in_chromium({"good": good, "broken": tmp_path / "broken" / "report.html"}, tmp_path)

    expected = [img["src"] for img in parse(good).images]
    report = seen["good"]
    assert "error" not in report, report
    assert report["title"] == data.title
    assert [src for src, *_ in report["images"]] == expected
    not_loaded = [src for src, complete, w, h in report["images"] if not (complete and w > 0)]
    assert not_loaded == [], f"images that did not load: {not_loaded}"
    sizes = {src: (w, h) for src, _, w, h in report["images"] if "grid-" in src}
    assert set(sizes.values()) == {(W, H)}
    assert all(r.startswith("file://") for r in report["resources"]), report["resources"]

    broken = seen["broken"]
    failed = [src for src, complete, w, _ in broken["images"] if not (complete and w > 0)]
    assert failed == [f"{ASSETS_DIR}/{removed.name}"]
