"""Backgrounds behind synthetic people: procedural textures and plates from real frames.

``make-synthetic`` renders each person over its *backdrop* (plain, or the gradient and floor of
``textured_background``). With :class:`~posetransfer.synth.synthetic_config.BackgroundConfig`
a person may instead stand in front of

- a **procedural texture** (:func:`procedural_texture`): smooth fractal noise, a linear or radial
  gradient, stripes, checks, brick-like tiles, blurred random shapes, or a "room" (one texture
  as the wall over a darker one as the floor); colours are mostly muted, as indoor scenes are;
- a **plate** (:func:`plate_crop`): an image of ``plate_dir`` (e.g. real frames with the person
  inpainted out, :func:`posetransfer.infer.plates.make_plates`), cropped at a random place and
  zoom to the image's aspect, mirrored with probability 1/2 and resampled to the image size.

One background per person: all of its images (and so both images of every pair) share it, as
frames of one still camera do; the generator copies background pixels from the source (their
flow is zero), so a target background that differs from the source's could not be predicted.
:func:`composite` puts the render's own pixels on its exact silhouette (the rasterizer's
foreground, the same pixels whose visibility is not BACKGROUND) and the background elsewhere;
flows, visibility and keypoints are untouched.

Randomness: person ``i`` of dataset ``seed`` draws its background from its own numpy generator
(:func:`background_rng`), a stream separate from the person's body and clothes, so the bodies,
outfits and flows are those of the same config without backgrounds, and shards agree.
Textures are drawn at twice the size and box-averaged (anti-aliased edges); everything is float32
numpy on the CPU, a few milliseconds per person at 128x96.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Final

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from posetransfer.data.formats import FormatError
from posetransfer.synth.camera_effects import gaussian_blur
from posetransfer.synth.synthetic_config import TEXTURES, BackgroundConfig

__all__ = [
    "PLATE_SUFFIXES",
    "BackgroundSampler",
    "background_rng",
    "composite",
    "list_plates",
    "plate_crop",
    "procedural_texture",
]

logger = logging.getLogger(__name__)

#: Image files taken as plates (lower-case suffixes).
PLATE_SUFFIXES: Final[tuple[str, ...]] = (".png", ".jpg", ".jpeg")
_STREAM: Final[int] = 0x42_47  # "BG": the background stream of a person's seed
_SUPERSAMPLE: Final[int] = 2


def background_rng(seed: int, person: int) -> np.random.Generator:
    """The generator of person ``person``'s background in dataset ``seed``."""
    return np.random.default_rng([seed, person, _STREAM])


# ------------------------------------------------------------------------ procedural textures


def _colour(rng: np.random.Generator, value: tuple[float, float] = (0.15, 0.95)) -> np.ndarray:
    """A muted random sRGB colour (HSV: saturation mostly low)."""
    h, s, v = rng.random(), 0.55 * rng.random() ** 1.5, rng.uniform(*value)
    k = (np.array([5.0, 3.0, 1.0]) + h * 6) % 6
    return (v - v * s * np.clip(np.minimum(k, 4 - k), 0, 1)).astype(np.float32)


def _near(rng: np.random.Generator, colour: np.ndarray, spread: float) -> np.ndarray:
    return np.clip(colour + rng.normal(0, spread, 3), 0, 1).astype(np.float32)


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return a + (b - a) * t[..., None]


