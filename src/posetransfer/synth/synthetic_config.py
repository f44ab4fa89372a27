"""What ``make-synthetic`` generates (:class:`SyntheticConfig`) and which split each person is in.

The config fixes the dataset's content (people, poses, image size and format, appearance odds,
backgrounds (:class:`BackgroundConfig`), camera effects (:class:`CameraConfig`), file prefix)
and is validated on construction; :func:`split_of` puts the last
:attr:`SyntheticConfig.num_test` people into ``test``. :mod:`posetransfer.synth.dataset_writer`
writes the dataset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "SPLITS",
    "TEXTURES",
    "BackgroundConfig",
    "CameraConfig",
    "SyntheticConfig",
    "split_of",
]

SPLITS = ("train", "test")
#: Procedural background textures (:mod:`posetransfer.synth.backgrounds`).
TEXTURES = ("noise", "gradient", "stripes", "checks", "tiles", "shapes", "room")


def _raise_unless(checks: list[tuple[str, bool, str]], owner: object, prefix: str) -> None:
    for name, ok, rule in checks:
        if not ok:
            raise ValueError(
                f"synthetic config: {prefix}{name} must be {rule}, got {getattr(owner, name)!r}"
            )


def _range_ok(values: tuple[float, ...], low: float, high: float) -> bool:
    return len(values) == 2 and low <= values[0] <= values[1] <= high


@dataclass(frozen=True)
class BackgroundConfig:
    """What is behind each person (:mod:`posetransfer.synth.backgrounds`).

    Every image of a person has the same background (one camera scene), so the source and the
    target of a pair share it, as the generator assumes (background pixels have zero flow).

    Attributes:
        mix: Odds of the person's *backdrop* (plain, or textured with
            ``textured_background``: the data as before), a *procedural* texture and a
            *plate* (an image of ``plate_dir``, randomly cropped, scaled and mirrored).
            ``(1, 0, 0)``, the default, writes the same bytes as before these options existed.
        textures: Procedural kinds drawn from (uniformly): smooth ``noise``, ``gradient``,
            ``stripes``, ``checks``, ``tiles``, blurred random ``shapes``, and ``room`` (a wall
            texture over a floor texture).
        plate_dir: Folder of plate images (``.png``/``.jpg``, e.g. written by
            :func:`posetransfer.infer.plates.make_plates`); needed when ``mix[2] > 0``.
        plate_zoom: Range of the crop's zoom: 1 crops the largest box of the image's aspect
            out of the plate, 2 a box half as high.
    """

    mix: tuple[float, float, float] = (1.0, 0.0, 0.0)
    textures: tuple[str, ...] = TEXTURES
    plate_dir: str | None = None
    plate_zoom: tuple[float, float] = (1.0, 1.6)

    def __post_init__(self) -> None:
        checks = [
            ("mix", _odds_ok(self.mix),
             "3 non-negative odds (backdrop, procedural, plate), not all 0"),
            ("textures", len(self.textures) > 0 and set(self.textures) <= set(TEXTURES),
             f"a non-empty list of {', '.join(TEXTURES)}"),
            ("plate_dir", len(self.mix) != 3 or self.mix[2] == 0 or bool(self.plate_dir),
             "a folder of plate images when mix gives plates odds > 0"),
            ("plate_zoom", _range_ok(self.plate_zoom, 1.0, 8.0), "1 <= low <= high <= 8"),
        ]  # fmt: skip
        _raise_unless(checks, self, "background.")

    @property
    def is_default(self) -> bool:
        """Whether every person keeps its backdrop (no procedural texture, no plate)."""
        return self.mix[1] == 0 and self.mix[2] == 0


@dataclass(frozen=True)
class CameraConfig:
    """Lighting and sensor effects on whole images (:mod:`posetransfer.synth.camera_effects`).

    Pixels change, geometry does not: keypoints, flows and visibility stay exact. Ranges are
    sampled uniformly (``brightness`` and ``gamma`` log-uniformly).

    Attributes:
        enabled: Apply the effects (off: the images as rendered).
        per_person: True: the camera (everything but the noise) is drawn once per person, so a
            pair's source and target share exposure, white balance, tone curve, blur and JPEG
            quality, as two frames of one camera do; the noise is always drawn per image.
            False: all of it per image.
        brightness: Exposure gain.
        contrast: Contrast factor about mid-grey.
        temperature: Colour temperature shift: red gain ``1 + t``, blue gain ``1 - t``.
        gamma: Exponent of the tone curve on ``[0, 1]`` values.
        blur_prob: Probability of a Gaussian blur.
        blur_sigma: Its standard deviation in pixels.
        noise: Standard deviation of the Gaussian (read) noise, on ``[0, 1]`` values.
        shot_noise: Standard deviation of the signal-dependent (Poisson-like) noise at white;
            at value ``v`` it is ``shot_noise * sqrt(v)``.
        jpeg_prob: Probability of a JPEG round trip.
        jpeg_quality: Its quality range (integers).
    """

    enabled: bool = False
    per_person: bool = True
    brightness: tuple[float, float] = (0.7, 1.3)
    contrast: tuple[float, float] = (0.8, 1.2)
    temperature: tuple[float, float] = (-0.12, 0.12)
    gamma: tuple[float, float] = (0.8, 1.25)
    blur_prob: float = 0.5
    blur_sigma: tuple[float, float] = (0.3, 1.0)
    noise: tuple[float, float] = (0.0, 0.03)
    shot_noise: tuple[float, float] = (0.0, 0.04)
    jpeg_prob: float = 0.5
    jpeg_quality: tuple[int, int] = (40, 95)

    def __post_init__(self) -> None:
        checks = [
            ("brightness", _range_ok(self.brightness, 0.1, 10.0), "0.1 <= low <= high <= 10"),
            ("contrast", _range_ok(self.contrast, 0.0, 10.0), "0 <= low <= high <= 10"),
            ("temperature", _range_ok(self.temperature, -0.9, 0.9), "-0.9 <= low <= high <= 0.9"),
            ("gamma", _range_ok(self.gamma, 0.1, 10.0), "0.1 <= low <= high <= 10"),
            ("blur_prob", 0.0 <= self.blur_prob <= 1.0, "in [0, 1]"),
            ("blur_sigma", _range_ok(self.blur_sigma, 0.0, 10.0), "0 <= low <= high <= 10"),
            ("noise", _range_ok(self.noise, 0.0, 1.0), "0 <= low <= high <= 1"),
            ("shot_noise", _range_ok(self.shot_noise, 0.0, 1.0), "0 <= low <= high <= 1"),
            ("jpeg_prob", 0.0 <= self.jpeg_prob <= 1.0, "in [0, 1]"),
            ("jpeg_quality", _range_ok(self.jpeg_quality, 1, 100), "1 <= low <= high <= 100"),
        ]  # fmt: skip
        _raise_unless(checks, self, "camera.")


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
        background: Procedural and plate backgrounds (off by default).
        camera: Lighting and sensor-noise effects (off by default).
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
    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)

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
        _raise_unless(checks, self, "")

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
    return len(odds) == 3 and min(odds) >= 0 and math.isfinite(sum(odds)) and sum(odds) > 0


def split_of(person: int, cfg: SyntheticConfig) -> str:
    """``"test"`` for the last ``cfg.num_test`` people, else ``"train"``."""
    return "test" if person >= cfg.num_people - cfg.num_test else "train"
