"""What an HTML report shows: sample-grid rows, free-text sections and the whole report's data.

:class:`ReportData` (with :class:`GridRow` and :class:`Section`) is validated on construction, so
a bad image or metric value is named before anything is written; :func:`metric_higher_is_better`
guesses a metric's better direction from its name. :mod:`posetransfer.report.html_report`
renders it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from posetransfer.io import PathLike

__all__ = ["GridRow", "PathLike", "ReportData", "Section", "metric_higher_is_better"]

# Metric-name tokens (split on "_"/"-") that tell the better direction: "mask_ssim", "ssim_256".
_HIGHER_TOKENS: Final[frozenset[str]] = frozenset({"ssim", "psnr", "accuracy", "iou"})
_LOWER_TOKENS: Final[frozenset[str]] = frozenset(
    {"l1", "l2", "mse", "mae", "lpips", "fid", "kid", "epe", "loss"}
)


@dataclass(frozen=True)
class GridRow:
    """One row of the sample grid, e.g. one test pair.

    Attributes:
        label: Row heading (e.g. the pair's names).
        images: Column name -> ``(H, W, 3)`` uint8 RGB array, or the path of an existing image
            file (PNG, JPEG, GIF or WebP; it is copied into the report). Column order is kept.
        note: Optional markdown-subset text under the label.
    """

    label: str
    images: Mapping[str, np.ndarray | PathLike]
    note: str = ""


@dataclass(frozen=True)
class Section:
    """A free-text section appended to the report, optionally with a metrics table and a grid.

    Attributes:
        title: Section heading.
        text: Body in the markdown subset of :mod:`posetransfer.report.html_report`
            (escaped, never raw HTML).
        grids: Image rows shown under the text (as :attr:`ReportData.grids`, no flow legend).
        metrics: Method -> metric -> value, a table under the text (as
            :attr:`ReportData.metrics`).
    """

    title: str
    text: str
    grids: Sequence[GridRow] = ()
    metrics: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows; empty parts are left out of the page.

    Attributes:
        title: Page title.
        subtitle: One line under the title.
        notes: Markdown-subset text under the title.
        grids: Sample rows; columns are the union of the rows' columns, in first-seen order.
        metrics: Method -> metric -> value (``None`` or NaN shown as "n/a").
        higher_is_better: Metric -> whether larger is better, overriding
            :func:`metric_higher_is_better`; the best value of each such column is highlighted.
        method_notes: Method -> short description, shown as a table column.
        metrics_note: Markdown-subset text under the table (e.g. the protocol).
        curves: Run name -> that run's ``stats.jsonl``; one figure per run.
        timings: Stage -> wall time in seconds.
        extra_sections: Free-text sections after the timings.
        config_text: Configuration (e.g. YAML) shown verbatim at the end.
    """

    title: str
    subtitle: str = ""
    notes: str = ""
    grids: Sequence[GridRow] = ()
    metrics: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)
    higher_is_better: Mapping[str, bool] = field(default_factory=dict)
    method_notes: Mapping[str, str] = field(default_factory=dict)
    metrics_note: str = ""
    curves: Mapping[str, PathLike] = field(default_factory=dict)
    timings: Mapping[str, float] = field(default_factory=dict)
    extra_sections: Sequence[Section] = ()
    config_text: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.title, str) or not self.title.strip():
            raise ValueError(f"ReportData.title must be a non-empty string, got {self.title!r}")
        _check_grids(self.grids, "ReportData.grids")
        _check_metrics(self.metrics, "ReportData.metrics")
        for k, extra in enumerate(self.extra_sections):
            _check_grids(extra.grids, f"ReportData.extra_sections[{k}].grids")
            _check_metrics(extra.metrics, f"ReportData.extra_sections[{k}].metrics")
        for stage, seconds in self.timings.items():
            if isinstance(seconds, bool) or not _is_number(seconds) or not seconds >= 0:
                raise ValueError(
                    f"ReportData.timings[{stage!r}] must be a non-negative number of seconds, "
                    f"got {seconds!r}"
                )


def _check_grids(rows: Sequence[GridRow], where: str) -> None:
    for r, row in enumerate(rows):
        if not isinstance(row, GridRow) or not row.images:
            raise ValueError(f"{where}[{r}] must be a GridRow with images: {row!r}")
        for column, image in row.images.items():
            _check_image(image, f"{where}[{r}] ({row.label!r}) column {column!r}")


def _check_metrics(metrics: Mapping[str, Mapping[str, float | None]], where: str) -> None:
    for method, values in metrics.items():
        for metric, value in values.items():
            if value is not None and (isinstance(value, bool) or not _is_number(value)):
                raise ValueError(
                    f"{where}[{method!r}][{metric!r}] must be a number or None, got {value!r}"
                )


def _check_image(image: object, where: str) -> None:
    """Raise ``ValueError`` unless ``image`` is a non-empty (H, W, 3) uint8 array or a path."""
    if isinstance(image, str | os.PathLike):
        return
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{where}: expected an image array or file path, got {type(image)}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or image.size == 0:
        raise ValueError(
            f"{where}: expected a non-empty (H, W, 3) uint8 image, got shape {image.shape} "
            f"dtype {image.dtype}"
        )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating)


def metric_higher_is_better(name: str) -> bool | None:
    """Guess whether a larger value of metric ``name`` is better from its tokens.

    ``ssim``, ``psnr``, ``mask_ssim``, ``ssim_256`` -> True; ``l1``, ``lpips``, ``fid``,
    ``mask_lpips`` -> False; unknown names -> None (no highlight).
    """
    tokens = set(re.split(r"[_\-\s]+", name.lower()))
    higher, lower = bool(tokens & _HIGHER_TOKENS), bool(tokens & _LOWER_TOKENS)
    return None if higher == lower else higher
