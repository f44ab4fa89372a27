"""Background plates from real footage: a ``make-dataset`` folder's frames with the person removed.

``make-synthetic`` can put its people in front of real backgrounds
(``background.plate_dir``, :mod:`posetransfer.synth.backgrounds`). :func:`make_plates` makes
such plates from a ``posetransfer make-dataset`` output, whose person masks are stored beside the
images (``ROOT/masks/<split>/<name>.png``, :mod:`posetransfer.data.person_masks`): each mask is
grown by ``dilation`` pixels (:func:`~posetransfer.infer.background.dilate_mask`, so no halo of
the person stays) and the hole is filled by push-pull interpolation
(:func:`~posetransfer.infer.background.inpaint`), exactly as ``infer`` makes the plate of a
source photo. Images whose hole covers more than ``max_hole`` of the frame are skipped: the fill
would be one smooth smear.

Plates are written as ``OUT/<split>_<image stem>.png`` (atomically); a rerun overwrites them with
the same bytes. Which split to take is the caller's choice: plates of the *training* split keep
the test frames' pixels out of the synthetic data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from posetransfer.data.formats import FormatError
from posetransfer.data.person_masks import mask_path, read_mask
from posetransfer.infer.background import dilate_mask, inpaint
from posetransfer.infer.images import load_image
from posetransfer.io import PathLike, save_png

__all__ = ["PlatesSummary", "make_plates", "plate_of"]

logger = logging.getLogger(__name__)

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass
class PlatesSummary:
    """What :func:`make_plates` did.

    Attributes:
        written: Plate files written.
        skipped: ``(image path, reason)`` of every image left out.
    """

    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def plate_of(image: np.ndarray, mask: np.ndarray, dilation: int = 3) -> tuple[np.ndarray, float]:
    """The person-free plate of one frame.

    Args:
        image: ``(H, W, 3)`` uint8 frame.
        mask: ``(H, W)`` person mask in ``[0, 1]`` (thresholded at 0.5).
        dilation: Pixels the mask grows by before the fill.

    Returns:
        The ``(H, W, 3)`` uint8 plate (pixels outside the grown mask are the frame's own) and
        the share of the frame that was filled.

    Raises:
        ValueError: Mismatched shapes, or a hole covering the whole frame.
    """
    hole = dilate_mask(mask, dilation)
    return inpaint(image, hole), float(hole.mean())


def make_plates(
    root: PathLike,
    out: PathLike,
    *,
    splits: tuple[str, ...] = ("train",),
    dilation: int = 3,
    max_hole: float = 0.6,
    every: int = 1,
) -> PlatesSummary:
    """Write a plate for every (``every``-th) image of ``splits`` of a ``make-dataset`` folder.

    Args:
        root: The dataset (``ROOT/<split>/*.png`` and ``ROOT/masks/<split>/*.png``).
        out: Folder for the plates (created).
        splits: Splits to read.
        dilation: Pixels the person mask grows by.
        max_hole: Largest share of the frame the grown mask may cover, in ``(0, 1]``.
        every: Take every ``every``-th image of each split (sorted by name).

    Returns:
        The :class:`PlatesSummary`.

    Raises:
        ValueError: Bad ``dilation``, ``max_hole`` or ``every``.
        FileNotFoundError: A split folder is missing.
        FormatError: An image without its mask file, or an unreadable mask (names the file).
    """
    if dilation < 0:
        raise ValueError(f"make_plates: dilation must be >= 0, got {dilation}")
    if not 0 < max_hole <= 1:
        raise ValueError(f"make_plates: max_hole must be in (0, 1], got {max_hole}")
    if every < 1:
        raise ValueError(f"make_plates: every must be >= 1, got {every}")
    root, out = Path(root), Path(out)
    summary = PlatesSummary()
    for split in splits:
        folder = root / split
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such split folder in the dataset {root}")
        names = sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
        for path in names[::every]:
            mask_file = mask_path(root, split, path.name)
            if not mask_file.is_file():
                raise FormatError(mask_file, f"no person mask for {path}")
            image = load_image(path, max_pixels=None)
            mask = read_mask(mask_file)
            if mask.shape != image.shape[:2]:
                raise FormatError(
                    mask_file, f"mask is {mask.shape}, its image {path} is {image.shape[:2]}"
                )
            plate, hole = plate_of(image, mask, dilation) if mask.max() > 0.5 else (image, 0.0)
            if hole > max_hole:
                summary.skipped.append((path, f"the person covers {hole:.0%} > {max_hole:.0%}"))
                continue
            target = out / f"{split}_{path.stem}.png"
            save_png(target, plate)
            summary.written.append(target)
    logger.info(
        "%d plates in %s (%d images skipped)", len(summary.written), out, len(summary.skipped)
    )
    return summary
