"""``make-dataset`` on short footage made from the real frames (skipped without pose/video extras).

One dataset is made per module (``made``) and checked from several sides: the layout and counts,
the time split and its gap, the pair rule, mask alignment, ``inspect-data``. Resuming after a
kill, reruns and changed inputs make datasets of their own.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("mediapipe", reason="the 'pose' extra is not installed")
pytest.importorskip("av", reason="the 'video' extra is not installed")

from posetransfer.conventions import Keypoint
from posetransfer.data.datasets import PairDataset
from posetransfer.data.formats import read_annotation_csv, read_pairs_csv
from posetransfer.data.inspect import inspect_dataset
from posetransfer.data.pairing import pose_change
from posetransfer.data.person_masks import mask_path, read_mask
from posetransfer.data.splits import identity_of
from posetransfer.infer import dataset_source, make_dataset
from posetransfer.infer.dataset_config import MakeDatasetConfig
from posetransfer.infer.dataset_source import GAP_REASON, NO_PERSON, box_iou
from posetransfer.infer.detect import DetectorConfig, PoseDetector
from posetransfer.infer.images import load_image
from tests.infer.footage import BLANK, PHOTOS, WALK, cached_video, make_footage

SIZE = (96, 64)
PREFIX = "fasion-resize-"


def _config(folder: Path, out: Path, **changes: object) -> MakeDatasetConfig:
    cfg = MakeDatasetConfig(
        inputs=(str(folder / "walk.mp4"), str(folder / "alice")),
        out=str(out),
        size=SIZE,
        test_fraction=0.25,
        gap=2,
        min_pose_change=4.0,
        pairs_per_image=None,
        detector=DetectorConfig(aspect=SIZE),
    )
    return dataclasses.replace(cfg, **changes)  # type: ignore[arg-type]


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_footage(tmp_path_factory.mktemp("footage"))


@pytest.fixture(scope="module")
def made(footage: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("made") / "data"
    summary = make_dataset.make_dataset(_config(footage, out, preview=True))
    assert summary.reused == 0 and summary.sources == 2
    return out


def test_layout_counts_and_skipped_frames(made: Path) -> None:
    frames = _rows(made / "frames.csv")
    walk = [r for r in frames if r["identity"] == "walk"]
    # 12 frames: 3 test frames (round(0.25 * 12)), gap 2 drops frames 7 and 8, frame 3 is blank.
    assert sorted(int(r["frame"]) for r in walk if r["split"] == "train") == [0, 1, 2, 4, 5, 6]
    assert sorted(int(r["frame"]) for r in walk if r["split"] == "test") == [9, 10, 11]
    alice = {r["name"]: r["split"] for r in frames if r["identity"] == "alice"}
    assert alice == {  # photos in name order, the last round(0.25 * 3) = 1 in test, no gap
        "alice_multi_cam04_f005.png": "train",
        "alice_single_cam02_f030.png": "train",
        "alice_single_cam04_f070.png": "test",
    }
    skipped = {(r["frame"], r["reason"]) for r in _rows(made / "skipped.csv")}
    assert skipped == {(str(BLANK), NO_PERSON), ("7", GAP_REASON), ("8", GAP_REASON)}
    for split in ("train", "test"):
        names = {r["name"] for r in frames if r["split"] == split}
        assert set(read_annotation_csv(made / f"{PREFIX}annotation-{split}.csv")) == names
        assert {p.name for p in (made / split).iterdir()} == names
        assert {p.name for p in (made / "masks" / split).iterdir()} == names
        for name in names:
            with (
                Image.open(made / split / name) as image,
                Image.open(mask_path(made, split, name)) as mask,
            ):
                assert image.size == mask.size == (SIZE[1], SIZE[0])
                assert (image.mode, mask.mode) == ("RGB", "L")
    assert all(identity_of(r["name"]) == r["identity"] for r in frames)
    assert (made / "preview.png").is_file() and (made / "config.yaml").is_file()


def test_time_split_is_disjoint_with_the_gap(made: Path) -> None:
    frames = [r for r in _rows(made / "frames.csv") if r["identity"] == "walk"]
    train = [int(r["frame"]) for r in frames if r["split"] == "train"]
    test = [int(r["frame"]) for r in frames if r["split"] == "test"]
    assert min(test) - max(train) - 1 >= 2  # at least `gap` frames strictly between
    train_pairs = read_pairs_csv(made / f"{PREFIX}pairs-train.csv")
    test_pairs = read_pairs_csv(made / f"{PREFIX}pairs-test.csv")
    train_names = set(read_annotation_csv(made / f"{PREFIX}annotation-train.csv"))
    test_names = set(read_annotation_csv(made / f"{PREFIX}annotation-test.csv"))
    assert not train_names & test_names
    assert {n for pair in train_pairs for n in pair} <= train_names
    assert {n for pair in test_pairs for n in pair} <= test_names


def test_pairs_are_exactly_those_of_one_identity_that_change_enough(made: Path) -> None:
    identity = {r["name"]: r["identity"] for r in _rows(made / "frames.csv")}
    for split in ("train", "test"):
        poses = read_annotation_csv(made / f"{PREFIX}annotation-{split}.csv")
        expected = {
            (a, b)
            for a, b in itertools.permutations(poses, 2)
            if identity[a] == identity[b] and pose_change(poses[a], poses[b], min_common=6) >= 4
        }
        pairs = read_pairs_csv(made / f"{PREFIX}pairs-{split}.csv")
        assert len(pairs) == len(set(pairs)) and set(pairs) == expected
        assert expected  # the rule leaves pairs in both splits
    # The repeated frames 0/1 (same image) change by less than 4 px: never paired.
    assert ("walk_f000000.png", "walk_f000001.png") not in set(
        read_pairs_csv(made / f"{PREFIX}pairs-train.csv")
    )


def test_masks_are_aligned_with_the_crops(made: Path) -> None:
    torso = [Keypoint.NECK, Keypoint.R_SHOULDER, Keypoint.L_SHOULDER, Keypoint.R_HIP,
             Keypoint.L_HIP]  # fmt: skip
    for split in ("train", "test"):
        for name, pose in read_annotation_csv(made / f"{PREFIX}annotation-{split}.csv").items():
            mask = read_mask(mask_path(made, split, name))
            assert 0.05 < (mask > 0.5).mean() < 0.8, name
            points = [pose.xy[k] for k in torso if pose.valid[k]]
            assert len(points) >= 4, name
            inside = [mask[int(y), int(x)] > 0.5 for x, y in points]
            assert np.mean(inside) >= 0.75, name  # the torso lies on the person's mask
            rows, cols = np.nonzero(mask > 0.5)
            centre = np.array([cols.mean() + 0.5, rows.mean() + 0.5])
            assert np.linalg.norm(centre - np.mean(points, axis=0)) < 0.2 * SIZE[0], name


def _sample(image: np.ndarray, box: list[float], size: tuple[int, int]) -> np.ndarray:
    """``image`` at the centres of ``size`` pixels spread over ``box`` (nearest, edge-clamped)."""
    left, top, right, bottom = box
    x = left + (np.arange(size[1]) + 0.5) * (right - left) / size[1]
    y = top + (np.arange(size[0]) + 0.5) * (bottom - top) / size[0]
    cols = np.clip(np.floor(x).astype(int), 0, image.shape[1] - 1)
    rows = np.clip(np.floor(y).astype(int), 0, image.shape[0] - 1)
    return image[np.ix_(rows, cols)]


def test_crop_and_mask_come_from_the_recorded_box(made: Path) -> None:
    """An independent resampling of each photo and its person mask through frames.csv's box."""
    rows = [r for r in _rows(made / "frames.csv") if r["identity"] == "alice"]
    with PoseDetector(DetectorConfig(aspect=SIZE)) as detector:
        for row in rows:
            original = load_image(row["origin"])
            person = detector.detect_all(original, row["origin"])[0]
            box = [float(row[k]) for k in ("left", "top", "right", "bottom")]
            crop = np.asarray(Image.open(made / row["split"] / row["name"]), np.float32)
            mask = read_mask(mask_path(made, row["split"], row["name"]))
            want_crop = _sample(original, box, SIZE).astype(np.float32)
            want_mask = _sample(person.mask, box, SIZE)
            assert np.abs(crop - want_crop).mean() < 10, row["name"]
            overlap = ((mask > 0.5) & (want_mask > 0.5)).sum() / (
                (mask > 0.5) | (want_mask > 0.5)
            ).sum()
            assert overlap > 0.9, row["name"]


