"""The folder-level runner: every image scored, exactly as the protocol's reference code would."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from posetransfer.data.formats import read_annotation_csv, write_annotation_csv
from posetransfer.eval.evaluate import EvaluateConfig, evaluate_folders, load_image
from posetransfer.eval.lpips import LPIPS
from posetransfer.eval.masks import pose_mask
from posetransfer.eval.protocols import get_eval_protocol
from posetransfer.pose.keypoints import Pose

from .conftest import MakeFolder

skm = pytest.importorskip("skimage.metrics")


def read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def gaussian_ssim(gt: np.ndarray, gen: np.ndarray, data_range: float | None = None) -> float:
    rng = float(gen.max()) - float(gen.min()) if data_range is None else data_range
    return skm.structural_similarity(
        gt, gen, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        data_range=rng, channel_axis=2,
    )  # fmt: skip


def pairs_of(pred_dir: Path, gt_dir: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    return [
        (read(p), read(gt_dir / (p.stem.split("_2_")[1] + ".png")))
        for p in sorted(pred_dir.iterdir())
    ]


def test_native_scores_every_image(make_folder: MakeFolder, no_weights: Path) -> None:
    pred_dir, gt_dir, _ = make_folder(6)
    cfg = EvaluateConfig(batch_size=4, per_image=True)  # 6 = 4 + 2: the last batch is kept
    report = evaluate_folders(pred_dir, gt_dir, "native", cfg, progress=False)
    pairs = pairs_of(pred_dir, gt_dir)
    assert report.num_images == 6 and len(report.per_image) == 6
    m = report.metrics
    assert m["ssim"] == pytest.approx(np.mean([gaussian_ssim(g, p, 255) for p, g in pairs]))
    psnrs = [skm.peak_signal_noise_ratio(g, p, data_range=255) for p, g in pairs]
    assert m["psnr"] == pytest.approx(np.mean(psnrs))
    l1s = [np.abs(p / 255.0 - g / 255.0).mean() for p, g in pairs]
    assert m["l1"] == pytest.approx(np.mean(l1s))
    assert [row["ssim"] for row in report.per_image] == pytest.approx(
        [gaussian_ssim(g, p, 255) for p, g in pairs]
    )
    assert report.inputs.naming == {"gfla": 6}
    for key in ("lpips", "fid", "kid", "inception_score", "mask_ssim"):
        assert key in report.skipped and key not in m
    assert "alexnet-owt-7be5be79.pth" in report.skipped["lpips"]
    assert "default_1.pt" in report.skipped["fid"]


def test_patn_protocol_pads_white_before_ssim(make_folder: MakeFolder, no_weights: Path) -> None:
    pred_dir, gt_dir, _ = make_folder(2, size=(256, 176))
    report = evaluate_folders(pred_dir, gt_dir, "deepfashion-256x176-crop", progress=False)
    pairs = pairs_of(pred_dir, gt_dir)

    def bound(x: np.ndarray) -> np.ndarray:  # PATN's addBounding
        return np.pad(x, ((0, 0), (40, 40), (0, 0)), constant_values=255)

    padded = np.mean([gaussian_ssim(bound(g), bound(p)) for p, g in pairs])
    unpadded = np.mean([gaussian_ssim(g, p) for p, g in pairs])
    assert report.metrics["ssim"] == pytest.approx(padded, abs=1e-5)
    assert report.metrics["ssim_unpadded"] == pytest.approx(unpadded, abs=1e-5)
    assert padded > unpadded


def market_setup(make_folder: MakeFolder, tmp_path: Path) -> tuple[Path, Path, Path]:
    pred_dir, gt_dir, names = make_folder(4, size=(128, 64))
    rng = np.random.default_rng(1)
    poses = {}
    for name in names:
        indices = np.stack([rng.integers(5, 60, 18), rng.integers(5, 120, 18)], 1)
        indices[rng.random(18) < 0.2] = -1
        poses[f"{name}.jpg"] = Pose.from_indices(indices)  # annotations name the original JPEGs
    annotations = tmp_path / "market-annotation-test.csv"
    write_annotation_csv(annotations, poses)
    return pred_dir, gt_dir, annotations


def test_market_masks_lpips_and_fid(
    make_folder: MakeFolder, tmp_path: Path, alexnet_file: Path, inception_file: Path
) -> None:
    pred_dir, gt_dir, annotations = market_setup(make_folder, tmp_path)
    report = evaluate_folders(
        pred_dir, gt_dir, "market-128x64", EvaluateConfig(batch_size=3, kid_subsets=5),
        annotations_csv=annotations, lpips_weights=alexnet_file, fid_weights=inception_file,
        progress=False,
    )  # fmt: skip
    m = report.metrics
    pairs = pairs_of(pred_dir, gt_dir)
    poses = read_annotation_csv(annotations)
    targets = [p.stem.split("_2_")[1] for p in sorted(pred_dir.iterdir())]
    masks = [pose_mask(poses[f"{t}.jpg"], (128, 64)) for t in targets]
    masked = [
        gaussian_ssim(g * k[..., None], p * k[..., None])
        for (p, g), k in zip(pairs, masks, strict=True)
    ]
    assert m["mask_ssim"] == pytest.approx(np.mean(masked), abs=1e-5)
    assert m["ssim"] == pytest.approx(np.mean([gaussian_ssim(g, p) for p, g in pairs]), abs=1e-5)
    assert m["mask_l1"] > 0 and m["mask_ssim"] > m["ssim"]

    lpips = LPIPS(alexnet_file)
    pred = torch.stack([torch.tensor(p).permute(2, 0, 1) for p, _ in pairs]) / 127.5 - 1
    gt = torch.stack([torch.tensor(g).permute(2, 0, 1) for _, g in pairs]) / 127.5 - 1
    assert m["lpips"] == pytest.approx(lpips(pred, gt).mean().item(), rel=1e-5)
    mask = torch.from_numpy(np.stack(masks))[:, None].float()
    assert m["mask_lpips"] == pytest.approx(lpips(pred * mask, gt * mask).mean().item(), rel=1e-5)

    assert np.isfinite(m["fid"]) and m["fid"] > 0 and "kid" in m and "kid_std" in m
    assert report.notes["fid_real"] == "4 distinct matched ground-truth images"
    assert report.notes["kid_subset_size"] == 4
    assert report.weights.inception == str(inception_file)
    assert report.weights.lpips_backbone == str(alexnet_file)
    assert set(report.skipped) == {"inception_score"}


def test_fid_real_folder_and_disabled_metrics(
    make_folder: MakeFolder, inception_file: Path, no_weights: Path
) -> None:
    pred_dir, gt_dir, _ = make_folder(3, size=(32, 32))
    real_dir, _, _ = make_folder(5, size=(40, 40), name="real")  # any size: "native"
    report = evaluate_folders(
        pred_dir, gt_dir, "native", EvaluateConfig(lpips=False, kid_subsets=2),
        fid_real_dir=real_dir, fid_weights=inception_file, progress=False,
    )  # fmt: skip
    assert report.notes["fid_real"] == f"5 images of {real_dir}"
    assert report.skipped["lpips"] == "disabled (lpips=false)"
    off = evaluate_folders(pred_dir, gt_dir, "native", EvaluateConfig(fid=False), progress=False)
    assert off.skipped["fid"] == off.skipped["kid"] == "disabled (fid=false)"


def test_identical_images_give_infinite_psnr_noted(tmp_path: Path, no_weights: Path) -> None:
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir(), gt.mkdir()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), np.uint8))
    for name in ("a", "b"):
        image.save(pred / f"{name}.png")
        image.save(gt / f"{name}.png")
    report = evaluate_folders(pred, gt, "native", progress=False)
    assert report.metrics["psnr"] is None and report.notes["psnr_nonfinite"] == 2
    assert report.metrics["ssim"] == pytest.approx(1.0)
    assert report.inputs.naming == {"identical": 2}


def test_strict_protocol_rejects_other_sizes(make_folder: MakeFolder, no_weights: Path) -> None:
    pred_dir, gt_dir, _ = make_folder(2, size=(64, 48))
    message = r"t0_2_t1\.png: image is 64x48 \(HxW\), but .* scores 128x64"
    with pytest.raises(ValueError, match=message):
        evaluate_folders(pred_dir, gt_dir, "market-128x64", progress=False)


def test_resize_protocol(make_folder: MakeFolder, no_weights: Path) -> None:
    pred_dir, gt_dir, _ = make_folder(2, size=(64, 48))
    path = next(iter(sorted(pred_dir.iterdir())))
    resized = load_image(path, get_eval_protocol("deepfashion-resize"))
    expected = Image.open(path).convert("RGB").resize((176, 256), Image.Resampling.BICUBIC)
    np.testing.assert_array_equal(resized, np.asarray(expected))
    report = evaluate_folders(pred_dir, gt_dir, "deepfashion-resize", progress=False)
    assert set(report.metrics) >= {"ssim", "ssim_256", "psnr", "l1"}


def test_missing_keypoints_for_a_target(make_folder: MakeFolder, tmp_path: Path) -> None:
    pred_dir, gt_dir, annotations = market_setup(make_folder, tmp_path)
    write_annotation_csv(annotations, {"t0.jpg": Pose.missing()})
    message = r"market-annotation-test\.csv: no keypoints for target image 't3\.png'"
    with pytest.raises(ValueError, match=message):
        evaluate_folders(
            pred_dir, gt_dir, "market-128x64", EvaluateConfig(lpips=False, fid=False),
            annotations_csv=annotations, progress=False,
        )  # fmt: skip


def test_explicit_weights_must_load(make_folder: MakeFolder, tmp_path: Path) -> None:
    pred_dir, gt_dir, _ = make_folder(2, size=(32, 32))
    (tmp_path / "bad.pth").write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"bad\.pth: cannot read"):
        evaluate_folders(pred_dir, gt_dir, "native", lpips_weights=tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="batch_size"):
        evaluate_folders(pred_dir, gt_dir, "native", EvaluateConfig(batch_size=0))
