"""Tests for posetransfer.render.correspondence: flow and visibility between two renders."""

from __future__ import annotations

import math

import pytest
import torch

from posetransfer.conventions import Visibility
from posetransfer.ops.warp import warp
from posetransfer.render.correspondence import (
    FlowField,
    correspondence,
    correspondence_reference,
    depth_tolerance_pixels,
    render_pair,
)
from posetransfer.render.rasterize import Fragments, rasterize

VISIBLE, INVISIBLE, BACKGROUND = (int(v) for v in Visibility)


def _grid_mesh(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit square split into ``(n-1)^2`` quads: ``(n*n, 2)`` surface coords ``(s, t)``, faces."""
    s, t = torch.meshgrid(torch.linspace(0, 1, n), torch.linspace(0, 1, n), indexing="xy")
    st = torch.stack([s.reshape(-1), t.reshape(-1)], -1).double()
    idx = torch.arange(n * n).view(n, n)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    faces = torch.cat([torch.stack([a, b, d], -1), torch.stack([a, d, c], -1)]).view(-1, 3)
    return st, faces


def _place(st: torch.Tensor, matrix: list[list[float]], offset: list[float]) -> torch.Tensor:
    """Affine map of surface coords to image space ``(1, V, 3)``, depth a tilted plane."""
    xy = st @ torch.tensor(matrix, dtype=torch.float64).T + torch.tensor(offset).double()
    depth = 10.0 + 2.0 * st[:, :1] - 1.0 * st[:, 1:]
    return torch.cat([xy, depth], -1)[None]


def _quad(x0: float, y0: float, x1: float, y1: float, z: float) -> list[list[float]]:
    return [[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]]


QUAD_FACES = [[0, 1, 2], [0, 2, 3]]


def _pair(
    verts_src: torch.Tensor, verts_tgt: torch.Tensor, faces: torch.Tensor, size: tuple[int, int]
) -> tuple[Fragments, Fragments]:
    return rasterize(verts_tgt, faces, size), rasterize(verts_src, faces, size)


def test_identical_views_give_zero_flow_and_full_visibility() -> None:
    st, faces = _grid_mesh(6)
    verts = _place(st, [[14.0, 3.0], [-2.0, 12.0]], [3.3, 4.1]).float()
    field = render_pair(verts, verts, faces, (20, 24), depth_tolerance=0.0)
    fg = rasterize(verts, faces, (20, 24)).foreground
    assert field.flow.shape == (1, 2, 20, 24) and field.flow.dtype == torch.float32
    assert field.visibility.dtype == torch.long
    assert fg.sum() > 100
    assert field.flow.abs().max() < 1e-5
    assert torch.equal(field.visibility, torch.where(fg, VISIBLE, BACKGROUND))


def test_translated_source_gives_constant_flow() -> None:
    st, faces = _grid_mesh(5)
    verts_tgt = _place(st, [[9.0, 2.5], [-1.5, 8.0]], [5.2, 6.7])
    verts_src = verts_tgt + torch.tensor([3.0, -2.0, 0.0], dtype=torch.float64)
    field = render_pair(verts_src, verts_tgt, faces, (20, 22), depth_tolerance=1e-6)
    fg = rasterize(verts_tgt, faces, (20, 22)).foreground[0]
    torch.testing.assert_close(field.flow[0, 0][fg], torch.full((int(fg.sum()),), 3.0))
    torch.testing.assert_close(field.flow[0, 1][fg], torch.full((int(fg.sum()),), -2.0))
    assert torch.all(field.flow[0][:, ~fg] == 0)
    assert torch.equal(field.visibility[0], torch.where(fg, VISIBLE, BACKGROUND))


@pytest.mark.parametrize(
    ("occluder_depth", "tolerance", "hidden"),
    [(5.0, 0.5, True), (9.9, 0.5, False), (9.9, 0.05, True), (20.0, 0.0, False)],
)
def test_occluder_in_the_source_hides_the_point(
    occluder_depth: float, tolerance: float, hidden: bool
) -> None:
    # body quad [2, 14]^2 at depth 10 in both views; occluder quad [4, 8]^2 in front of it only in
    # the source (behind it in the target). Pixels with centre in [4, 8]^2: rows/cols 4..7.
    body = _quad(2.0, 2.0, 14.0, 14.0, 10.0)
    faces = torch.tensor(QUAD_FACES + [[4 + i for i in f] for f in QUAD_FACES])
    verts_src = torch.tensor([body + _quad(4.0, 4.0, 8.0, 8.0, occluder_depth)])
    verts_tgt = torch.tensor([body + _quad(4.0, 4.0, 8.0, 8.0, 30.0)])
    field = render_pair(verts_src, verts_tgt, faces, (16, 16), depth_tolerance=tolerance)
    expected = torch.full((16, 16), BACKGROUND)
    expected[2:14, 2:14] = VISIBLE
    if hidden:
        expected[4:8, 4:8] = INVISIBLE
    assert torch.equal(field.visibility[0], expected)
    assert torch.all(field.flow.abs() < 1e-6)


def test_points_mapping_outside_the_source_are_invisible() -> None:
    # source shifted left by 2.7 px: target centre x = j + 0.5 maps to j - 2.2, whose floor is
    # < 0 for j <= 2 (j = 2 maps to -0.2: truncation towards zero would wrongly keep it)
    # and right by 10.6 px: j + 11.1 >= 16 for j >= 5
    body = _quad(0.0, 0.0, 16.0, 16.0, 10.0)
    faces = torch.tensor(QUAD_FACES)
    verts_tgt = torch.tensor([body, body])
    verts_src = verts_tgt + torch.tensor([[[-2.7, 0.0, 0.0]], [[10.6, 0.0, 0.0]]])
    field = render_pair(verts_src, verts_tgt, faces, (16, 16), depth_tolerance=0.1)
    cols = torch.arange(16).expand(16, 16)
    assert torch.equal(field.visibility[0], torch.where(cols <= 2, INVISIBLE, VISIBLE))
    assert torch.equal(field.visibility[1], torch.where(cols >= 5, INVISIBLE, VISIBLE))
    torch.testing.assert_close(field.flow[1, 0], torch.full((16, 16), 10.6))


@pytest.mark.parametrize("seed", range(4))
def test_matches_reference_on_random_meshes(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    scale = torch.tensor([26.0, 30.0, 10.0], dtype=torch.float64)
    verts_tgt = torch.rand(2, 40, 3, generator=gen, dtype=torch.float64) * scale - 3.0
    verts_src = torch.rand(2, 40, 3, generator=gen, dtype=torch.float64) * scale - 3.0
    faces = torch.randint(0, 40, (16, 3), generator=gen)
    frag_tgt, frag_src = _pair(verts_src, verts_tgt, faces, (24, 20))
    fast = correspondence(frag_tgt, verts_src, faces, frag_src, depth_tolerance=0.5)
    ref = correspondence_reference(frag_tgt, verts_src, faces, frag_src, depth_tolerance=0.5)
    counts = torch.bincount(ref.visibility.view(-1), minlength=3)
    assert counts[VISIBLE] > 20 and counts[INVISIBLE] > 20  # both classes are exercised
    assert torch.equal(fast.visibility, ref.visibility)
    torch.testing.assert_close(fast.flow, ref.flow, atol=1e-5, rtol=0)


def _texture(st: torch.Tensor) -> torch.Tensor:
    """Smooth scalar texture of surface coordinates, changing by up to ~0.25 per pixel."""
    return torch.sin(6.0 * st[..., 0]) * torch.cos(5.0 * st[..., 1]) + st[..., 0]


def _shade(frag: Fragments, st: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Image ``(1, 1, H, W)`` of the texture at the surface point under each pixel centre."""
    image = torch.zeros(frag.face_ids.shape, dtype=torch.float64)
    fg = frag.foreground
    point = (frag.bary[fg][..., None] * st[faces[frag.face_ids[fg]]]).sum(1)
    image[fg] = _texture(point)
    return image[:, None]


def test_warping_the_source_by_the_flow_reproduces_the_target() -> None:
    st, faces = _grid_mesh(9)
    verts_src = _place(st, [[26.0, 7.0], [-6.0, 24.0]], [5.2, 8.3])
    verts_tgt = _place(st, [[22.0, -9.0], [11.0, 27.0]], [12.1, 1.6])
    frag_tgt, frag_src = _pair(verts_src, verts_tgt, faces, (40, 42))
    # the depth plane changes by < 0.1 per pixel: 0.5 absorbs the z-buffer's pixel offset
    field = correspondence(frag_tgt, verts_src, faces, frag_src, depth_tolerance=0.5)
    assert torch.equal(field.visibility, torch.where(frag_tgt.foreground, VISIBLE, BACKGROUND))
    source, target = _shade(frag_src, st, faces), _shade(frag_tgt, st, faces)
    warped = warp(source.float(), field.flow)[0, 0]
    # compare where the bilinear footprint lies on the source body (no background blending)
    inner = warp(frag_src.foreground[:, None].float(), field.flow)[0, 0] > 1 - 1e-6
    check = (field.visibility[0] == VISIBLE) & inner
    assert check.sum() > 500
    error = (warped.double() - target[0, 0])[check].abs()
    assert error.max() < 0.02, error.max()
    # the same warp with a flow off by half a pixel is visibly wrong
    shifted = warp(source.float(), field.flow + 0.5)[0, 0]
    assert (shifted.double() - target[0, 0])[check].abs().mean() > 5 * error.mean()


def test_render_pair_equals_rasterize_then_correspondence() -> None:
    st, faces = _grid_mesh(5)
    verts_tgt = torch.cat([_place(st, [[12.0, 1.0], [2.0, 11.0]], [2.0, 3.0])] * 2)
    verts_src = torch.cat(
        [_place(st, [[8.0, -3.0], [4.0, 9.0]], [5.0, 1.0]), _place(st, [[5.0, 0], [0, 5]], [1, 1])]
    )
    frag_tgt, frag_src = _pair(verts_src, verts_tgt, faces, (18, 17))
    direct = correspondence(frag_tgt, verts_src, faces, frag_src, depth_tolerance=0.2)
    paired = render_pair(verts_src, verts_tgt, faces, (18, 17), 0.2, chunk_faces=3)
    assert torch.equal(direct.visibility, paired.visibility)
    torch.testing.assert_close(direct.flow, paired.flow)


def test_depth_tolerance_pixels() -> None:
    assert depth_tolerance_pixels(120.0) == pytest.approx(1.8)
    assert depth_tolerance_pixels(100.0, tolerance_m=0.02) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="pixels_per_metre"):
        depth_tolerance_pixels(0.0)
    with pytest.raises(ValueError, match="tolerance_m"):
        depth_tolerance_pixels(100.0, tolerance_m=-1.0)


