"""What ``make-synthetic`` generates (:class:`SyntheticConfig`) and which split each person is in.

The config fixes the dataset's content (people, poses, image size and format, appearance odds,
file prefix) and is validated on construction; :func:`split_of` puts the last
:attr:`SyntheticConfig.num_test` people into ``test``. :mod:`posetransfer.synth.dataset_writer`
writes the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["SPLITS", "SyntheticConfig", "split_of"]

SPLITS = ("train", "test")


@dataclass(frozen=True)
class SyntheticConfig:
    """What ``make-synthetic`` generates (the layout: :mod:`posetransfer.synth.dataset_writer`).

    Attributes:
        num_people: People (>= 2); each is its own identity.
        poses_per_person: Images per person (>= 2); pairs are all ordered pairs of them.
        size: ``(H, W)`` of the images. The default networks need multiples of 16 (their
            stride), hence 128x96 rather than half of DeepFashion's 256x176 (128x88).
        seed: Dataset seed; person ``i`` uses ``seed * 1_000_003 + i``.
        test_fraction: Share of the people (the last ones) in the test split; at least one
            person is in each split.
        lit: Ambient + directional light; False writes the pure albedo, which warping by the
            ground-truth flow reproduces exactly.
        textured_background: Gradient, blotches and floor instead of a plain light colour.
        flow_format: ``npz`` writes ``flows/*.npz``; ``corr`` or ``both`` also write the
            original's ``.corr`` files to ``corr/``.
        image_format: ``png`` (lossless, default) or ``jpg`` (quality 95, 4:4:4).
        prefix: File-name prefix of the PATN CSVs (``fasion-``, ``fashion-`` or ``market-``,
            optionally with ``-resize``; the dataset readers recognise only these).
        pose_mix: Odds of a standing, walking and fashion pose.
        view_mix: Odds of a front, side and back view.
        height_fraction: Range of the body height as a fraction of the image height.
        depth_tolerance_m: Occlusion tolerance of the visibility test (metres).
        save_bodies: Write each person's ground-truth bodies and cameras to ``bodies/``.
        preview: Write ``preview.png`` after the merge.
        preview_pairs: Rows of the preview (one pair per person).
    """

    num_people: int = 300
    poses_per_person: int = 4
    size: tuple[int, int] = (128, 96)
    seed: int = 0
    test_fraction: float = 0.15
    lit: bool = True
    textured_background: bool = False
    flow_format: Literal["npz", "corr", "both"] = "npz"
    image_format: Literal["png", "jpg"] = "png"
    prefix: str = "fasion-resize-"
    pose_mix: tuple[float, float, float] = (0.35, 0.3, 0.35)
    view_mix: tuple[float, float, float] = (0.55, 0.25, 0.2)
    height_fraction: tuple[float, float] = (0.85, 0.95)
    depth_tolerance_m: float = 0.015
    save_bodies: bool = True
    preview: bool = False
    preview_pairs: int = 8

    def __post_init__(self) -> None:
        checks = [
            ("num_people", self.num_people >= 2, ">= 2"),
            ("poses_per_person", self.poses_per_person >= 2, ">= 2"),
            ("size", len(self.size) == 2 and min(self.size) >= 16, "(H, W) with both >= 16"),
            ("seed", self.seed >= 0, ">= 0"),
            ("test_fraction", 0.0 < self.test_fraction < 1.0, "in (0, 1)"),
            ("flow_format", self.flow_format in ("npz", "corr", "both"), "npz, corr or both"),
            ("image_format", self.image_format in ("png", "jpg"), "png or jpg"),
            ("prefix", _prefix_ok(self.prefix), "fasion-/fashion-/market-[resize-]"),
            ("pose_mix", _odds_ok(self.pose_mix), "3 non-negative odds, not all 0"),
            ("view_mix", _odds_ok(self.view_mix), "3 non-negative odds, not all 0"),
            ("height_fraction", 0.3 <= self.height_fraction[0] <= self.height_fraction[1] <= 1,
             "0.3 <= low <= high <= 1"),
            ("depth_tolerance_m", self.depth_tolerance_m >= 0, ">= 0"),
            ("preview_pairs", self.preview_pairs >= 1, ">= 1"),
        ]  # fmt: skip
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(
                    f"synthetic config: {name} must be {rule}, got {getattr(self, name)!r}"
                )

    @property
    def num_test(self) -> int:
        """Number of test people (the last ones)."""
        return min(max(round(self.test_fraction * self.num_people), 1), self.num_people - 1)

    @property
    def image_ext(self) -> str:
        """Image file extension with the dot."""
        return "." + self.image_format


def _prefix_ok(prefix: str) -> bool:
    """Whether the PATN readers recognise CSVs named with ``prefix``."""
    stem = prefix.removesuffix("-")
    return prefix.endswith("-") and stem in {
        f"{name}{resize}" for name in ("fasion", "fashion", "market") for resize in ("", "-resize")
    }


def _odds_ok(odds: tuple[float, ...]) -> bool:
    return len(odds) == 3 and min(odds) >= 0 and sum(odds) > 0


def split_of(person: int, cfg: SyntheticConfig) -> str:
    """``"test"`` for the last ``cfg.num_test`` people, else ``"train"``."""
    return "test" if person >= cfg.num_people - cfg.num_test else "train"
