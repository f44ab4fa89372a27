"""Dataset discovery in the PATN/GFLA and DIAF layouts, and loading one split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from posetransfer.data.diaf_formats import write_pair_split, write_pose_label
from posetransfer.data.formats import FormatError, write_annotation_csv, write_pairs_csv
from posetransfer.data.layout import DatasetFiles, SplitData, discover_dataset, load_split
from posetransfer.pose.keypoints import Pose


def pose(seed: int) -> Pose:
    return Pose.from_indices(np.random.default_rng(seed).integers(0, 100, size=(18, 2)))


def make_patn(root: Path, prefix: str = "fasion-resize", image_dirs=("train", "test")) -> Path:
    names = {"train": ["a.jpg", "b.jpg", "c.jpg"], "test": ["d.jpg", "e.jpg"]}
    for k, (split, files) in enumerate(names.items()):
        write_annotation_csv(
            root / f"{prefix}-annotation-{split}.csv",
            {n: pose(10 * k + i) for i, n in enumerate(files)},
        )
        write_pairs_csv(
            root / f"{prefix}-pairs-{split}.csv", [(files[0], files[1]), (files[1], files[0])]
        )
    for d in image_dirs:
        (root / d).mkdir()
    return root


def make_diaf(root: Path, image_dir: str = "Img/img", corr: bool = True) -> Path:
    write_pose_label(root / "Label" / "pose_label.pkl", {s: pose(i) for i, s in enumerate("abcd")})
    splits = {"train": [("a", "b")], "test": [("c", "d"), ("d", "c")], "test_small": [("c", "d")]}
    write_pair_split(root / "Label" / "pair_split.json", splits)
    (root / image_dir).mkdir(parents=True)
    if corr:
        (root / "3d" / "hmr" / "corr").mkdir(parents=True)
    return root


@pytest.mark.parametrize(
    "prefix", ["fasion-resize", "fashion", "fasion", "market", "fashion-resize"]
)
def test_discover_patn_prefixes(tmp_path: Path, prefix: str) -> None:
    files = discover_dataset(make_patn(tmp_path, prefix))
    assert files == DatasetFiles(
        root=tmp_path,
        layout="patn",
        image_dirs={"test": tmp_path / "test", "train": tmp_path / "train"},
        annotations={s: tmp_path / f"{prefix}-annotation-{s}.csv" for s in ("test", "train")},
        pairs={s: tmp_path / f"{prefix}-pairs-{s}.csv" for s in ("test", "train")},
        flows_dir=None,
    )
    assert files.splits == ["test", "train"]


def test_discover_patn_suffixed_image_folders_and_flows(tmp_path: Path) -> None:
    make_patn(tmp_path, image_dirs=("train_256", "test"))
    (tmp_path / "flows").mkdir()
    files = discover_dataset(tmp_path)
    assert files.image_dirs == {"train": tmp_path / "train_256", "test": tmp_path / "test"}
    assert files.flows_dir == tmp_path / "flows"
    (tmp_path / "train_512").mkdir()
    with pytest.raises(FormatError, match=r"ambiguous image folder for split 'train'.*train_256"):
        discover_dataset(tmp_path)


def test_discover_patn_missing_pieces(tmp_path: Path) -> None:
    make_patn(tmp_path, image_dirs=("train",))
    with pytest.raises(FormatError, match=r"no image folder for split 'test'") as excinfo:
        discover_dataset(tmp_path)
    assert excinfo.value.path == tmp_path
    (tmp_path / "test").mkdir()
    (tmp_path / "fasion-resize-pairs-test.csv").unlink()
    with pytest.raises(FormatError, match=r"'test' has no fasion-resize-pairs-test\.csv"):
        discover_dataset(tmp_path)


def test_discover_several_prefixes_needs_a_choice(tmp_path: Path) -> None:
    make_patn(tmp_path, "fasion-resize")
    make_patn(tmp_path, "fasion", image_dirs=())
    with pytest.raises(
        FormatError, match=r"several PATN file prefixes \['fasion', 'fasion-resize'\]"
    ):
        discover_dataset(tmp_path)
    files = discover_dataset(tmp_path, prefix="fasion-")
    assert files.annotations["train"].name == "fasion-annotation-train.csv"
    with pytest.raises(FormatError, match="with prefix 'market'"):
        discover_dataset(tmp_path, prefix="market")


@pytest.mark.parametrize("image_dir", ["Img/img", "Images/img"])
def test_discover_diaf(tmp_path: Path, image_dir: str) -> None:
    files = discover_dataset(make_diaf(tmp_path, image_dir))
    label = tmp_path / "Label"
    assert files == DatasetFiles(
        root=tmp_path,
        layout="diaf",
        image_dirs=dict.fromkeys(["test", "test_small", "train"], tmp_path / image_dir),
        annotations={"all": label / "pose_label.pkl"},
        pairs=dict.fromkeys(["test", "test_small", "train"], label / "pair_split.json"),
        flows_dir=tmp_path / "3d" / "hmr" / "corr",
    )


def test_discover_diaf_missing_pieces(tmp_path: Path) -> None:
    make_diaf(tmp_path, corr=False)
    assert discover_dataset(tmp_path).flows_dir is None
    (tmp_path / "Label" / "pose_label.pkl").unlink()
    with pytest.raises(FormatError, match=r"without Label/pose_label\.pkl"):
        discover_dataset(tmp_path)


def test_discover_errors_on_empty_missing_or_mixed_folders(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=r"no dataset found.*annotation.*Label/pair_split") as e:
        discover_dataset(tmp_path)
    assert str(tmp_path) in str(e.value)
    with pytest.raises(FormatError, match="does not exist"):
        discover_dataset(tmp_path / "nope")
    make_patn(tmp_path)
    make_diaf(tmp_path)
    with pytest.raises(FormatError, match="both a PATN layout"):
        discover_dataset(tmp_path)
    assert discover_dataset(tmp_path, layout="patn").layout == "patn"
    assert discover_dataset(tmp_path, layout="diaf").layout == "diaf"


def test_load_split_patn(tmp_path: Path) -> None:
    files = discover_dataset(make_patn(tmp_path))
    split = load_split(files, "test")
    assert isinstance(split, SplitData)
    assert split.pairs == [("d.jpg", "e.jpg"), ("e.jpg", "d.jpg")]
    assert split.poses.keys() == {"d.jpg", "e.jpg"}
    assert split.poses["e.jpg"] == pose(11)
    assert split.image_dir == tmp_path / "test"
    with pytest.raises(FormatError, match=r"no split 'val'; available: \['test', 'train'\]"):
        load_split(files, "val")


def test_load_split_diaf(tmp_path: Path) -> None:
    files = discover_dataset(make_diaf(tmp_path))
    split = load_split(files, "test_small")
    assert split.pairs == [("c", "d")]
    assert split.poses.keys() == set("abcd")  # the pickle covers every image
    assert split.poses["d"] == pose(3)
    assert split.image_dir == tmp_path / "Img" / "img"
    with pytest.raises(FormatError, match=r"pair_split\.json.*available: \['test', 'test_small'"):
        load_split(files, "val")


def test_load_split_rejects_pairs_without_keypoints(tmp_path: Path) -> None:
    files = discover_dataset(make_patn(tmp_path))
    write_pairs_csv(files.pairs["train"], [("a.jpg", "b.jpg"), ("a.jpg", "zz.jpg")])
    with pytest.raises(FormatError, match=r"1 pair entries.*pair 1: 'zz\.jpg'") as excinfo:
        load_split(files, "train")
    assert excinfo.value.path == files.pairs["train"]
