"""Train/test splits of footage: time-disjoint segments of a sequence, or whole identities.

Time-disjoint (:func:`time_segments`), per sequence (one video, or one folder of photos in name
order): the last ``test_fraction`` of its kept frames form the test segment, and frames less than
``gap`` source frames before the first test frame are dropped, so at least ``gap`` source frames
lie between the last training frame and the first test frame. Frames are counted whether or not
a person was found in them: the split is by time, fixed before anything is detected. Two
synchronised cameras of equal length therefore get test segments covering the same moments.

Person-disjoint (:func:`person_split`): the test identities are the given ones, or else the last
``round(test_fraction * n)`` identities in sorted order (at least one, never all).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Literal

__all__ = ["Segment", "person_split", "time_segments"]

#: Where a frame of a sequence goes: ``"train"``, ``"test"`` or ``"gap"`` (left out).
Segment = Literal["train", "test", "gap"]


def time_segments(indices: Sequence[int], test_fraction: float, gap: int) -> list[Segment]:
    """Assign each kept frame of one sequence to train, test or the gap between them.

    Args:
        indices: Source frame indices of the kept frames, strictly increasing (``0, K, 2K, ...``
            for every ``K``-th frame of a video).
        test_fraction: Share of the kept frames in the test segment, in ``[0, 1)``; the test
            segment is ``round(test_fraction * n)`` frames, at least one when the fraction is
            positive and the sequence has two frames or more.
        gap: Least number of source frames strictly between the last training frame and the
            first test frame, ``>= 0``.

    Returns:
        One segment per kept frame, in order: training frames first, then gap frames, then test
        frames.

    Raises:
        ValueError: On indices that do not increase, a fraction outside ``[0, 1)`` or a negative
            gap.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction!r}")
    if isinstance(gap, bool) or not isinstance(gap, int) or gap < 0:
        raise ValueError(f"gap must be a non-negative number of frames, got {gap!r}")
    if any(b <= a for a, b in itertools.pairwise(indices)):
        raise ValueError("frame indices must be strictly increasing")
    count = len(indices)
    num_test = round(test_fraction * count)
    if test_fraction > 0 and count >= 2:
        num_test = max(num_test, 1)
    if num_test == 0:
        return ["train"] * count
    first_test = indices[count - num_test]
    return [
        "test" if index >= first_test else "train" if index < first_test - gap else "gap"
        for index in indices
    ]


def person_split(
    identities: Iterable[str], test_fraction: float, test_identities: Sequence[str] = ()
) -> dict[str, Literal["train", "test"]]:
    """Split whole identities between train and test.

    Args:
        identities: The identities (duplicates are ignored).
        test_fraction: Share of the identities in test when ``test_identities`` is empty, in
            ``(0, 1)``: the last ``round(test_fraction * n)`` in sorted order, at least one and
            at most ``n - 1``.
        test_identities: The test identities, chosen by name; each must be among ``identities``.

    Returns:
        Identity -> ``"train"`` or ``"test"``.

    Raises:
        ValueError: Fewer than two identities, an unknown test identity, every identity in
            test, or a fraction outside ``(0, 1)``.
    """
    names = sorted(set(identities))
    if len(names) < 2:
        raise ValueError(
            f"a person-disjoint split needs at least two identities, got {names}; give them "
            "with --identity or use the time split"
        )
    if test_identities:
        unknown = sorted(set(test_identities) - set(names))
        if unknown:
            raise ValueError(f"test identities {unknown} are not among the identities {names}")
        test = set(test_identities)
        if test == set(names):
            raise ValueError(f"every identity is a test identity ({names}); none left to train")
    else:
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(
                f"a person-disjoint split needs test_fraction in (0, 1), got {test_fraction!r}"
            )
        num_test = min(max(round(test_fraction * len(names)), 1), len(names) - 1)
        test = set(names[len(names) - num_test :])
    return {name: "test" if name in test else "train" for name in names}