def test_inspect_data_and_pair_dataset_read_it(made: Path) -> None:
    report = inspect_dataset(made)
    assert report.errors == [] and report.warnings == []
    sample = PairDataset(made, "train", protocol="native")[0]
    assert sample.source_image.shape == (3, *SIZE) and sample.flow is None


def test_killed_run_resumes_to_the_same_files(
    footage: Path, made: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "resumed"
    expected = _tree(made)
    expected.pop("config.yaml")  # it names the output folder
    real_save = dataset_source.save_png
    calls = itertools.count()
    walk_crops = len(WALK) - 1  # every frame but the blank one is cropped (gap frames too)

    def dying_save(path: Path, image: np.ndarray) -> None:
        if next(calls) == walk_crops + 1:  # alice's second photo: walk.mp4 is finished
            raise KeyboardInterrupt
        real_save(path, image)

    monkeypatch.setattr(dataset_source, "save_png", dying_save)
    cfg = _config(footage, out, preview=True)
    with pytest.raises(KeyboardInterrupt):
        make_dataset.make_dataset(cfg)
    assert (out / "parts" / "walk.json").is_file() and not (out / "parts" / "alice.json").exists()
    assert (out / "parts" / "alice.staging").is_dir()
    monkeypatch.undo()
    summary = make_dataset.make_dataset(cfg)
    assert summary.reused == 1
    got = _tree(out)
    got.pop("config.yaml")
    assert got.keys() == expected.keys()
    assert [k for k in got if got[k] != expected[k]] == []
    again = make_dataset.make_dataset(cfg)  # a finished dataset: nothing is made again
    assert again.reused == 2
    assert _tree(out) == {**got, "config.yaml": (out / "config.yaml").read_bytes()}


def test_changed_settings_and_inputs(footage: Path, made: Path) -> None:
    out = made.parent / "changed"
    shutil.copytree(made, out)
    cfg = _config(footage, out, min_pose_change=1000.0)
    summary = make_dataset.make_dataset(cfg)  # only the pairs change: every source reused
    assert summary.reused == 2 and summary.pairs == {"train": 0, "test": 0}
    cfg = dataclasses.replace(cfg, inputs=cfg.inputs[:1], prefix="market-")
    summary = make_dataset.make_dataset(cfg)
    assert summary.sources == 1 and summary.reused == 1
    assert not list(out.rglob("alice_*")) and not (out / "parts" / "alice.json").exists()
    assert sorted(p.name for p in out.glob("*.csv")) == [
        "frames.csv", "market-annotation-test.csv", "market-annotation-train.csv",
        "market-pairs-test.csv", "market-pairs-train.csv", "skipped.csv",
    ]  # fmt: skip
    assert inspect_dataset(out).errors == []


def test_refuses_a_folder_it_did_not_make(footage: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not made by make-dataset"):
        make_dataset.make_dataset(_config(footage, tmp_path))
    with pytest.raises(ValueError, match="at least two identities"):
        make_dataset.make_dataset(_config(footage, tmp_path / "new", split="person",
                                          identities=("bob",)))  # fmt: skip


def test_person_split_keeps_identities_apart(footage: Path, tmp_path: Path) -> None:
    photos = [str(footage / "alice" / p) for p in PHOTOS]  # one by one: grouped by folder
    cfg = _config(footage, tmp_path / "data", split="person", test_identities=("alice",),
                  inputs=(str(footage / "walk.mp4"), *photos))  # fmt: skip
    make_dataset.make_dataset(cfg)
    splits = {(r["identity"], r["split"]) for r in _rows(tmp_path / "data" / "frames.csv")}
    assert splits == {("walk", "train"), ("alice", "test")}
    # No gap in the person split: all 11 frames with a person are kept.
    assert sum(1 for r in _rows(tmp_path / "data" / "skipped.csv")) == 1


def test_box_iou() -> None:
    assert box_iou([0, 0, 2, 2], [1, 0, 3, 2]) == pytest.approx(1 / 3)
    assert box_iou([0, 0, 1, 1], [2, 2, 3, 3]) == 0.0


def test_cached_real_videos_two_synchronised_cameras(tmp_path: Path) -> None:
    base = "pose2sim/Pose2Sim/Demo_SinglePerson/videos"
    videos = [cached_video(f"{base}/cam0{i}.mp4") for i in (1, 2)]
    if None in videos:
        pytest.skip("the demo videos are not in .cache/real (make real-videos)")
    cfg = MakeDatasetConfig(
        inputs=tuple(str(v) for v in videos), identities=("single",), out=str(tmp_path / "d"),
        size=SIZE, every=10, max_frames=6, gap=15, detector=DetectorConfig(aspect=SIZE),
    )  # fmt: skip
    summary = make_dataset.make_dataset(cfg)
    assert summary.images == {"train": 8, "test": 2}  # 0-50 each: 0-30 train, 40 gap, 50 test
    frames = _rows(tmp_path / "d" / "frames.csv")
    test = {(r["origin"], int(r["frame"])) for r in frames if r["split"] == "test"}
    assert test == {(str(v), 50) for v in videos}  # the same moment in both
    pairs = read_pairs_csv(tmp_path / "d" / f"{PREFIX}pairs-test.csv")
    cross = [(a, b) for a, b in pairs if a.split("_f")[0] != b.split("_f")[0]]
    assert cross  # the same person seen by the other camera: view-change pairs
    assert inspect_dataset(tmp_path / "d").errors == []
