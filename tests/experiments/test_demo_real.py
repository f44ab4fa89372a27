"""The demo's real-people section on the committed real frames (tiny settings), and offline."""

from __future__ import annotations

import json
import math
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch

from posetransfer.config import ConfigError, apply_overrides
from posetransfer.eval.protocols import get_eval_protocol
from posetransfer.eval.ssim import ssim
from posetransfer.experiments import demo_real
from posetransfer.experiments.demo import DemoConfig, run_demo
from posetransfer.experiments.demo_real import RealDemoConfig, run_real_section
from posetransfer.experiments.real_data import load_split
from posetransfer.experiments.real_videos import RealVideosError
from posetransfer.infer.pipeline import PoseTransferPipeline
from posetransfer.train.checkpoint import find_checkpoint
from tests.experiments.test_demo import TINY

REPO = Path(__file__).resolve().parents[2]
FRAMES = [f"single_cam0{i}_f0{f}.jpg" for i, f in ((1, 50), (2, 30), (3, 60), (4, 70))]
METHODS = ["copy_source", "warp_3d", "demo/regressor", "demo/3d", "personal/3d"]

#: The four single-person frames as one photo folder: the last three are test frames, the
#: first of those the source; 2 personalisation steps with 1 body self-pair.
REAL_TINY = (
    "real.enabled=true",
    "real.test_fraction=0.75",
    "real.pairs=2",
    "real.min_pose_change=1.0",
    "real.personalize_steps=2",
    "real.body_pairs=1",
)


def _frames_folder(root: Path) -> Path:
    folder = root / "single"
    folder.mkdir(parents=True)
    for name in FRAMES:
        shutil.copy(REPO / "tests" / "fixtures" / "real" / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def real_demo(tmp_path_factory: pytest.TempPathFactory, body_model) -> tuple[DemoConfig, Path]:
    root = tmp_path_factory.mktemp("demo_real")
    folder = _frames_folder(root / "frames")
    overrides = [o for o in TINY if not o.startswith("real.")]
    cfg = apply_overrides(DemoConfig(), [*overrides, *REAL_TINY])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(demo_real, "real_inputs", lambda real: [folder])
        run_demo(cfg, root / "out", model=body_model)
    return cfg, root / "out"


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.sections: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.images.append(values["src"] or "")
        if tag == "section":
            self.sections.append(values["id"] or "")


def test_report_has_the_real_section(real_demo: tuple[DemoConfig, Path]) -> None:
    _, out = real_demo
    page = _Page()
    page.feed((out / "report.html").read_text(encoding="utf-8"))
    assert any("real-people" in s for s in page.sections), page.sections
    real = [s for s in page.images if "real-people" in s]
    # 2 pairs x (source, target pose, real target, 5 methods)
    assert len(real) == 2 * (3 + len(METHODS)), real
    assert all((out / s).is_file() for s in real)
    text = (out / "report.html").read_text(encoding="utf-8")
    assert all(f'data-method="{m}"' in text for m in METHODS)
    timings = json.loads((out / "timings.json").read_text())
    assert timings["real people"] > 0


def test_metrics_are_the_methods_on_the_real_pairs(real_demo: tuple[DemoConfig, Path]) -> None:
    _, out = real_demo
    metrics = json.loads((out / "real" / "metrics.json").read_text())
    assert list(metrics) == METHODS
    for method, values in metrics.items():
        assert 0.0 < values["ssim"] <= 1.0 and 0.0 <= values["l1"] < 1.0, (method, values)
        assert math.isfinite(values["mask_psnr"]), (method, values)
    # copy_source is the source crop itself: its SSIM is the source's against each target.
    test = load_split(out / "real" / "data")
    names = sorted(test, key=lambda n: test[n].frame)
    assert len(names) == 3  # 0.75 of the 4 photos
    spec = get_eval_protocol("native").ssim[0][1]

    def tensor(name: str) -> torch.Tensor:
        return torch.from_numpy(np.array(test[name].image)).permute(2, 0, 1)[None].double()

    expected = [float(ssim(tensor(names[0]), tensor(n), spec)) for n in names[1:]]
    assert metrics["copy_source"]["ssim"] == pytest.approx(np.mean(expected), abs=1e-9)
    assert metrics["warp_3d"] != metrics["copy_source"]


def test_personalised_run_is_a_run_that_infer_takes(real_demo: tuple[DemoConfig, Path]) -> None:
    cfg, out = real_demo
    personal = out / "real" / "personal"
    meta = json.loads((find_checkpoint(personal, "latest") / "meta.json").read_text())
    assert meta["step"] == cfg.real.personalize_steps
    tuned = PoseTransferPipeline.from_run(personal)
    demo = PoseTransferPipeline.from_run(out / "work" / "runs" / "full")
    assert tuned.image_size == demo.image_size == tuple(cfg.synthetic.size)
    moved = [
        not torch.equal(a, b)
        for a, b in zip(
            tuned.nets.generator.parameters(), demo.nets.generator.parameters(), strict=True
        )
    ]
    assert any(moved)  # fine-tuned, not a copy


def test_offline_rerun_says_why_and_completes(
    real_demo: tuple[DemoConfig, Path], body_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, out = real_demo
    metrics = json.loads((out / "metrics.json").read_text())

    def offline(real: RealDemoConfig) -> list[Path]:
        raise RealVideosError("pip download pose2sim==0.10.49 failed (no network)")

    monkeypatch.setattr(demo_real, "real_inputs", offline)
    assert run_demo(cfg, out, model=body_model) == metrics
    text = (out / "report.html").read_text(encoding="utf-8")
    assert "Not shown: the demo videos could not be fetched" in text
    assert "no network" in text and "The rest of the demo is complete" in text


def test_missing_extras_and_switched_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = RealDemoConfig()
    off = run_real_section(RealDemoConfig(enabled=False), tmp_path, tmp_path, model=None)
    assert off.skipped is not None and "real.enabled=false" in off.skipped

    def no_mediapipe(*args: object, **kwargs: object) -> None:
        raise ImportError("MediaPipe is not installed")

    monkeypatch.setattr(demo_real, "real_inputs", lambda real: [tmp_path])
    monkeypatch.setattr(demo_real, "_run", no_mediapipe)
    section = run_real_section(cfg, tmp_path, tmp_path, model=None)
    assert section.skipped is not None and "posetransfer[pose,video]" in section.skipped
    assert "Not shown" in section.section().text and not section.section().grids


@pytest.mark.parametrize(
    ("overrides", "word"),
    [
        (["real.pairs=0"], "real.pairs"),
        (["real.every=0"], "real.every"),
        (["real.test_fraction=1.0"], "real.test_fraction"),
        (["real.body_pairs=-1"], "real.body_pairs"),
        (["real.videos=[]"], "real.videos"),
    ],
)
def test_bad_real_config(overrides: list[str], word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        apply_overrides(DemoConfig(), overrides)
