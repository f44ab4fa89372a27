"""Validation subsets carved from a training split, disjoint by person when names reveal it.

The PATN/GFLA datasets have only ``train`` and ``test`` splits, and the original picked its best
checkpoints on ``test`` (``official_repo.md`` §7.1.9). Here a seeded share of the *training*
identities becomes the validation set, so model selection never sees the test split and the
validation people never appear in training.

Identity of an image name (:func:`identity_of`):

- ``...id`` + 8 digits: DeepFashion (``fashionMENDenimid0000008001_1front.jpg`` ->
  ``fashionMENDenimid00000080``, the digits after the id number the garment) and the synthetic
  data (``synthPERSONid00000012_3side.png`` -> ``synthPERSONid00000012``);
- otherwise the text before the first ``_``: Market-1501 (``0002_c1s1_000451_03.jpg`` -> ``0002``);
- otherwise none: the pair is grouped by its source image instead (``by="image"`` does this for
  every pair). Image groups keep a pair's source out of the other side, not its target.

A pair belongs to the group of its source image. Groups are sorted, shuffled with ``seed`` and
the first ``round(fraction * groups)`` (at least one, never all) are validation groups. A
``max_pairs`` cap draws a seeded subset of their pairs; the dropped pairs do not return to
training, so the people stay disjoint.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from torch.utils.data import Dataset

__all__ = ["PairSubset", "ValSplit", "carve_validation", "identity_of"]

logger = logging.getLogger(__name__)

_ID_DIGITS = re.compile(r"^(.*?id\d{8})")


def identity_of(name: str) -> str | None:
    """The person an image name belongs to, or None if the name does not say (module docstring).

    Example:
        >>> identity_of("0002_c1s1_000451_03.jpg"), identity_of("img.png")
        ('0002', None)
    """
    match = _ID_DIGITS.match(name)
    if match:
        return match.group(1)
    stem, sep, _ = name.partition("_")
    return stem if sep and stem else None


@dataclass(frozen=True)
class ValSplit:
    """Indices of a pair list split into training and validation.

    Attributes:
        train: Pair indices kept for training, increasing.
        val: Validation pair indices, increasing.
        val_groups: The validation groups (identities or source images), sorted.
        num_groups: Groups in the whole pair list.
        image_grouped: Pairs grouped by source image because no identity was found.
    """

    train: list[int]
    val: list[int]
    val_groups: list[str]
    num_groups: int
    image_grouped: int


def carve_validation(
    pairs: Sequence[tuple[str, str]],
    fraction: float,
    *,
    by: Literal["identity", "image"] = "identity",
    seed: int = 0,
    max_pairs: int | None = None,
) -> ValSplit:
    """Split ``pairs`` into training and validation by group (see the module docstring).

    Args:
        pairs: ``(source, target)`` image names.
        fraction: Share of the groups held out, in ``[0, 1)``; 0 gives no validation pairs.
        by: ``"identity"`` (falling back to the source image per pair) or ``"image"``.
        seed: Seed of the group shuffle and of the ``max_pairs`` draw.
        max_pairs: Cap on validation pairs, or None.

    Returns:
        The split.

    Raises:
        ValueError: On a bad fraction, mode or cap, or fewer than two groups with ``fraction > 0``.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction!r}")
    if by not in ("identity", "image"):
        raise ValueError(f"validation grouping must be 'identity' or 'image', got {by!r}")
    if max_pairs is not None and max_pairs < 1:
        raise ValueError(f"max validation pairs must be None or >= 1, got {max_pairs!r}")
    keys, image_grouped = [], 0
    for source, _ in pairs:
        person = identity_of(source) if by == "identity" else None
        if person is None:
            image_grouped += by == "identity"
            person = f"image:{source}"
        keys.append(person)
    if image_grouped:
        logger.warning(
            "%d of %d pairs have no identity in their source name; grouped by source image",
            image_grouped, len(pairs),
        )  # fmt: skip
    groups = sorted(set(keys))
    if fraction == 0.0:
        return ValSplit(list(range(len(pairs))), [], [], len(groups), image_grouped)
    if len(groups) < 2:
        raise ValueError(
            f"cannot hold out a validation set: the {len(pairs)} training pairs form "
            f"{len(groups)} group(s) (by {by}); set the validation fraction to 0"
        )
    rng = np.random.default_rng(seed)
    count = min(max(round(fraction * len(groups)), 1), len(groups) - 1)
    chosen = {groups[i] for i in rng.permutation(len(groups))[:count]}
    val = [i for i, key in enumerate(keys) if key in chosen]
    train = [i for i, key in enumerate(keys) if key not in chosen]
    if max_pairs is not None and len(val) > max_pairs:
        val = sorted(int(i) for i in rng.choice(val, size=max_pairs, replace=False))
    return ValSplit(train, val, sorted(chosen), len(groups), image_grouped)


class PairSubset(Dataset[Any]):
    """The pairs ``indices`` of a dataset, forwarding ``set_epoch`` (flip draws) to it.

    Args:
        base: A map-style dataset (e.g. :class:`~posetransfer.data.datasets.PairDataset`).
        indices: Indices into ``base``.
    """

    def __init__(self, base: Dataset[Any], indices: Sequence[int]) -> None:
        self.base = base
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        return self.base[self.indices[index]]

    def set_epoch(self, epoch: int) -> None:
        """Forward to the base dataset's ``set_epoch`` if it has one."""
        set_epoch = getattr(self.base, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)
