"""Tests for posetransfer.synth.flow_plan: which images and pairs, bad records, sharding."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from posetransfer.data.formats import FormatError, read_annotation_csv, read_pairs_csv
from posetransfer.data.toy import make_toy_dataset
from posetransfer.synth.flow_plan import build_plan, image_key

ANNOTATION = "fasion-resize-annotation-train.csv"
PAIRS = "fasion-resize-pairs-train.csv"


def _row(name: str, xy: np.ndarray) -> str:
    """A PATN annotation row from (18, 2) (col, row) indices (-1 = missing)."""
    return f"{name}: {json.dumps(xy[:, 1].tolist())}: {json.dumps(xy[:, 0].tolist())}\n"


def _indices(root: Path, name: str) -> np.ndarray:
    pose = read_annotation_csv(root / ANNOTATION)[name]
    return np.where(pose.valid[:, None], np.floor(pose.xy), -1).astype(int)


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    return make_toy_dataset(tmp_path / "toy", num_people=3, poses_per_person=3)


def test_image_key_drops_known_extensions_only() -> None:
    assert image_key("a.jpg") == "a"
    assert image_key("b.JPEG") == "b"
    assert image_key("c.v1.png") == "c.v1"
    assert image_key("id_0001") == "id_0001"
    assert image_key("d.txt") == "d.txt"


def test_patn_plan_lists_every_image_and_pair_once(toy: Path) -> None:
    with (toy / PAIRS).open("a") as f:  # a duplicate pair is rendered once
        f.write("{},{}\n".format(*read_pairs_csv(toy / PAIRS)[0]))
    plan = build_plan(toy, fit_batch=4, render_block=5)
    assert plan.splits == ("test", "train")
    assert len(plan.images) == 9 and [i.key for i in plan.images] == sorted(
        i.key for i in plan.images
    )
    assert all(i.path is not None and i.path.is_file() and i.problem is None for i in plan.images)
    assert len(plan.pairs) == 18 and len({(p.source, p.target) for p in plan.pairs}) == 18
    assert plan.pairs[0].split == "test" and plan.pairs[-1].split == "train"
    src, tgt = plan.pairs[0].source, plan.pairs[0].target
    assert plan.pairs[0].filename == f"{image_key(tgt)}_{image_key(src)}.npz"
    assert (plan.num_chunks, plan.num_blocks) == (3, 4)
    assert [len(plan.chunk(c)) for c in range(3)] == [4, 4, 1]
    assert plan.chunk_of(plan.images[5].name) == 1
    only_train = build_plan(toy, splits=["train"])
    assert len(only_train.images) == 6 and len(only_train.pairs) == 12


@pytest.mark.parametrize("num_shards", [1, 2, 3, 5])
def test_shards_partition_chunks_and_blocks(toy: Path, num_shards: int) -> None:
    plan = build_plan(toy, fit_batch=2, render_block=3)
    chunks = [c for s in range(num_shards) for c in plan.shard_chunks(s, num_shards)]
    blocks = [b for s in range(num_shards) for b in plan.shard_blocks(s, num_shards)]
    assert sorted(chunks) == list(range(plan.num_chunks))
    assert sorted(blocks) == list(range(plan.num_blocks))


def test_diaf_plan_covers_the_images_of_the_chosen_pairs(tmp_path: Path) -> None:
    root = make_toy_dataset(tmp_path / "diaf", layout="diaf", num_people=3, poses_per_person=2)
    plan = build_plan(root, fmt="corr")
    assert plan.files.layout == "diaf" and len(plan.images) == 6
    assert all(p.filename.endswith(".corr") for p in plan.pairs)
    test_only = build_plan(root, splits=["test"])
    assert {i.name for i in test_only.images} == {
        n for p in test_only.pairs for n in (p.source, p.target)
    }


def test_bad_records_become_problems_not_errors(toy: Path) -> None:
    names = sorted(read_annotation_csv(toy / ANNOTATION))
    good, nan_name, dup_name, neg_name = names[:4]
    rows = {name: _row(name, _indices(toy, name)) for name in names}
    ys, xs = _indices(toy, nan_name)[:, 1].tolist(), _indices(toy, nan_name)[:, 0].tolist()
    rows[nan_name] = f"{nan_name}: [NaN, {', '.join(map(str, ys[1:]))}]: {json.dumps(xs)}\n"
    bad = _indices(toy, neg_name)
    bad[3] = (-5, 7)
    rows[neg_name] = _row(neg_name, bad)
    extra = [_row(dup_name, _indices(toy, dup_name) + 1), "garbage row without fields\n"]
    text = "name:keypoints_y:keypoints_x\n" + "".join(rows.values()) + "".join(extra)
    (toy / ANNOTATION).write_text(text)
    with pytest.raises(FormatError):
        read_annotation_csv(toy / ANNOTATION)  # the strict reader refuses the file
    with (toy / PAIRS).open("a") as f:
        f.write(f"{good},unknown.jpg\n")
    plan = build_plan(toy, splits=["train"])
    problems = {i.name: i.problem for i in plan.images if i.problem}
    assert set(problems) == {nan_name, dup_name, neg_name}
    assert problems[nan_name].startswith("NaN in keypoints")
    assert (
        problems[dup_name].startswith("duplicate name")
        and "different keypoints" in problems[dup_name]
    )
    assert problems[neg_name].startswith("invalid keypoints") and "-5" in problems[neg_name]
    assert plan.image(good).pose is not None and plan.image(good).problem is None
    assert len(plan.notes) == 1 and "malformed row" in plan.notes[0][1]
    unknown = [p for p in plan.pairs if p.target == "unknown.jpg"]
    assert len(unknown) == 1 and "'unknown.jpg' has no keypoints" in unknown[0].problem


def test_identical_duplicates_and_stem_collisions(toy: Path) -> None:
    names = sorted(read_annotation_csv(toy / ANNOTATION))
    row = _row(names[0], _indices(toy, names[0]))
    twin = names[1].replace(".jpg", ".png")
    with (toy / ANNOTATION).open("a") as f:
        f.write(row)  # an exact repeat is harmless
        f.write(_row(twin, _indices(toy, names[1])))  # same stem as names[1]
    plan = build_plan(toy, splits=["train"])
    assert plan.image(names[0]).problem is None
    for name in (names[1], twin):
        assert plan.image(name).problem.startswith("duplicate name")
        assert "share the file stem" in plan.image(name).problem


def test_whole_file_problems_still_raise(toy: Path, tmp_path: Path) -> None:
    (toy / ANNOTATION).write_text("not a header\n")
    with pytest.raises(FormatError, match="header"):
        build_plan(toy)
    with pytest.raises(FormatError, match="no split 'val'"):
        build_plan(make_toy_dataset(tmp_path / "other"), splits=["val"])


def test_diaf_pickle_with_a_bad_entry(tmp_path: Path) -> None:
    root = make_toy_dataset(tmp_path / "diaf", layout="diaf", num_people=3, poses_per_person=2)
    path = root / "Label" / "pose_label.pkl"
    with path.open("rb") as f:
        data = pickle.load(f)
    bad = sorted(data)[0]
    data[bad] = [[float("nan"), 1.0], *data[bad][1:]]
    with path.open("wb") as f:
        pickle.dump(data, f, protocol=2)
    plan = build_plan(root)
    assert plan.image(bad).problem.startswith("NaN in keypoints")
    assert sum(i.problem is None for i in plan.images) == 5
