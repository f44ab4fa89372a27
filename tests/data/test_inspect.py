"""Tests for dataset inspection (posetransfer.data.inspect) and its CLI verb ``inspect-data``."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from posetransfer.cli import main
from posetransfer.data import flow_files, formats
from posetransfer.data.inspect import InspectConfig, format_report, inspect_dataset
from posetransfer.data.toy import make_toy_dataset
from posetransfer.pose.keypoints import Pose

ANNOTATION = "fasion-resize-annotation-{}.csv"
PAIRS = "fasion-resize-pairs-{}.csv"


@pytest.fixture
def patn(tmp_path: Path) -> Path:
    """3 people x 2 images (train: 4 images / 4 pairs, test: 2 / 2), 64x48, PATN layout."""
    return make_toy_dataset(tmp_path / "patn", layout="patn")


@pytest.fixture
def diaf(tmp_path: Path) -> Path:
    return make_toy_dataset(tmp_path / "diaf", layout="diaf")


def run_cli(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["inspect-data", str(root), "-q", *args])
    return code, capsys.readouterr().out


def kinds(root: Path, **kwargs) -> dict[str, int]:
    return dict(inspect_dataset(root, **kwargs).kinds())


def first_train_image(root: Path) -> str:
    return sorted(formats.read_annotation_csv(root / ANNOTATION.format("train")))[0]


# ----------------------------------------------------------------------------- clean datasets


def test_clean_patn_dataset(patn: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = inspect_dataset(patn)
    assert report.layout == "patn"
    assert report.findings == []
    train, test = report.counts["train"], report.counts["test"]
    assert (train.image_files, train.poses, train.pairs, train.pair_images) == (4, 4, 4, 4)
    assert (test.image_files, test.poses, test.pairs, test.pair_images) == (2, 2, 2, 2)
    assert train.flows_found is None  # no flows folder

    code, out = run_cli(patn, capsys)
    assert code == 0
    rows = {line.split()[0]: line.split()[1:5] for line in out.splitlines()[2:5] if line}
    assert rows["train"] == ["4", "4", "4", "4"]
    assert rows["test"] == ["2", "2", "2", "2"]
    assert "OK: no errors" in out


def test_clean_diaf_dataset_with_flows(tmp_path: Path) -> None:
    root = make_toy_dataset(tmp_path / "d", layout="diaf", poses_per_person=3, with_flows=True)
    report = inspect_dataset(root)
    assert report.layout == "diaf"
    assert report.findings == []
    assert (report.counts["all"].image_files, report.counts["all"].poses) == (9, 9)
    assert (report.counts["train"].pairs, report.counts["test"].pairs) == (12, 6)
    assert (report.counts["train"].flows_found, report.counts["train"].flows_missing) == (12, 0)


def test_split_filter(patn: Path) -> None:
    report = inspect_dataset(patn, ["test"])
    assert list(report.counts) == ["test"]
    with pytest.raises(ValueError, match=r"no split 'val'.*'test', 'train'"):
        inspect_dataset(patn, ["val"])


def test_missing_root_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        inspect_dataset(tmp_path / "nowhere")


def test_undiscoverable_layout_is_an_error_finding(tmp_path: Path) -> None:
    report = inspect_dataset(tmp_path)
    assert report.layout is None
    assert [f.kind for f in report.errors] == ["format_error"]
    assert "no dataset found" in report.errors[0].message


# ---------------------------------------------------------------------------- broken copies


def test_missing_image_file(patn: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name = first_train_image(patn)
    (patn / "train" / name).unlink()
    report = inspect_dataset(patn)
    missing = [f for f in report.errors if f.kind == "missing_image"]
    assert len(missing) == 1  # reported once although the pose and two pairs name it
    assert missing[0].split == "train" and name in missing[0].message
    assert report.counts["train"].image_files == 3

    code, out = run_cli(patn, capsys)
    assert code == 1
    assert "missing_image: 1" in out and name in out and "FAILED" in out


def test_keypoint_out_of_bounds(patn: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = patn / ANNOTATION.format("train")
    poses = formats.read_annotation_csv(path)
    name = sorted(poses)[1]
    indices = poses[name].to_indices()
    indices[4] = [48, 10]  # r_wrist one column right of a 48-pixel-wide image
    poses[name] = Pose.from_indices(indices)
    formats.write_annotation_csv(path, poses)

    report = inspect_dataset(patn)
    (finding,) = report.errors
    assert finding.kind == "keypoint_out_of_bounds"
    assert name in finding.message and "r_wrist" in finding.message
    assert "column 48, row 10" in finding.message

    code, out = run_cli(patn, capsys)
    assert code == 1
    assert "keypoint_out_of_bounds: 1" in out and "r_wrist" in out


def test_pair_naming_unknown_image(patn: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = patn / PAIRS.format("test")
    pairs = formats.read_pairs_csv(path)
    formats.write_pairs_csv(path, [*pairs, ("ghost.jpg", pairs[0][0])])

    report = inspect_dataset(patn)
    found = {f.kind: f for f in report.errors}
    assert set(found) == {"pair_unknown_image", "missing_image"}
    assert "ghost.jpg" in found["pair_unknown_image"].message
    assert found["pair_unknown_image"].split == "test"
    assert report.counts["test"].pairs == 3

    code, out = run_cli(patn, capsys)
    assert code == 1
    assert "pair_unknown_image: 1" in out and "ghost.jpg" in out


def test_malformed_annotation_line(patn: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = patn / ANNOTATION.format("train")
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = lines[2].rsplit(":", 1)[0] + ": [1, 2\n"  # truncate the x list of line 3
    path.write_text("".join(lines))

    report = inspect_dataset(patn)
    (finding,) = report.errors
    assert finding.kind == "format_error" and finding.line == 3
    assert "line 3" in finding.message and "keypoints_x" in finding.message
    # the inspection went on: the other split and this split's pairs are still checked
    assert report.counts["test"].poses == 2
    assert report.counts["train"].poses is None and report.counts["train"].pairs == 4

    code, out = run_cli(patn, capsys)
    assert code == 1
    assert "format_error: 1" in out and "line 3" in out
    (train_row,) = [line.split() for line in out.splitlines() if line.startswith("train ")]
    assert train_row[:4] == ["train", "4", "-", "4"]  # poses unknown: "-"


def test_pickle_holding_an_object(diaf: Path, tmp_path: Path, capsys) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):  # would create `marker` if the unpickler called it
            return (os.mkdir, (str(marker),))

    (diaf / "Label" / "pose_label.pkl").write_bytes(pickle.dumps({"x": Payload()}, protocol=2))

    report = inspect_dataset(diaf)
    (finding,) = report.errors
    assert finding.kind == "format_error" and finding.split == "all"
    assert "pose_label.pkl" in finding.message and "mkdir" in finding.message
    assert not marker.exists()
    # pairs are still counted (and not checked against the unreadable poses)
    assert (report.counts["train"].pairs, report.counts["test"].pairs) == (4, 2)

    code, out = run_cli(diaf, capsys)
    assert code == 1
    assert "format_error: 1" in out and "pose_label.pkl" in out
    assert not marker.exists()


def test_diaf_missing_and_unannotated_images(diaf: Path) -> None:
    images = sorted((diaf / "Img" / "img").iterdir())
    images[0].rename(diaf / "Img" / "img" / "stray.png")
    report = inspect_dataset(diaf)
    (missing,) = report.errors
    assert missing.kind == "missing_image" and missing.split == "all"
    assert images[0].name in missing.message  # the id plus the .jpg it should have
    (stray,) = report.warnings
    assert stray.kind == "image_without_pose" and "stray.png" in stray.message


def test_unreadable_image(patn: Path) -> None:
    name = first_train_image(patn)
    (patn / "train" / name).write_bytes(b"not a jpeg")
    assert kinds(patn) == {"unreadable_image": 1}


def test_flow_shape_mismatch_and_missing_flows(tmp_path: Path) -> None:
    root = make_toy_dataset(tmp_path / "t", with_flows=True)
    flows = sorted((root / "flows").iterdir())
    flows[0].unlink()
    flow_files.write_flow(flows[1], np.zeros((32, 48, 2), np.float32), np.zeros((32, 48), np.uint8))
    report = inspect_dataset(root, config=InspectConfig(flow_samples=100))
    assert [f.kind for f in report.errors] == ["flow_shape_mismatch"]
    assert flows[1].name in report.errors[0].message
    (warning,) = report.warnings
    assert warning.kind == "missing_flows" and flows[0].name in warning.message
    counts = report.counts
    assert counts["train"].flows_missing + counts["test"].flows_missing == 1
    assert counts["train"].flows_found + counts["test"].flows_found == 5


# ------------------------------------------------------------------------------- warnings


def test_warnings_do_not_fail(patn: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pairs_path = patn / PAIRS.format("train")
    pairs = formats.read_pairs_csv(pairs_path)
    formats.write_pairs_csv(pairs_path, [*pairs, pairs[0], (pairs[0][0], pairs[0][0])])
    path = patn / ANNOTATION.format("test")
    poses = formats.read_annotation_csv(path)
    name = sorted(poses)[0]
    valid = np.zeros(18, bool)
    valid[:3] = True
    poses[name] = Pose(poses[name].xy, valid)
    formats.write_annotation_csv(path, poses)
    (patn / "train" / "extra.jpg").write_bytes(
        (patn / "train" / first_train_image(patn)).read_bytes()
    )

    report = inspect_dataset(patn)
    assert report.errors == []
    assert dict(report.kinds()) == {
        "few_keypoints": 1,
        "image_without_pose": 1,
        "duplicate_pair": 1,
        "self_pair": 1,
    }
    assert "only 3 valid keypoints" in next(
        f.message for f in report.findings if f.kind == "few_keypoints"
    )
    assert kinds(patn, config=InspectConfig(min_valid_keypoints=3)).get("few_keypoints") is None

    code, out = run_cli(patn, capsys)
    assert code == 0
    assert "warnings (4):" in out and "OK: no errors, 4 warning(s)" in out


def test_report_lists_at_most_n_examples(patn: Path) -> None:
    for name in sorted(formats.read_annotation_csv(patn / ANNOTATION.format("train")))[:3]:
        (patn / "train" / name).unlink()
    report = inspect_dataset(patn)
    text = format_report(report, max_listed=1)
    assert "missing_image: 3" in text
    assert text.count("does not exist") == 1
    assert "... and 2 more" in text


def test_json_report(patn: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name = sorted(formats.read_annotation_csv(patn / ANNOTATION.format("test")))[0]
    (patn / "test" / name).unlink()
    out_json = tmp_path / "reports" / "report.json"
    code, _ = run_cli(patn, capsys, "--json", str(out_json), "--split", "test")
    assert code == 1
    data = json.loads(out_json.read_text())
    assert data["ok"] is False and data["layout"] == "patn"
    assert data["num_errors"] == 1 and data["kinds"] == {"missing_image": 1}
    assert list(data["counts"]) == ["test"] and data["counts"]["test"]["image_files"] == 1
    assert data["findings"][0]["path"].endswith(name)
