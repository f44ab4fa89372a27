"""Figures of real test pairs: which pairs to show, labelled grids, report rows, small PNGs.

:func:`pick_rows` picks a few pairs of each kind (pose change, view change) from different
sources, with middling pose changes; :func:`grid_figure` lays them out as one labelled image
(source, real target, then one column per method, composited); :func:`report_rows` gives the
same as :class:`~posetransfer.report.report_data.GridRow` objects for an HTML report;
:func:`save_small_png` writes a PNG, with at most 256 colours when the full-colour file would
be too large for the repository.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from posetransfer.data.pairing import pose_change
from posetransfer.experiments.real_eval import RealTestSet
from posetransfer.experiments.real_render import Rendered
from posetransfer.io import PathLike, atomic_write_bytes
from posetransfer.ops.flow_viz import make_panel
from posetransfer.pose.draw import draw_pose
from posetransfer.report.report_data import GridRow

__all__ = ["grid_figure", "pair_label", "pick_rows", "report_rows", "save_small_png"]


def pair_label(test: RealTestSet, index: int) -> str:
    """``cam01 #80 -> cam03 #86 (view)``: origins by file stem, frames, kind."""
    pair = test.pairs[index]
    src, tgt = test.images[pair.source], test.images[pair.target]
    return (
        f"{Path(src.origin).stem} #{src.frame} -> {Path(tgt.origin).stem} #{tgt.frame} "
        f"({pair.kind})"
    )


def pick_rows(test: RealTestSet, per_kind: int = 2) -> list[int]:
    """Up to ``per_kind`` pairs of each kind, from different sources where possible.

    Within a source, the pair whose pose change is the median of its kind is taken.
    """
    picked: list[int] = []
    for kind in ("pose", "view"):
        chosen: list[int] = []
        for source in test.sources:
            index = [i for i, p in enumerate(test.pairs) if p.source == source and p.kind == kind]
            if not index or len(chosen) >= per_kind:
                continue
            src = test.images[source].pose
            changes = [pose_change(src, test.images[test.pairs[i].target].pose) for i in index]
            chosen.append(index[int(np.argsort(changes)[len(changes) // 2])])
        picked += chosen
    return picked


def grid_figure(
    test: RealTestSet,
    rendered: Mapping[str, Rendered],
    rows: Sequence[int],
    columns: Sequence[str],
) -> np.ndarray:
    """Rows of (source, real target, each method's composited output), labelled, stacked."""
    panels = []
    for i in rows:
        pair = test.pairs[i]
        src, tgt = test.images[pair.source], test.images[pair.target]
        images = [src.image, tgt.image, *(rendered[m].composited[i] for m in columns)]
        where = "real, same cam" if pair.kind == "pose" else "real, other cam"
        panels.append(make_panel(images, ["source", where, *columns]))
    return np.concatenate(panels)


def report_rows(
    test: RealTestSet, rendered: Mapping[str, Rendered], rows: Sequence[int]
) -> list[GridRow]:
    """The rows for an HTML report: source, target pose, real target, each method."""
    out = []
    for i in rows:
        pair = test.pairs[i]
        src, tgt = test.images[pair.source], test.images[pair.target]
        blank = np.full_like(tgt.image, 255)
        images: dict[str, np.ndarray | PathLike] = {
            "source": src.image,
            "target pose": draw_pose(blank, tgt.pose),
            "real target": tgt.image,
        }
        images |= {name: r.composited[i] for name, r in rendered.items()}
        out.append(GridRow(pair_label(test, i), images))
    return out


def save_small_png(path: PathLike, image: np.ndarray, max_bytes: int = 450_000) -> int:
    """Write ``image`` as PNG; over ``max_bytes``, quantised to 256 colours. Returns the size."""
    from PIL import Image

    pil = Image.fromarray(image)
    data = io.BytesIO()
    pil.save(data, format="PNG", optimize=True)
    if data.tell() > max_bytes:
        data = io.BytesIO()
        pil.quantize(256, method=Image.Quantize.MEDIANCUT).save(data, format="PNG", optimize=True)
    atomic_write_bytes(path, data.getvalue())
    return len(data.getvalue())
