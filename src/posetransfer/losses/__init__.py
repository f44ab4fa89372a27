"""Losses and the metrics that share their definitions (flow regression: ``losses.flow``)."""

from posetransfer.losses.flow import (
    FlowLossConfig,
    NonFiniteError,
    flow_loss_terms,
    flow_metrics,
    per_sample_epe,
    total_loss,
)

__all__ = [
    "FlowLossConfig",
    "NonFiniteError",
    "flow_loss_terms",
    "flow_metrics",
    "per_sample_epe",
    "total_loss",
]
