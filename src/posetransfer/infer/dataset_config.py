"""What ``posetransfer make-dataset`` makes: :class:`MakeDatasetConfig`, validated on construction.

The pipeline is :mod:`posetransfer.infer.make_dataset`; the output layout is in its docstring and
in docs/real_people.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from posetransfer.data.pairing import PairRule
from posetransfer.infer.detect import DetectorConfig

__all__ = ["PREFIXES", "SOURCE_KEYS", "MakeDatasetConfig"]

#: File-name prefixes of the PATN CSVs that the dataset readers recognise.
PREFIXES = tuple(f"{name}{resize}-" for name in ("fasion", "fashion", "market")
                 for resize in ("", "-resize"))  # fmt: skip

#: Keys that change what a source's frames become (a finished source is redone when they do).
SOURCE_KEYS = ("size", "every", "max_frames", "min_keypoints", "track_iou", "split",
               "test_fraction", "gap", "test_identities", "detector")  # fmt: skip


@dataclass(frozen=True)
class MakeDatasetConfig:
    """What ``make-dataset`` makes.

    Attributes:
        inputs: Videos, photos and folders (:func:`posetransfer.infer.sources.collect_sources`).
        out: The dataset folder.
        size: ``(H, W)`` of the person crops; the person box takes this aspect.
        every: Keep every ``every``-th frame of a video (photos are all kept).
        max_frames: Most frames kept per video (None: all).
        identities: One identity for every input, or one per input; empty: from the file and
            folder names.
        split: ``"time"``: each sequence's last frames are test frames, after a gap;
            ``"person"``: whole identities are test identities.
        test_fraction: Share of each sequence's kept frames (time) or of the identities
            (person) in the test split.
        gap: Time split: least number of source frames between a video's last training frame
            and its first test frame (photo folders have no gap).
        test_identities: Person split: the test identities by name (empty: the last ones in
            sorted order, ``test_fraction`` of them).
        min_keypoints: Frames whose person has fewer valid keypoints in the crop are skipped.
        track_iou: Least intersection over union of the person boxes of consecutive kept frames
            of a video for them to be one track; pairs within a video stay within a track, so
            a pair never joins two people when the largest person changes (0: one track).
        min_pose_change: Least pose change of a pair in crop pixels (position and scale
            removed; :func:`posetransfer.data.pairing.pose_change`).
        min_common_keypoints: Least number of keypoints valid in both images of a pair.
        pairs_per_image: Most pairs per target image (sources drawn with ``seed``); None: all.
        seed: Seed of the pair draws.
        prefix: File-name prefix of the PATN CSVs (one of :data:`PREFIXES`).
        preview: Write ``preview.png``, a contact sheet of some pairs.
        preview_pairs: Rows of the preview.
        detector: Detector settings (``aspect`` follows ``size``).
    """

    inputs: tuple[str, ...] = ()
    out: str | None = None
    size: tuple[int, int] = (256, 176)
    every: int = 1
    max_frames: int | None = None
    identities: tuple[str, ...] = ()
    split: Literal["time", "person"] = "time"
    test_fraction: float = 0.2
    gap: int = 15
    test_identities: tuple[str, ...] = ()
    min_keypoints: int = 8
    track_iou: float = 0.25
    min_pose_change: float = 8.0
    min_common_keypoints: int = 6
    pairs_per_image: int | None = 10
    seed: int = 0
    prefix: str = "fasion-resize-"
    preview: bool = False
    preview_pairs: int = 8
    detector: DetectorConfig = field(default_factory=DetectorConfig)

    def __post_init__(self) -> None:
        size = tuple(self.size)
        checks: list[tuple[str, bool, str]] = [
            ("size", len(size) == 2 and all(_int(v) and v >= 16 for v in size),
             "(H, W) with both >= 16"),
            ("every", _int(self.every) and self.every >= 1, ">= 1"),
            ("max_frames", self.max_frames is None or (_int(self.max_frames)
                                                       and self.max_frames >= 1), ">= 1 or null"),
            ("split", self.split in ("time", "person"), "'time' or 'person'"),
            ("test_fraction", _real(self.test_fraction) and 0 <= self.test_fraction < 1,
             "in [0, 1)"),
            ("gap", _int(self.gap) and self.gap >= 0, ">= 0"),
            ("min_keypoints", _int(self.min_keypoints) and 1 <= self.min_keypoints <= 18,
             "in 1..18"),
            ("track_iou", _real(self.track_iou) and 0 <= self.track_iou <= 1, "in [0, 1]"),
            ("min_pose_change", _real(self.min_pose_change) and self.min_pose_change >= 0,
             ">= 0 (pixels)"),
            ("min_common_keypoints", _int(self.min_common_keypoints)
             and 2 <= self.min_common_keypoints <= 18, "in 2..18"),
            ("pairs_per_image", self.pairs_per_image is None or (_int(self.pairs_per_image)
                                                                 and self.pairs_per_image >= 1),
             ">= 1 or null (all)"),
            ("seed", _int(self.seed) and self.seed >= 0, ">= 0"),
            ("prefix", self.prefix in PREFIXES, f"one of {list(PREFIXES)}"),
            ("preview_pairs", _int(self.preview_pairs) and self.preview_pairs >= 1, ">= 1"),
        ]  # fmt: skip
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(
                    f"make-dataset: {name} must be {rule}, got {getattr(self, name)!r}"
                )
        object.__setattr__(self, "size", (int(size[0]), int(size[1])))
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "identities", tuple(self.identities))
        object.__setattr__(self, "test_identities", tuple(self.test_identities))

    @property
    def pair_rule(self) -> PairRule:
        """The pairing settings as a :class:`~posetransfer.data.pairing.PairRule`."""
        return PairRule(
            min_change=self.min_pose_change,
            min_common=self.min_common_keypoints,
            per_image=self.pairs_per_image,
            seed=self.seed,
        )


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
