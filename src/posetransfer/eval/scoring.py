"""Scoring image folders: the settings, the per-image metrics in batches, the optional models.

:func:`score_all` scores every matched pair in batches, the last partial batch included: the
protocol's SSIM variants, PSNR, L1, the masked metrics when target keypoints are given, and
LPIPS when its backbone is found; it gathers Inception features for FID/KID. Models whose
weights are absent are skipped with the reason (:func:`setup_models`); nothing is downloaded.
:func:`posetransfer.eval.evaluate.evaluate_folders` puts these together into a report.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from posetransfer.eval.fid import feature_statistics, frechet_distance, kernel_inception_distance
from posetransfer.eval.inception import FIDExtractor, fid_extractor
from posetransfer.eval.lpips import LPIPS as LPIPSModel
from posetransfer.eval.masks import pose_masks
from posetransfer.eval.matching import MatchedPair
from posetransfer.eval.metrics import finite_mean, l1, masked_l1, psnr
from posetransfer.eval.names import (
    FID,
    KID,
    KID_STD,
    L1,
    LPIPS,
    MASK_L1,
    MASK_LPIPS,
    MASK_SSIM,
    PSNR,
)
from posetransfer.eval.protocols import EvalProtocol
from posetransfer.eval.ssim import masked_ssim, ssim
from posetransfer.io import PathLike
from posetransfer.pose.keypoints import Pose

__all__ = [
    "EvaluateConfig",
    "Scores",
    "add_fid",
    "image_features",
    "load_image",
    "metric_means",
    "score_all",
    "setup_models",
    "target_poses",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluateConfig:
    """Settings of ``posetransfer evaluate``.

    Attributes:
        batch_size: Images per batch (every image is scored; the last batch may be smaller).
        lpips: Compute LPIPS (and mask_lpips) when the AlexNet backbone is found.
        fid: Compute FID and KID when the Inception weights are found.
        kid_subsets: KID subsets.
        kid_subset_size: Images per KID subset (capped at the smaller set).
        seed: Seed of the KID subset sampler.
        device: Torch device for LPIPS and Inception (``cpu``, ``cuda``).
        allow_missing: Score the predictions present when listed pairs lack one.
        per_image: Add every image's values to the report.
        num_threads: ``torch.set_num_threads`` applied by the CLI before scoring; 0 keeps
            torch's default (on small CPU machines 1 thread can be several times faster).
    """

    batch_size: int = 16
    lpips: bool = True
    fid: bool = True
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    seed: int = 0
    device: str = "cpu"
    allow_missing: bool = False
    per_image: bool = False
    num_threads: int = 0


def load_image(path: Path, protocol: EvalProtocol) -> np.ndarray:
    """Read an image as 8-bit RGB in the protocol's geometry.

    Returns:
        ``(H, W, 3)`` uint8.

    Raises:
        ValueError: Unreadable file, or a size the protocol does not take (names both sizes).
    """
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{path}: cannot read image ({exc})") from exc
    if protocol.size is None or (rgb.height, rgb.width) == protocol.size:
        return np.asarray(rgb)
    height, width = protocol.size
    if protocol.resize:
        return np.asarray(rgb.resize((width, height), Image.Resampling.BICUBIC))
    raise ValueError(
        f"{path}: image is {rgb.height}x{rgb.width} (HxW), but protocol {protocol.name!r} scores "
        f"{height}x{width} images without resizing; prepare the images at that size or use a "
        "resize protocol (deepfashion-resize)"
    )


def _batch(paths: Sequence[Path], protocol: EvalProtocol) -> torch.Tensor:
    """``(B, 3, H, W)`` uint8 batch; all images must share one size."""
    images = [load_image(p, protocol) for p in paths]
    sizes = {im.shape for im in images}
    if len(sizes) > 1:
        raise ValueError(
            f"images of different sizes in one batch ({sorted(sizes)}): "
            f"{', '.join(p.name for p in paths)}; use batch_size=1 for mixed sizes"
        )
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)


def _optional_model(
    build: Callable[[], Any],
    explicit: PathLike | None,
    skipped: dict[str, str],
    keys: Sequence[str],
) -> Any:
    """Build a model whose weights may be absent: a file not found skips ``keys`` with the reason.

    An explicitly given file is required: any error with it propagates.
    """
    if explicit is not None:
        return build()
    try:
        return build()
    except FileNotFoundError as exc:
        for key in keys:
            skipped[key] = str(exc)
        logger.warning("skipping %s: %s", ", ".join(keys), exc)
        return None


def _pad_white(x: torch.Tensor, pad: int) -> torch.Tensor:
    return F.pad(x, (pad, pad), value=255.0) if pad else x


def _score_batch(
    pred: torch.Tensor,
    gt: torch.Tensor,
    masks: torch.Tensor | None,
    protocol: EvalProtocol,
    lpips_model: LPIPSModel | None,
) -> dict[str, torch.Tensor]:
    """All per-image metrics of one batch (``(B,)`` float64 each)."""
    x, y = pred.to(torch.float64), gt.to(torch.float64)
    out: dict[str, torch.Tensor] = {}
    xp, yp = _pad_white(x, protocol.ssim_pad_white), _pad_white(y, protocol.ssim_pad_white)
    for key, spec in protocol.ssim:
        out[key] = ssim(xp, yp, spec)
    if protocol.unpadded_key:
        out[protocol.unpadded_key] = ssim(x, y, protocol.ssim[0][1])
    out[PSNR] = psnr(x, y, data_range=255.0)
    out[L1] = l1(x, y, data_range=255.0)
    if masks is not None:
        out[MASK_SSIM] = masked_ssim(x, y, masks, protocol.ssim[0][1])
        out[MASK_L1] = masked_l1(x, y, masks, data_range=255.0)
    if lpips_model is not None:
        device = lpips_model.shift.device
        xs = (pred.to(device, torch.float32) / 127.5) - 1.0
        ys = (gt.to(device, torch.float32) / 127.5) - 1.0
        with torch.inference_mode():
            out[LPIPS] = lpips_model(xs, ys).to("cpu", torch.float64)
            if masks is not None:  # GFLA's mask_lpips: [-1, 1] images times the mask
                m = masks.to(device, torch.float32)
                out[MASK_LPIPS] = lpips_model(xs * m, ys * m).to("cpu", torch.float64)
    return out


def target_poses(
    matches: Sequence[MatchedPair], annotations: dict[str, Pose], source: Path
) -> list[Pose]:
    """The target keypoints of each match, by file name or stem.

    Raises:
        ValueError: A target without keypoints in ``source``.
    """
    by_stem = {Path(name).stem: pose for name, pose in annotations.items()}
    poses = []
    for m in matches:
        pose = annotations.get(m.target, by_stem.get(m.gt.stem))
        if pose is None:
            raise ValueError(f"{source}: no keypoints for target image {m.target!r}")
        poses.append(pose)
    return poses


def image_features(
    paths: Sequence[Path], protocol: EvalProtocol, model: FIDExtractor, batch_size: int
) -> np.ndarray:
    """Inception features ``(N, D)`` of images read in the protocol's geometry."""
    chunks = [
        model(_batch(paths[i : i + batch_size], protocol)).numpy()
        for i in range(0, len(paths), batch_size)
    ]
    return np.concatenate(chunks)


