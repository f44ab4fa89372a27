"""Keypoint and pair files: the PATN/GFLA CSVs, and what every label format shares."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from posetransfer.data.diaf_formats import (
    read_pair_split,
    read_pose_label,
    write_pair_split,
    write_pose_label,
)
from posetransfer.data.formats import (
    FormatError,
    read_annotation_csv,
    read_pairs_csv,
    write_annotation_csv,
    write_pairs_csv,
)
from posetransfer.pose.keypoints import Pose

from .format_helpers import assert_error, make_pose

# A row in the style of fasion-resize-annotation-train.csv (rows first, then columns).
REAL_NAME = "fashionWOMENTees_Tanksid0000783805_7additional.jpg"
REAL_Y = [23, 40, 41, 74, 104, 39, 71, 99, 126, 185, 240, 126, 183, 237, 19, -1, 22, -1]
REAL_X = [88, 87, 66, 58, 60, 108, 118, 117, 73, 71, 69, 103, 104, 105, 83, -1, 77, -1]
REAL_ROW = f"{REAL_NAME}: {REAL_Y}: {REAL_X}"


def test_format_error_message_names_file_line_and_field(tmp_path: Path) -> None:
    err = FormatError(tmp_path / "a.csv", "bad value", line=7, field="keypoints_x")
    assert isinstance(err, ValueError)
    assert str(err) == f"{tmp_path / 'a.csv'}, line 7, field 'keypoints_x': bad value"


# ---------------------------------------------------------------------------------- pairs csv


def test_pairs_csv_round_trip(tmp_path: Path) -> None:
    pairs = [("a.jpg", "b.jpg"), ("b.jpg", "a.jpg"), ("c d.jpg", "e.jpg")]
    path = tmp_path / "fasion-resize-pairs-test.csv"
    write_pairs_csv(path, iter(pairs))
    assert path.read_text().splitlines()[0] == "from,to"
    assert read_pairs_csv(path) == pairs


def test_pairs_csv_tolerates_whitespace_index_column_and_extra_columns(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(",from,to,garment\r\n0, a.jpg ,b.jpg,x\r\n\r\n1,c.jpg,d.jpg,y\r\n")
    assert read_pairs_csv(path) == [("a.jpg", "b.jpg"), ("c.jpg", "d.jpg")]


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("a.jpg,b.jpg\n", 1, None),  # no header
        ("", 1, None),  # empty file
        ("from,to\na.jpg,b.jpg\na.jpg\n", 3, None),  # missing field
        ("from,to\na.jpg,b.jpg,c.jpg\n", 2, None),  # extra field
        ("from,to\na.jpg, \n", 2, "to"),  # empty name
    ],
)
def test_pairs_csv_errors(tmp_path: Path, text: str, line: int, field: str | None) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text(text)
    with pytest.raises(FormatError) as excinfo:
        read_pairs_csv(path)
    assert_error(excinfo, path, line, field)


def test_pairs_csv_write_rejects_unwritable_names_and_keeps_old_file(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    write_pairs_csv(path, [("a.jpg", "b.jpg")])
    before = path.read_bytes()
    for bad in [[("a,b.jpg", "c.jpg")], [("a.jpg",)], [("a.jpg", "")], [("a.jpg", "b\n.jpg")]]:
        with pytest.raises(FormatError, match=r"pairs\.csv"):
            write_pairs_csv(path, bad)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.csv"]  # no temporary left


def test_pairs_csv_write_keeps_old_file_when_the_data_raises(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    write_pairs_csv(path, [("a.jpg", "b.jpg")])
    before = path.read_bytes()

    def broken():
        yield ("c.jpg", "d.jpg")
        raise RuntimeError("source failed")

    with pytest.raises(RuntimeError, match="source failed"):
        write_pairs_csv(path, broken())
    assert path.read_bytes() == before


# ----------------------------------------------------------------------------- annotation csv


def test_annotation_csv_parses_a_real_style_row(tmp_path: Path) -> None:
    path = tmp_path / "fasion-resize-annotation-train.csv"
    path.write_text(f"name:keypoints_y:keypoints_x\n{REAL_ROW}\n")
    poses = read_annotation_csv(path)
    assert list(poses) == [REAL_NAME]
    pose = poses[REAL_NAME]
    assert pose.valid.tolist() == [v != -1 for v in REAL_Y]
    assert pose.xy[0].tolist() == [88.5, 23.5]  # nose: x = col + 0.5 (second list), y = row + 0.5
    assert pose.xy[13].tolist() == [105.5, 237.5]


def test_annotation_csv_round_trip_in_the_original_style(tmp_path: Path, rng) -> None:
    poses = {
        "a.jpg": make_pose(rng, missing=(3, 17)),
        "b.jpg": make_pose(rng),
        "c.jpg": Pose.missing(),
    }
    path = tmp_path / "ann.csv"
    write_annotation_csv(path, poses)
    lines = path.read_text().splitlines()
    assert lines[0] == "name:keypoints_y:keypoints_x"
    rows = poses["a.jpg"].to_indices()
    assert lines[1] == f"a.jpg: {rows[:, 1].tolist()}: {rows[:, 0].tolist()}"
    assert lines[3] == f"c.jpg: {[-1] * 18}: {[-1] * 18}"
    back = read_annotation_csv(path)
    assert list(back) == list(poses)
    for name, pose in poses.items():
        assert back[name] == pose


def test_annotation_csv_writes_floor_of_continuous_points(tmp_path: Path) -> None:
    xy = np.zeros((18, 2), np.float32)
    xy[0] = [10.99, 3.01]
    valid = np.zeros(18, bool)
    valid[0] = True
    path = tmp_path / "ann.csv"
    write_annotation_csv(path, {"x.jpg": Pose(xy, valid)})
    assert read_annotation_csv(path)["x.jpg"].xy[0].tolist() == [10.5, 3.5]


def test_annotation_csv_tolerates_spaces_floats_and_blank_lines(tmp_path: Path) -> None:
    ys = ", ".join(f"{v}.0" for v in REAL_Y)
    path = tmp_path / "ann.csv"
    path.write_text(
        f"\ufeff name : keypoints_y : keypoints_x \r\n\r\n  {REAL_NAME} :[{ys}] :  {REAL_X}  \r\n"
    )
    pose = read_annotation_csv(path)[REAL_NAME]
    assert pose.xy[0].tolist() == [88.5, 23.5]
    assert pose.num_valid == 16


def _rows(*rows: str) -> str:
    return "name:keypoints_y:keypoints_x\n" + "".join(r + "\n" for r in rows)


GOOD = f"a.jpg: {REAL_Y}: {REAL_X}"


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("", 1, None),
        (f"{GOOD}\n", 1, None),  # header missing
        ("name,keypoints_y,keypoints_x\n", 1, None),
        (_rows(GOOD, f"b.jpg: {REAL_Y[:17]}: {REAL_X}"), 3, "keypoints_y"),
        (_rows(f"b.jpg: {REAL_Y}: {[*REAL_X, 4]}"), 2, "keypoints_x"),
        (_rows(f"b.jpg: {REAL_Y}: [1, 2, three]"), 2, "keypoints_x"),
        (_rows("b.jpg: " + str(["1"] * 18).replace("'", '"') + f": {REAL_X}"), 2, "keypoints_y"),
        (_rows(f"b.jpg: {[-0.5] * 18}: {REAL_X}"), 2, "keypoints_y"),
        (_rows(f"b.jpg: {REAL_Y}: {[-2] * 18}"), 2, "keypoints_x"),
        (_rows(f"b.jpg: {REAL_Y}: {[True] * 18}".replace("True", "true")), 2, "keypoints_x"),
        (_rows(f"b.jpg: {REAL_Y}: {[float('nan')] * 18}".replace("nan", "NaN")), 2, "keypoints_x"),
        (_rows(f"b.jpg: {REAL_Y}"), 2, None),  # two fields
        (_rows(f"b.jpg: {REAL_Y}: {REAL_X}: extra"), 2, None),
        (_rows(f": {REAL_Y}: {REAL_X}"), 2, "name"),
        (_rows(GOOD, "", GOOD), 4, "name"),  # duplicate, after a blank line
    ],
)
def test_annotation_csv_errors(tmp_path: Path, text: str, line: int, field: str | None) -> None:
    path = tmp_path / "market-annotation-test.csv"
    path.write_text(text)
    with pytest.raises(FormatError) as excinfo:
        read_annotation_csv(path)
    assert_error(excinfo, path, line, field)


def test_annotation_csv_duplicate_names_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "ann.csv"
    path.write_text(_rows(GOOD, GOOD.replace("a.jpg", "b.jpg"), GOOD))
    with pytest.raises(FormatError, match=r"line 4.*'a\.jpg' \(first on line 2\)"):
        read_annotation_csv(path)


def test_missing_file_is_a_format_error(tmp_path: Path) -> None:
    for reader in (read_annotation_csv, read_pairs_csv, read_pair_split, read_pose_label):
        with pytest.raises(FormatError, match="file not found") as excinfo:
            reader(tmp_path / "absent")
        assert excinfo.value.path == tmp_path / "absent"


def test_annotation_csv_write_errors_keep_old_file(tmp_path: Path, rng) -> None:
    path = tmp_path / "ann.csv"
    write_annotation_csv(path, {"a.jpg": make_pose(rng)})
    before = path.read_bytes()
    left = Pose(np.full((18, 2), 5.0) - np.eye(18, 2) * 6, np.ones(18, bool))  # nose x = -1
    for bad, field in [({"a:b.jpg": make_pose(rng)}, None), ({"b.jpg": left}, "b.jpg")]:
        with pytest.raises(FormatError) as excinfo:
            write_annotation_csv(path, {"ok.jpg": make_pose(rng), **bad})
        assert excinfo.value.field == field and "ann.csv" in str(excinfo.value)
    assert path.read_bytes() == before


# ------------------------------------------------------------------------------ atomic writes


def _all_writers(rng):
    from posetransfer.data.flow_files import write_corr, write_flow

    flow, vis = np.ones((3, 4, 2), np.float32), np.zeros((3, 4), np.uint8)
    return [
        lambda p: write_pairs_csv(p, [("a.jpg", "b.jpg")]),
        lambda p: write_annotation_csv(p, {"a.jpg": make_pose(rng)}),
        lambda p: write_pair_split(p, {"train": [("a", "b")]}),
        lambda p: write_pose_label(p, {"a": make_pose(rng)}),
        lambda p: write_corr(p, flow, vis),
        lambda p: write_flow(p, flow, vis),
    ]


def test_every_writer_leaves_the_old_file_when_the_write_fails(tmp_path: Path, rng, monkeypatch):
    """A failure after the content was written (here: fsync) must not replace the old file."""
    import posetransfer.io

    def failing_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(posetransfer.io.os, "fsync", failing_fsync)
    for k, write in enumerate(_all_writers(rng)):
        path = tmp_path / f"file{k}"
        path.write_bytes(b"old content")
        with pytest.raises(OSError, match="disk full"):
            write(path)
        assert path.read_bytes() == b"old content"
    assert len(list(tmp_path.iterdir())) == 6  # no temporary files left behind
