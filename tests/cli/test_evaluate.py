"""``posetransfer evaluate`` end to end, in-process through ``posetransfer.cli.main``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posetransfer.cli import COMMANDS, main
from tests.eval.conftest import MakeFolder

Capture = pytest.CaptureFixture[str]


def test_registered() -> None:
    assert "evaluate" in COMMANDS


def test_end_to_end_writes_json(
    make_folder: MakeFolder, no_weights: Path, tmp_path: Path, capsys: Capture
) -> None:
    pred_dir, gt_dir, _ = make_folder(6, size=(64, 48))
    out = tmp_path / "reports" / "eval.json"
    argv = ["evaluate", "--protocol", "native", "--pred", str(pred_dir), "--gt", str(gt_dir)]
    assert main([*argv, "--out", str(out), "batch_size=4", "num_threads=1"]) == 0
    report = json.loads(out.read_text())
    assert report["num_images"] == 6
    assert report["protocol"] == "native"
    for key in ("ssim", "psnr", "l1"):
        assert isinstance(report["metrics"][key], float)
    for key in ("lpips", "fid", "kid", "inception_score"):
        assert report["skipped"][key]
    assert report["config"]["batch_size"] == 4
    table = capsys.readouterr().out
    assert "protocol native, 6 images" in table
    assert f"{report['metrics']['ssim']:.4f}" in table
    assert "skipped" in table
    assert not list(out.parent.glob(".*.tmp"))  # atomic write left no temporary file


def test_unmatched_prediction_is_a_user_error(
    make_folder: MakeFolder, no_weights: Path, tmp_path: Path, capsys: Capture
) -> None:
    pred_dir, gt_dir, _ = make_folder(2, size=(32, 32))
    (pred_dir / "stray_2_unknown.png").write_bytes((pred_dir / "t1_2_t0.png").read_bytes())
    out = tmp_path / "eval.json"
    argv = ["evaluate", "--protocol", "native", "--pred", str(pred_dir), "--gt", str(gt_dir)]
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "posetransfer evaluate: error: 1 prediction(s)" in err
    assert "stray_2_unknown.png" in err
    assert not out.exists()


def test_describe_and_missing_options(capsys: Capture) -> None:
    assert main(["evaluate", "--describe", "--protocol", "market-128x64"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("market-128x64: ") and "mask_*" in out
    assert main(["evaluate", "--describe"]) == 0
    assert "deepfashion-256x176-crop: " in capsys.readouterr().out
    assert main(["evaluate", "--protocol", "native", "--out", "x.json"]) == 2
    assert "missing required option(s): --pred, --gt" in capsys.readouterr().err
    assert main(["evaluate", "--protocol", "nope"]) == 2
    assert "invalid choice" in capsys.readouterr().err
