"""The original DIAF label files: Label/pair_split.json and Label/pose_label.pkl."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from posetransfer.data.diaf_formats import (
    read_pair_split,
    read_pose_label,
    write_pair_split,
    write_pose_label,
)
from posetransfer.data.formats import FormatError
from posetransfer.pose.keypoints import Pose

from .format_helpers import assert_error, make_pose

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
