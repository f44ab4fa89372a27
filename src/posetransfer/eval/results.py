"""Render and save the reports of :func:`posetransfer.eval.evaluate.evaluate_folders`.

The JSON is strict: non-finite numbers (an all-identical PSNR, a NaN SSIM) are written as
``null``, never as ``Infinity``/``NaN``, and the file is replaced atomically.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from posetransfer.io import atomic_write_text

__all__ = ["format_table", "json_float", "write_report"]

PathLike = str | os.PathLike[str]


def json_float(value: float) -> float | None:
    """``value``, or None when it is not finite."""
    return value if math.isfinite(value) else None


def format_table(report: dict[str, Any]) -> str:
    """Plain-text table of a report: metric, value, then the skipped metrics with reasons."""
    rows = [("metric", "value")]
    rows += [(k, "n/a" if v is None else f"{v:.4f}") for k, v in report["metrics"].items()]
    for key, reason in report["skipped"].items():
        short = reason if len(reason) <= 70 else reason[:67] + "..."
        rows.append((key, f"skipped: {short}"))
    width = max(len(k) for k, _ in rows)
    lines = [f"protocol {report['protocol']}, {report['num_images']} images"]
    lines += [f"  {k:<{width}}  {v}" for k, v in rows]
    if report["skipped"]:
        lines.append("  (full reasons under 'skipped' in the JSON report)")
    return "\n".join(lines)


def write_report(path: PathLike, report: dict[str, Any]) -> None:
    """Write the report as strict JSON (non-finite numbers become null), atomically."""

    def clean(x: Any) -> Any:
        if isinstance(x, float):
            return json_float(x)
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    atomic_write_text(path, json.dumps(clean(report), indent=2, allow_nan=False) + "\n")
