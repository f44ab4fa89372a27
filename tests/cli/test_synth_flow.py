"""Tests for `posetransfer synth-flow` (and `show-flow` on its output), run in-process via main."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from PIL import Image

from posetransfer.body import BodyModel
from posetransfer.cli import main
from posetransfer.config import load_config
from posetransfer.conventions import Visibility
from posetransfer.data.datasets import PairDataset
from posetransfer.data.flow_files import read_corr, read_flow
from posetransfer.data.toy import make_toy_dataset
from posetransfer.synth.flow_pipeline import SynthFlowConfig

Capture = pytest.CaptureFixture[str]


@pytest.fixture
def cli_env(body_model: BodyModel, body_cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the CLI load the session's model (same cache folder) and ignore torchrun variables."""
    monkeypatch.setenv("ANNY_CACHE_DIR", str(body_cache_dir))
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)


@pytest.fixture
def patn(tmp_path: Path) -> Path:
    return make_toy_dataset(tmp_path / "patn", num_people=3, poses_per_person=2)


def test_patn_flows_land_where_the_dataset_reads_them(
    cli_env: None, patn: Path, capsys: Capture
) -> None:
    assert main(["synth-flow", str(patn), "--out", str(patn), "-q"]) == 0
    out = capsys.readouterr().out
    assert "synth-flow shard 1/1" in out and "fit error (px)" in out
    assert len(list((patn / "fits").glob("*.npz"))) == 6
    assert (patn / "manifest.jsonl").is_file() and (patn / "summary.json").is_file()
    for split in ("train", "test"):
        dataset = PairDataset(patn, split, require_flow=True)  # default: ROOT/flows
        sample = dataset[0]
        assert sample.flow is not None and sample.flow.shape == (2, 64, 48)
        assert (sample.visibility == Visibility.VISIBLE).any()
    assert main(["synth-flow", str(patn), "--out", str(patn), "-q"]) == 0
    assert "0 rendered" in " ".join(capsys.readouterr().out.split())


def test_diaf_layout_writes_original_corr_files(
    cli_env: None, tmp_path: Path, capsys: Capture
) -> None:
    root = make_toy_dataset(tmp_path / "diaf", layout="diaf", num_people=3, poses_per_person=2)
    args = ["--format", "corr", "--split", "test", "-q"]
    assert main(["synth-flow", str(root), "--out", str(root), *args]) == 0
    corr_dir = root / "3d" / "hmr" / "corr"  # the original's place, the dataset's default
    dataset = PairDataset(root, "test", require_flow=True)
    assert len(dataset) == 2
    for source, target in dataset.pairs:
        flow, vis = read_corr(corr_dir / f"{target}_{source}.corr")
        assert flow.shape == (64, 48, 2) and (vis != Visibility.BACKGROUND).any()
    assert not (root / "flows").exists()


def test_torchrun_variables_select_the_shard(
    cli_env: None, patn: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    out = tmp_path / "run"
    assert main(["synth-flow", str(patn), "--out", str(out), "-q", "fit_batch=2"]) == 0
    assert "shard 2/2" in capsys.readouterr().out
    assert (out / "summary-00001-of-00002.json").is_file()
    assert not (out / "summary.json").exists()


def test_rerender_stored_fits_at_another_size(cli_env: None, patn: Path, tmp_path: Path) -> None:
    assert main(["synth-flow", str(patn), "--out", str(tmp_path / "a"), "-q"]) == 0
    flows = tmp_path / "big_flows"
    args = ["--from-fits", str(tmp_path / "a"), "--size", "128x96", "--flows-dir", str(flows)]
    assert main(["synth-flow", str(patn), "--out", str(tmp_path / "b"), *args, "-q"]) == 0
    files = sorted(flows.glob("*.npz"))
    assert len(files) == 6 and read_flow(files[0])[0].shape == (128, 96, 2)
    assert (tmp_path / "b" / "summary.json").is_file() and not (tmp_path / "b" / "flows").exists()


def test_user_errors_exit_2(cli_env: None, patn: Path, tmp_path: Path, capsys: Capture) -> None:
    run = ["synth-flow", str(patn), "--out", str(tmp_path / "x")]
    assert main([*run, "--size", "big"]) == 2
    assert "expected HxW" in capsys.readouterr().err
    assert main([*run, "--from-fits", str(tmp_path / "nothing")]) == 2
    assert "no fits folder" in capsys.readouterr().err
    assert main([*run, "--shard", "1"]) == 2
    assert "--num-shards" in capsys.readouterr().err
    assert main([*run, "--split", "val"]) == 2
    assert "no split 'val'" in capsys.readouterr().err
    assert main(["synth-flow", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2


def test_dry_run_shows_the_config(capsys: Capture, tmp_path: Path) -> None:
    args = ["synth-flow", str(tmp_path), "--out", str(tmp_path), "--dry-run", "fit.iterations=7"]
    assert main(args) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["fit"]["iterations"] == 7 and cfg["fit_batch"] == 64


def test_show_flow_writes_a_panel(
    cli_env: None, patn: Path, tmp_path: Path, capsys: Capture
) -> None:
    panel = tmp_path / "panel.png"
    assert main(["show-flow", str(patn), "--pair", "0", "--out", str(panel)]) == 2
    assert "no flow file" in capsys.readouterr().err
    assert main(["synth-flow", str(patn), "--out", str(patn), "-q"]) == 0
    assert (
        main(["show-flow", str(patn), "--pair", "0", "--split", "train", "--out", str(panel)]) == 0
    )
    with Image.open(panel) as image:
        assert image.width == 5 * 48 + 6 * 4 and image.height > 64
    names = [p.name for p in sorted((patn / "test").iterdir())]
    by_name = tmp_path / "by_name.png"
    args = ["--source", names[1], "--target", names[0], "--out", str(by_name)]
    assert main(["show-flow", str(patn), *args]) == 0
    assert names[1] in capsys.readouterr().out and by_name.is_file()
    assert main(["show-flow", str(patn), "--source", names[0], "--out", str(by_name)]) == 2


def test_shipped_config_matches_the_defaults() -> None:
    path = Path(__file__).resolve().parents[2] / "configs" / "synth_flow" / "default.yaml"
    assert load_config(SynthFlowConfig, path) == SynthFlowConfig()
