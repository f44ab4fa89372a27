"""``posetransfer make-dataset``: flags into the config, the run's summary and its user errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from posetransfer.cli import main

Capture = pytest.CaptureFixture[str]


def test_dry_run_folds_every_flag(tmp_path: Path, capsys: Capture) -> None:
    line = ["make-dataset", "a.mp4", "b.mp4", "every=3", "--out", str(tmp_path / "d"),
            "--size", "128x88", "--identity", "ann", "bob", "--split", "person",
            "--test-identity", "bob", "--gap", "0", "--min-pose-change", "5.5",
            "pairs_per_image=null", "--dry-run"]  # fmt: skip
    assert main(line) == 0, capsys.readouterr().err
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["inputs"] == ["a.mp4", "b.mp4"] and printed["every"] == 3
    assert printed["identities"] == ["ann", "bob"] and printed["test_identities"] == ["bob"]
    assert printed["size"] == [128, 88] and printed["detector"]["aspect"] == [128, 88]
    assert printed["split"] == "person" and printed["gap"] == 0
    assert printed["min_pose_change"] == 5.5 and printed["pairs_per_image"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--test-fraction", "1.5"], "test_fraction must be in [0, 1)"),
        (["--gap", "-1"], "gap must be >= 0"),
        (["--size", "8x8"], "size must be (H, W) with both >= 16"),
        (["prefix=data-"], "prefix must be one of"),
    ],
)
def test_bad_settings_are_refused_before_anything_runs(
    args: list[str], message: str, capsys: Capture
) -> None:
    assert main(["make-dataset", "x.mp4", *args, "--dry-run"]) == 2
    assert message in capsys.readouterr().err


def test_missing_inputs_and_out(tmp_path: Path, capsys: Capture) -> None:
    assert main(["make-dataset", "--out", str(tmp_path / "d")]) == 2
    assert "no VIDEO_OR_FOLDER" in capsys.readouterr().err
    assert main(["make-dataset", str(tmp_path / "none.mp4")]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["make-dataset", str(tmp_path / "none.mp4"), "--out", str(tmp_path / "d")]) == 2
    assert "none.mp4: no such file" in capsys.readouterr().err


def test_run_prints_the_summary_and_reuses_on_rerun(tmp_path: Path, capsys: Capture) -> None:
    pytest.importorskip("mediapipe", reason="the 'pose' extra is not installed")
    pytest.importorskip("av", reason="the 'video' extra is not installed")
    from tests.infer.footage import make_footage

    footage = make_footage(tmp_path / "in")
    line = ["make-dataset", str(footage / "alice"), "--out", str(tmp_path / "d"), "--size",
            "64x48", "--test-fraction", "0.4", "--preview"]  # fmt: skip
    assert main(line) == 0, capsys.readouterr().err
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert "1 source(s) ->" in out and "train: 2 images of 1 identities" in out
    assert "test: 1 images" in out and (tmp_path / "d" / "preview.png").is_file()
    assert main([*line, "-q"]) == 0
    assert "1 source(s) (1 reused)" in capsys.readouterr().out
    assert main(["inspect-data", str(tmp_path / "d")]) == 0
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("x")
    line[3] = str(tmp_path / "other")
    assert main(line) == 2
    assert "not made by make-dataset" in capsys.readouterr().err
