"""Tests for synthetic people: sampling, framing, rendering (posetransfer.synth.people)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from posetransfer.conventions import Keypoint, Visibility
from posetransfer.synth.people import (
    frame_cameras,
    image_stem,
    person_seed,
    render_person,
    sample_person,
    view_of_yaw,
)

SIZE = (96, 64)


def test_person_seed_and_names() -> None:
    assert person_seed(0, 7) == 7 and person_seed(3, 5) == 3 * 1_000_003 + 5
    deg = math.radians
    views = [view_of_yaw(deg(a)) for a in (0, 44, -44, 46, -90, 134, 136, 180, -170, 370)]
    assert views == ["front"] * 3 + ["side"] * 3 + ["back"] * 3 + ["front"]
    assert image_stem(12, 2, deg(100)) == "synthPERSONid00000012_3side"


def test_sample_person_is_deterministic_and_the_look_ignores_pose_count() -> None:
    a, b = sample_person(5, seed=1, poses=3), sample_person(5, seed=1, poses=3)
    assert torch.equal(a.params.body_pose, b.params.body_pose) and torch.equal(a.yaw, b.yaw)
    fewer = sample_person(5, seed=1, poses=2)
    assert fewer.outfit.cut == a.outfit.cut and torch.equal(fewer.outfit.colour, a.outfit.colour)
    assert torch.equal(fewer.params.phenotype[0], a.params.phenotype[0])
    other = sample_person(6, seed=1, poses=3)
    assert not torch.equal(other.params.phenotype, a.params.phenotype)
    assert (a.params.phenotype == a.params.phenotype[:1]).all()  # one body shape per person


@pytest.mark.parametrize(("mix", "low", "high"), [((1, 0, 0), 0, 45), ((0, 0, 1), 135, 180)])
def test_view_mix_controls_yaw(mix: tuple, low: float, high: float) -> None:
    for index in range(5):
        spec = sample_person(index, seed=0, poses=4, view_mix=mix)
        yaw = spec.yaw.abs().rad2deg()
        assert ((yaw >= low) & (yaw <= high)).all()
        assert spec.params.global_orient.shape == (4, 3)


def test_frame_cameras_fit_the_body_in_the_image(body_model) -> None:
    spec = sample_person(0, seed=2, poses=4)
    world = body_model(spec.params)
    cams = frame_cameras(world, SIZE, spec.framing)
    scale = cams[:, 0].exp()
    x = scale[:, None] * world[..., 0] + cams[:, 1:2]
    y = -scale[:, None] * world[..., 2] + cams[:, 2:3]
    assert (x.min(1).values >= 0).all() and (x.max(1).values <= SIZE[1]).all()
    assert (y.min(1).values >= 0).all() and (y.max(1).values <= SIZE[0]).all()
    height = y.max(1).values - y.min(1).values
    width = x.max(1).values - x.min(1).values
    target = spec.framing[:, 0] * SIZE[0]
    fits = width < 0.96 * SIZE[1] - 1e-3
    assert torch.allclose(height[fits], target[fits], rtol=1e-4)
    assert (height <= target + 1e-3).all()


@pytest.fixture(scope="module")
def rendered(body_model):
    spec = sample_person(3, seed=0, poses=3)
    return spec, render_person(body_model, spec, SIZE, lit=False)


def test_render_shapes_and_background(rendered) -> None:
    spec, out = rendered
    assert out.images.shape == (3, *SIZE, 3) and out.images.dtype == torch.uint8
    assert out.pairs == [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]
    assert out.flow.flow.shape == (6, 2, *SIZE)
    background = (spec.backdrop.colour * 255).round().to(torch.uint8)
    assert (out.images[~out.foreground] == background).all()
    assert (out.images[out.foreground] != background).any(-1).float().mean() > 0.95
    for k, (_, tgt) in enumerate(out.pairs):
        bg = out.flow.visibility[k] == Visibility.BACKGROUND
        assert torch.equal(bg, ~out.foreground[tgt])


def test_lighting_changes_only_the_body(body_model, rendered) -> None:
    spec, unlit = rendered
    lit = render_person(body_model, spec, SIZE, lit=True)
    assert torch.equal(lit.foreground, unlit.foreground)
    assert torch.equal(lit.images[~lit.foreground], unlit.images[~unlit.foreground])
    diff = (lit.images.float() - unlit.images.float()).abs().amax(-1)[lit.foreground]
    assert (diff > 3).float().mean() > 0.5
    assert torch.equal(lit.flow.flow, unlit.flow.flow)


def test_flow_maps_each_pixel_to_the_same_surface_point(body_model, rendered) -> None:
    """Texture is a function of the surface point: at VISIBLE target pixels whose source
    location is the centre of a source pixel of the same colour region, colours agree."""
    _, out = rendered
    hits = total = 0
    for k, (src, tgt) in enumerate(out.pairs):
        vis = out.flow.visibility[k] == Visibility.VISIBLE
        i, j = torch.nonzero(vis, as_tuple=True)
        x = j + 0.5 + out.flow.flow[k, 0, i, j]
        y = i + 0.5 + out.flow.flow[k, 1, i, j]
        near = ((x - x.floor() - 0.5).abs() < 0.15) & ((y - y.floor() - 0.5).abs() < 0.15)
        sx, sy = x.floor().long()[near], y.floor().long()[near]
        a = out.images[tgt, i[near], j[near]].int()
        b = out.images[src, sy, sx].int()
        hits += int(((a - b).abs().amax(-1) <= 12).sum())
        total += int(near.sum())
    assert total > 100 and hits / total > 0.85


def test_keypoints_on_the_body_and_hidden_face_points(body_model) -> None:
    front = sample_person(1, seed=0, poses=3, view_mix=(1, 0, 0))
    back = sample_person(1, seed=0, poses=3, view_mix=(0, 0, 1))
    for spec, nose_valid in ((front, True), (back, False)):
        out = render_person(body_model, spec, SIZE, lit=False)
        for pose, mask in zip(out.poses, out.foreground.numpy(), strict=True):
            near = np.zeros_like(mask)  # foreground dilated by one pixel
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    near |= np.roll(mask, (di, dj), axis=(0, 1))
            cols, rows = np.floor(pose.xy[pose.valid]).astype(int).T
            assert near[rows, cols].all()
            assert pose.valid[Keypoint.NOSE] == nose_valid
            assert pose.valid[[Keypoint.NECK, Keypoint.R_ANKLE, Keypoint.L_WRIST]].all()
