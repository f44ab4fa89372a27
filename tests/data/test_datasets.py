"""Tests for posetransfer.data.datasets: PairDataset on tiny PATN and DIAF datasets built here."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from posetransfer.conventions import Keypoint, Visibility
from posetransfer.data import diaf_formats, flow_files, formats
from posetransfer.data.datasets import PairBatch, PairDataset, collate_pairs
from posetransfer.ops.warp import warp
from posetransfer.pose.keypoints import Pose
from posetransfer.pose.maps import PoseMapConfig, num_pose_channels

VIS, BG = int(Visibility.VISIBLE), int(Visibility.BACKGROUND)
SHIFT = (3, -2)  # target(i, j) = source(i + dy, j + dx)


def _indices(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(18, 2) integer (col, row) keypoint indices, a few missing (-1), both shoulders present."""
    idx = np.stack([rng.integers(0, width, 18), rng.integers(0, height, 18)], axis=1)
    idx[[Keypoint.R_EAR, Keypoint.L_ANKLE]] = -1
    return idx


def _shifted(source: np.ndarray, dx: int, dy: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Target image, exact flow and visibility of ``source`` shifted by ``(dx, dy)``."""
    height, width = source.shape[:2]
    target = np.zeros_like(source)
    flow = np.zeros((height, width, 2), np.float32)
    vis = np.full((height, width), BG, np.uint8)
    rows = slice(max(0, -dy), min(height, height - dy))
    cols = slice(max(0, -dx), min(width, width - dx))
    src_rows = slice(rows.start + dy, rows.stop + dy)
    src_cols = slice(cols.start + dx, cols.stop + dx)
    target[rows, cols] = source[src_rows, src_cols]
    flow[rows, cols] = (dx, dy)
    vis[rows, cols] = VIS
    return target, flow, vis


class Toy:
    """Three images a.png (source), b.png (a shifted by SHIFT), c.png; pairs (a,b), (b,c), (c,a)."""

    def __init__(self, root: Path, size: tuple[int, int], layout: str = "patn", seed: int = 0):
        rng = np.random.default_rng(seed)
        height, width = size
        a = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        b, flow_ab, vis_ab = _shifted(a, *SHIFT)
        c = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        ext = ".png" if layout == "patn" else ""
        self.names = [f"a{ext}", f"b{ext}", f"c{ext}"]
        self.images = dict(zip(self.names, (a, b, c), strict=True))
        self.indices = {n: _indices(rng, height, width) for n in self.names}
        self.pairs = [(self.names[0], self.names[1]), (self.names[1], self.names[2]),
                      (self.names[2], self.names[0])]  # fmt: skip
        self.flows = {self.pairs[0]: (flow_ab, vis_ab)}
        for pair in self.pairs[1:]:
            self.flows[pair] = (rng.normal(size=(height, width, 2)).round(), np.full(size, VIS))
        poses = {n: Pose.from_indices(i) for n, i in self.indices.items()}
        self.root = root
        if layout == "patn":
            image_dir, flow_dir, fmt = root / "train", root / "flows", "npz"
            formats.write_pairs_csv(root / "fasion-resize-pairs-train.csv", self.pairs)
            formats.write_annotation_csv(root / "fasion-resize-annotation-train.csv", poses)
        else:
            image_dir, flow_dir, fmt = root / "Img" / "img", root / "3d" / "hmr" / "corr", "corr"
            diaf_formats.write_pair_split(root / "Label" / "pair_split.json", {"train": self.pairs})
            diaf_formats.write_pose_label(root / "Label" / "pose_label.pkl", poses)
        image_dir.mkdir(parents=True)
        for name, image in self.images.items():
            # DIAF images are JPEG in the original; PNG keeps pixel checks exact here.
            Image.fromarray(image).save(image_dir / (name if ext else f"{name}.jpg"),
                                        format="PNG")  # fmt: skip
        self.flow_paths = {}
        for (src, tgt), (flow, vis) in self.flows.items():
            path = flow_dir / flow_files.flow_filename(src, tgt, fmt)
            (flow_files.write_flow if fmt == "npz" else flow_files.write_corr)(path, flow, vis)
            self.flow_paths[(src, tgt)] = path
        self.image_dir = image_dir


@pytest.fixture
def toy(tmp_path: Path) -> Toy:
    return Toy(tmp_path / "toy", (20, 16))


def _warp_error(image_src: torch.Tensor, image_tgt: torch.Tensor, flow: torch.Tensor,
                vis: torch.Tensor) -> float:  # fmt: skip
    warped = warp(image_src[None], flow[None])[0]
    visible = vis == VIS
    assert visible.sum() > 20
    return float((warped - image_tgt).abs()[:, visible].max())


# ------------------------------------------------------------------------------- samples


def test_sample_shapes_ranges_and_content(toy: Toy) -> None:
    cfg = PoseMapConfig(kind="gaussian", sigma=2.0, limbs=True)
    ds = PairDataset(toy.root, "train", pose_map=cfg)
    assert len(ds) == 3 and ds.has_flow
    s = ds[0]
    assert (s.source_name, s.target_name) == ("a.png", "b.png")
    assert s.source_image.shape == s.target_image.shape == (3, 20, 16)
    assert s.source_image.dtype == torch.float32
    assert s.source_image.min() >= -1 and s.source_image.max() <= 1
    expected = torch.from_numpy(toy.images["a.png"]).permute(2, 0, 1).float() / 127.5 - 1
    torch.testing.assert_close(s.source_image, expected)
    assert s.source_pose_map.shape == s.target_pose_map.shape == (num_pose_channels(cfg), 20, 16)
    assert s.source_xy.shape == (18, 2) and s.source_xy.dtype == torch.float32
    assert s.source_valid.shape == (18,) and s.source_valid.dtype == torch.bool
    assert s.flow.shape == (2, 20, 16) and s.flow.dtype == torch.float32
    assert s.visibility.shape == (20, 16) and s.visibility.dtype == torch.int64


def test_keypoints_match_the_csv_at_pixel_centres(toy: Toy) -> None:
    ds = PairDataset(toy.root)
    s = ds[1]  # (b, c)
    for name, xy, valid in [("b.png", s.source_xy, s.source_valid),
                            ("c.png", s.target_xy, s.target_valid)]:  # fmt: skip
        idx = toy.indices[name]
        np.testing.assert_array_equal(valid.numpy(), (idx != -1).all(axis=1))
        np.testing.assert_array_equal(xy.numpy()[valid.numpy()], idx[valid.numpy()] + 0.5)
    # The keypoint channel of a valid point peaks at its pixel.
    j, i = toy.indices["b.png"][Keypoint.NOSE]
    assert s.source_pose_map[Keypoint.NOSE, i, j] == 1.0
    assert s.source_pose_map[Keypoint.R_EAR].abs().sum() == 0  # missing point


def test_flow_and_visibility_are_loaded(toy: Toy) -> None:
    ds = PairDataset(toy.root, require_flow=True)
    for k, pair in enumerate(toy.pairs):
        flow, vis = toy.flows[pair]
        s = ds[k]
        np.testing.assert_array_equal(s.flow.permute(1, 2, 0).numpy(), flow)
        np.testing.assert_array_equal(s.visibility.numpy(), vis)
        assert ds.flow_path(k) == toy.flow_paths[pair]


def test_diaf_layout_with_corr_flows(tmp_path: Path) -> None:
    toy = Toy(tmp_path / "diaf", (20, 16), layout="diaf")
    ds = PairDataset(toy.root, "train", require_flow=True)
    assert ds.files.layout == "diaf" and ds.flow_path(0).suffix == ".corr"
    s = ds[0]
    assert (s.source_name, s.target_name) == ("a", "b")
    assert ds.image_path("a") == toy.image_dir / "a.jpg"
    np.testing.assert_array_equal(s.flow.permute(1, 2, 0).numpy(), toy.flows[("a", "b")][0])
    assert _warp_error(s.source_image, s.target_image, s.flow, s.visibility) < 1e-3


# ------------------------------------------------------------------------------- protocols


def test_crop_protocol_shifts_keypoints_and_content(tmp_path: Path) -> None:
    toy = Toy(tmp_path / "big", (256, 256))
    ds = PairDataset(toy.root, protocol="deepfashion-256x176", require_flow=True)
    s = ds[0]
    assert s.source_image.shape == (3, 256, 176) and s.flow.shape == (2, 256, 176)
    cropped = torch.from_numpy(toy.images["a.png"][:, 40:216]).permute(2, 0, 1) / 127.5 - 1
    torch.testing.assert_close(s.source_image, cropped)
    idx = toy.indices["a.png"]
    inside = (idx[:, 0] >= 40) & (idx[:, 0] < 216)
    np.testing.assert_array_equal(s.source_valid.numpy(), inside)
    np.testing.assert_array_equal(s.source_xy.numpy()[inside, 0], idx[inside, 0] + 0.5 - 40)
    np.testing.assert_array_equal(s.source_xy.numpy()[inside, 1], idx[inside, 1] + 0.5)
    assert _warp_error(s.source_image, s.target_image, s.flow, s.visibility) < 1e-3


def test_resize_protocol_rescales_flow_values_and_keypoints(tmp_path: Path) -> None:
    # GFLA protocol: 44x32 images resized to 256x256; keypoints live in a 256x176 frame.
    toy = Toy(tmp_path / "small", (44, 32))
    ds = PairDataset(toy.root, protocol="deepfashion-256x256", require_flow=True)
    s = ds[0]
    assert s.target_image.shape == (3, 256, 256)
    body = s.visibility != BG
    sx, sy = 256 / 32, 256 / 44
    torch.testing.assert_close(s.flow[0][body], torch.full_like(s.flow[0][body], SHIFT[0] * sx))
    torch.testing.assert_close(s.flow[1][body], torch.full_like(s.flow[1][body], SHIFT[1] * sy))
    assert (s.flow[:, ~body] == 0).all()
    idx = toy.indices["a.png"]
    valid = s.source_valid.numpy()
    expected = (idx + 0.5) * [256 / 176, 1.0]
    np.testing.assert_allclose(s.source_xy.numpy()[valid], expected[valid], rtol=1e-6)


def test_image_of_unexpected_size_names_file_and_sizes(toy: Toy) -> None:
    ds = PairDataset(toy.root, protocol="market-128x64")
    with pytest.raises(ValueError, match=r"a\.png.*expects inputs of 128x64, got 20x16"):
        ds[0]


# ------------------------------------------------------------------------------- flips


@pytest.mark.parametrize(("size", "protocol"), [((20, 16), "native"),
                                                ((256, 256), "deepfashion-256x176")])  # fmt: skip
def test_flip_keeps_warp_consistency(tmp_path: Path, size: tuple[int, int], protocol: str) -> None:
    """THE key test: warp(source, flow) == target on visible pixels, flipped or not."""
    toy = Toy(tmp_path / "t", size)
    plain = PairDataset(toy.root, protocol=protocol, require_flow=True)
    flipped = PairDataset(toy.root, protocol=protocol, require_flow=True, hflip_prob=1.0)
    s, f = plain[0], flipped[0]
    assert _warp_error(s.source_image, s.target_image, s.flow, s.visibility) < 1e-3
    assert _warp_error(f.source_image, f.target_image, f.flow, f.visibility) < 1e-3
    torch.testing.assert_close(f.target_image, s.target_image.flip(-1))
    torch.testing.assert_close(f.visibility, s.visibility.flip(-1))
    assert (f.flow[0][f.visibility == VIS] == -SHIFT[0]).all()
    assert (f.flow[1][f.visibility == VIS] == SHIFT[1]).all()


def test_flip_swaps_left_and_right_keypoints(toy: Toy) -> None:
    s = PairDataset(toy.root)[0]
    f = PairDataset(toy.root, hflip_prob=1.0)[0]
    width = s.source_image.shape[-1]
    for right, left in [(Keypoint.R_SHOULDER, Keypoint.L_SHOULDER),
                        (Keypoint.R_HIP, Keypoint.L_HIP)]:  # fmt: skip
        assert f.source_valid[left] == s.source_valid[right]
        torch.testing.assert_close(f.source_xy[left, 0], width - s.source_xy[right, 0])
        torch.testing.assert_close(f.source_xy[left, 1], s.source_xy[right, 1])
    # Maps follow the points: the left-shoulder channel is the mirrored right-shoulder channel.
    torch.testing.assert_close(
        f.source_pose_map[Keypoint.L_SHOULDER], s.source_pose_map[Keypoint.R_SHOULDER].flip(-1)
    )
    assert f.source_valid[Keypoint.L_EAR] == s.source_valid[Keypoint.R_EAR]  # missing follows


def test_flip_draws_are_deterministic_per_seed_index_and_epoch(toy: Toy) -> None:
    ds = PairDataset(toy.root, hflip_prob=0.5, seed=7)
    draws = []
    for epoch in range(8):
        ds.set_epoch(epoch)
        draws.append([ds.is_flipped(k) for k in range(len(ds))])
    again = PairDataset(toy.root, hflip_prob=0.5, seed=7)
    again.set_epoch(5)
    assert [again.is_flipped(k) for k in range(len(ds))] == draws[5]
    assert len({tuple(d) for d in draws}) > 1  # the epoch changes the draws
    flat = [d for epoch_draws in draws for d in epoch_draws]
    assert 0 < sum(flat) < len(flat)
    ds.set_epoch(5)
    k = draws[5].index(True)
    torch.testing.assert_close(ds[k].source_image, PairDataset(toy.root)[k].source_image.flip(-1))


# ------------------------------------------------------------------------------- errors


def test_missing_flow_with_require_flow_names_the_path(toy: Toy) -> None:
    missing = toy.flow_paths[toy.pairs[1]]
    missing.unlink()
    with pytest.raises(FileNotFoundError, match=str(missing)):
        PairDataset(toy.root, require_flow=True)


def test_partial_flows_without_require_flow_load_none(
    toy: Toy, caplog: pytest.LogCaptureFixture
) -> None:
    toy.flow_paths[toy.pairs[1]].unlink()
    with caplog.at_level(logging.WARNING):
        ds = PairDataset(toy.root)
    assert not ds.has_flow and ds[0].flow is None and ds[0].visibility is None
    assert "1 of 3 pairs have no flow file" in caplog.text


def test_missing_image_is_refused_naming_the_pair(toy: Toy) -> None:
    (toy.image_dir / "c.png").unlink()
    with pytest.raises(formats.FormatError, match=r"(?s)2 of 3 pairs.*pair 1 \(b\.png, c\.png\)"):
        PairDataset(toy.root)


def test_bad_arguments(toy: Toy) -> None:
    with pytest.raises(ValueError, match="hflip_prob"):
        PairDataset(toy.root, hflip_prob=1.5)
    with pytest.raises(ValueError, match="valid protocols"):
        PairDataset(toy.root, protocol="fashion")


# ------------------------------------------------------------------------------- batching


def test_collate_and_dataloader(toy: Toy) -> None:
    ds = PairDataset(toy.root, require_flow=True)
    batch = next(iter(DataLoader(ds, batch_size=3, collate_fn=collate_pairs)))
    assert isinstance(batch, PairBatch) and len(batch) == 3
    assert batch.source_name == ["a.png", "b.png", "c.png"]
    assert batch.source_image.shape == (3, 3, 20, 16) and batch.flow.shape == (3, 2, 20, 16)
    assert batch.visibility.shape == (3, 20, 16) and batch.source_valid.shape == (3, 18)
    torch.testing.assert_close(batch.target_pose_map[1], ds[1].target_pose_map)
    moved = batch.to("cpu")
    assert moved.source_name == batch.source_name and moved.flow.device.type == "cpu"


def test_collate_refuses_a_mix_of_flow_and_no_flow(toy: Toy) -> None:
    ds = PairDataset(toy.root)
    with_flow, without = ds[0], replace(ds[1], flow=None, visibility=None)
    with pytest.raises(ValueError, match=r"\(a\.png, b\.png\) has flow.*\(b\.png, c\.png\)"):
        collate_pairs([with_flow, without])
    assert collate_pairs([without, without]).flow is None
    with pytest.raises(ValueError, match="at least one"):
        collate_pairs([])