def test_bad_inputs_raise_value_error_naming_the_argument() -> None:
    faces = torch.tensor(QUAD_FACES)
    verts = torch.tensor([_quad(0.0, 0.0, 6.0, 6.0, 1.0)])
    frag = rasterize(verts, faces, (8, 8))
    with pytest.raises(ValueError, match="depth_tolerance"):
        correspondence(frag, verts, faces, frag, depth_tolerance=-1.0)
    with pytest.raises(ValueError, match="depth_tolerance"):
        correspondence(frag, verts, faces, frag, depth_tolerance=math.nan)
    with pytest.raises(ValueError, match="verts_src"):
        correspondence(frag, verts[0], faces, frag, depth_tolerance=0.1)
    with pytest.raises(ValueError, match="batch"):
        correspondence(frag, torch.cat([verts, verts]), faces, frag, depth_tolerance=0.1)
    with pytest.raises(ValueError, match="frag_tgt"):
        correspondence(frag, verts, faces[:1], frag, depth_tolerance=0.1)
    with pytest.raises(ValueError, match="frag_src"):
        correspondence(frag, verts, faces, frag.face_ids, depth_tolerance=0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="verts_tgt"):
        render_pair(verts, verts[:, :3], faces, (8, 8), 0.1)
    with pytest.raises(ValueError, match="visibility"):
        FlowField(flow=torch.zeros(1, 2, 4, 4), visibility=torch.zeros(1, 4, 5))
