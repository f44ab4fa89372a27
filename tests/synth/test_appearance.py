"""Tests for procedural appearance (posetransfer.synth.appearance)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from posetransfer.synth.appearance import (
    Lighting,
    Outfit,
    Pattern,
    backdrop_image,
    sample_backdrop,
    sample_lighting,
    sample_outfit,
    shade,
    surface_albedo,
)
from posetransfer.synth.garments import Cut, Garment

RED, BLUE = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 1.0])


def _outfit(pattern: Pattern, period: float = 0.1) -> Outfit:
    """Every garment red with blue accents in ``pattern``; stripes across world Z."""
    count = len(Garment)
    axis = torch.zeros(count, 2, 3)
    axis[:, 0, 2] = axis[:, 1, 0] = 1.0
    return Outfit(
        cut=Cut(),
        colour=RED.expand(count, 3).clone(),
        accent=BLUE.expand(count, 3).clone(),
        pattern=torch.full((count,), int(pattern)),
        period=torch.full((count,), period),
        axis=axis,
    )


def _points(z: list[float], x: float = 0.013) -> torch.Tensor:
    return torch.tensor([[x, 0.0, v] for v in z])


def test_plain_is_the_garment_colour() -> None:
    garment = torch.full((3,), int(Garment.TOP))
    out = surface_albedo(garment, _points([0.0, 0.37, -0.9]), _outfit(Pattern.PLAIN), 0.005)
    assert torch.equal(out, RED.expand(3, 3))


def test_stripes_alternate_along_the_axis() -> None:
    # period 0.1 m: the accent band covers z in (0.025, 0.075) of each period
    garment = torch.full((4,), int(Garment.TOP))
    z = [0.0, 0.05, 0.1, 0.15]
    out = surface_albedo(garment, _points(z), _outfit(Pattern.STRIPES), 0.001)
    assert torch.allclose(out, torch.stack([RED, BLUE, RED, BLUE]))


def test_pattern_edges_are_a_one_pixel_ramp() -> None:
    # edge at z = 0.025; footprint 0.01 m: half-way through the ramp exactly on the edge
    garment = torch.full((3,), int(Garment.TOP))
    out = surface_albedo(garment, _points([0.02, 0.025, 0.03]), _outfit(Pattern.STRIPES), 0.01)
    assert torch.allclose(out[:, 2], torch.tensor([0.0, 0.5, 1.0]), atol=1e-5)


def test_patterns_finer_than_two_pixels_fade_to_their_mean() -> None:
    garment = torch.full((5,), int(Garment.TOP))
    z = torch.linspace(0, 0.3, 5).tolist()
    out = surface_albedo(garment, _points(z), _outfit(Pattern.STRIPES, period=0.02), 0.02)
    assert torch.allclose(out, torch.lerp(RED, BLUE, 0.5).expand(5, 3))


@pytest.mark.parametrize("pattern", [Pattern.CHECKS, Pattern.DOTS, Pattern.PRINT])
def test_patterns_mix_both_colours(pattern: Pattern) -> None:
    g = torch.Generator().manual_seed(0)
    points = torch.rand(4000, 3, generator=g) * 0.5
    garment = torch.full((len(points),), int(Garment.BOTTOM))
    out = surface_albedo(garment, points, _outfit(pattern, period=0.08), 0.002)
    blue = out[:, 2]
    assert (blue < 0.05).float().mean() > 0.1 and (blue > 0.95).float().mean() > 0.02
    assert torch.allclose(out.sum(-1), torch.ones(len(out)))  # a mix of the two colours


def test_albedo_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="points must be"):
        surface_albedo(
            torch.zeros(3, dtype=torch.long), torch.zeros(3, 2), _outfit(Pattern.PLAIN), 0.01
        )


def test_two_sided_lambert() -> None:
    light = Lighting((0.0, 0.0, -1.0), ambient=0.5, diffuse=0.4)
    albedo = torch.full((4, 3), 0.8)
    normals = torch.tensor([[0, 0, -2.0], [0, 0, 1.0], [1.0, 0, 0], [0, 1.0, -1.0]])
    out = shade(albedo, normals, light)
    expected = 0.8 * (0.5 + 0.4 * torch.tensor([1.0, 1.0, 0.0, 2**-0.5]))
    assert torch.allclose(out[:, 0], expected)


def test_sampling_is_deterministic_and_in_range() -> None:
    def draw(seed: int) -> tuple:
        g = torch.Generator().manual_seed(seed)
        return sample_outfit(g, 0.3), sample_lighting(g), sample_backdrop(g)

    (o1, l1, b1), (o2, l2, b2) = draw(4), draw(4)
    assert o1.cut == o2.cut and l1 == l2
    for f in ("colour", "accent", "pattern", "period", "axis"):
        assert torch.equal(getattr(o1, f), getattr(o2, f))
    assert torch.equal(b1.colour, b2.colour)
    for seed in range(30):
        outfit, light, backdrop = draw(seed)
        assert outfit.colour.min() >= 0 and outfit.colour.max() <= 1
        assert abs(sum(c * c for c in light.direction) - 1) < 1e-6
        assert light.direction[2] < 0  # from the camera side
        assert backdrop.colour.min() > 0.8  # light backgrounds


def test_dresses_share_one_fabric_and_gender_shifts_long_hair() -> None:
    long_hair = {0.0: 0, 1.0: 0}
    dresses = 0
    for seed in range(200):
        for gender in long_hair:
            outfit = sample_outfit(torch.Generator().manual_seed(seed), gender)
            long_hair[gender] += outfit.cut.hair_length < 1
            if outfit.cut.waist < 0:
                dresses += 1
                assert gender == 0.0
                top, bottom = int(Garment.TOP), int(Garment.BOTTOM)
                assert torch.equal(outfit.colour[top], outfit.colour[bottom])
                assert outfit.pattern[top] == outfit.pattern[bottom]
    assert dresses > 20
    assert long_hair[0.0] > 2 * long_hair[1.0]


def test_backdrops() -> None:
    plain = sample_backdrop(torch.Generator().manual_seed(1))
    image = backdrop_image(plain, (32, 20))
    assert image.shape == (32, 20, 3) and torch.equal(image, plain.colour.expand(32, 20, 3))
    textured = dataclasses.replace(plain, textured=True)
    image = backdrop_image(textured, (64, 40))
    assert image.std() > 0.01
    row = int(textured.floor * 64 + 0.5)  # first floor row (pixel centres at y + 0.5)
    step = (image[row - 1] - image[row]).mean()
    above = (image[row - 2] - image[row - 1]).abs().mean()
    assert step > 0.05 and step > 5 * above  # a darker floor starts at ``floor``
    assert torch.equal(image, backdrop_image(textured, (64, 40)))
