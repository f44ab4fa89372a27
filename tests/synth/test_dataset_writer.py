"""Tests for the synthetic dataset writer and the make-synthetic command."""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from posetransfer.body.fit_result import FitResult
from posetransfer.cli import main
from posetransfer.conventions import Keypoint, Visibility
from posetransfer.data.datasets import PairDataset
from posetransfer.data.flow_files import flow_filename, read_corr, read_flow
from posetransfer.data.formats import FormatError, read_annotation_csv, read_pairs_csv
from posetransfer.data.inspect import inspect_dataset
from posetransfer.ops.warp import warp
from posetransfer.render.bodies import render_body_flow
from posetransfer.synth.dataset_writer import (
    SyntheticConfig,
    generate_shard,
    make_synthetic,
    merge_parts,
)

PREFIX = "fasion-resize-"
CONFIG = SyntheticConfig(
    num_people=4, poses_per_person=3, size=(128, 96), seed=7, lit=False, flow_format="both"
)


def _files(root: Path, skip: tuple[str, ...] = ("parts",)) -> dict[str, object]:
    """Relative path -> bytes, or the arrays of an npz (zip members carry a timestamp)."""
    out: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and rel.parts[0] not in skip:
            if path.suffix == ".npz":
                with np.load(path) as data:
                    out[str(rel)] = {k: data[k].tobytes() for k in data.files}
            else:
                out[str(rel)] = path.read_bytes()
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, body_model, body_cache_dir) -> Path:
    """4 people x 3 poses at 128x96, unlit, .npz and .corr flows, built through the CLI."""
    root = tmp_path_factory.mktemp("synth") / "data"
    args = ["make-synthetic", "--out", str(root), "--num-people", "4", "--poses-per-person", "3"]
    args += ["--size", "128x96", "--seed", "7", "--unlit", "--format", "both", "--preview"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ANNY_CACHE_DIR", str(body_cache_dir))
        assert main(args) == 0
    return root


def _foregrounds(root: Path) -> dict[str, np.ndarray]:
    """Body mask of every image, read from the visibility of the pairs it is the target of."""
    masks = {}
    for split in ("train", "test"):
        for src, tgt in read_pairs_csv(root / f"{PREFIX}pairs-{split}.csv"):
            _, vis = read_flow(root / "flows" / flow_filename(src, tgt))
            masks[tgt] = vis != Visibility.BACKGROUND
    return masks


def _image(root: Path, name: str) -> np.ndarray:
    split = "test" if (root / "test" / name).exists() else "train"
    return np.asarray(Image.open(root / split / name).convert("RGB"))


def test_layout_loads_everywhere(dataset: Path) -> None:
    for split, people in (("train", 3), ("test", 1)):
        ds = PairDataset(dataset, split, require_flow=True)
        assert len(ds) == people * 3 * 2
        sample = ds[0]
        assert sample.flow is not None and tuple(sample.flow.shape[-2:]) == (128, 96)
    report = inspect_dataset(dataset)
    assert not report.errors, report.errors
    assert (dataset / "config.yaml").is_file() and (dataset / "bodies").is_dir()


def test_train_and_test_share_no_person(dataset: Path) -> None:
    people = {}
    for split in ("train", "test"):
        names = read_annotation_csv(dataset / f"{PREFIX}annotation-{split}.csv")
        people[split] = {n.split("id")[1][:8] for n in names}
        assert all((dataset / split / n).is_file() for n in names)
        for src, tgt in read_pairs_csv(dataset / f"{PREFIX}pairs-{split}.csv"):
            assert src.split("_")[0] == tgt.split("_")[0] and src != tgt
    assert not people["train"] & people["test"]
    assert people["test"] == {"00000003"} and len(people["train"]) == 3


def _source_taps(flow: np.ndarray, mask: np.ndarray, size: tuple[int, int]):
    """The 2x2 source pixels bilinear sampling reads for each target pixel in ``mask``."""
    i, j = np.nonzero(mask)
    x = j + 0.5 + flow[i, j, 0]
    y = i + 0.5 + flow[i, j, 1]
    x0, y0 = np.floor(x - 0.5).astype(int), np.floor(y - 0.5).astype(int)
    taps = [(y0 + dy, x0 + dx) for dy in (0, 1) for dx in (0, 1)]
    return i, j, [(np.clip(r, 0, size[0] - 1), np.clip(c, 0, size[1] - 1)) for r, c in taps]


def _warp_check(root: Path, shift: float = 0.0) -> tuple[float, float, int]:
    """Median |warped source - target| and the share of target pixels outside the range of
    the source pixels they are interpolated from, over VISIBLE interior target pixels whose
    four source taps are on the body."""
    masks = _foregrounds(root)
    errors, outside = [], []
    for split in ("train", "test"):
        for src, tgt in read_pairs_csv(root / f"{PREFIX}pairs-{split}.csv"):
            flow, vis = read_flow(root / "flows" / flow_filename(src, tgt))
            flow = flow + np.float32(shift)
            image_src, image_tgt = _image(root, src).copy(), _image(root, tgt)
            fg = masks[tgt]
            interior = fg.copy()  # 1-pixel band at the silhouette excluded
            for axis in (0, 1):
                for step in (-1, 1):
                    interior &= np.roll(fg, step, axis=axis)
            i, j, taps = _source_taps(flow, (vis == Visibility.VISIBLE) & interior, fg.shape)
            on_body = np.all([masks[src][r, c] for r, c in taps], axis=0)
            i, j, taps = i[on_body], j[on_body], [(r[on_body], c[on_body]) for r, c in taps]
            values = np.stack([image_src[r, c] for r, c in taps]).astype(int)
            target = image_tgt[i, j].astype(int)
            outside.append(((target < values.min(0) - 2) | (target > values.max(0) + 2)).any(-1))
            warped = warp(
                torch.from_numpy(image_src).permute(2, 0, 1)[None].float(),
                torch.from_numpy(flow).permute(2, 0, 1)[None],
            )[0].permute(1, 2, 0)
            errors.append((warped[i, j].numpy() - target).__abs__().max(-1))
    err = np.concatenate(errors)
    return float(np.median(err)), float(np.concatenate(outside).mean()), len(err)


def test_unlit_warp_reproduces_the_target_on_visible_pixels(dataset: Path) -> None:
    median, outside, count = _warp_check(dataset)
    assert count > 3000
    assert median <= 1.0
    assert outside < 0.03
    # control: the same check with every flow vector off by one pixel fails far more often
    _, shifted, _ = _warp_check(dataset, shift=1.0)
    assert shifted > 3 * outside and shifted > 0.04


def test_keypoints_lie_on_the_body(dataset: Path) -> None:
    masks = _foregrounds(dataset)
    for split in ("train", "test"):
        poses = read_annotation_csv(dataset / f"{PREFIX}annotation-{split}.csv")
        for name, pose in poses.items():
            assert pose.num_valid >= 12
            mask = masks[name]
            near = mask.copy()  # within one pixel of the body
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    near |= np.roll(mask, (di, dj), axis=(0, 1))
            cols, rows = np.floor(pose.xy[pose.valid]).astype(int).T
            assert near[rows, cols].all(), name
            if name.endswith("back.png"):
                assert not pose.valid[Keypoint.NOSE]
            if name.endswith("front.png"):
                assert pose.valid[Keypoint.NOSE]


def test_corr_files_hold_the_same_flow(dataset: Path) -> None:
    src, tgt = read_pairs_csv(dataset / f"{PREFIX}pairs-train.csv")[0]
    flow, vis = read_flow(dataset / "flows" / flow_filename(src, tgt))
    flow_c, vis_c = read_corr(dataset / "corr" / flow_filename(src, tgt, "corr"))
    assert np.array_equal(vis, vis_c)
    assert np.abs(flow - flow_c).max() <= 0.07  # float16 store vs float32 .corr
    assert (vis == Visibility.VISIBLE).any() and (vis == Visibility.BACKGROUND).any()


def test_preview_is_a_contact_sheet(dataset: Path) -> None:
    image = Image.open(dataset / "preview.png")
    width, height = image.size
    assert width > 5 * 96 * 2 and height > 4 * 128  # 5 panels per row, enlarged 2x


def test_same_seed_gives_identical_files(tmp_path: Path, dataset: Path, body_model) -> None:
    again = tmp_path / "again"
    make_synthetic(again, dataclasses.replace(CONFIG, preview=True), model=body_model)
    expected, got = _files(dataset), _files(again)
    assert sorted(expected) == sorted(got)
    different = [name for name in expected if expected[name] != got[name]]
    assert not different, different[:5]
    other = tmp_path / "other"
    make_synthetic(other, dataclasses.replace(CONFIG, seed=8), model=body_model)
    first = [
        next(v for n, v in sorted(f.items()) if n.startswith("train/synthPERSONid00000000_1"))
        for f in (expected, _files(other))
    ]
    assert first[0] != first[1]


def test_shards_give_the_same_data(tmp_path: Path, dataset: Path, body_model) -> None:
    root = tmp_path / "sharded"
    cfg = dataclasses.replace(CONFIG, preview=True)
    assert not make_synthetic(root, cfg, model=body_model, shard=1, num_shards=2)
    assert not (root / f"{PREFIX}pairs-train.csv").exists()
    with pytest.raises(FileNotFoundError, match=r"shards \[0\] of 2"):
        merge_parts(root, 2)
    assert make_synthetic(root, cfg, model=body_model, shard=0, num_shards=2)
    expected, got = _files(dataset), _files(root)
    assert sorted(expected) == sorted(got)
    assert [n for n in expected if expected[n] != got[n]] == []


def test_merge_refuses_shards_with_different_configs(tmp_path: Path, body_model) -> None:
    cfg = dataclasses.replace(CONFIG, num_people=2, poses_per_person=2, size=(32, 24))
    generate_shard(tmp_path, cfg, body_model, shard=0, num_shards=2)
    generate_shard(tmp_path, dataclasses.replace(cfg, seed=9), body_model, shard=1, num_shards=2)
    with pytest.raises(FormatError, match="seed"):
        merge_parts(tmp_path, 2)


def test_cli_merge_only_and_errors(tmp_path: Path, body_model, capsys) -> None:
    cfg = dataclasses.replace(CONFIG, num_people=2, poses_per_person=2, size=(32, 24))
    for shard in (0, 1):
        generate_shard(tmp_path, cfg, body_model, shard=shard, num_shards=2)
    args = ["make-synthetic", "--out", str(tmp_path), "--merge-only", "--num-shards", "2"]
    assert main(args) == 0
    pairs = read_pairs_csv(tmp_path / f"{PREFIX}pairs-train.csv")
    assert collections.Counter(s.split("_")[0] for s, _ in pairs) == {"synthPERSONid00000000": 2}
    assert main([*args[:-1], "3"]) == 2
    assert "have not finished" in capsys.readouterr().err
    assert main(["make-synthetic", "--out", str(tmp_path), "--size", "12x"]) == 2
    assert main(["make-synthetic", "--out", str(tmp_path), "--num-people", "1"]) == 2
    assert "num_people must be >= 2" in capsys.readouterr().err


def test_jpeg_and_textured_backgrounds_load(tmp_path: Path, body_model) -> None:
    cfg = dataclasses.replace(
        CONFIG, num_people=2, poses_per_person=2, size=(64, 48), image_format="jpg",
        textured_background=True, flow_format="npz", save_bodies=False,
    )  # fmt: skip
    assert make_synthetic(tmp_path, cfg, model=body_model)
    ds = PairDataset(tmp_path, "train", require_flow=True)
    assert len(ds) == 2 and ds.pairs[0][0].endswith(".jpg")
    assert not inspect_dataset(tmp_path).errors
    assert not (tmp_path / "corr").exists() and not (tmp_path / "bodies").exists()
    image = _image(tmp_path, ds.pairs[0][0])
    assert image[:, 0].std(0).max() > 5  # the backdrop's left column: gradient and floor


@pytest.mark.slow
def test_local_workers_give_the_same_data(tmp_path: Path, dataset: Path, body_cache_dir) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ANNY_CACHE_DIR", str(body_cache_dir))
        assert make_synthetic(tmp_path, dataclasses.replace(CONFIG, preview=True), workers=2)
    expected, got = _files(dataset), _files(tmp_path)
    assert sorted(expected) == sorted(got)
    assert [n for n in expected if expected[n] != got[n]] == []


def test_saved_bodies_rerender_the_stored_flow(dataset: Path, body_model) -> None:
    bodies = FitResult.load(dataset / "bodies" / "synthPERSONid00000001.npz")
    assert len(bodies) == 3 and bodies.image_size == (128, 96)
    names = sorted(n for n in read_annotation_csv(dataset / f"{PREFIX}annotation-train.csv")
                   if n.startswith("synthPERSONid00000001_"))  # fmt: skip
    src, tgt = 2, 0
    field = render_body_flow(
        body_model, bodies.params.select([src]), bodies.camera[[src]],
        bodies.params.select([tgt]), bodies.camera[[tgt]], (128, 96),
    )  # fmt: skip
    flow, vis = read_flow(dataset / "flows" / flow_filename(names[src], names[tgt]))
    assert np.array_equal(field.visibility[0].numpy(), vis)
    assert np.abs(field.flow[0].permute(1, 2, 0).numpy() - flow).max() < 0.07