@dataclass
class Scores:
    """What the scoring loop accumulates.

    Attributes:
        values: Metric -> per-batch ``(B,)`` values.
        pred_feats: Inception features of the predictions, per batch.
        gt_feats: Inception features of the distinct ground-truth images, per batch.
        seen_gt: Ground-truth images already featurised.
    """

    values: dict[str, list[torch.Tensor]] = field(default_factory=lambda: defaultdict(list))
    pred_feats: list[np.ndarray] = field(default_factory=list)
    gt_feats: list[np.ndarray] = field(default_factory=list)
    seen_gt: set[Path] = field(default_factory=set)


def score_all(
    matches: Sequence[MatchedPair],
    proto: EvalProtocol,
    cfg: EvaluateConfig,
    poses: Sequence[Pose] | None,
    lpips_model: LPIPSModel | None,
    inception: FIDExtractor | None,
    gt_features: bool,
    progress: bool,
) -> Scores:
    """Score every match in batches (the last one may be smaller; nothing is dropped).

    Raises:
        ValueError: Unreadable images, or a prediction whose size differs from its truth.
    """
    scores = Scores()
    bar = tqdm(total=len(matches), unit="img", desc=f"evaluate {proto.name}", disable=not progress)
    for start in range(0, len(matches), cfg.batch_size):
        chunk = matches[start : start + cfg.batch_size]
        pred = _batch([m.pred for m in chunk], proto)
        gt = _batch([m.gt for m in chunk], proto)
        if pred.shape != gt.shape:
            raise ValueError(
                f"prediction and ground truth differ in size ({tuple(pred.shape[2:])} vs "
                f"{tuple(gt.shape[2:])}), e.g. {chunk[0].pred.name} / {chunk[0].gt.name}"
            )
        masks = None
        if poses is not None:
            masks = pose_masks(poses[start : start + len(chunk)], (pred.shape[2], pred.shape[3]))
        for key, value in _score_batch(pred, gt, masks, proto, lpips_model).items():
            scores.values[key].append(value)
        if inception is not None:
            scores.pred_feats.append(inception(pred).numpy())
            fresh = [i for i, m in enumerate(chunk) if m.gt not in scores.seen_gt]
            scores.seen_gt.update(chunk[i].gt for i in fresh)
            if gt_features and fresh:
                scores.gt_feats.append(inception(gt[fresh]).numpy())
        bar.update(len(chunk))
    bar.close()
    return scores


