"""Loss curves of training runs, read from their ``stats.jsonl`` and drawn as one PNG.

``stats.jsonl`` is written by :class:`posetransfer.train.stats.StatsWriter`: one JSON object per
line, ``{"kind": "train", "step": s, "losses": {term: value}, ...}`` at every log step and
``{"kind": "val", "step": s, "metrics": {name: value}, ...}`` after every validation; non-finite
values are stored as the strings ``"nan"``, ``"inf"`` and ``"-inf"``. A last line cut short by a
crash is skipped with a warning; any other malformed line is an error naming the file and line.

Plots use matplotlib's Agg canvas directly (no ``pyplot``), so drawing sets no global backend
and works with no display; matplotlib is imported only when a plot is drawn.
"""

from __future__ import annotations

import io
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from posetransfer.io import PathLike, atomic_write_bytes

__all__ = ["RunStats", "Series", "StatsFormatError", "read_stats", "write_loss_curves"]

logger = logging.getLogger(__name__)


_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_PANEL_SIZE = (3.6, 2.6)  # inches per subplot
_MAX_COLUMNS = 3
_LOG_SPAN = 10.0  # a positive panel spanning at least this ratio gets a log y axis


class StatsFormatError(ValueError):
    """A ``stats.jsonl`` line that is not a valid statistics record."""


@dataclass(frozen=True)
class Series:
    """One logged quantity over training.

    Attributes:
        steps: ``(N,)`` int64 training steps, in file order.
        values: ``(N,)`` float64 values; NaN or inf where a non-finite value was logged.
    """

    steps: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class RunStats:
    """The curves of one run.

    Attributes:
        train: Loss term -> its values at the ``train`` log steps (first-logged order).
        val: Validation metric -> its values at the ``val`` steps (first-logged order).
    """

    train: dict[str, Series]
    val: dict[str, Series]


def _number(value: Any, where: str) -> float:
    """A logged value as a float (``None`` and the strings of non-finite numbers included)."""
    if value is None:
        return math.nan
    if isinstance(value, str) and value.lower() in _NONFINITE:
        return _NONFINITE[value.lower()]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StatsFormatError(f"{where}: expected a number, got {value!r}")
    return float(value)


def read_stats(path: PathLike) -> RunStats:
    """Read the ``train`` losses and ``val`` metrics of a ``stats.jsonl`` file.

    Lines of other kinds are ignored. A final line that is not JSON (a crash mid-write) is
    skipped with a warning.

    Args:
        path: The run's ``stats.jsonl``.

    Returns:
        The run's series.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        StatsFormatError: On a malformed line, naming ``path:line`` and the field.
    """
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    points: dict[str, dict[str, list[tuple[int, float]]]] = {"train": {}, "val": {}}
    field_of_kind = {"train": "losses", "val": "metrics"}
    for number, line in enumerate(lines, start=1):
        where = f"{path}:{number}"
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if number == len(lines):
                logger.warning("%s: skipping a last line cut short (%s)", where, err)
                continue
            raise StatsFormatError(f"{where}: not a JSON object ({err})") from err
        if not isinstance(record, dict):
            raise StatsFormatError(f"{where}: expected a JSON object, got {line[:60]!r}")
        kind = record.get("kind")
        if kind not in field_of_kind:
            continue
        step = record.get("step")
        if isinstance(step, bool) or not isinstance(step, int):
            raise StatsFormatError(f"{where}: field 'step' must be an int, got {step!r}")
        field = field_of_kind[kind]
        values = record.get(field, {})
        if not isinstance(values, dict):
            raise StatsFormatError(f"{where}: field {field!r} must be an object, got {values!r}")
        for name, value in values.items():
            point = (step, _number(value, f"{where}: {field}.{name}"))
            points[kind].setdefault(name, []).append(point)

    def series(named: dict[str, list[tuple[int, float]]]) -> dict[str, Series]:
        return {
            name: Series(
                steps=np.array([s for s, _ in pts], dtype=np.int64),
                values=np.array([v for _, v in pts], dtype=np.float64),
            )
            for name, pts in named.items()
        }

    return RunStats(train=series(points["train"]), val=series(points["val"]))


def write_loss_curves(
    stats_paths: Mapping[str, PathLike], out_png: PathLike, *, title: str = ""
) -> Path:
    """Plot every loss term and validation metric of one or more runs into one PNG.

    Each quantity gets its own panel (losses first, then ``val: <metric>``), with one line per
    run that logged it; a panel's y axis is logarithmic when its finite values are positive
    and span at least a factor of 10. Several runs share colours across panels and get a legend.

    Args:
        stats_paths: Run name -> that run's ``stats.jsonl``.
        out_png: Destination PNG (written atomically, parent folders created).
        title: Figure title; empty for none.

    Returns:
        ``out_png`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: If ``stats_paths`` is empty.
        FileNotFoundError: If a stats file is missing (the message names the run).
        StatsFormatError: On a malformed stats file.
    """
    if not stats_paths:
        raise ValueError("stats_paths must name at least one run")
    runs: dict[str, RunStats] = {}
    for name, path in stats_paths.items():
        if not Path(path).is_file():
            raise FileNotFoundError(f"stats file of run {name!r} not found: {path}")
        runs[name] = read_stats(path)
    panels: list[tuple[str, str]] = []
    for stats in runs.values():
        for kind, named in (("train", stats.train), ("val", stats.val)):
            panels += [(kind, key) for key in named if (kind, key) not in panels]
    panels.sort(key=lambda panel: panel[0] == "val")  # stable: losses first, in logged order

    from matplotlib.backends.backend_agg import FigureCanvasAgg  # slow import: only when used
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    ncols = max(1, min(_MAX_COLUMNS, len(panels)))
    nrows = max(1, math.ceil(len(panels) / ncols))
    fig = Figure(figsize=(_PANEL_SIZE[0] * ncols, _PANEL_SIZE[1] * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    colors = {name: f"C{i % 10}" for i, name in enumerate(runs)}
    for ax, (kind, key) in zip(axes, panels, strict=False):
        finite: list[np.ndarray] = []
        for run, stats in runs.items():
            series = (stats.train if kind == "train" else stats.val).get(key)
            if series is None:
                continue
            marker = "o" if kind == "val" or len(series.steps) < 20 else None
            ax.plot(
                series.steps,
                series.values,
                color=colors[run],
                marker=marker,
                ms=3,
                lw=1.2,
                label=run,
            )
            finite.append(series.values[np.isfinite(series.values)])
        values = np.concatenate(finite)
        if values.size and values.min() > 0 and values.max() >= _LOG_SPAN * values.min():
            ax.set_yscale("log")
        ax.set_title(key if kind == "train" else f"val: {key}", fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(True, alpha=0.3)
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    if not panels:
        axes[0].text(0.5, 0.5, "no logged steps", ha="center", va="center")
        logger.warning("no train or val records in %s", ", ".join(map(str, stats_paths.values())))
    if len(runs) > 1 and panels:
        handles = [Line2D([], [], color=colors[run], label=run) for run in runs]
        fig.legend(handles=handles, loc="outside upper center", ncols=min(len(runs), 4), fontsize=8)
    if title:
        fig.suptitle(title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    out_png = Path(out_png)
    atomic_write_bytes(out_png, buffer.getvalue())
    return out_png
