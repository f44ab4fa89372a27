"""A self-contained HTML report: sample grids, a metrics table, loss curves and stage timings.

:func:`write_report` writes ``out_dir/report.html`` and its PNGs under ``out_dir/report_assets/``.
Links are relative, the CSS is inline and there is no script, so the folder can be moved, zipped
and opened offline. Every text that comes from the caller is HTML-escaped; the free-text fields
accept a small markdown subset (paragraphs, ``- `` bullet lists, ```code```, ``**bold**`` and
``[text](relative/link)``), rendered from the escaped text. The report's content is a
:class:`~posetransfer.report.report_data.ReportData`.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

import numpy as np
from PIL import Image

from posetransfer.conventions import Visibility
from posetransfer.io import atomic_write_bytes, atomic_write_text, save_png
from posetransfer.ops.flow_viz import VISIBILITY_COLORS, flow_wheel_legend
from posetransfer.report.curves import write_loss_curves
from posetransfer.report.html_text import format_number, format_seconds, markdown_to_html, slugify
from posetransfer.report.report_data import (
    GridRow,
    PathLike,
    ReportData,
    Section,
    metric_higher_is_better,
)

__all__ = [
    "ASSETS_DIR",
    "REPORT_FILE",
    "GridRow",
    "ReportData",
    "Section",
    "metric_higher_is_better",
    "write_report",
]

logger = logging.getLogger(__name__)

REPORT_FILE: Final[str] = "report.html"
ASSETS_DIR: Final[str] = "report_assets"
_IMAGE_SUFFIXES: Final[frozenset[str]] = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp"})
_VISIBILITY_MEANING: Final[Mapping[Visibility, str]] = {
    Visibility.VISIBLE: "body point seen in the source: its appearance is warped from there",
    Visibility.INVISIBLE: "body point hidden in the source: its appearance must be invented",
    Visibility.BACKGROUND: "no body at this target pixel (flow is zero)",
}


# ------------------------------------------------------------------------------------------------
# Sections.


class _Assets:
    """Writes images under ``out_dir/report_assets`` and returns their ``<img>`` tags."""

    def __init__(self, out_dir: Path) -> None:
        self.dir = out_dir / ASSETS_DIR
        self.written: set[str] = set()

    def image(self, name: str, image: np.ndarray | PathLike, alt: str, where: str) -> str:
        if isinstance(image, np.ndarray):
            save_png(self.dir / f"{name}.png", image)
            filename, (height, width) = f"{name}.png", image.shape[:2]
        else:
            source = Path(image)
            if not source.is_file():
                raise FileNotFoundError(f"{where}: image file not found: {source}")
            suffix = source.suffix.lower()
            if suffix not in _IMAGE_SUFFIXES:
                raise ValueError(f"{where}: {source} is not a {'/'.join(sorted(_IMAGE_SUFFIXES))}")
            try:
                with Image.open(source) as pil:
                    width, height = pil.size
            except OSError as err:
                raise ValueError(f"{where}: {source} is not a readable image ({err})") from err
            filename = f"{name}{suffix}"
            atomic_write_bytes(self.dir / filename, source.read_bytes())
        self.written.add(filename)
        src = html.escape(f"{ASSETS_DIR}/{filename}")
        return (
            f'<a href="{src}"><img src="{src}" width="{width}" height="{height}" '
            f'alt="{html.escape(alt)}"></a>'
        )

    def remove_stale(self) -> None:
        """Delete files of earlier reports that this one did not write."""
        for path in self.dir.iterdir() if self.dir.is_dir() else ():
            if path.is_file() and path.name not in self.written:
                logger.debug("removing stale report asset %s", path)
                path.unlink()


def _legend(assets: _Assets) -> str:
    wheel = assets.image("flow-wheel", flow_wheel_legend(64), "flow colour wheel", "legend")
    swatches = "".join(
        f'<li><span class="swatch" style="background:rgb{VISIBILITY_COLORS[v]}"></span>'
        f"<b>{v.name.lower()}</b>: {html.escape(_VISIBILITY_MEANING[v])}</li>"
        for v in Visibility
    )
    return (
        '<div class="legend"><h3>How to read this</h3><div class="legend-body">'
        f'<div class="wheel">{wheel}</div><div><p><b>Flow</b> is backward, target → source: each '
        "target pixel is coloured by the offset to the source pixel its appearance comes from. "
        "Hue is the direction, read off the wheel from its centre (+x right is red, +y points "
        "down), and saturation the length relative to the panel's largest; white is no motion, "
        "black undefined.</p><p><b>Target pose</b>: the 18-keypoint skeleton, one colour per "
        f'limb. <b>Visibility</b>:</p><ul class="swatches">{swatches}</ul></div></div></div>'
    )


def _grid_section(
    rows: Sequence[GridRow], assets: _Assets, prefix: str = "grid", legend: bool = True
) -> str:
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row.images if c not in columns]
    cells = ['<div class="corner"></div>']
    cells += [f'<div class="colhead">{html.escape(c)}</div>' for c in columns]
    for r, row in enumerate(rows):
        note = f'<div class="note">{markdown_to_html(row.note)}</div>' if row.note else ""
        cells.append(f'<div class="rowhead">{html.escape(row.label)}{note}</div>')
        for c, column in enumerate(columns):
            image = row.images.get(column)
            if image is None:
                cells.append('<div class="cell empty">—</div>')
                continue
            name = f"{prefix}-{r:03d}-{c:02d}-{slugify(column)}"
            where = f"grid row {r} ({row.label!r}) column {column!r}"
            tag = assets.image(name, image, f"{row.label}: {column}", where)
            cells.append(f'<div class="cell">{tag}</div>')
    body = "\n".join(cells)
    grid = f'<div class="grid" style="--cols:{len(columns)}">\n{body}\n</div>'
    head = _legend(assets) if legend else ""
    return f'{head}<div class="scroll">{grid}</div>'


def _metrics_section(data: ReportData) -> str:
    methods = list(data.metrics)
    metrics: list[str] = []
    for row in data.metrics.values():
        metrics += [m for m in row if m not in metrics]
    best: dict[str, set[str]] = {}
    with_notes = bool(data.method_notes)
    head = '<th scope="col">method</th>' + ("<th>description</th>" * with_notes)
    for metric in metrics:
        higher = data.higher_is_better.get(metric, metric_higher_is_better(metric))
        values = {m: data.metrics[m].get(metric) for m in methods}
        valid = {m: float(v) for m, v in values.items() if v is not None and not math.isnan(v)}
        if higher is not None and len(valid) >= 2:
            target = (max if higher else min)(valid.values())
            best[metric] = {m for m, v in valid.items() if v == target}
        arrow = {True: " ↑", False: " ↓", None: ""}[higher]
        head += f'<th scope="col" class="num">{html.escape(metric)}{arrow}</th>'
    body = []
    for method in methods:
        cells = f'<th scope="row">{html.escape(method)}</th>'
        if with_notes:
            cells += f'<td class="desc">{html.escape(data.method_notes.get(method, ""))}</td>'
        for metric in metrics:
            text = html.escape(format_number(data.metrics[method].get(metric)))
            if method in best.get(metric, ()):
                cells += f'<td class="num best" data-metric="{html.escape(metric)}">'
                cells += f"<strong>{text}</strong></td>"
            else:
                cells += f'<td class="num" data-metric="{html.escape(metric)}">{text}</td>'
        body.append(f'<tr data-method="{html.escape(method)}">{cells}</tr>')
    note = markdown_to_html(data.metrics_note) if data.metrics_note else ""
    return (
        f'<div class="scroll"><table class="metrics"><thead><tr>{head}</tr></thead>'
        f'<tbody>{"".join(body)}</tbody></table></div><p class="hint">↑ higher is better, '
        f"↓ lower is better; the best value of each column is highlighted.</p>{note}"
    )


def _curves_section(curves: Mapping[str, PathLike], assets: _Assets) -> str:
    figures = []
    for k, (run, path) in enumerate(curves.items()):
        filename = f"curves-{k:02d}-{slugify(run)}.png"
        write_loss_curves({run: path}, assets.dir / filename, title=run)
        assets.written.add(filename)
        src = html.escape(f"{ASSETS_DIR}/{filename}")
        figures.append(
            f'<figure><a href="{src}"><img src="{src}" alt="loss curves of {html.escape(run)}">'
            f"</a><figcaption>{html.escape(run)} — <code>{html.escape(str(path))}</code>"
            "</figcaption></figure>"
        )
    return "".join(figures)


def _timings_section(timings: Mapping[str, float]) -> str:
    longest = max(timings.values()) or 1.0
    rows = "".join(
        f'<tr><th scope="row">{html.escape(stage)}</th><td class="num">'
        f'{format_seconds(seconds)}</td><td class="barcell"><span class="bar" '
        f'style="width:{100 * seconds / longest:.1f}%"></span></td></tr>'
        for stage, seconds in timings.items()
    )
    total = '<tr class="total"><th scope="row">total</th><td class="num">'
    total += f"{format_seconds(sum(timings.values()))}</td><td></td></tr>"
    return f'<table class="timings"><tbody>{rows}{total}</tbody></table>'


_CSS = """
:root{color-scheme:light;--fg:#1d2330;--muted:#5b6475;--line:#d9dde5;--best:#dff3e4}
*{box-sizing:border-box}main{max-width:1400px;margin:0 auto;padding:1.5rem}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg)}
h1{margin:0 0 .2rem}h2{border-bottom:1px solid var(--line);padding-bottom:.2rem;margin-top:2rem}
.subtitle,.hint,figcaption,.note,.desc,.empty{color:var(--muted)}nav a{margin-right:1rem}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em}
pre{background:#f5f6f8;border:1px solid var(--line);padding:.8rem;overflow:auto}
.scroll{overflow-x:auto}table{border-collapse:collapse}
th,td{padding:.3rem .7rem;border-bottom:1px solid var(--line);text-align:left}
.num{text-align:right;font-variant-numeric:tabular-nums}td.best{background:var(--best)}
.desc{max-width:28rem}.swatches{list-style:none;padding:0}
.legend{border:1px solid var(--line);border-radius:6px;padding:.2rem 1rem;margin-bottom:1rem}
.legend h3{margin:.5rem 0}.legend-body{display:flex;gap:1rem;align-items:flex-start}
.wheel img{width:72px;height:72px}
.swatch{display:inline-block;width:1em;height:1em;border:1px solid #999;margin-right:.4em}
.grid{display:grid;gap:6px;align-items:start;
grid-template-columns:minmax(7rem,auto) repeat(var(--cols),minmax(72px,220px))}
.colhead{font-weight:600;text-align:center;position:sticky;top:0;background:#fff}
.rowhead{font-weight:600;overflow-wrap:anywhere}.note{font-weight:400;font-size:.9em}
.cell img{display:block;width:100%;height:auto;image-rendering:pixelated;border:1px solid #eee}
.empty{text-align:center}figure{margin:0 0 1.5rem}figure img{max-width:100%;height:auto}
.timings .barcell{width:40%}.bar{display:block;height:.8em;background:#7a9cc6;min-width:1px}
.total th,.total td{font-weight:700;border-top:2px solid var(--line)}
"""


def write_report(data: ReportData, out_dir: PathLike) -> Path:
    """Write ``out_dir/report.html`` and its images under ``out_dir/report_assets/``.

    Array images are saved as PNG, image files are copied, each run's curves are drawn by
    :func:`posetransfer.report.curves.write_loss_curves`. Files in ``report_assets/`` that this
    report does not use are deleted; ``report.html`` is replaced last, atomically.

    Args:
        data: The report's content.
        out_dir: Destination folder (created).

    Returns:
        The path of ``report.html``.

    Raises:
        FileNotFoundError: If a grid image file or a stats file is missing.
        ValueError: On an image that cannot be shown (names the row and column).
    """
    out_dir = Path(out_dir)
    assets = _Assets(out_dir)
    sections: list[tuple[str, str, str]] = []  # (anchor, title, inner html)
    if data.metrics:
        sections.append(("metrics", "Metrics", _metrics_section(data)))
    if data.grids:
        sections.append(("samples", "Samples", _grid_section(data.grids, assets)))
    if data.curves:
        sections.append(("curves", "Loss curves", _curves_section(data.curves, assets)))
    if data.timings:
        sections.append(("timings", "Stage timings", _timings_section(data.timings)))
    for k, extra in enumerate(data.extra_sections):
        anchor = f"section-{k}-{slugify(extra.title)}"
        inner = markdown_to_html(extra.text)
        if extra.metrics:
            inner += _metrics_section(ReportData(extra.title, metrics=extra.metrics))
        if extra.grids:
            inner += _grid_section(extra.grids, assets, prefix=anchor, legend=False)
        sections.append((anchor, extra.title, inner))
    if data.config_text:
        sections.append(("config", "Config", f"<pre>{html.escape(data.config_text)}</pre>"))
    assets.remove_stale()

    nav = " ".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t, _ in sections)
    bodies = [f'<section id="{a}"><h2>{html.escape(t)}</h2>{b}</section>' for a, t, b in sections]
    subtitle = f'<p class="subtitle">{html.escape(data.subtitle)}</p>' if data.subtitle else ""
    page = "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(data.title)}</title><style>{_CSS}</style></head>",
            f"<body><main><header><h1>{html.escape(data.title)}</h1>{subtitle}",
            markdown_to_html(data.notes) if data.notes else "",
            f"</header><nav>{nav}</nav>",
            *bodies,
            "</main></body></html>",
        ]
    )
    path = out_dir / REPORT_FILE
    atomic_write_text(path, page + "\n")
    logger.info("wrote %s (%d images)", path, len(assets.written))
    return path
