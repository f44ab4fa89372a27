"""Tests for posetransfer.render.rasterize: hand-computed cases and the per-pixel reference."""

from __future__ import annotations

import importlib
import math

import pytest
import torch

from posetransfer.render.raster_reference import rasterize_reference
from posetransfer.render.rasterize import Fragments, barycentric, rasterize


def _mesh(*tris: tuple[tuple[float, float, float], ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Unshared triangles -> ``(1, 3T, 3)`` float64 verts and ``(T, 3)`` faces."""
    verts = torch.tensor([v for tri in tris for v in tri], dtype=torch.float64)[None]
    return verts, torch.arange(3 * len(tris)).view(-1, 3)


def _random_mesh(seed: int, batch: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Random triangles over a 24 x 20 (H x W) image, partly outside it, plus degenerate faces."""
    gen = torch.Generator().manual_seed(seed)
    verts = torch.rand(batch, 60, 3, generator=gen, dtype=torch.float64)
    verts = verts * torch.tensor([28.0, 32.0, 10.0], dtype=torch.float64) - 4.0
    faces = torch.randint(0, 60, (20, 3), generator=gen)
    faces[0, 1] = faces[0, 0]  # zero area
    verts[:, 59] = (verts[:, 57] + verts[:, 58]) / 2  # collinear corners
    faces[1] = torch.tensor([57, 58, 59])
    return verts.to(dtype), faces


def test_single_triangle_coverage_barycentrics_and_depth() -> None:
    # triangle (1,1)-(7,1)-(1,5): centre (x, y) is inside iff x, y >= 1 and (x-1)/6 + (y-1)/4 <= 1
    verts, faces = _mesh(((1.0, 1.0, 2.0), (7.0, 1.0, 4.0), (1.0, 5.0, 6.0)))
    frag = rasterize(verts, faces, (6, 8))
    expected = torch.zeros(6, 8, dtype=torch.bool)
    for row, cols in {1: range(1, 6), 2: range(1, 5), 3: range(1, 3), 4: range(1, 2)}.items():
        expected[row, list(cols)] = True
    assert torch.equal(frag.foreground[0], expected)
    assert set(frag.face_ids[0][expected].tolist()) == {0}
    # centre (2.5, 1.5) = A + 0.25 (B - A) + 0.125 (C - A)
    torch.testing.assert_close(
        frag.bary[0, 1, 2], torch.tensor([0.625, 0.25, 0.125], dtype=torch.float64)
    )
    assert frag.depth[0, 1, 2].item() == pytest.approx(0.625 * 2 + 0.25 * 4 + 0.125 * 6)
    assert torch.all(frag.bary[0][~expected] == 0)
    assert torch.all(torch.isinf(frag.depth[0][~expected]))
    # barycentrics reproduce every covered centre and the depth is their interpolation
    rows, cols = torch.nonzero(expected, as_tuple=True)
    centres = torch.stack([cols, rows], -1).double() + 0.5
    torch.testing.assert_close(frag.bary[0][expected] @ verts[0, :, :2], centres)
    torch.testing.assert_close(frag.bary[0][expected] @ verts[0, :, 2], frag.depth[0][expected])


def test_winding_does_not_matter() -> None:
    verts, faces = _mesh(((1.2, 0.7, 1.0), (7.3, 2.1, 2.0), (2.2, 5.9, 3.0)))
    ccw = rasterize(verts, faces, (7, 9))
    cw = rasterize(verts, faces[:, [0, 2, 1]], (7, 9))
    assert ccw.foreground.sum() > 10
    assert torch.equal(ccw.face_ids, cw.face_ids)
    torch.testing.assert_close(ccw.bary, cw.bary[..., [0, 2, 1]])
    torch.testing.assert_close(ccw.depth, cw.depth)


def test_edges_and_corners_are_inclusive() -> None:
    # corners and edges on pixel centres: (0.5,0.5), (4.5,0.5), (0.5,4.5); the hypotenuse
    # x + y = 5 passes through the centres (1.5, 3.5), (2.5, 2.5), ...
    verts, faces = _mesh(((0.5, 0.5, 1.0), (4.5, 0.5, 1.0), (0.5, 4.5, 1.0)))
    frag = rasterize(verts, faces, (6, 6))
    rows, cols = torch.meshgrid(torch.arange(6), torch.arange(6), indexing="ij")
    assert torch.equal(frag.foreground[0], (rows + cols) <= 4)


@pytest.mark.parametrize("radius", [6.93, 8.1])
def test_shared_edges_leave_no_holes(radius: float) -> None:
    # a fan around a pixel centre whose spokes pass through many pixel centres; the spoke ends are
    # not dyadic, so edge functions there round to tiny values that must not drop the centre
    # (with radius 8.1 an edge test in per-face difference form, as in the prototype, loses two)
    centre, n = (8.5, 8.5), 24
    dirs = [(3, 1), (2, 1), (1, 1), (1, 2), (1, 3), (0, 1), (-1, 3), (-1, 2), (-1, 1), (-2, 1)]
    dirs += [(-3, 1), (-1, 0)] + [(-a, -b) for a, b in dirs[:10]] + [(1, 0), (3, -1)]
    assert len(dirs) == n
    scales = [radius / max(abs(a), abs(b)) for a, b in dirs]
    rim = [(centre[0] + s * a, centre[1] + s * b) for s, (a, b) in zip(scales, dirs, strict=True)]
    rim.sort(key=lambda p: math.atan2(p[1] - centre[1], p[0] - centre[0]))
    verts = torch.tensor([[*centre, 1.0]] + [[x, y, 1.0] for x, y in rim], dtype=torch.float32)
    faces = torch.tensor([[0, 1 + k, 1 + (k + 1) % n] for k in range(n)])
    frag = rasterize(verts[None], faces, (18, 18))
    ref = rasterize_reference(verts[None], faces, (18, 18))
    assert torch.equal(frag.face_ids, ref.face_ids)
    # every centre inside the fan (inscribed radius > 0.98 * radius) is covered, except maybe the
    # shared corner itself (see the module docstring)
    rows, cols = torch.meshgrid(torch.arange(18), torch.arange(18), indexing="ij")
    distance = torch.hypot(cols + 0.5 - centre[0], rows + 0.5 - centre[1])
    assert frag.foreground[0][(distance > 0) & (distance < 0.95 * radius)].all()


def test_nearer_triangle_wins_with_correct_depth() -> None:
    back = ((0.0, 0.0, 5.0), (10.0, 0.0, 5.0), (0.0, 10.0, 5.0))
    front = ((2.0, 2.0, 3.0), (8.0, 2.0, 3.0), (2.0, 8.0, 3.0))
    verts, faces = _mesh(back, front)
    frag = rasterize(verts, faces, (10, 10))
    assert frag.face_ids[0, 3, 3] == 1 and frag.depth[0, 3, 3] == 3.0
    assert frag.face_ids[0, 0, 0] == 0 and frag.depth[0, 0, 0] == 5.0
    # put the small triangle behind: the big one wins everywhere
    verts[0, 3:, 2] = 7.0
    frag = rasterize(verts, faces, (10, 10))
    assert set(frag.face_ids[0][frag.foreground[0]].tolist()) == {0}


@pytest.mark.parametrize("chunk_faces", [None, 1])
def test_exact_depth_tie_goes_to_smallest_face_id(chunk_faces: int | None) -> None:
    tri_a = ((0.0, 0.0, 4.0), (10.0, 0.0, 4.0), (0.0, 10.0, 4.0))
    tri_b = ((1.0, 1.0, 4.0), (9.0, 1.0, 4.0), (1.0, 9.0, 4.0))
    overlap = rasterize(*_mesh(tri_b), (10, 10)).foreground[0]
    assert overlap.sum() > 10
    for order in [(tri_a, tri_b), (tri_b, tri_a)]:
        verts, faces = _mesh(*order)
        frag = rasterize(verts, faces, (10, 10), chunk_faces=chunk_faces)
        assert set(frag.face_ids[0][overlap].tolist()) == {0}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("seed", range(4))
def test_matches_reference_on_random_meshes(seed: int, dtype: torch.dtype) -> None:
    verts, faces = _random_mesh(seed, batch=2, dtype=dtype)
    ref = rasterize_reference(verts, faces, (24, 20))
    assert 0.3 < ref.foreground.float().mean() < 0.95  # the case is not trivial
    atol = 1e-9 if dtype == torch.float64 else 1e-4
    for chunk_faces in (None, 1, 7):
        frag = rasterize(verts, faces, (24, 20), chunk_faces=chunk_faces)
        assert torch.equal(frag.face_ids, ref.face_ids)
        assert frag.bary.dtype == dtype and frag.depth.dtype == dtype
        torch.testing.assert_close(frag.bary, ref.bary, atol=atol, rtol=0)
        torch.testing.assert_close(frag.depth, ref.depth, atol=atol, rtol=0)
    # degenerate faces never show
    assert not torch.isin(ref.face_ids, torch.tensor([0, 1])).any()


def test_candidate_budget_chunks_give_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    verts, faces = _random_mesh(7, batch=1, dtype=torch.float32)
    full = rasterize(verts, faces, (24, 20), backend="torch")
    module = importlib.import_module("posetransfer.render.rasterize")
    monkeypatch.setattr(module, "_MAX_CANDIDATES", 40)
    calls, raster_chunk = [], module._raster_chunk
    monkeypatch.setattr(module, "_raster_chunk", lambda *a: calls.append(a) or raster_chunk(*a))
    chunked = rasterize(verts, faces, (24, 20), backend="torch")
    assert len(calls) > 3
    assert torch.equal(full.face_ids, chunked.face_ids)
    assert torch.equal(full.depth, chunked.depth)


def test_batch_items_are_independent() -> None:
    verts, faces = _random_mesh(3, batch=3, dtype=torch.float32)
    batched = rasterize(verts, faces, (24, 20))
    for b in range(3):
        single = rasterize(verts[b : b + 1], faces, (24, 20))
        assert torch.equal(batched.face_ids[b], single.face_ids[0])
        assert torch.equal(batched.bary[b], single.bary[0])


@pytest.mark.parametrize("case", ["no faces", "outside", "behind-centres"])
def test_empty_results_are_all_background(case: str) -> None:
    if case == "no faces":
        verts, faces = torch.rand(2, 4, 3), torch.zeros(0, 3, dtype=torch.long)
    elif case == "outside":
        verts, faces = _mesh(((-9.0, -9.0, 1.0), (-1.0, -9.0, 1.0), (-9.0, -1.0, 1.0)))
    else:  # a sliver between two rows of pixel centres covers no centre
        verts, faces = _mesh(((0.0, 1.1, 1.0), (9.0, 1.2, 1.0), (0.0, 1.3, 1.0)))
    frag = rasterize(verts, faces, (5, 6))
    assert frag.face_ids.shape == (len(verts), 5, 6)
    assert torch.all(frag.face_ids == -1) and not frag.foreground.any()
    assert torch.all(frag.bary == 0) and torch.all(torch.isinf(frag.depth))


def test_bad_inputs_raise_value_error_naming_the_argument() -> None:
    verts, faces = _mesh(((0.0, 0.0, 1.0), (4.0, 0.0, 1.0), (0.0, 4.0, 1.0)))
    with pytest.raises(ValueError, match="verts"):
        rasterize(verts[0], faces, (4, 4))
    with pytest.raises(ValueError, match="verts"):
        rasterize(verts[..., :2], faces, (4, 4))
    with pytest.raises(ValueError, match="verts"):
        rasterize(verts.long(), faces, (4, 4))
    with pytest.raises(ValueError, match="verts"):
        rasterize(torch.full_like(verts, math.nan), faces, (4, 4))
    with pytest.raises(ValueError, match="faces"):
        rasterize(verts, faces[:, :2], (4, 4))
    with pytest.raises(ValueError, match="faces"):
        rasterize(verts, faces.float(), (4, 4))
    with pytest.raises(ValueError, match="faces"):
        rasterize(verts, faces + 1, (4, 4))
    with pytest.raises(ValueError, match="size"):
        rasterize(verts, faces, (4, 0))
    with pytest.raises(ValueError, match="size"):
        rasterize(verts, faces, (4.0, 4))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="chunk_faces"):
        rasterize(verts, faces, (4, 4), chunk_faces=0)
    with pytest.raises(ValueError, match="bary"):
        Fragments(
            torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2), torch.zeros(1, 2, 2)
        )


def test_barycentric_reproduces_points_for_both_windings() -> None:
    gen = torch.Generator().manual_seed(0)
    tri = torch.rand(50, 3, 2, generator=gen, dtype=torch.float64) * 10
    points = torch.rand(50, 2, generator=gen, dtype=torch.float64) * 10
    weights = barycentric(points, tri)
    torch.testing.assert_close(weights.sum(-1), torch.ones(50, dtype=torch.float64))
    torch.testing.assert_close((weights[..., None] * tri).sum(1), points)
    torch.testing.assert_close(barycentric(points, tri[:, [0, 2, 1]]), weights[:, [0, 2, 1]])
    with pytest.raises(ValueError, match="tri"):
        barycentric(points, tri[:10])
    with pytest.raises(ValueError, match="points"):
        barycentric(points[:, :1], tri)
