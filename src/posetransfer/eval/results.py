"""The result of :func:`posetransfer.eval.evaluate.evaluate_folders`, rendered and saved.

:class:`EvaluationReport` is the typed result; :meth:`EvaluationReport.to_dict` is the JSON
report's structure (keys in the order ``posetransfer evaluate`` has always written them). The JSON
is strict: non-finite numbers (an all-identical PSNR, a NaN SSIM) are written as ``null``, never
as ``Infinity``/``NaN``, and the file is replaced atomically.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from posetransfer.io import PathLike, atomic_write_text

if TYPE_CHECKING:
    from posetransfer.eval.scoring import EvaluateConfig

__all__ = [
    "EvaluationReport",
    "ReportInputs",
    "ReportWeights",
    "format_table",
    "json_float",
    "write_report",
]


def json_float(value: float) -> float | None:
    """``value``, or None when it is not finite."""
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class ReportInputs:
    """What was scored.

    Attributes:
        pred_dir: The predictions' folder.
        gt_dir: The ground truth's folder.
        pairs: The pair list, if any.
        annotations: The targets' keypoint file, if any.
        fid_real: The real images of FID/KID, if not the ground truth.
        naming: How predictions were matched (``gfla``, ``identical``, ...) -> count.
    """

    pred_dir: str
    gt_dir: str
    pairs: str | None
    annotations: str | None
    fid_real: str | None
    naming: dict[str, int]


@dataclass(frozen=True)
class ReportWeights:
    """The weight files used (None: that model did not run).

    Attributes:
        lpips_backbone: AlexNet backbone of LPIPS.
        lpips_heads: LPIPS's linear heads.
        inception: Inception feature extractor of FID/KID.
        inception_backend: Which Inception implementation read it.
    """

    lpips_backbone: str | None
    lpips_heads: str | None
    inception: str | None
    inception_backend: str | None


@dataclass(frozen=True)
class EvaluationReport:
    """Scores of a folder of predictions under one protocol.

    Attributes:
        protocol: The protocol's name.
        protocol_description: What the protocol computes, as ``evaluate --describe`` prints it.
        num_images: Scored images.
        metrics: Metric name (:mod:`posetransfer.eval.names` or the protocol's SSIM keys) ->
            mean over images (None when no value was finite).
        skipped: Metric -> why it was not computed.
        notes: Non-finite counts, FID/KID details and the like.
        inputs: What was scored.
        weights: The weight files used.
        config: The settings.
        versions: ``posetransfer`` and ``torch`` versions.
        seconds: Wall time.
        per_image: Each image's values (``pred``, ``gt`` and one key per metric), when asked.
    """

    protocol: str
    protocol_description: str
    num_images: int
    metrics: dict[str, float | None]
    skipped: dict[str, str]
    notes: dict[str, Any]
    inputs: ReportInputs
    weights: ReportWeights
    config: EvaluateConfig
    versions: dict[str, str]
    seconds: float
    per_image: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON report's structure (``per_image`` only when it was asked for)."""
        data: dict[str, Any] = {
            "protocol": self.protocol,
            "protocol_description": self.protocol_description,
            "num_images": self.num_images,
            "metrics": dict(self.metrics),
            "skipped": dict(self.skipped),
            "notes": dict(self.notes),
            "inputs": asdict(self.inputs),
            "weights": asdict(self.weights),
            "config": asdict(self.config),
            "versions": dict(self.versions),
            "seconds": self.seconds,
        }
        if self.per_image is not None:
            data["per_image"] = [dict(row) for row in self.per_image]
        return data


def format_table(report: EvaluationReport) -> str:
    """Plain-text table of a report: metric, value, then the skipped metrics with reasons."""
    rows = [("metric", "value")]
    rows += [(k, "n/a" if v is None else f"{v:.4f}") for k, v in report.metrics.items()]
    for key, reason in report.skipped.items():
        short = reason if len(reason) <= 70 else reason[:67] + "..."
        rows.append((key, f"skipped: {short}"))
    width = max(len(k) for k, _ in rows)
    lines = [f"protocol {report.protocol}, {report.num_images} images"]
    lines += [f"  {k:<{width}}  {v}" for k, v in rows]
    if report.skipped:
        lines.append("  (full reasons under 'skipped' in the JSON report)")
    return "\n".join(lines)


def write_report(path: PathLike, report: EvaluationReport) -> None:
    """Write the report as strict JSON (non-finite numbers become null), atomically."""

    def clean(x: Any) -> Any:
        if isinstance(x, float):
            return json_float(x)
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    text = json.dumps(clean(report.to_dict()), indent=2, allow_nan=False)
    atomic_write_text(path, text + "\n")
