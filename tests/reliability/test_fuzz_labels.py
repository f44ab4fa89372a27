"""Fuzzing the label readers: PATN pair and annotation CSVs, pose files and rows, DIAF
``pair_split.json`` and ``pose_label.pkl`` (the restricted unpickler).

Each reader gets random and mutated-valid inputs; it must return or raise the project's clear
error naming the file (:func:`~tests.reliability.fuzzing.check_reader`). The quick sample runs by
default, the ``slow`` run tries :data:`~tests.reliability.fuzzing.SLOW_EXAMPLES` inputs each.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import strategies as st

from posetransfer.data.diaf_formats import (
    read_pair_split,
    read_pose_label,
    write_pair_split,
    write_pose_label,
)
from posetransfer.data.formats import (
    read_annotation_csv,
    read_pairs_csv,
    write_annotation_csv,
    write_pairs_csv,
)
from posetransfer.infer.inputs import read_pose
from posetransfer.pose.keypoints import Pose
from posetransfer.synth.flow_inputs import read_keypoints

from .fuzzing import QUICK_EXAMPLES, SLOW_EXAMPLES, check_reader, fuzz_bytes, run_fuzz

SENTINEL = Path("/tmp/posetransfer-fuzz-pickle-ran-code")


def _pose(seed: int) -> Pose:
    rng = np.random.default_rng(seed)
    valid = rng.random(18) > 0.2
    return Pose(rng.integers(0, 60, (18, 2)) + 0.5, valid)


def _json_values() -> st.SearchStrategy[object]:
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(), st.text(max_size=8)
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=20) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=60,
    )


def _json_bytes() -> st.SearchStrategy[bytes]:
    return _json_values().map(lambda v: json.dumps(v).encode())


def _number_text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(-3, 10**400).map(str),
        st.floats().map(repr),
        st.sampled_from(["-1", "null", '"7"', "[1]", "1e999", "", "NaN", "true"]),
    )


def _pose_row() -> st.SearchStrategy[bytes]:
    """``name: [ys]: [xs]`` rows with odd names, lengths and numbers."""
    coords = st.lists(_number_text(), min_size=16, max_size=20).map(lambda v: f"[{', '.join(v)}]")
    row = st.tuples(st.text(max_size=12), coords, coords).map(lambda t: ": ".join(t))
    return st.lists(row, min_size=1, max_size=4).map(lambda rows: "\n".join(rows).encode())


def _fuzz_file(
    tmp_path: Path,
    name: str,
    filename: str,
    reader: Callable[[Path], object],
    strategy: st.SearchStrategy[bytes],
    examples: int,
) -> None:
    path = tmp_path / filename

    def body(data: bytes) -> None:
        path.write_bytes(data)
        check_reader(name, reader, path)

    run_fuzz(strategy, body, examples)


# ------------------------------------------------------------------------------------ PATN CSVs


def _pairs_seeds(tmp_path: Path) -> list[bytes]:
    path = tmp_path / "seed-pairs.csv"
    write_pairs_csv(path, [("a.jpg", "b.jpg"), ("c.jpg", "a.jpg"), ("b.jpg", "c.jpg")])
    indexed = b",from,to\n0,a.jpg,b.jpg\n1,b.jpg,a.jpg\n"
    return [path.read_bytes(), indexed]


def _annotation_seeds(tmp_path: Path) -> list[bytes]:
    path = tmp_path / "seed-annotation.csv"
    write_annotation_csv(path, {f"img{k}.jpg": _pose(k) for k in range(3)})
    return [path.read_bytes()]


def fuzz_pairs_csv(tmp_path: Path, examples: int) -> None:
    strategy = fuzz_bytes(_pairs_seeds(tmp_path), text=True)
    _fuzz_file(tmp_path, "PATN pairs CSV", "x-pairs-train.csv", read_pairs_csv, strategy, examples)


def fuzz_annotation_csv(tmp_path: Path, examples: int) -> None:
    seeds = _annotation_seeds(tmp_path)
    header_rows = _pose_row().map(lambda rows: b"name:keypoints_y:keypoints_x\n" + rows)
    strategy = fuzz_bytes(seeds, text=True, extra=[header_rows])
    _fuzz_file(
        tmp_path, "PATN annotation CSV", "x-annotation.csv", read_annotation_csv, strategy, examples
    )


# ------------------------------------------------------------------------------------ pose files


def _pose_json_seeds() -> list[bytes]:
    points = _pose(7).to_indices().tolist()
    points[3] = None
    return [json.dumps(points).encode(), json.dumps([[-1, -1]] * 18).encode()]


def fuzz_pose_json(tmp_path: Path, examples: int) -> None:
    strategy = fuzz_bytes(_pose_json_seeds(), text=True, extra=[_json_bytes()])
    _fuzz_file(tmp_path, "pose JSON", "pose.json", read_pose, strategy, examples)


def fuzz_pose_rows(tmp_path: Path, examples: int) -> None:
    seeds = _annotation_seeds(tmp_path)
    single = seeds[0].splitlines(keepends=True)[1]
    strategy = fuzz_bytes([*seeds, single], text=True, extra=[_pose_row()])
    path = tmp_path / "poses.txt"

    def body(data: bytes) -> None:
        path.write_bytes(data)
        check_reader("pose rows", read_pose, path)
        check_reader("pose rows", lambda p: read_pose(f"{p}#img1.jpg"), path)

    run_fuzz(strategy, body, examples)


# ------------------------------------------------------------------------------------ DIAF labels


def fuzz_pair_split(tmp_path: Path, examples: int) -> None:
    seed = tmp_path / "seed.json"
    write_pair_split(seed, {"train": [("a", "b"), ("b", "a")], "test": [("c", "d")]})
    strategy = fuzz_bytes([seed.read_bytes()], text=True, extra=[_json_bytes()])
    _fuzz_file(tmp_path, "DIAF pair_split.json", "pair_split.json", read_pair_split, strategy,
               examples)  # fmt: skip


class _RunsCode:
    """Pickles to a call of ``function(*args)``: what a hostile pickle does."""

    def __init__(self, function: Callable[..., object], *args: object) -> None:
        self.function, self.args = function, args

    def __reduce__(self) -> tuple[object, ...]:
        return self.function, self.args


def _pickle_seeds(tmp_path: Path) -> list[bytes]:
    path = tmp_path / "seed.pkl"
    write_pose_label(path, {f"id{k}": _pose(k) for k in range(3)})
    arrays = {"a": np.full((18, 2), 3, np.int64), "b": np.arange(36.0).reshape(18, 2)}
    hostile = {"a": _RunsCode(os.system, f"touch {SENTINEL}")}
    return [
        path.read_bytes(),
        *(pickle.dumps(arrays, protocol=p) for p in (2, 4, 5)),
        *(pickle.dumps(hostile, protocol=p) for p in (0, 2, 5)),
        pickle.dumps([_RunsCode(eval, f"open({str(SENTINEL)!r}, 'w')")], protocol=2),
    ]


def _pickled_values() -> st.SearchStrategy[bytes]:
    arrays = st.builds(
        lambda shape, dtype: np.zeros(shape, dtype),
        st.lists(st.integers(0, 20), max_size=3).map(tuple),
        st.sampled_from(["int64", "float32", "uint8", "bool", "complex64", "U3", "V4"]),
    )
    leaves = st.one_of(st.integers(), st.floats(), st.text(max_size=6), st.binary(max_size=6),
                       arrays, st.none())  # fmt: skip
    values = st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=18) | st.dictionaries(st.text(max_size=5), inner),
        max_leaves=40,
    )
    return st.tuples(values, st.integers(0, 5)).map(lambda t: pickle.dumps(t[0], protocol=t[1]))


def fuzz_pose_label(tmp_path: Path, examples: int) -> None:
    SENTINEL.unlink(missing_ok=True)
    strategy = fuzz_bytes(_pickle_seeds(tmp_path), extra=[_pickled_values()])
    path = tmp_path / "pose_label.pkl"

    def body(data: bytes) -> None:
        path.write_bytes(data)
        check_reader("DIAF pose_label.pkl", read_pose_label, path)
        assert not SENTINEL.exists(), "a pickle ran code"

    run_fuzz(strategy, body, examples)


def fuzz_synth_keypoints(tmp_path: Path, examples: int) -> None:
    """synth-flow's keypoint reader: strict first, then record by record."""
    csv_seeds, pkl_seeds = _annotation_seeds(tmp_path), _pickle_seeds(tmp_path)[:4]
    header_rows = _pose_row().map(lambda rows: b"name:keypoints_y:keypoints_x\n" + rows)
    strategy = st.one_of(
        fuzz_bytes(csv_seeds, text=True, extra=[header_rows]).map(lambda b: ("patn", b)),
        fuzz_bytes(pkl_seeds, extra=[_pickled_values()]).map(lambda b: ("diaf", b)),
    )
    path = tmp_path / "keypoints"

    def body(item: tuple[str, bytes]) -> None:
        layout, data = item
        path.write_bytes(data)
        check_reader("synth-flow keypoints", lambda p: read_keypoints(p, layout), path)

    run_fuzz(strategy, body, examples)


# ---------------------------------------------------------------------------------------- tests

FUZZERS = {
    "pairs_csv": fuzz_pairs_csv,
    "annotation_csv": fuzz_annotation_csv,
    "pose_json": fuzz_pose_json,
    "pose_rows": fuzz_pose_rows,
    "pair_split": fuzz_pair_split,
    "pose_label": fuzz_pose_label,
    "synth_keypoints": fuzz_synth_keypoints,
}


@pytest.mark.parametrize("reader", sorted(FUZZERS))
def test_fuzz_quick(reader: str, tmp_path: Path) -> None:
    FUZZERS[reader](tmp_path, QUICK_EXAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize("reader", sorted(FUZZERS))
def test_fuzz_slow(reader: str, tmp_path: Path) -> None:
    FUZZERS[reader](tmp_path, SLOW_EXAMPLES)
