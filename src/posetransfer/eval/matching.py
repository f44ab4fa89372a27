"""Pair prediction files with their ground-truth images by file name.

Two naming schemes are recognised, per file:

- **GFLA names** ``<source>_2_<target>[_vis].<ext>``, where ``source`` and ``target`` are image
  names without their extension (GFLA, DPTN, PIDM, PCDMs outputs); the ground truth is the file
  of ``gt_dir`` whose name without extension is ``target``. Names that contain ``_2_`` more than
  once are split at every occurrence and must resolve to exactly one ground-truth image (and,
  with a pair list, to a listed pair).
- **identical names**: ``<name>.<ext>`` where ``gt_dir`` holds ``<name>.<any ext>`` (outputs
  written under the target's own name). The source is then unknown.

Every prediction must match exactly one ground-truth image, or :class:`MatchError` lists the
ones that do not. With a pair list (``*-pairs-test.csv``), GFLA-named predictions must name a
listed pair, and every listed pair (or, for identical names, every listed target) must have a
prediction unless missing ones are explicitly allowed.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "IMAGE_EXTENSIONS",
    "MatchError",
    "MatchedPair",
    "list_images",
    "match_predictions",
    "strip_extension",
]

logger = logging.getLogger(__name__)

#: File extensions read as images (lower case).
IMAGE_EXTENSIONS: Final[tuple[str, ...]] = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
_MAX_LISTED: Final[int] = 8


class MatchError(ValueError):
    """Prediction files that match no ground truth, ambiguously, or pairs without prediction."""


@dataclass(frozen=True)
class MatchedPair:
    """A prediction and its ground truth.

    Attributes:
        pred: The prediction file.
        gt: The ground-truth image.
        source: Source image name without extension, when the file name carries it.
        naming: ``"gfla"`` or ``"identical"``.
    """

    pred: Path
    gt: Path
    source: str | None
    naming: str

    @property
    def target(self) -> str:
        """Ground-truth file name (with extension), the key of annotation files."""
        return self.gt.name


def strip_extension(name: str) -> str:
    """``name`` without a trailing image extension (other suffixes are kept)."""
    suffix = Path(name).suffix
    return name[: -len(suffix)] if suffix.lower() in IMAGE_EXTENSIONS else name


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name.

    Raises:
        NotADirectoryError: If ``folder`` is not a directory.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: not a directory")
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def _listing(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f" (and {more} more)" if more > 0 else "")


def _candidates(
    stem: str, gt_by_stem: dict[str, list[Path]], pair_set: set[tuple[str, str]] | None
) -> set[tuple[str | None, str]]:
    """``(source, target stem)`` readings of one prediction stem that name a ground truth."""
    names = [stem, stem[:-4]] if stem.endswith("_vis") else [stem]
    found: set[tuple[str | None, str]] = set()
    for name in names:
        if name in gt_by_stem:
            found.add((None, name))
            continue
        start = name.find("_2_", 1)  # a source name is never empty
        while start != -1:
            source, target = name[:start], name[start + 3 :]
            if target in gt_by_stem and (pair_set is None or (source, target) in pair_set):
                found.add((source, target))
            start = name.find("_2_", start + 1)
    return found


def match_predictions(
    pred_dir: Path,
    gt_dir: Path,
    pairs: Iterable[tuple[str, str]] | None = None,
    *,
    allow_missing: bool = False,
) -> list[MatchedPair]:
    """Match every image in ``pred_dir`` to one image in ``gt_dir``.

    Args:
        pred_dir: Folder of predictions.
        gt_dir: Folder of ground-truth (target) images.
        pairs: ``(source, target)`` image names (extensions optional), e.g. from
            :func:`posetransfer.data.formats.read_pairs_csv`; restricts and checks GFLA names.
        allow_missing: Accept listed pairs without a prediction (logged); otherwise an error.

    Returns:
        Matches in prediction-name order.

    Raises:
        MatchError: Listing the unmatched or ambiguous predictions, duplicated prediction
            names, or pairs without prediction.
        NotADirectoryError: If a folder does not exist.
    """
    preds, gts = list_images(pred_dir), list_images(gt_dir)
    if not preds:
        raise MatchError(f"{pred_dir}: no prediction images ({', '.join(IMAGE_EXTENSIONS)})")
    gt_by_stem: dict[str, list[Path]] = defaultdict(list)
    for path in gts:
        gt_by_stem[path.stem].append(path)
    pair_set = None
    if pairs is not None:
        pair_set = {(strip_extension(s), strip_extension(t)) for s, t in pairs}

    by_stem: dict[str, list[str]] = defaultdict(list)
    for path in preds:
        by_stem[path.stem].append(path.name)
    duplicates = sorted(n for names in by_stem.values() if len(names) > 1 for n in names)
    if duplicates:
        raise MatchError(
            f"{pred_dir}: predictions differ only by extension: {_listing(duplicates)}"
        )

    matches: list[MatchedPair] = []
    unmatched: list[str] = []
    ambiguous: list[str] = []
    for path in preds:
        found = _candidates(path.stem, gt_by_stem, pair_set)
        if len(found) != 1:
            (unmatched if not found else ambiguous).append(path.name)
            continue
        source, target = found.pop()
        if len(gt_by_stem[target]) > 1:
            ambiguous.append(f"{path.name} ({' / '.join(p.name for p in gt_by_stem[target])})")
            continue
        naming = "identical" if source is None else "gfla"
        matches.append(MatchedPair(path, gt_by_stem[target][0], source, naming))
    if unmatched or ambiguous:
        parts = []
        if unmatched:
            restrict = " listed in the pair file" if pair_set is not None else ""
            parts.append(
                f"{len(unmatched)} prediction(s) in {pred_dir} match no ground-truth image"
                f"{restrict} in {gt_dir} (expected <source>_2_<target>[_vis].<ext> or the ground "
                f"truth's own name): {_listing(unmatched)}"
            )
        if ambiguous:
            parts.append(f"{len(ambiguous)} ambiguous prediction(s): {_listing(ambiguous)}")
        raise MatchError("; ".join(parts))
    if pair_set is not None:
        _check_coverage(matches, pair_set, allow_missing)
    return matches


def _check_coverage(
    matches: list[MatchedPair], pair_set: set[tuple[str, str]], allow_missing: bool
) -> None:
    """Every listed pair (or target, for identical names) has a prediction."""
    if all(m.naming == "gfla" for m in matches):
        have = {(m.source, m.gt.stem) for m in matches}
        missing = sorted(f"{s}_2_{t}" for s, t in pair_set - have)
    else:
        have_targets = {m.gt.stem for m in matches}
        missing = sorted({t for _, t in pair_set} - have_targets)
    if not missing:
        return
    message = f"{len(missing)} listed pair(s) have no prediction: {_listing(missing)}"
    if not allow_missing:
        raise MatchError(message + " (allow_missing=true scores the predictions present)")
    logger.warning("%s; scoring the %d predictions present", message, len(matches))
