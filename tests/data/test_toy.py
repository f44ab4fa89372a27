"""Tests for the toy dataset generator (posetransfer.data.toy)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from posetransfer.conventions import Keypoint, Visibility
from posetransfer.data.flow_files import flow_filename, read_any_flow
from posetransfer.data.layout import discover_dataset, load_split
from posetransfer.data.toy import make_toy_dataset
from posetransfer.ops.warp import warp_reference

LAYOUTS = ("patn", "diaf")


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _image(split_dir: Path, name: str, layout: str) -> np.ndarray:
    return np.asarray(Image.open(split_dir / (name + (".jpg" if layout == "diaf" else ""))))


def _person(name: str) -> str:
    return name.split("id")[1][:8]  # fashion<...>id<8-digit person><2-digit image>_<view>


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("with_flows", [False, True])
def test_same_seed_gives_identical_bytes(tmp_path: Path, layout: str, with_flows: bool) -> None:
    kwargs = dict(layout=layout, with_flows=with_flows, seed=3)
    a = _files(make_toy_dataset(tmp_path / "a", **kwargs))
    b = _files(make_toy_dataset(tmp_path / "b", **kwargs))
    assert a == b
    assert sum(k.endswith(".jpg") for k in a) == 6  # 3 people x 2 images
    assert sum(k.endswith((".npz", ".corr")) for k in a) == (6 if with_flows else 0)  # 3 x 2 pairs


def test_different_seeds_give_different_images(tmp_path: Path) -> None:
    a = _files(make_toy_dataset(tmp_path / "a", seed=0))
    b = _files(make_toy_dataset(tmp_path / "b", seed=1))
    assert a.keys() == b.keys()
    images = [k for k in a if k.endswith(".jpg")]
    assert all(a[k] != b[k] for k in images)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_loads_with_format_readers(tmp_path: Path, layout: str) -> None:
    root = make_toy_dataset(
        tmp_path / "toy", layout=layout, num_people=4, poses_per_person=3, size=(40, 24)
    )
    files = discover_dataset(root)
    assert files.layout == layout
    assert files.flows_dir is None
    persons = {}
    for split, num_people in (("train", 3), ("test", 1)):
        data = load_split(files, split)
        names = {n for pair in data.pairs for n in pair}
        persons[split] = {_person(n) for n in names}
        assert len(persons[split]) == num_people
        assert len(names) == 3 * num_people
        # all ordered pairs of distinct images of one person, each once
        expected = {
            (a, b) for a, b in itertools.permutations(sorted(names), 2) if _person(a) == _person(b)
        }
        assert len(data.pairs) == len(expected) == num_people * 3 * 2
        assert set(data.pairs) == expected
        for name in names:
            pose = data.poses[name]
            assert pose.valid.all()
            np.testing.assert_array_equal(pose.xy % 1, 0.5)  # pixel centres
            assert not pose.out_of_bounds(40, 24).any()
            assert _image(data.image_dir, name, layout).shape == (40, 24, 3)
    assert not persons["train"] & persons["test"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_figure_is_drawn_at_its_keypoints(tmp_path: Path, layout: str) -> None:
    root = make_toy_dataset(tmp_path / "toy", layout=layout, seed=5)
    data = load_split(discover_dataset(root), "train")
    background = np.array([238, 236, 230])
    body = [Keypoint.NECK, Keypoint.R_HIP, Keypoint.L_KNEE, Keypoint.R_ANKLE, Keypoint.L_ELBOW]
    for name, pose in data.poses.items():
        image = _image(data.image_dir, name, layout).astype(int)
        assert np.abs(image[0, 0] - background).max() <= 3  # corners are background
        for k in body:
            col, row = np.floor(pose.xy[k]).astype(int)
            assert np.abs(image[row, col] - background).max() > 30, (name, k.name)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_flows_are_exact_translations(tmp_path: Path, layout: str) -> None:
    root = make_toy_dataset(tmp_path / "toy", layout=layout, poses_per_person=3, with_flows=True)
    files = discover_dataset(root)
    assert files.flows_dir is not None
    fmt = "npz" if layout == "patn" else "corr"
    shifted = 0
    for split in ("train", "test"):
        data = load_split(files, split)
        for src, tgt in data.pairs:
            flow, vis = read_any_flow(files.flows_dir / flow_filename(src, tgt, fmt))
            img_src = _image(data.image_dir, src, layout).astype(np.float64)
            img_tgt = _image(data.image_dir, tgt, layout).astype(np.float64)
            body = vis == Visibility.VISIBLE
            assert set(np.unique(vis)) <= {Visibility.VISIBLE, Visibility.BACKGROUND}
            assert 100 < body.sum() < body.size / 2
            np.testing.assert_array_equal(flow[~body], 0)
            dx = np.unique(flow[body, 0])
            assert len(dx) == 1 and dx[0] % 8 == 0
            np.testing.assert_array_equal(flow[body, 1], 0)
            shifted += dx[0] != 0
            # keypoints move with the body: p_src = p_tgt + F
            p_src, p_tgt = data.poses[src], data.poses[tgt]
            np.testing.assert_array_equal(p_src.xy, p_tgt.xy + np.array([dx[0], 0]))
            # the decoded target equals the warped decoded source on every body pixel
            warped = warp_reference(
                torch.from_numpy(img_src).permute(2, 0, 1)[None],
                torch.from_numpy(flow.astype(np.float64)).permute(2, 0, 1)[None],
            )[0].permute(1, 2, 0)
            np.testing.assert_array_equal(warped.numpy()[body], img_tgt[body])
    assert shifted > 0


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        (dict(num_people=1), "num_people"),
        (dict(poses_per_person=0), "poses_per_person"),
        (dict(size=(8, 48)), "size"),
        (dict(layout="lmdb"), "layout"),
        (dict(prefix="deepfashion-"), "prefix"),
    ],
)
def test_invalid_arguments_are_named(tmp_path: Path, kwargs: dict, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        make_toy_dataset(tmp_path / "toy", **kwargs)
    assert not (tmp_path / "toy").exists()
