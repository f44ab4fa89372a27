"""A contact sheet of a ``make-dataset`` output: pairs with their keypoints, masks and pose change.

Each row is one pair: the source and the target with their keypoints drawn, then each with its
person mask tinted green over it (``OUT/masks/<split>/<name>.png``), so a misaligned mask or a
wrong person shows at a glance. The last label gives the pair's pose change
(:func:`posetransfer.data.pairing.pose_change`). Rows are spread evenly over the pairs, train
first. Images under 192 pixels high are enlarged (nearest neighbour).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
from PIL import Image

from posetransfer.data.layout import SplitData, discover_dataset, load_split
from posetransfer.data.pairing import pose_change
from posetransfer.data.person_masks import mask_path, read_mask
from posetransfer.io import PathLike, save_png
from posetransfer.ops.flow_viz import make_panel
from posetransfer.pose.draw import draw_pose

__all__ = ["overlay_mask", "write_preview"]

logger = logging.getLogger(__name__)

MIN_HEIGHT = 192
_TINT = np.array([40, 220, 60], np.float32)


def overlay_mask(image: np.ndarray, mask: np.ndarray, strength: float = 0.55) -> np.ndarray:
    """``image`` tinted green where ``mask`` is high.

    Args:
        image: ``(H, W, 3)`` uint8.
        mask: ``(H, W)`` float in ``[0, 1]``.
        strength: Weight of the tint where the mask is 1.

    Returns:
        ``(H, W, 3)`` uint8.
    """
    weight = (strength * np.clip(mask, 0.0, 1.0))[..., None]
    blended = image.astype(np.float32) * (1.0 - weight) + _TINT * weight
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def write_preview(
    root: PathLike, path: PathLike, rows: int = 8, prefix: str | None = None
) -> Path | None:
    """Draw ``rows`` pairs of a dataset made by ``make-dataset`` into one PNG.

    Args:
        root: The dataset folder (PATN layout with ``masks/``).
        path: Output PNG.
        rows: Number of pairs shown, spread evenly over all pairs (train first).
        prefix: PATN file prefix when the folder holds several.

    Returns:
        ``Path(path)``, or None when the dataset has no pair (a warning is logged).

    Raises:
        FormatError: A malformed dataset or a missing mask.
    """
    files = discover_dataset(root, prefix=prefix)
    items: list[tuple[str, SplitData, str, str]] = []
    for split in sorted(files.splits, key=lambda name: (name != "train", name)):
        data = load_split(files, split)
        items += [(split, data, src, tgt) for src, tgt in data.pairs]
    if not items:
        logger.warning("%s: no pairs, so no preview", root)
        return None
    picks = sorted({round(k) for k in np.linspace(0, len(items) - 1, min(rows, len(items)))})
    panels = []
    for k in picks:
        split, data, src, tgt = items[k]
        images = [np.array(Image.open(data.image_dir / n).convert("RGB")) for n in (src, tgt)]
        masks = [read_mask(mask_path(files.root, split, n)) for n in (src, tgt)]
        factor = max(1, math.ceil(MIN_HEIGHT / images[1].shape[0]))
        poses = [data.poses[n].transform((float(factor),) * 2, (0.0, 0.0)) for n in (src, tgt)]
        big = [_enlarge(im, factor) for im in images]
        row = [
            draw_pose(big[0], poses[0]),
            draw_pose(big[1], poses[1]),
            _enlarge(overlay_mask(images[0], masks[0]), factor),
            _enlarge(overlay_mask(images[1], masks[1]), factor),
        ]
        change = pose_change(data.poses[src], data.poses[tgt])
        labels = [f"{split} src {Path(src).stem}", f"tgt {Path(tgt).stem}", "src mask",
                  f"tgt mask, change {change:.1f} px"]  # fmt: skip
        panels.append(make_panel(row, labels))
    width = max(p.shape[1] for p in panels)
    sheet = np.concatenate(
        [np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0)), constant_values=255) for p in panels]
    )
    save_png(path, sheet)
    return Path(path)


def _enlarge(image: np.ndarray, factor: int) -> np.ndarray:
    return image.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else image