def setup_models(
    cfg: EvaluateConfig,
    with_masks: bool,
    lpips_weights: PathLike | None,
    fid_weights: PathLike | None,
    skipped: dict[str, str],
) -> tuple[LPIPSModel | None, FIDExtractor | None]:
    """LPIPS and Inception models, or None with the reason recorded in ``skipped``."""
    lpips_keys = [LPIPS, MASK_LPIPS] if with_masks else [LPIPS]
    lpips_model = inception = None
    if cfg.lpips:
        lpips_model = _optional_model(
            lambda: LPIPSModel(lpips_weights).to(cfg.device), lpips_weights, skipped, lpips_keys
        )
    else:
        skipped.update(dict.fromkeys(lpips_keys, "disabled (lpips=false)"))
    if cfg.fid:
        inception = _optional_model(
            lambda: fid_extractor(fid_weights).to(cfg.device), fid_weights, skipped, [FID, KID],
        )  # fmt: skip
    else:
        skipped[FID] = skipped[KID] = "disabled (fid=false)"
    return lpips_model, inception


def metric_means(
    per_image: dict[str, torch.Tensor],
) -> tuple[dict[str, float | None], dict[str, Any]]:
    """Mean of each metric over images, and the count of non-finite values left out."""
    metrics: dict[str, float | None] = {}
    notes: dict[str, Any] = {}
    for key, vals in per_image.items():
        metrics[key], nonfinite = finite_mean(vals)
        if nonfinite:
            notes[f"{key}_nonfinite"] = nonfinite
    if f"{PSNR}_nonfinite" in notes:
        notes[f"{PSNR}_nonfinite_meaning"] = "identical images (+inf), excluded from the mean"
    return metrics, notes


def add_fid(
    metrics: dict[str, float | None],
    notes: dict[str, Any],
    skipped: dict[str, str],
    pred_feats: np.ndarray,
    real_feats: np.ndarray,
    cfg: EvaluateConfig,
) -> None:
    """Put FID, KID and its spread into ``metrics`` (or the reason into ``skipped``)."""
    if len(pred_feats) < 2 or len(real_feats) < 2:
        skipped[FID] = skipped[KID] = (
            f"needs at least 2 images per set, got {len(pred_feats)} generated and "
            f"{len(real_feats)} real"
        )
        return
    stats_pred, stats_real = feature_statistics(pred_feats), feature_statistics(real_feats)
    metrics[FID] = frechet_distance(*stats_pred, *stats_real)
    kid = kernel_inception_distance(
        pred_feats, real_feats, num_subsets=cfg.kid_subsets,
        subset_size=cfg.kid_subset_size, seed=cfg.seed,
    )  # fmt: skip
    metrics[KID], metrics[KID_STD] = kid.mean, kid.std
    notes["kid_subsets"], notes["kid_subset_size"] = kid.num_subsets, kid.subset_size
    notes["fid_feature_dim"] = int(pred_feats.shape[1])
