"""``posetransfer detect-pose`` on the committed real frames (skipped without the pose extra)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

pytest.importorskip(
    "mediapipe", reason="the 'pose' extra is not installed: pip install 'posetransfer[pose]'"
)

from posetransfer.cli import main
from posetransfer.data.formats import read_annotation_csv
from posetransfer.infer import detect
from posetransfer.infer.detect import PoseBackendMissingError, PoseDetector
from posetransfer.infer.images import load_image
from tests.infer.real_frames import FIXTURES, assert_close_to_reference

SINGLE = ["single_cam02_f030.jpg", "single_cam04_f070.jpg"]


@pytest.fixture(scope="module")
def detector() -> Iterator[PoseDetector]:
    with PoseDetector() as det:
        yield det


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder with two real frames, a blank image, a corrupt JPEG and a text file."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in SINGLE:
        shutil.copy(FIXTURES / name, folder / name)
    Image.new("RGB", (120, 200), (128, 128, 128)).save(folder / "z_blank.png")
    (folder / "y_broken.jpg").write_bytes((FIXTURES / SINGLE[0]).read_bytes()[:300])
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_folder_to_annotations_in_image_coordinates(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ann.csv"
    assert main(["detect-pose", str(photos), "--out", str(out)]) == 0
    poses = read_annotation_csv(out)
    assert list(poses) == SINGLE  # sorted, the blank image left out
    for name in SINGLE:
        # The CSV stores floor(xy); read back at the pixel centres, within 0.5 px of the truth.
        assert_close_to_reference(poses[name], (name, 0))
    captured = capsys.readouterr()
    assert "z_blank.png: no person found" in captured.err
    assert "y_broken.jpg" in captured.err
    summary = captured.out.strip().splitlines()[-1]
    assert "4 image(s)" in summary and "2 pose(s) written" in summary
    assert "1 without a person, 1 unreadable" in summary


def test_crops_have_the_size_and_keypoints_in_crop_pixels(
    photos: Path, tmp_path: Path, detector: PoseDetector
) -> None:
    out, crops = tmp_path / "ann.csv", tmp_path / "crops"
    args = ["detect-pose", str(photos / SINGLE[0]), str(photos / SINGLE[1]), "--out", str(out)]
    assert main([*args, "--crops", str(crops), "--size", "128x88"]) == 0
    poses = read_annotation_csv(out)
    assert sorted(poses) == sorted(p.name for p in crops.iterdir())
    assert sorted(poses) == [Path(n).stem + ".png" for n in SINGLE]
    for name in SINGLE:
        crop_name = Path(name).stem + ".png"
        with Image.open(crops / crop_name) as crop:
            assert crop.size == (88, 128) and crop.mode == "RGB"
        det = detector.detect(load_image(FIXTURES / name), name)
        frame = det.frame((128, 88))
        expected = frame.to_frame(det.pose, drop_outside=True)
        got = poses[crop_name]
        assert np.array_equal(got.valid, expected.valid)
        assert np.abs(got.xy - expected.xy)[got.valid].max() <= 0.5 + 0.05
        # The person's tight box plus the 10% margin just fits the crop in one direction.
        (sx, sy), (ox, oy) = frame.scale, frame.offset
        left, top, right, bottom = det.bounds
        pad = 0.1 * max(right - left, bottom - top)
        width, height = (right - left + 2 * pad) * sx, (bottom - top + 2 * pad) * sy
        assert max(width / 88, height / 128) == pytest.approx(1.0)
        assert left * sx + ox > 0 and right * sx + ox < 88
        assert top * sy + oy > 0 and bottom * sy + oy < 128


def test_person_option_picks_the_second_person(tmp_path: Path) -> None:
    out = tmp_path / "ann.csv"
    name = "multi_cam04_f005.jpg"
    assert main(["detect-pose", str(FIXTURES / name), "--out", str(out), "--person", "1"]) == 0
    assert_close_to_reference(read_annotation_csv(out)[name], (name, 1))


def test_video_every_second_frame(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video = pytest.importorskip("posetransfer.infer.video", reason="needs the video extra")
    pytest.importorskip("av", reason="the 'video' extra is not installed")
    image = load_image(FIXTURES / SINGLE[1])  # 145 px wide: written padded to 146 (yuv420)
    # Tracking follows a person from frame to frame, so neighbours show the same image.
    frames = [image] * 4 + [np.full_like(image, 100)] + [image] * 2
    clip = tmp_path / "clip.mp4"
    with video.VideoWriter(clip, fps=10, crf=12) as writer:
        for frame in frames:
            writer.write(frame)
    out = tmp_path / "ann.csv"
    assert main(["detect-pose", str(clip), "--out", str(out), "--every", "2"]) == 0
    poses = read_annotation_csv(out)
    # Frames 0, 2, 4, 6 are kept; frame 4 is blank.
    assert list(poses) == ["clip_f000000.png", "clip_f000002.png", "clip_f000006.png"]
    for name in poses:  # padding on the right leaves the coordinates as they were
        assert_close_to_reference(poses[name], (SINGLE[1], 0))
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert "1 video(s) (4 frame(s))" in summary and "1 without a person" in summary


def test_dry_run_prints_the_folded_config_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ann.csv"
    argv = ["detect-pose", str(FIXTURES), "detector.num_poses=2", "--out", str(out)]
    argv += ["--crops", str(tmp_path / "c"), "--size", "128x64", "--every", "3", "--dry-run"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    cfg = yaml.safe_load(text.split("\n", 1)[1])
    assert cfg["inputs"] == [str(FIXTURES)] and cfg["out"] == str(out)
    assert cfg["crops"] == str(tmp_path / "c") and cfg["size"] == [128, 64]
    assert cfg["every"] == 3 and cfg["person"] == 0
    assert cfg["detector"]["num_poses"] == 2 and cfg["detector"]["aspect"] == [128, 64]
    assert not out.exists() and not (tmp_path / "c").exists()


def test_only_blank_images_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blank = tmp_path / "blank.jpg"
    Image.new("RGB", (100, 160), (20, 20, 20)).save(blank)
    assert main(["detect-pose", str(blank), "--out", str(tmp_path / "a.csv")]) == 1
    assert "0 pose(s) written" in capsys.readouterr().out
    assert read_annotation_csv(tmp_path / "a.csv") == {}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{photos}/notes.txt", "--out", "{tmp}/a.csv"], "notes.txt: not an image"),
        (["{photos}/missing.jpg", "--out", "{tmp}/a.csv"], "missing.jpg: no such file"),
        (["{photos}"], "required: --out"),
        (["--out", "{tmp}/a.csv"], "no INPUT given"),
        (["{photos}", "{photos}", "--out", "{tmp}/a.csv"], "would share the row name"),
        (["{photos}", "--out", "{tmp}/a.csv", "--person", "-1"], "--person must be >= 0"),
    ],
)
def test_user_errors_are_one_line(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list, message: str
) -> None:
    argv = [a.format(photos=photos, tmp=tmp_path) for a in argv]
    assert main(["detect-pose", *argv]) == 2
    err = capsys.readouterr().err
    assert "posetransfer detect-pose: error:" in err and message in err


def test_missing_mediapipe_is_reported(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def missing() -> None:
        raise PoseBackendMissingError("install it with: pip install 'posetransfer[pose]'")

    monkeypatch.setattr(detect, "import_mediapipe", missing)
    assert main(["detect-pose", str(photos), "--out", str(tmp_path / "a.csv")]) == 2
    assert "pip install 'posetransfer[pose]'" in caplog.text
    assert not (tmp_path / "a.csv").exists()
