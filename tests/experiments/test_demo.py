"""``posetransfer demo`` end to end on a tiny config: report, metrics, resume, and Chromium."""

from __future__ import annotations

import json
import math
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from posetransfer.config import ConfigError, apply_overrides, load_config
from posetransfer.data.flow_files import flow_filename, read_any_flow
from posetransfer.data.formats import read_pairs_csv
from posetransfer.experiments.baselines import BASELINES
from posetransfer.experiments.compare import VARIANTS
from posetransfer.experiments.demo import DemoConfig, quick_config, run_demo
from posetransfer.infer.inputs import gfla_name
from posetransfer.ops.warp import warp
from tests.browser import load_in_chromium

REPO = Path(__file__).resolve().parents[2]

#: 5 people x 3 poses at 64x48, networks of a few channels, 2-4 steps per model, 2 workers.
TINY = (
    "synthetic.num_people=5",
    "synthetic.poses_per_person=3",
    "synthetic.size=[64, 48]",
    "synthetic.test_fraction=0.2",
    "synth_flow.fit.iterations=8",
    "flow.data.pose_map.radius=3.0",
    "flow.model.base_channels=4",
    "flow.model.max_channels=16",
    "flow.model.num_levels=2",
    "flow.loss.level_weights=[0.0, 0.32, 0.16]",
    "flow.data.val_fraction=0.3",
    "flow.train.max_steps=2",
    "flow.train.batch_size=4",
    "flow.train.val_every=2",
    "flow.train.ckpt_every=2",
    "generator.data.pose_map.radius=4.0",
    "generator.data.val_fraction=0.3",
    "generator.generator.image_size=[64, 48]",
    "generator.generator.channels=[4, 8, 8]",
    "generator.generator.warp_levels=2",
    "generator.pixel_warp.channels=[4, 8]",
    "generator.discriminator.base_channels=4",
    "generator.discriminator.num_layers=2",
    "generator.loss.gan_start_step=0",
    "generator.schedule.coarse_steps=2",
    "generator.train.max_steps=4",
    "generator.train.batch_size=4",
    "generator.train.val_every=2",
    "generator.train.ckpt_every=2",
    "grid_rows=3",
    "figure_rows=2",
    "real.enabled=false",  # tests/experiments/test_demo_real.py runs the real-people section
)
COLUMNS = 7


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, body_model) -> tuple[DemoConfig, Path, dict]:
    cfg = apply_overrides(DemoConfig(), TINY)
    out = tmp_path_factory.mktemp("demo") / "demo_out"
    metrics = run_demo(cfg, out, model=body_model)
    return cfg, out, metrics


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.srcs.append(dict(attrs)["src"] or "")


def test_metrics_json_has_every_method(demo: tuple[DemoConfig, Path, dict]) -> None:
    _, out, metrics = demo
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == metrics
    assert list(saved) == [*VARIANTS, *BASELINES]
    for method, values in saved.items():
        assert 0.0 < values["ssim"] <= 1.0, (method, values)
        assert 0.0 <= values["l1"] < 1.0 and math.isfinite(values["psnr"]), (method, values)


def test_baselines_are_what_they_claim(demo: tuple[DemoConfig, Path, dict]) -> None:
    _, out, _ = demo
    pairs = read_pairs_csv(out / "work" / "test_pairs.csv")
    source, target = pairs[0]
    src = np.array(Image.open(out / "data" / "test" / source).convert("RGB"))
    outputs = out / "work" / "outputs"
    copied = np.asarray(Image.open(outputs / "copy_source" / gfla_name(source, target)))
    np.testing.assert_array_equal(copied, src)
    flow, _ = read_any_flow(out / "synth_flow" / "flows" / flow_filename(source, target))
    x = torch.from_numpy(src).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    warped = warp(x, torch.from_numpy(flow).permute(2, 0, 1)[None])[0]
    expected = ((warped + 1.0) * 127.5).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
    got = np.asarray(Image.open(outputs / "warp_3d" / gfla_name(source, target)))
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    assert not np.array_equal(got, copied)  # the 3D flow moved pixels


def test_report_images_load_in_chromium(
    demo: tuple[DemoConfig, Path, dict], tmp_path: Path
) -> None:
    cfg, out, _ = demo
    parser = _Images()
    parser.feed((out / "report.html").read_text(encoding="utf-8"))
    grid = [s for s in parser.srcs if "grid-" in s]
    assert len(grid) == cfg.grid_rows * COLUMNS
    curves = [s for s in parser.srcs if "curves" in s or "loss" in s]
    assert len(curves) >= 1 + len(VARIANTS), parser.srcs
    seen = load_in_chromium({"demo": out / "report.html"}, tmp_path)["demo"]
    assert "error" not in seen, seen
    assert [src for src, *_ in seen["images"]] == parser.srcs
    broken = [src for src, complete, width, _ in seen["images"] if not (complete and width > 0)]
    assert broken == []
    figure = Image.open(out / "figure.png")
    assert figure.width > COLUMNS * 48 and figure.height > cfg.figure_rows * 64


def test_rerun_skips_finished_stages(demo: tuple[DemoConfig, Path, dict], body_model) -> None:
    cfg, out, metrics = demo
    timings = json.loads((out / "timings.json").read_text())
    assert {"make-synthetic", "synth-flow", "train-flow", "compare: train"} <= set(timings)
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*.safetensors")}
    stamps |= {p: p.stat().st_mtime_ns for p in (out / "data" / "train").iterdir()}
    again = run_demo(cfg, out, model=body_model)
    assert again == metrics
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    after = json.loads((out / "timings.json").read_text())
    for stage in ("make-synthetic", "synth-flow", "train-flow"):
        assert after[stage] == timings[stage]


def test_config_files_match_the_code() -> None:
    assert load_config(DemoConfig, REPO / "configs" / "demo" / "default.yaml") == DemoConfig()
    quick = load_config(DemoConfig, REPO / "configs" / "demo" / "quick.yaml")
    assert quick == quick_config(DemoConfig())
    assert quick.synthetic.num_people < DemoConfig().synthetic.num_people


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["variants=[no_flow]"], ["full"]),
        (["variants=[full, bogus]"], ["bogus"]),
        (["synthetic.size=[64, 48]"], ["synthetic.size", "image_size"]),
        (["workers=0"], ["workers"]),
    ],
)
def test_bad_config(overrides: list[str], words: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        apply_overrides(DemoConfig(), overrides)
    assert all(w in str(err.value) for w in words), str(err.value)
