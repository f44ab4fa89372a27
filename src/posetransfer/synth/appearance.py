"""Procedural appearance of synthetic people: clothing, skin, hair, lighting and backgrounds.

Everything here is a pure function of per-pixel *surface attributes*, never of the pose:

- the garment at the surface point (:mod:`posetransfer.synth.garments`);
- the body point's **rest-pose** position (metres, Anny's frame: Z up, the body facing -Y), so a
  stripe or a dot stays on the same body point whatever the pose and the ground-truth flow maps
  it exactly;
- the pixel footprint on the body (metres per pixel), used to anti-alias patterns analytically
  (each pattern edge is a one-pixel linear ramp, and patterns finer than about two pixels fade
  to their mean colour); this is the only way the view enters the albedo, and it only changes
  colours within a pixel of a pattern edge;
- for shading only, the surface normal in camera space.

Random choices (colours, patterns, garment cuts, light, backdrop) are drawn by the ``sample_*``
functions from a :class:`torch.Generator`, so a seeded generator gives the same person.
Colours are sRGB floats in ``[0, 1]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import torch
from torch import Tensor

from posetransfer.synth.garments import Cut, Garment

__all__ = [
    "Backdrop",
    "Lighting",
    "Outfit",
    "Pattern",
    "backdrop_image",
    "sample_backdrop",
    "sample_lighting",
    "sample_outfit",
    "shade",
    "surface_albedo",
]

NUM_GARMENTS = len(Garment)


class Pattern(IntEnum):
    """Fabric pattern of a garment."""

    PLAIN = 0
    STRIPES = 1
    CHECKS = 2
    DOTS = 3
    PRINT = 4


def _rgb(*values: tuple[int, int, int]) -> Tensor:
    return torch.tensor(values, dtype=torch.float32) / 255.0


#: Skin tones from light to dark; a person's tone interpolates two neighbours.
SKIN_TONES = _rgb(
    (250, 221, 200), (236, 196, 170), (222, 172, 140), (196, 138, 104),
    (160, 104, 76), (120, 78, 56), (86, 57, 42),
)  # fmt: skip
#: Hair colours: black, dark brown, brown, light brown, blond, auburn, grey.
HAIR_COLOURS = _rgb(
    (28, 24, 22), (52, 36, 28), (88, 60, 40), (132, 96, 62), (196, 164, 108), (132, 62, 36),
    (168, 166, 160),
)  # fmt: skip
#: Neutral fabrics: white, off-white, light grey, grey, charcoal, black, beige, navy, denim.
NEUTRALS = _rgb(
    (238, 238, 234), (226, 220, 206), (186, 186, 188), (128, 128, 132), (64, 64, 68),
    (28, 28, 30), (206, 188, 156), (36, 46, 82), (72, 98, 140),
)  # fmt: skip
DENIM = _rgb((58, 82, 124), (84, 110, 150), (40, 50, 72), (120, 140, 170))
SHOES = _rgb((24, 24, 26), (236, 236, 232), (92, 60, 40), (140, 104, 70), (96, 96, 100))

#: Three fixed unit directions of the interference "print" pattern (not axis aligned).
_PRINT_AXES = torch.nn.functional.normalize(
    torch.tensor([[0.9, 0.3, 0.3], [-0.2, 0.8, 0.55], [0.35, -0.45, 0.82]]), dim=-1
)


@dataclass(frozen=True)
class Outfit:
    """A person's look: garment cut plus one fabric per :class:`Garment` (tables indexed by it).

    Attributes:
        cut: Where the garments start and end on the body.
        colour: ``(G, 3)`` base colour of each garment (skin tone for SKIN, hair colour for HAIR).
        accent: ``(G, 3)`` second colour of the pattern.
        pattern: ``(G,)`` long :class:`Pattern`.
        period: ``(G,)`` pattern period in metres.
        axis: ``(G, 2, 3)`` unit directions: stripes run across ``axis[:, 0]``; checks also
            across ``axis[:, 1]``.
    """

    cut: Cut
    colour: Tensor
    accent: Tensor
    pattern: Tensor
    period: Tensor
    axis: Tensor


@dataclass(frozen=True)
class Lighting:
    """Ambient plus one directional light, two-sided Lambert.

    Attributes:
        direction: Unit vector towards the light in camera space (x right, y down, z away from
            the camera), e.g. ``(-0.3, -0.5, -0.8)``: from the upper left, in front.
        ambient: Ambient term.
        diffuse: Weight of the directional term.
    """

    direction: tuple[float, float, float]
    ambient: float
    diffuse: float


@dataclass(frozen=True)
class Backdrop:
    """Background of a person's images.

    Attributes:
        colour: ``(3,)`` main colour (light).
        accent: ``(3,)`` second colour (gradient end and texture).
        textured: Plain colour when False; otherwise a vertical gradient, soft blotches and a
            floor below ``floor`` (fraction of the image height).
        waves: ``(3, 3)`` frequencies (x, y in cycles per image) and phase of three blotch
            waves.
        floor: Image-height fraction where the floor starts.
    """

    colour: Tensor
    accent: Tensor
    textured: bool
    waves: Tensor
    floor: float


# ------------------------------------------------------------------------------- sampling


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=gen).item()


def _choice(gen: torch.Generator, weights: list[float]) -> int:
    return int(torch.multinomial(torch.tensor(weights), 1, generator=gen).item())


def _hsv(gen: torch.Generator, sat: tuple[float, float], val: tuple[float, float]) -> Tensor:
    h, s, v = torch.rand((), generator=gen).item(), _uniform(gen, *sat), _uniform(gen, *val)
    k = (torch.tensor([5.0, 3.0, 1.0]) + h * 6) % 6
    return v - v * s * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def _fabric_colour(gen: torch.Generator, denim: float = 0.0) -> Tensor:
    kind = _choice(gen, [denim, 0.45, 0.55 - denim / 2])
    if kind == 0:
        return DENIM[_choice(gen, [1.0] * len(DENIM))]
    if kind == 1:
        return NEUTRALS[_choice(gen, [1.0] * len(NEUTRALS))]
    return _hsv(gen, (0.25, 0.85), (0.3, 0.95))


def _palette_mix(gen: torch.Generator, palette: Tensor) -> Tensor:
    pos = _uniform(gen, 0.0, len(palette) - 1.0)
    k = min(int(pos), len(palette) - 2)
    return torch.lerp(palette[k], palette[k + 1], pos - k)


def _sample_cut(gen: torch.Generator, feminine: float) -> tuple[Cut, bool]:
    dress = torch.rand((), generator=gen).item() < 0.3 * feminine
    sleeve = [-0.15, _uniform(gen, 0.25, 0.45), _uniform(gen, 0.65, 0.8), 1.0][
        _choice(gen, [0.15, 0.4, 0.1, 0.35])
    ]
    hem = [1.0, _uniform(gen, 0.7, 0.8), _uniform(gen, 0.4, 0.55), _uniform(gen, 0.15, 0.3)][
        _choice(gen, [0.5, 0.1, 0.2, 0.2])
    ]
    if dress:
        hem = _uniform(gen, 0.2, 0.6)
    v_neck = torch.rand((), generator=gen).item() < 0.3
    long_hair = torch.rand((), generator=gen).item() < 0.15 + 0.7 * feminine
    bald = not long_hair and torch.rand((), generator=gen).item() < 0.05
    cut = Cut(
        sleeve=sleeve,
        hem=hem,
        waist=-1.0 if dress else _uniform(gen, 0.2, 0.45),
        neckline=_uniform(gen, 1.0, 1.1),
        v_depth=_uniform(gen, 0.08, 0.2) if v_neck else 0.0,
        hair_front=2.0 if bald else _uniform(gen, 0.55, 0.75),
        hair_back=2.0 if bald else (-1.0 if long_hair else _uniform(gen, 0.05, 0.3)),
        hair_length=_uniform(gen, 0.55, 0.9) if long_hair else 2.0,
    )
    return cut, dress


def sample_outfit(generator: torch.Generator, gender: float) -> Outfit:
    """Draw a random outfit, skin tone and hair for one person.

    Args:
        generator: Source of randomness.
        gender: Anny's gender phenotype in ``[0, 1]`` (0 female, 1 male); it shifts the odds of
            dresses and long hair.

    Returns:
        The outfit.
    """
    gen = generator
    feminine = 1.0 - min(max(float(gender), 0.0), 1.0)
    cut, dress = _sample_cut(gen, feminine)
    colour = torch.zeros(NUM_GARMENTS, 3)
    accent = torch.zeros(NUM_GARMENTS, 3)
    pattern = torch.zeros(NUM_GARMENTS, dtype=torch.long)
    period = torch.ones(NUM_GARMENTS)
    axis = torch.zeros(NUM_GARMENTS, 2, 3)
    axis[:, 0, 2] = axis[:, 1, 0] = 1.0
    colour[Garment.SKIN] = _palette_mix(gen, SKIN_TONES)
    colour[Garment.HAIR] = _palette_mix(gen, HAIR_COLOURS)
    if (colour[Garment.HAIR] - colour[Garment.SKIN]).abs().max() < 0.2:  # keep hair visible
        colour[Garment.HAIR] *= 0.6
    colour[Garment.SHOES] = SHOES[_choice(gen, [1.0] * len(SHOES))]
    for garment, weights, denim in (
        (Garment.TOP, [0.45, 0.2, 0.15, 0.1, 0.1], 0.05),
        (Garment.BOTTOM, [0.75, 0.05, 0.1, 0.0, 0.1], 0.4),
    ):
        colour[garment] = _fabric_colour(gen, denim)
        accent[garment] = _fabric_colour(gen)
        pattern[garment] = _choice(gen, weights)
        period[garment] = _uniform(gen, 0.035, 0.11)
        if torch.rand((), generator=gen).item() < 0.3:  # vertical stripes / rotated checks
            axis[garment] = axis[garment].flip(0)
    if dress:
        for table in (colour, accent, pattern, period, axis):
            table[Garment.BOTTOM] = table[Garment.TOP]
    accent[Garment.SKIN], accent[Garment.HAIR] = colour[Garment.SKIN], colour[Garment.HAIR]
    accent[Garment.SHOES] = colour[Garment.SHOES]
    return Outfit(cut, colour, accent, pattern, period, axis)


def sample_lighting(generator: torch.Generator) -> Lighting:
    """A light from the front, above and to one side, with random strength and ambient."""
    x = _uniform(generator, -0.6, 0.6)
    y = _uniform(generator, -0.8, -0.3)
    norm = math.sqrt(x * x + y * y + 1.0)
    ambient = _uniform(generator, 0.45, 0.6)
    return Lighting((x / norm, y / norm, -1.0 / norm), ambient, 1.05 - ambient)


def sample_backdrop(generator: torch.Generator, textured: bool = False) -> Backdrop:
    """A light, low-saturation background (plain, or textured when asked)."""
    gen = generator
    colour = _hsv(gen, (0.0, 0.06), (0.88, 1.0))
    accent = _hsv(gen, (0.0, 0.15), (0.7, 0.9))
    waves = torch.zeros(3, 3)
    waves[:, :2] = 0.5 + 2.5 * torch.rand(3, 2, generator=gen)
    waves[:, 2] = 2 * math.pi * torch.rand(3, generator=gen)
    return Backdrop(colour, accent, textured, waves, _uniform(gen, 0.82, 0.95))


# ------------------------------------------------------------------------------ evaluation


def _antialiased(edge: Tensor, footprint: Tensor, mean: float) -> Tensor:
    """Coverage from a signed distance to a pattern edge (in periods, > 0 inside).

    A one-pixel linear ramp across the edge; patterns finer than ~2 pixels fade to ``mean``.
    """
    coverage = (0.5 + edge / footprint).clamp(0, 1)
    fade = (2 * footprint - 0.5).clamp(0, 1)
    return torch.lerp(coverage, torch.full_like(coverage, mean), fade)


def _stripes(u: Tensor, footprint: Tensor) -> Tensor:
    return _antialiased(0.25 - (u - u.floor() - 0.5).abs(), footprint, 0.5)


def surface_albedo(
    garment: Tensor, points: Tensor, outfit: Outfit, footprint: Tensor | float
) -> Tensor:
    """Albedo of body points.

    Args:
        garment: ``(N,)`` long :class:`Garment` labels.
        points: ``(N, 3)`` rest-pose positions in metres.
        outfit: The person's outfit.
        footprint: Pixel size on the body in metres (scalar or ``(N,)``): ``1 / pixels_per_metre``.

    Returns:
        ``(N, 3)`` sRGB albedo in ``[0, 1]``.
    """
    if points.ndim != 2 or points.shape[-1] != 3 or garment.shape != points.shape[:1]:
        raise ValueError(
            f"points must be (N, 3) and garment (N,), got {tuple(points.shape)} and "
            f"{tuple(garment.shape)}"
        )
    period = outfit.period[garment]
    q = points / period[:, None]
    fp = (torch.as_tensor(footprint, dtype=points.dtype) / period).clamp(min=1e-4)
    axis = outfit.axis[garment]
    across = _stripes((q * axis[:, 0]).sum(-1), fp)
    along = _stripes((q * axis[:, 1]).sum(-1), fp)
    dots = _antialiased(0.22 - (q - q.round()).norm(dim=-1), fp, 0.15)
    wave = torch.sin(2 * math.pi * q @ _PRINT_AXES.T.to(q.dtype)).sum(-1)  # in [-3, 3]
    prints = _antialiased((wave - 0.9) / (2 * math.pi * 1.7), fp, 0.3)
    mix = torch.stack(
        [torch.zeros_like(across), across, 0.5 * (across + along), dots, prints], -1
    ).gather(1, outfit.pattern[garment][:, None])
    return torch.lerp(outfit.colour[garment], outfit.accent[garment], mix)


def shade(albedo: Tensor, normals: Tensor, lighting: Lighting) -> Tensor:
    """Two-sided Lambert shading (winding-agnostic): ``albedo * (ambient + diffuse |n.l|)``.

    Args:
        albedo: ``(N, 3)`` colours.
        normals: ``(N, 3)`` surface normals in camera space (need not be unit length).
        lighting: The light.

    Returns:
        ``(N, 3)`` shaded colours clipped to ``[0, 1]``.
    """
    light = torch.tensor(lighting.direction, dtype=normals.dtype)
    cosine = (torch.nn.functional.normalize(normals, dim=-1) @ light).abs()
    return (albedo * (lighting.ambient + lighting.diffuse * cosine)[:, None]).clamp(0, 1)


def backdrop_image(backdrop: Backdrop, size: tuple[int, int]) -> Tensor:
    """Render a background.

    Args:
        backdrop: From :func:`sample_backdrop`.
        size: ``(H, W)``.

    Returns:
        ``(H, W, 3)`` sRGB floats in ``[0, 1]``.
    """
    height, width = size
    image = backdrop.colour.expand(height, width, 3).clone()
    if not backdrop.textured:
        return image
    y = (torch.arange(height, dtype=torch.float32)[:, None] + 0.5) / height
    x = (torch.arange(width, dtype=torch.float32)[None, :] + 0.5) / width
    blotch = sum(
        torch.sin(2 * math.pi * (fx * x + fy * y) + phase)
        for fx, fy, phase in backdrop.waves.tolist()
    )
    weight = (0.35 * y + 0.08 * blotch).clamp(0, 1)
    image = torch.lerp(image, backdrop.accent.expand_as(image), weight[..., None])
    floor = (y >= backdrop.floor).expand(height, width)
    image[floor] = image[floor] * 0.85
    return image