def _grid(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in units of the image height: ``x`` in ``[0, W/H)``, ``y``."""
    height, width = size
    y = (np.arange(height, dtype=np.float32)[:, None] + 0.5) / height
    x = (np.arange(width, dtype=np.float32)[None, :] + 0.5) / height
    return np.broadcast_to(x, size), np.broadcast_to(y, size)


def _rotated(rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates turned by a random angle (mostly axis aligned)."""
    x, y = _grid(size)
    angle = rng.choice([0.0, math.pi / 2, rng.uniform(-math.pi, math.pi)], p=[0.4, 0.3, 0.3])
    c, s = math.cos(angle), math.sin(angle)
    return c * x + s * y, -s * x + c * y


def _smooth_noise(rng: np.random.Generator, size: tuple[int, int], octaves: int) -> np.ndarray:
    """Fractal value noise in ``[0, 1]``: random grids upsampled bicubically, halving amplitude."""
    base = rng.uniform(2.0, 5.0)
    total = np.zeros(size, np.float32)
    for octave in range(octaves):
        cells = max(2, round(base * 2**octave))
        grid = torch.from_numpy(rng.random((cells, cells)).astype(np.float32))[None, None]
        up = F.interpolate(grid, size=size, mode="bicubic", align_corners=False)[0, 0]
        total += up.numpy() * 0.5**octave
    low, high = total.min(), total.max()
    return (total - low) / max(float(high - low), 1e-6)


def _soft_wave(u: np.ndarray, duty: float) -> np.ndarray:
    """1 on a ``duty`` share of each unit period of ``u``, else 0 (edges are anti-aliased later)."""
    return ((u - np.floor(u)) < duty).astype(np.float32)


def _noise(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    t = _smooth_noise(rng, size, int(rng.integers(2, 5)))
    return _lerp(_colour(rng), _colour(rng), t)


def _gradient(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    x, y = _grid(size)
    if rng.random() < 0.5:
        u, _ = _rotated(rng, size)
        t = (u - u.min()) / max(float(u.max() - u.min()), 1e-6)
    else:
        cx, cy = rng.uniform(0, x.max()), rng.uniform(0, 1)
        t = np.clip(np.hypot(x - cx, y - cy) / rng.uniform(0.5, 1.5), 0, 1)
    return _lerp(_colour(rng), _colour(rng), t.astype(np.float32))


def _stripes(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    u, _ = _rotated(rng, size)
    period = rng.uniform(0.03, 0.3)
    t = _soft_wave(u / period, rng.uniform(0.2, 0.8))
    return _lerp(_colour(rng), _colour(rng), t)


def _checks(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    u, v = _rotated(rng, size)
    period = rng.uniform(0.04, 0.25)
    t = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
    return _lerp(_colour(rng), _colour(rng), t)


def _tiles(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    x, y = _grid(size)
    tile_h = rng.uniform(0.04, 0.2)
    tile_w = tile_h * rng.uniform(1.0, 3.0)
    row = np.floor(y / tile_h)
    shift = (row % 2) * 0.5 * tile_w * (rng.random() < 0.6)  # brick bond or a plain grid
    col = np.floor((x + shift) / tile_w)
    base = _colour(rng)
    table = np.clip(base + rng.normal(0, 0.05, (64, 64, 3)), 0, 1).astype(np.float32)
    image = table[row.astype(int) % 64, col.astype(int) % 64]
    gap = rng.uniform(0.04, 0.15)
    in_u = (x + shift) / tile_w - col
    in_v = y / tile_h - row
    grout = (in_u < gap * tile_h / tile_w) | (in_v < gap)
    image[grout] = _near(rng, base, 0.25) * 0.8
    return image


def _shapes(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    x, y = _grid(size)
    image = np.broadcast_to(_colour(rng), (*size, 3)).copy()
    for _ in range(int(rng.integers(4, 16))):
        cx, cy = rng.uniform(0, x.max()), rng.uniform(0, 1)
        rx, ry = rng.uniform(0.03, 0.35, 2)
        if rng.random() < 0.5:
            inside = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1
        else:
            inside = (np.abs(x - cx) < rx) & (np.abs(y - cy) < ry)
        image[inside] = _colour(rng)
    return gaussian_blur(image, rng.uniform(1.0, 6.0) * size[0] / 128)


def _room(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    kinds = [k for k in _KINDS if k != "room"]
    wall = _KINDS[kinds[int(rng.integers(len(kinds)))]](rng, size)
    floor = _KINDS[kinds[int(rng.integers(len(kinds)))]](rng, size) * rng.uniform(0.5, 0.9)
    _, y = _grid(size)
    horizon = rng.uniform(0.55, 0.9)
    return np.where((y >= horizon)[..., None], floor, wall).astype(np.float32)


_KINDS: Final[dict[str, Callable[[np.random.Generator, tuple[int, int]], np.ndarray]]] = {
    "noise": _noise,
    "gradient": _gradient,
    "stripes": _stripes,
    "checks": _checks,
    "tiles": _tiles,
    "shapes": _shapes,
    "room": _room,
}
assert tuple(_KINDS) == TEXTURES, "every configurable texture has a painter"


def procedural_texture(rng: np.random.Generator, size: tuple[int, int], kind: str) -> np.ndarray:
    """Paint one procedural background.

    Drawn at twice the size and box-averaged, so pattern edges are anti-aliased; a soft random
    light falloff (up to +-15%) is laid over it.

    Args:
        rng: Source of randomness (the same state gives the same texture).
        size: ``(H, W)``.
        kind: One of :data:`~posetransfer.synth.synthetic_config.TEXTURES`.

    Returns:
        ``(H, W, 3)`` float32 sRGB in ``[0, 1]``.

    Raises:
        ValueError: An unknown ``kind``.
    """
    if kind not in _KINDS:
        raise ValueError(f"unknown texture {kind!r}; choose from {', '.join(TEXTURES)}")
    big = (size[0] * _SUPERSAMPLE, size[1] * _SUPERSAMPLE)
    image = _KINDS[kind](rng, big)
    u, _ = _rotated(rng, big)
    light = 1.0 + rng.uniform(-0.15, 0.15) * (u - u.mean()) / max(float(np.ptp(u)), 1e-6) * 2
    image = np.clip(image * light[..., None], 0, 1).astype(np.float32)
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
    return F.avg_pool2d(t, _SUPERSAMPLE)[0].permute(1, 2, 0).numpy()


# ----------------------------------------------------------------------------------- plates


def list_plates(folder: str | Path) -> list[Path]:
    """The plate images of ``folder`` (:data:`PLATE_SUFFIXES`, not recursive), sorted by name.

    Raises:
        FileNotFoundError: ``folder`` is not a directory or holds no plate image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"background.plate_dir: {folder} is not a folder")
    plates = sorted(p for p in folder.iterdir() if p.suffix.lower() in PLATE_SUFFIXES)
    if not plates:
        raise FileNotFoundError(
            f"background.plate_dir: {folder} holds no {'/'.join(PLATE_SUFFIXES)} image"
        )
    return plates


def plate_crop(
    plate: Image.Image, size: tuple[int, int], rng: np.random.Generator, zoom: tuple[float, float]
) -> np.ndarray:
    """A random crop of ``plate`` at the aspect of ``size``, resampled to ``size``.

    The crop is the largest box of that aspect divided by a zoom drawn from ``zoom``, at a
    uniform place, mirrored with probability 1/2; PIL bicubic resampling (antialiased when
    shrinking).

    Args:
        plate: An RGB image.
        size: ``(H, W)`` of the result.
        rng: Source of randomness.
        zoom: ``(low, high)``, ``1 <= low <= high``.

    Returns:
        ``(H, W, 3)`` uint8.
    """
    height, width = size
    pw, ph = plate.size
    scale = rng.uniform(*zoom)
    crop_h = min(ph, pw * height / width) / scale
    crop_w = crop_h * width / height
    x0, y0 = rng.uniform(0, pw - crop_w), rng.uniform(0, ph - crop_h)
    box = (x0, y0, x0 + crop_w, y0 + crop_h)
    out = plate.resize((width, height), Image.Resampling.BICUBIC, box=box)
    array = np.asarray(out, dtype=np.uint8)
    return array[:, ::-1].copy() if rng.random() < 0.5 else array.copy()


def _read_plate(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise FormatError(path, f"unreadable plate image: {exc}") from None


class BackgroundSampler:
    """Draws each person's background as :class:`BackgroundConfig` says.

    Args:
        cfg: The background settings.
        size: ``(H, W)`` of the images.

    Raises:
        FileNotFoundError: Plates are asked for and ``cfg.plate_dir`` holds none.
    """

    def __init__(self, cfg: BackgroundConfig, size: tuple[int, int]) -> None:
        self.cfg = cfg
        self.size = (int(size[0]), int(size[1]))
        self.plates: list[Path] = []
        if cfg.mix[2] > 0:
            assert cfg.plate_dir is not None, "checked by BackgroundConfig"
            self.plates = list_plates(cfg.plate_dir)
            logger.info("%d plate images in %s", len(self.plates), cfg.plate_dir)

    def sample(self, seed: int, person: int) -> np.ndarray | None:
        """Person ``person``'s background: ``(H, W, 3)`` uint8, or None to keep its backdrop.

        Deterministic in ``(seed, person)``, the config and (for plates) the plate files.
        """
        cfg = self.cfg
        if cfg.is_default:
            return None
        rng = background_rng(seed, person)
        odds = np.asarray(cfg.mix, dtype=np.float64)
        choice = int(rng.choice(3, p=odds / odds.sum()))
        if choice == 0:
            return None
        if choice == 1:
            kind = cfg.textures[int(rng.integers(len(cfg.textures)))]
            image = procedural_texture(rng, self.size, kind)
            return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
        path = self.plates[int(rng.integers(len(self.plates)))]
        return plate_crop(_read_plate(path), self.size, rng, cfg.plate_zoom)


def composite(
    images: torch.Tensor, foreground: torch.Tensor, background: np.ndarray
) -> torch.Tensor:
    """The renders' own pixels on their silhouettes, ``background`` everywhere else.

    Args:
        images: ``(K, H, W, 3)`` uint8 renders.
        foreground: ``(K, H, W)`` bool silhouettes (the rasterizer's foreground).
        background: ``(H, W, 3)`` uint8, shared by the ``K`` images.

    Returns:
        ``(K, H, W, 3)`` uint8.

    Raises:
        ValueError: Mismatched shapes or dtypes.
    """
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"images must be (K, H, W, 3) uint8, got {tuple(images.shape)} {images.dtype}"
        )
    if foreground.shape != images.shape[:3] or foreground.dtype != torch.bool:
        raise ValueError(
            f"foreground must be {tuple(images.shape[:3])} bool, got "
            f"{tuple(foreground.shape)} {foreground.dtype}"
        )
    if background.shape != tuple(images.shape[1:]) or background.dtype != np.uint8:
        raise ValueError(
            f"background must be {tuple(images.shape[1:])} uint8, got {background.shape} "
            f"{background.dtype}"
        )
    plate = torch.from_numpy(np.ascontiguousarray(background))
    return torch.where(foreground[..., None], images, plate.expand_as(images))
