"""``posetransfer infer --source PHOTO --target T``: any photo in, a PNG or an MP4 out, with
the tiny 32x32 run of tests/fixtures/old_run and real frames of the BSD-3 demo videos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posetransfer.cli import main
from posetransfer.cli.infer_photo import output_path, target_kind

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RUN = FIXTURES / "old_run" / "gen_run"
REAL = FIXTURES / "real"
POSE = FIXTURES / "old_run" / "target_pose.json"


def _photo(path: Path, size: tuple[int, int] = (90, 70)) -> tuple[Path, Path]:
    """A random photo and a source pose file (pixel indices) with a person-sized pose in it."""
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((*size, 3)) * 255).astype(np.uint8)).save(path)
    xy = np.asarray(json.loads(POSE.read_text())) * 2 + [size[1] // 2 - 32, size[0] // 2 - 32]
    pose = path.with_suffix(".json")
    pose.write_text(json.dumps(xy.astype(int).tolist()))
    return path, pose


def test_target_kind_and_output_path() -> None:
    assert target_kind("walk.MP4") == "video" and target_kind("me.jpeg") == "photo"
    assert target_kind("poses.csv#img.jpg") == "pose" and target_kind("p.json") == "pose"
    assert output_path(Path("o"), "video") == Path("o.mp4")
    assert output_path(Path("o.png"), "photo") == Path("o.png")
    with pytest.raises(ValueError, match=r"a video target writes \.mp4, not \.png"):
        output_path(Path("o.png"), "video")


def test_photo_and_pose_file_to_png(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    photo, pose = _photo(tmp_path / "me.png")
    out = tmp_path / "out"
    args = ["infer", "--checkpoint", str(RUN), "--source", str(photo), "--source-pose", str(pose)]
    assert main([*args, "--target", str(POSE), "--out", str(out), "-q"]) == 0
    written = np.asarray(Image.open(tmp_path / "out.png"))
    assert written.shape == (32, 32, 3)
    assert json.loads(capsys.readouterr().out)["output"] == str(tmp_path / "out.png")
    # --paste: the whole photo comes back, changed only around the person
    assert main([*args, "--target", str(POSE), "--out", str(out), "--paste", "-q"]) == 0
    pasted = np.asarray(Image.open(tmp_path / "out.png"))
    original = np.asarray(Image.open(photo))
    assert pasted.shape == original.shape
    changed = (pasted != original).any(axis=2)
    assert changed.any() and not changed[:, :3].any() and not changed[:3].any()


def test_real_photos_detected_and_pasted(tmp_path: Path) -> None:
    pytest.importorskip("mediapipe")
    source, target = REAL / "single_cam01_f050.jpg", REAL / "sports2d_f115.jpg"
    out = tmp_path / "repose.png"
    args = ["infer", "--checkpoint", str(RUN), "--source", str(source), "--target", str(target)]
    assert main([*args, "--out", str(out), "--paste", "-q"]) == 0
    assert np.asarray(Image.open(out)).shape == np.asarray(Image.open(source)).shape


def test_video_target_writes_an_mp4(tmp_path: Path) -> None:
    pytest.importorskip("mediapipe")
    pytest.importorskip("av")
    from posetransfer.infer.images import load_image
    from posetransfer.infer.video import VideoWriter, video_info

    driving = tmp_path / "drive.mp4"
    frames = [load_image(REAL / n) for n in ("single_cam02_f030.jpg", "single_cam03_f060.jpg")]
    height = min(f.shape[0] for f in frames)
    width = min(f.shape[1] for f in frames)
    with VideoWriter(driving, 8) as writer:
        for frame in frames:
            for _ in range(3):
                writer.write(np.ascontiguousarray(frame[:height, :width]))
    out = tmp_path / "anim"
    args = ["infer", "--checkpoint", str(RUN), "--source", str(REAL / "single_cam01_f050.jpg")]
    assert main([*args, "--target", str(driving), "--out", str(out), "--side-by-side", "-q"]) == 0
    info = video_info(tmp_path / "anim.mp4")
    assert info.frame_count == 6 and info.fps == pytest.approx(8.0)


def test_photo_mode_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    photo, pose = _photo(tmp_path / "me.png")
    base = ["infer", "--checkpoint", str(RUN), "--source", str(photo)]
    assert main([*base, "--target", str(POSE), "--target-pose", str(POSE), "--out", "o"]) == 2
    assert "not both" in capsys.readouterr().err
    missing = ["infer", "--checkpoint", str(RUN), "--source", str(tmp_path / "nope.jpg")]
    assert main([*missing, "--target", str(POSE), "--out", str(tmp_path / "o")]) == 2
    assert "nope.jpg" in capsys.readouterr().err
    args = [*base, "--source-pose", str(pose), "--target", str(POSE)]
    assert main([*args, "--out", str(tmp_path / "o.jpg")]) == 2
    assert "writes .png, not .jpg" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "o"), "--paste", "photo.background=white"]) == 2
    assert "photo.paste needs photo.background=source" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "o"), "--paste", "--background", "white"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_no_person_in_the_photo_names_the_file(tmp_path: Path, capsys) -> None:
    pytest.importorskip("mediapipe")
    blank = tmp_path / "empty_room.png"
    Image.new("RGB", (120, 90), (200, 200, 200)).save(blank)
    args = ["infer", "--checkpoint", str(RUN), "--source", str(blank), "--target", str(POSE)]
    assert main([*args, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "empty_room.png" in err and "person" in err
