"""Keypoint and pair files: PATN/GFLA CSVs and the original DIAF json/pkl."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from posetransfer.data.formats import (
    FormatError,
    read_annotation_csv,
    read_pair_split,
    read_pairs_csv,
    read_pose_label,
    write_annotation_csv,
    write_pair_split,
    write_pairs_csv,
    write_pose_label,
)
from posetransfer.pose.keypoints import Pose

# A row in the style of fasion-resize-annotation-train.csv (rows first, then columns).
REAL_NAME = "fashionWOMENTees_Tanksid0000783805_7additional.jpg"
REAL_Y = [23, 40, 41, 74, 104, 39, 71, 99, 126, 185, 240, 126, 183, 237, 19, -1, 22, -1]
REAL_X = [88, 87, 66, 58, 60, 108, 118, 117, 73, 71, 69, 103, 104, 105, 83, -1, 77, -1]
REAL_ROW = f"{REAL_NAME}: {REAL_Y}: {REAL_X}"


def make_pose(rng: np.random.Generator, missing: tuple[int, ...] = ()) -> Pose:
    """A pose at random pixel centres with the given keypoints missing."""
    indices = rng.integers(0, 200, size=(18, 2))
    indices[list(missing)] = -1
    return Pose.from_indices(indices)


def assert_error(excinfo: pytest.ExceptionInfo, path: Path, line: int | None, field: str | None):
    message = str(excinfo.value)
    assert str(path) in message
    assert excinfo.value.path == path
    assert excinfo.value.line == line
    assert excinfo.value.field == field
    if line is not None:
        assert f"line {line}" in message
    if field is not None:
        assert field in message


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


# ---------------------------------------------------------------------------- pair_split.json


def test_pair_split_round_trip(tmp_path: Path) -> None:
    splits = {"train": [("a", "b"), ("b", "a")], "test": [("c", "d")], "test_small": []}
    path = tmp_path / "Label" / "pair_split.json"
    write_pair_split(path, splits)
    assert read_pair_split(path) == splits


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ('{"train": [["a", "b"],\n ["c" "d"]]}', 2, None),
        ('[["a", "b"]]', None, None),
        ('{"train": "a,b"}', None, "train"),
        ('{"train": [["a", "b"], ["c"]]}', None, "train[1]"),
        ('{"test": [["a", 3]]}', None, "test[0]"),
        ('{"test": [["a", ""]]}', None, "test[0]"),
    ],
)
def test_pair_split_errors(tmp_path: Path, text: str, line: int | None, field: str | None) -> None:
    path = tmp_path / "pair_split.json"
    path.write_text(text)
    with pytest.raises(FormatError) as excinfo:
        read_pair_split(path)
    assert_error(excinfo, path, line, field)


def test_pair_split_write_rejects_bad_pairs(tmp_path: Path) -> None:
    path = tmp_path / "pair_split.json"
    for bad in [{"train": [("a",)]}, {"train": [("a", 3)]}, {"": []}]:
        with pytest.raises(FormatError, match=r"pair_split\.json"):
            write_pair_split(path, bad)
    assert not path.exists()


# ----------------------------------------------------------------------------- pose_label.pkl


def test_pose_label_round_trip_and_plain_structure(tmp_path: Path, rng) -> None:
    poses = {"id1": make_pose(rng, missing=(0, 9)), "0002_c1s1_000451_03": make_pose(rng)}
    path = tmp_path / "pose_label.pkl"
    write_pose_label(path, poses)
    raw = path.read_bytes()
    assert raw[:2] == b"\x80\x02"  # protocol 2
    plain = pickle.loads(raw)
    assert plain["id1"][0] == [-1, -1]
    assert plain["id1"][1] == poses["id1"].to_indices()[1].tolist()  # [x, y], x first
    back = read_pose_label(path)
    assert back.keys() == poses.keys()
    assert all(back[k] == poses[k] for k in poses)


def test_pose_label_reads_numpy_arrays_from_numpy1_and_numpy2_pickles(tmp_path: Path) -> None:
    indices = np.arange(36, dtype=np.int64).reshape(18, 2)
    indices[4] = -1
    data = pickle.dumps({"a": indices, "b": indices.astype(np.float32)}, protocol=2)
    assert b"numpy._core.multiarray" in data
    for name, blob in [
        ("np2.pkl", data),
        ("np1.pkl", data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")),
        ("p5.pkl", pickle.dumps({"a": indices, "b": indices}, protocol=5)),
    ]:
        (tmp_path / name).write_bytes(blob)
        poses = read_pose_label(tmp_path / name)
        assert poses["a"] == Pose.from_indices(indices)
        assert poses["b"] == poses["a"]


def _py2_cpickle_of_array(key: bytes, values: np.ndarray) -> bytes:
    """Hand-assembled protocol-2 pickle as Python 2 cPickle writes ``{key: int64 array}``."""
    raw = values.astype("<i8").tobytes()
    rows, cols = values.shape
    dtype = (
        b"cnumpy\ndtype\nU\x02i8K\x00K\x01\x87R"  # dtype('i8', 0, 1)
        b"(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"  # its state
    )
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
        b"(K\x01"
        + bytes([ord("K"), rows, ord("K"), cols])
        + b"\x86"
        + dtype
        + b"\x89T"
        + struct.pack("<I", len(raw))
        + raw
        + b"tb"
    )
    return b"\x80\x02}U" + bytes([len(key)]) + key + array + b"s."


def test_pose_label_reads_a_python2_cpickle_of_arrays(tmp_path: Path) -> None:
    indices = np.arange(36).reshape(18, 2) * 3
    indices[17] = -1
    path = tmp_path / "pose_label.pkl"
    path.write_bytes(_py2_cpickle_of_array(b"fashionMENid01", indices))
    assert b"_codecs" not in path.read_bytes() and b"builtin" not in path.read_bytes()
    poses = read_pose_label(path)
    assert poses == {"fashionMENid01": Pose.from_indices(indices)}


def _write_marker(path: str) -> None:
    Path(path).write_text("pwned")


class _Evil:
    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("how", ["system", "open", "function"])
def test_pose_label_refuses_code_and_never_runs_it(tmp_path: Path, how: str) -> None:
    marker = tmp_path / "marker"
    payload = {
        "system": (_Evil(os.system, f"touch {marker}"), "system"),
        "open": (_Evil(open, str(marker), "w"), "open"),
        "function": (_Evil(_write_marker, str(marker)), "_write_marker"),
    }[how]
    path = tmp_path / "pose_label.pkl"
    path.write_bytes(pickle.dumps({"a": payload[0]}, protocol=2))
    with pytest.raises(FormatError, match=rf"refusing to load global [\w.]+\.{payload[1]}\b") as e:
        read_pose_label(path)
    assert str(path) in str(e.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ([[1, 2]] * 18, None),  # not a dict
        ({"a": [[1, 2]] * 17}, "a"),
        ({"a": [[1, 2, 3]] * 18}, "a"),
        ({"a": [[1, 2]] * 17 + [[1]]}, "a"),  # ragged
        ({"a": [["1", "2"]] * 18}, "a"),
        ({"a": [[-1.5, 2]] * 18}, "a"),
        ({"a": [[-3, 2]] * 18}, "a"),
        ({3: [[1, 2]] * 18}, None),
    ],
)
def test_pose_label_structure_errors(tmp_path: Path, data, field: str | None) -> None:
    path = tmp_path / "pose_label.pkl"
    path.write_bytes(pickle.dumps(data, protocol=2))
    with pytest.raises(FormatError) as excinfo:
        read_pose_label(path)
    assert_error(excinfo, path, None, field)


def test_pose_label_corrupt_pickle(tmp_path: Path) -> None:
    path = tmp_path / "pose_label.pkl"
    path.write_bytes(pickle.dumps({"a": [[1, 2]] * 18}, protocol=2)[:-5])
    with pytest.raises(FormatError, match="not a valid pickle"):
        read_pose_label(path)


def test_pose_label_write_error_keeps_old_file(tmp_path: Path, rng) -> None:
    path = tmp_path / "pose_label.pkl"
    write_pose_label(path, {"a": make_pose(rng)})
    before = path.read_bytes()
    with pytest.raises(FormatError, match="expected a Pose") as excinfo:
        write_pose_label(path, {"a": make_pose(rng), "b": [[1, 2]] * 18})
    assert excinfo.value.field == "b"
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
