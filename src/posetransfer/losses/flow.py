"""Flow-regression loss (paper stage 2) and flow/visibility metrics.

Loss terms (``reference/official_repo.md`` §3.4), returned *unweighted* by
:func:`flow_loss_terms` and weighted in one place by :func:`total_loss`::

    L = vis_weight * vis_ce + flow_weight * sum_k level_weights[k] * epe_l{k}

``epe_l{k}``
    End-point error of pyramid level ``k`` (stride ``2**k``) against the ground-truth pyramid of
    :func:`posetransfer.ops.warp.flow_pyramid`, on body pixels (Visibility != BACKGROUND, both
    VISIBLE and INVISIBLE as in the original), **in full-resolution pixels** (the level's error
    times ``2**k``) so that every level reads like the reported EPE. Per sample it is the mean
    over the sample's body pixels, then the batch mean (a sample without body pixels counts 0).
``vis_ce``
    Cross-entropy of the full-resolution visibility logits, mean over all pixels, optionally
    class-weighted (``F.cross_entropy(weight=...)``: ``sum w_y * nll / sum w_y``).

The original weighted level ``i`` (stride ``2**(i+1)``) by ``0.32 / 2**i`` and measured its EPE in
units of 20 pixels (its target scale 0.05), so the defaults ``flow_weight = 0.05`` and
``level_weights = (0, 0.32, 0.16, ...)`` reproduce its loss exactly; the full-resolution level 0
is not supervised there. (An earlier commit of the original used FlowNet's
``0.005 .. 0.32`` fine-to-coarse weights; its final code uses ``0.32 / 2**i``.)

Coarse body mask (``coarse_mask``): ``"interior"`` (default) keeps a coarse pixel only if its
whole ``2**k`` block is body (the rule of ``visibility_pyramid``), so an average-pooled target is
never mixed with background zeros; ``"any"`` keeps it if any pixel is body (the original's
max-pooled mask, whose targets shrink towards 0 along the silhouette: bug 7.1.10).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from posetransfer.config import ConfigError
from posetransfer.conventions import NUM_VISIBILITY_CLASSES, Visibility
from posetransfer.models.flow_regressor import FlowPrediction
from posetransfer.ops.warp import flow_pyramid, visibility_pyramid

__all__ = [
    "FlowLossConfig",
    "NonFiniteError",
    "flow_loss_terms",
    "flow_metrics",
    "per_sample_epe",
    "total_loss",
]

_BG = int(Visibility.BACKGROUND)


class NonFiniteError(ValueError):
    """A loss or metric input holds NaN or infinity (the training loop may count and skip)."""


@dataclass(frozen=True)
class FlowLossConfig:
    """Weights of the flow-regression loss (defaults: the original's, for 3 flow levels).

    Attributes:
        flow_weight: Weight of the multi-scale EPE sum (0.05: the original's EPE unit of 20 px).
        level_weights: Weight of ``epe_l{k}`` for ``k = 0, 1, ...``; levels past the end get 0.
            The original's ``(0, 0.32, 0.16, 0.08, 0.04, 0.02)`` for its 5 heads.
        vis_weight: Weight of ``vis_ce``.
        vis_class_weights: Cross-entropy weights of VISIBLE, INVISIBLE, BACKGROUND.
        coarse_mask: Body mask of coarse levels, ``"interior"`` or ``"any"`` (module docstring).
    """

    flow_weight: float = 0.05
    level_weights: tuple[float, ...] = (0.0, 0.32, 0.16, 0.08)
    vis_weight: float = 1.0
    vis_class_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    coarse_mask: Literal["interior", "any"] = "interior"

    def __post_init__(self) -> None:
        scalars = {"flow_weight": self.flow_weight, "vis_weight": self.vis_weight}
        lists = {"level_weights": self.level_weights, "vis_class_weights": self.vis_class_weights}
        for name, value in [*scalars.items()] + [
            (f"{n}[{i}]", v) for n, vs in lists.items() for i, v in enumerate(vs)
        ]:
            if not isinstance(value, int | float) or not 0 <= value < float("inf"):
                raise ConfigError(f"FlowLossConfig.{name} must be a number >= 0, got {value!r}")
        if len(self.vis_class_weights) != NUM_VISIBILITY_CLASSES:
            raise ConfigError(
                f"FlowLossConfig.vis_class_weights needs {NUM_VISIBILITY_CLASSES} values, "
                f"got {self.vis_class_weights!r}"
            )
        if not any(self.vis_class_weights):
            raise ConfigError("FlowLossConfig.vis_class_weights must not all be 0")
        if self.coarse_mask not in ("interior", "any"):
            raise ConfigError(
                f"FlowLossConfig.coarse_mask must be 'interior' or 'any', got {self.coarse_mask!r}"
            )

    @classmethod
    def paper(cls, num_levels: int = 5) -> FlowLossConfig:
        """The original's loss for a regressor with ``num_levels`` heads, including its mask."""
        weights = (0.0, *(0.32 / 2**i for i in range(num_levels)))
        return cls(level_weights=weights, coarse_mask="any")


def _check_finite(named: dict[str, torch.Tensor]) -> None:
    """Raise :class:`NonFiniteError` naming the first tensor with NaN or infinity.

    One reduction and one host sync for all tensors; the culprit is searched only on failure.
    """
    flags = torch.stack([torch.isfinite(t).all() for t in named.values()])
    if bool(flags.all()):
        return
    for name, t in named.items():
        bad = int((~torch.isfinite(t)).sum())
        if bad:
            raise NonFiniteError(f"{name} has {bad} non-finite value(s) (shape {tuple(t.shape)})")


def _check_inputs(pred: FlowPrediction, flow_gt: torch.Tensor, vis_gt: torch.Tensor) -> None:
    """Shapes, dtypes, codes and finiteness of a prediction and its ground truth."""
    if not isinstance(pred, FlowPrediction):
        raise ValueError(f"pred must be a FlowPrediction, got {type(pred).__name__}")
    if not isinstance(flow_gt, torch.Tensor) or tuple(flow_gt.shape) != tuple(pred.flow.shape):
        shape = tuple(flow_gt.shape) if isinstance(flow_gt, torch.Tensor) else type(flow_gt)
        raise ValueError(
            f"flow_gt must have the prediction's shape {tuple(pred.flow.shape)}, got {shape}"
        )
    batch, _, height, width = pred.flow.shape
    if not isinstance(vis_gt, torch.Tensor) or tuple(vis_gt.shape) != (batch, height, width):
        shape = tuple(vis_gt.shape) if isinstance(vis_gt, torch.Tensor) else type(vis_gt)
        raise ValueError(f"vis_gt must have shape (B, H, W)={(batch, height, width)}, got {shape}")
    if vis_gt.is_floating_point() or vis_gt.is_complex() or vis_gt.dtype == torch.bool:
        raise ValueError(f"vis_gt must hold integer Visibility codes, got dtype {vis_gt.dtype}")
    if vis_gt.numel():
        low, high = (int(v) for v in torch.aminmax(vis_gt))
        if low < 0 or high >= NUM_VISIBILITY_CLASSES:
            raise ValueError(
                f"vis_gt codes must be in 0..{NUM_VISIBILITY_CLASSES - 1}, "
                f"got range [{low}, {high}]"
            )
    named = {"flow_gt": flow_gt, "pred.vis_logits_full": pred.vis_logits_full}
    named.update((f"pred.flows[{k}]", t) for k, t in enumerate(pred.flows))
    _check_finite(named)


def per_sample_epe(
    flow_pred: torch.Tensor, flow_gt: torch.Tensor, mask: torch.Tensor, *, empty: float = 0.0
) -> torch.Tensor:
    """Mean end-point error over each sample's masked pixels.

    Args:
        flow_pred: ``(B, 2, H, W)`` flow.
        flow_gt: ``(B, 2, H, W)`` reference flow.
        mask: ``(B, H, W)`` bool.
        empty: Value for a sample with an empty mask (0 for losses, NaN for metrics).

    Returns:
        ``(B,)`` tensor: ``sum(mask * ||pred - gt||) / sum(mask)`` per sample.
    """
    epe = torch.linalg.vector_norm(flow_pred - flow_gt, dim=1)
    weights = mask.to(epe.dtype)
    total = (epe * weights).sum(dim=(1, 2))
    count = weights.sum(dim=(1, 2))
    return torch.where(count > 0, total / count.clamp_min(1.0), total.new_tensor(empty))


def _body_masks(vis_gt: torch.Tensor, levels: int, rule: str) -> list[torch.Tensor]:
    """``(B, H / 2**k, W / 2**k)`` bool body masks of levels ``0 .. levels-1``."""
    if rule == "interior":
        return [v != _BG for v in visibility_pyramid(vis_gt, levels)]
    body = (vis_gt != _BG).float().unsqueeze(1)
    masks = [body[:, 0] > 0]
    for k in range(1, levels):
        masks.append(F.max_pool2d(body, kernel_size=2**k)[:, 0] > 0)
    return masks


def flow_loss_terms(
    pred: FlowPrediction,
    flow_gt: torch.Tensor,
    vis_gt: torch.Tensor,
    cfg: FlowLossConfig | None = None,
) -> dict[str, torch.Tensor]:
    """Unweighted loss terms of a prediction (see the module docstring).

    Args:
        pred: Output of :class:`~posetransfer.models.flow_regressor.FlowRegressor`.
        flow_gt: ``(B, 2, H, W)`` ground-truth flow target -> source in pixels.
        vis_gt: ``(B, H, W)`` integer Visibility codes.
        cfg: Class weights and coarse-mask rule (default ``FlowLossConfig()``).

    Returns:
        0-dim tensors ``"epe_l0" .. "epe_l{K}"`` (``K + 1 = len(pred.flows)``, full-resolution
        pixels) and ``"vis_ce"``.

    Raises:
        NonFiniteError: If the prediction or ``flow_gt`` holds NaN or infinity.
        ValueError: On wrong shapes, dtypes or visibility codes.
    """
    cfg = cfg or FlowLossConfig()
    _check_inputs(pred, flow_gt, vis_gt)
    levels = len(pred.flows)
    targets = flow_pyramid(flow_gt, levels)
    masks = _body_masks(vis_gt, levels, cfg.coarse_mask)
    terms = {}
    for k, (flow, target, mask) in enumerate(zip(pred.flows, targets, masks, strict=True)):
        # float32 at least: bf16/fp16 outputs (autocast) would blur sub-pixel errors.
        flow = flow.to(torch.promote_types(flow.dtype, torch.float32))
        terms[f"epe_l{k}"] = per_sample_epe(flow, target.to(flow.dtype), mask).mean() * 2**k
    logits = pred.vis_logits_full.to(torch.promote_types(pred.vis_logits_full.dtype, torch.float32))
    weight = logits.new_tensor(cfg.vis_class_weights)
    terms["vis_ce"] = F.cross_entropy(logits, vis_gt.long(), weight=weight)
    return terms


def total_loss(terms: dict[str, torch.Tensor], cfg: FlowLossConfig) -> torch.Tensor:
    """Weighted sum of :func:`flow_loss_terms` output; the only place weights are applied.

    Args:
        terms: The terms.
        cfg: The weights.

    Returns:
        0-dim loss tensor.

    Raises:
        ValueError: If a level has a non-zero weight but no term (the model has fewer levels).
    """
    loss = cfg.vis_weight * terms["vis_ce"]
    for k, weight in enumerate(cfg.level_weights):
        if weight == 0:
            continue
        if f"epe_l{k}" not in terms:
            levels = sorted(key for key in terms if key.startswith("epe_l"))
            raise ValueError(
                f"FlowLossConfig.level_weights[{k}]={weight} but the prediction has no level {k} "
                f"(terms: {', '.join(levels)})"
            )
        loss = loss + cfg.flow_weight * weight * terms[f"epe_l{k}"]
    return loss


@torch.no_grad()
def flow_metrics(
    pred: FlowPrediction, flow_gt: torch.Tensor, vis_gt: torch.Tensor, *, per_sample: bool = False
) -> dict[str, torch.Tensor]:
    """Full-resolution flow and visibility metrics of a batch.

    ``epe_fg``: EPE over body pixels (the original's reported EPE); ``epe_visible``: over VISIBLE
    pixels; ``vis_acc``: pixel accuracy of the argmax visibility; ``iou_visible``,
    ``iou_invisible``, ``iou_background``: per-class intersection over union. EPE is on the raw
    predicted flow (not masked by the predicted visibility).

    Args:
        pred: The prediction.
        flow_gt: ``(B, 2, H, W)`` ground-truth flow in pixels.
        vis_gt: ``(B, H, W)`` integer Visibility codes.
        per_sample: Return ``(B,)`` values instead of batch means.

    Returns:
        Name -> ``(B,)`` or 0-dim float tensor. A value without pixels to measure (an empty mask,
        a class absent from both maps) is NaN and left out of the batch mean.

    Raises:
        NonFiniteError: If the prediction or ``flow_gt`` holds NaN or infinity.
        ValueError: On wrong shapes, dtypes or visibility codes.
    """
    _check_inputs(pred, flow_gt, vis_gt)
    nan = float("nan")
    vis_pred = pred.visibility
    metrics = {
        "epe_fg": per_sample_epe(pred.flow, flow_gt, vis_gt != _BG, empty=nan),
        "epe_visible": per_sample_epe(
            pred.flow, flow_gt, vis_gt == int(Visibility.VISIBLE), empty=nan
        ),
        "vis_acc": (vis_pred == vis_gt).flatten(1).float().mean(dim=1),
    }
    for code in Visibility:
        is_pred, is_gt = (vis_pred == code).flatten(1), (vis_gt == code).flatten(1)
        inter = (is_pred & is_gt).sum(dim=1).float()
        union = (is_pred | is_gt).sum(dim=1).float()
        iou = torch.where(union > 0, inter / union.clamp_min(1.0), inter.new_tensor(nan))
        metrics[f"iou_{code.name.lower()}"] = iou
    if per_sample:
        return metrics
    return {name: values.nanmean() for name, values in metrics.items()}
