"""A contact sheet of a dataset's pairs with their flows: to look at the data before using it.

Each row is one pair: source and target with their keypoints, the ground-truth flow (Middlebury
colours), the visibility (green visible, orange invisible, grey background) and the source warped
onto the target grid by the flow, shown on visible pixels only. Rows are spread evenly over the
pairs of every split. Small images are enlarged (nearest neighbour) to at least 192 pixels high.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from posetransfer.conventions import Visibility
from posetransfer.data.flow_files import flow_filename, read_any_flow
from posetransfer.data.formats import FormatError
from posetransfer.data.layout import discover_dataset, load_split
from posetransfer.io import save_png
from posetransfer.ops.flow_viz import flow_to_color, make_panel, visibility_to_color
from posetransfer.ops.warp import warp
from posetransfer.pose.draw import draw_pose
from posetransfer.pose.keypoints import Pose

__all__ = ["write_contact_sheet"]

LABELS = ("src", "tgt", "flow", "visibility", "warped source")
MIN_HEIGHT = 192


def _enlarge(image: np.ndarray, factor: int) -> np.ndarray:
    return image.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else image


def _row(
    src: np.ndarray,
    tgt: np.ndarray,
    poses: tuple[Pose, Pose],
    flow: np.ndarray,
    vis: np.ndarray,
    factor: int,
) -> list[np.ndarray]:
    """The five panels of one pair, enlarged by ``factor``."""
    warped = warp(
        torch.from_numpy(src).permute(2, 0, 1)[None].float(),
        torch.from_numpy(flow).permute(2, 0, 1)[None],
    )[0].permute(1, 2, 0)
    warped_u8 = warped.round().clamp(0, 255).to(torch.uint8).numpy()
    shown = np.where((vis == Visibility.VISIBLE)[..., None], warped_u8, 255).astype(np.uint8)
    scale = (float(factor), float(factor))
    return [
        draw_pose(_enlarge(src, factor), poses[0].transform(scale, (0.0, 0.0))),
        draw_pose(_enlarge(tgt, factor), poses[1].transform(scale, (0.0, 0.0))),
        _enlarge(flow_to_color(flow), factor),
        _enlarge(visibility_to_color(vis), factor),
        _enlarge(shown, factor),
    ]


def write_contact_sheet(
    root: str | os.PathLike[str], path: str | os.PathLike[str], rows: int = 8
) -> Path:
    """Draw ``rows`` pairs of a dataset with flows (either layout) into one PNG.

    Args:
        root: Dataset folder with a flow store.
        path: Output PNG.
        rows: Number of pairs shown, spread evenly over all pairs (train first).

    Returns:
        ``Path(path)``.

    Raises:
        FormatError: No flow folder, no pairs, or a malformed file.
    """
    files = discover_dataset(root)
    if files.flows_dir is None:
        raise FormatError(files.root, "no flow folder to draw a contact sheet from")
    items = []
    for split in sorted(files.splits, key=lambda name: (name != "train", name)):
        data = load_split(files, split)
        items += [(data, src, tgt) for src, tgt in data.pairs]
    if not items:
        raise FormatError(files.root, "no pairs to draw")
    picks = sorted({round(k) for k in np.linspace(0, len(items) - 1, min(rows, len(items)))})
    ext = ".jpg" if files.layout == "diaf" else ""
    panels = []
    for k in picks:
        data, src, tgt = items[k]
        images = [
            np.array(Image.open(data.image_dir / (n + ext)).convert("RGB")) for n in (src, tgt)
        ]
        store = files.flows_dir / flow_filename(src, tgt)
        flow, vis = read_any_flow(store if store.exists() else store.with_suffix(".corr"))
        factor = max(1, math.ceil(MIN_HEIGHT / images[1].shape[0]))
        row = _row(images[0], images[1], (data.poses[src], data.poses[tgt]), flow, vis, factor)
        names = [f"{label} {Path(n).stem}" for label, n in zip(LABELS, (src, tgt), strict=False)]
        panels.append(make_panel(row, [*names, *LABELS[2:]]))
    width = max(p.shape[1] for p in panels)
    sheet = np.concatenate(
        [np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0)), constant_values=255) for p in panels]
    )
    save_png(path, sheet)
    return Path(path)
