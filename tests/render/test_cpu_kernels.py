"""The Warp CPU kernels of rasterize and correspondence give the torch paths' bits exactly."""

from __future__ import annotations

import importlib

import pytest
import torch

from posetransfer.body.anny_model import BodyModel
from posetransfer.conventions import Visibility
from posetransfer.render.accuracy import synthetic_views
from posetransfer.render.bodies import body_image_vertices
from posetransfer.render.correspondence import correspondence, render_pair
from posetransfer.render.raster_reference import rasterize_reference
from posetransfer.render.rasterize import Fragments, rasterize

backends = importlib.import_module("posetransfer.render.backends")


def _sheet(seed: int, batch: int, size: tuple[int, int], n: int = 24) -> tuple[torch.Tensor, ...]:
    """Two crumpled grid sheets over the image: ~2n^2 small faces, folds and occlusions.

    Returns ``(B, V, 3)`` float32 vertices in image space and ``(F, 3)`` faces; the vertices
    reach past the image on every side so clipping is exercised.
    """
    gen = torch.Generator().manual_seed(seed)
    height, width = size
    s, t = torch.meshgrid(torch.linspace(-0.1, 1.1, n), torch.linspace(-0.1, 1.1, n), indexing="xy")
    idx = torch.arange(n * n).view(n, n)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    grid_faces = torch.cat([torch.stack([a, b, d], -1), torch.stack([a, d, c], -1)]).view(-1, 3)
    sheets, faces = [], []
    for k in range(2):
        jitter = 0.6 * torch.rand(batch, n * n, 2, generator=gen) / n
        xy = torch.stack([s.reshape(-1), t.reshape(-1)], -1) + jitter
        xy = xy * torch.tensor([width, height]) + 0.37 * k
        x, y = xy[..., :1] / width, xy[..., 1:] / height
        wave = torch.sin(7.0 * x + 3.0 * k) * torch.cos(5.0 * y)
        depth = 10.0 + 3.0 * wave + torch.rand(batch, n * n, 1, generator=gen)
        sheets.append(torch.cat([xy, depth], -1))
        faces.append(grid_faces + k * n * n)
    return torch.cat(sheets, 1).float(), torch.cat(faces)


def _assert_same(a: Fragments, b: Fragments) -> None:
    assert torch.equal(a.face_ids, b.face_ids)
    assert a.bary.dtype == b.bary.dtype == torch.float32
    assert torch.equal(a.bary, b.bary)
    assert torch.equal(a.depth, b.depth)


@pytest.mark.parametrize("size", [(48, 40), (33, 57)])
@pytest.mark.parametrize("seed", range(3))
def test_rasterize_warp_equals_torch_bit_for_bit(seed: int, size: tuple[int, int]) -> None:
    verts, faces = _sheet(seed, batch=2, size=size)
    ours = rasterize(verts, faces, size, backend="warp")
    theirs = rasterize(verts, faces, size, backend="torch")
    assert ours.foreground.float().mean() > 0.9  # the sheets fill the image
    covered = ours.face_ids[ours.foreground]
    assert (covered >= faces.shape[0] // 2).float().mean() > 0.2  # both sheets show: occlusion
    _assert_same(ours, theirs)
    # each batch item alone gives the same bits as in the batch
    alone = rasterize(verts[1:], faces, size, backend="warp")
    _assert_same(alone, rasterize(verts[1:], faces, size, backend="torch"))


def test_rasterize_warp_matches_the_reference_on_random_soups() -> None:
    gen = torch.Generator().manual_seed(11)
    verts = (torch.rand(2, 60, 3, generator=gen) * torch.tensor([28.0, 32.0, 10.0]) - 4.0).float()
    faces = torch.randint(0, 60, (24, 3), generator=gen)
    faces[0, 1] = faces[0, 0]  # zero area
    ours = rasterize(verts, faces, (24, 20), backend="warp")
    ref = rasterize_reference(verts, faces, (24, 20))
    assert 0.3 < ref.foreground.float().mean() < 0.95
    assert torch.equal(ours.face_ids, ref.face_ids)
    torch.testing.assert_close(ours.bary, ref.bary, atol=1e-4, rtol=0)
    _assert_same(ours, rasterize(verts, faces, (24, 20), backend="torch"))


def test_exact_depth_ties_go_to_the_smallest_face_in_both_orders() -> None:
    tri_a = [[0.0, 0.0, 4.0], [10.0, 0.0, 4.0], [0.0, 10.0, 4.0]]
    tri_b = [[1.0, 1.0, 4.0], [9.0, 1.0, 4.0], [1.0, 9.0, 4.0]]
    faces = torch.arange(6).view(2, 3)
    for order in ([tri_a, tri_b], [tri_b, tri_a]):
        verts = torch.tensor([order[0] + order[1]]).view(1, 6, 3)
        frag = rasterize(verts, faces, (10, 10), backend="warp")
        inner = rasterize(torch.tensor([tri_b]), faces[:1], (10, 10)).foreground
        assert inner.sum() > 10
        assert set(frag.face_ids[inner].tolist()) == {0}
        _assert_same(frag, rasterize(verts, faces, (10, 10), backend="torch"))


@pytest.mark.parametrize("tolerance", [0.0, 0.4])
@pytest.mark.parametrize("seed", range(3))
def test_correspondence_warp_equals_torch_bit_for_bit(seed: int, tolerance: float) -> None:
    size_tgt, size_src = (40, 36), (44, 30)
    verts_tgt, faces = _sheet(seed, batch=2, size=size_tgt)
    verts_src, _ = _sheet(seed + 100, batch=2, size=size_src)
    frag_tgt = rasterize(verts_tgt, faces, size_tgt)
    frag_src = rasterize(verts_src, faces, size_src)
    ours = correspondence(
        frag_tgt, verts_src, faces, frag_src, depth_tolerance=tolerance, backend="warp"
    )
    theirs = correspondence(
        frag_tgt, verts_src, faces, frag_src, depth_tolerance=tolerance, backend="torch"
    )
    counts = torch.bincount(theirs.visibility.view(-1), minlength=3)
    assert counts[int(Visibility.VISIBLE)] > 1000 and counts[int(Visibility.INVISIBLE)] > 40
    assert ours.flow.dtype == torch.float32 and ours.visibility.dtype == torch.int64
    assert torch.equal(ours.visibility, theirs.visibility)
    assert torch.equal(ours.flow, theirs.flow)


def test_render_pair_backends_agree_and_auto_takes_warp(monkeypatch: pytest.MonkeyPatch) -> None:
    verts_src, faces = _sheet(5, batch=1, size=(32, 32))
    verts_tgt, _ = _sheet(6, batch=1, size=(32, 32))
    torch_field = render_pair(verts_src, verts_tgt, faces, (32, 32), 0.2, backend="torch")
    warp_field = render_pair(verts_src, verts_tgt, faces, (32, 32), 0.2, backend="warp")
    assert torch.equal(torch_field.flow, warp_field.flow)
    assert torch.equal(torch_field.visibility, warp_field.visibility)
    calls: list[int] = []
    kernels = importlib.import_module("posetransfer.render.cpu_kernels")
    original = kernels.rasterize_cpu
    monkeypatch.setattr(kernels, "rasterize_cpu", lambda *a: calls.append(1) or original(*a))
    render_pair(verts_src, verts_tgt, faces, (32, 32), 0.2)
    assert len(calls) == 2  # float32 CPU meshes: auto runs the kernels
    render_pair(verts_src.double(), verts_tgt.double(), faces, (32, 32), 0.2)
    assert len(calls) == 2  # float64: the torch path


def test_auto_falls_back_to_torch_without_warp(monkeypatch: pytest.MonkeyPatch) -> None:
    verts, faces = _sheet(2, batch=1, size=(20, 20))
    expected = rasterize(verts, faces, (20, 20), backend="torch")
    monkeypatch.setattr(backends, "_warp_available", lambda: False)
    _assert_same(rasterize(verts, faces, (20, 20)), expected)
    with pytest.raises(ValueError, match="warp-lang"):
        rasterize(verts, faces, (20, 20), backend="warp")


def test_bad_backends_raise_value_errors_naming_the_problem() -> None:
    verts, faces = _sheet(1, batch=1, size=(16, 16))
    with pytest.raises(ValueError, match="backend must be"):
        rasterize(verts, faces, (16, 16), backend="cuda")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"float32 CPU tensors, got torch\.float64"):
        rasterize(verts.double(), faces, (16, 16), backend="warp")
    frag = rasterize(verts, faces, (16, 16))
    with pytest.raises(ValueError, match=r"float32 CPU tensors, got torch\.float64"):
        correspondence(frag, verts.double(), faces, frag, depth_tolerance=0.1, backend="warp")
    # float64 meshes under "auto" still work (torch path), in float64
    assert rasterize(verts.double(), faces, (16, 16)).depth.dtype == torch.float64


def test_faces_changed_in_place_are_checked_and_converted_again() -> None:
    verts, faces = _sheet(3, batch=1, size=(20, 20))
    first = rasterize(verts, faces, (20, 20), backend="warp")
    faces[:, [1, 2]] = faces[:, [2, 1]].clone()  # same triangles, other winding and corners
    second = rasterize(verts, faces, (20, 20), backend="warp")
    assert torch.equal(first.face_ids, second.face_ids)
    # the new corner order is used (a stale int32 copy would give the old order)
    torch.testing.assert_close(first.bary[..., [0, 2, 1]], second.bary, atol=1e-5, rtol=0)
    _assert_same(second, rasterize(verts, faces, (20, 20), backend="torch"))
    faces[0, 0] = verts.shape[1]  # out of range now
    with pytest.raises(ValueError, match="faces index vertices"):
        rasterize(verts, faces, (20, 20), backend="warp")


def test_inference_mode_faces_and_int32_face_ids_work_on_both_backends() -> None:
    verts, faces = _sheet(4, batch=1, size=(24, 24))
    with torch.inference_mode():
        frozen = faces.clone()  # an inference tensor: no version counter
        for backend in ("torch", "warp"):
            frag = rasterize(verts, frozen, (24, 24), backend=backend)  # type: ignore[arg-type]
            assert frag.foreground.any()
    frag = rasterize(verts, faces, (24, 24))
    narrow = Fragments(face_ids=frag.face_ids.int(), bary=frag.bary, depth=frag.depth)
    expected = correspondence(frag, verts, faces, frag, depth_tolerance=0.1, backend="torch")
    got = correspondence(narrow, verts, faces, narrow, depth_tolerance=0.1)
    assert torch.equal(got.flow, expected.flow)
    assert torch.equal(got.visibility, expected.visibility)


@pytest.mark.parametrize("backend", ["torch", "warp"])
def test_coordinates_too_large_for_float32_are_refused(backend: str) -> None:
    # depths near 3e38 would overflow to inf in float32; the backends would then disagree
    verts, faces = _sheet(4, batch=1, size=(16, 16))
    verts[..., 2] = 3e38
    with pytest.raises(ValueError, match=r"verts has a value of magnitude 3e\+38"):
        rasterize(verts, faces, (16, 16), backend=backend)  # type: ignore[arg-type]
    verts[..., 2] = 1e10  # the largest accepted magnitude renders
    assert rasterize(verts, faces, (16, 16), backend=backend).foreground.any()  # type: ignore[arg-type]


def test_body_renders_and_flows_equal_torch_bit_for_bit(body_model: BodyModel) -> None:
    size = (96, 64)
    views = synthetic_views(body_model, torch.Generator().manual_seed(4), 4, size)
    verts = body_image_vertices(body_model, views.params, views.camera)
    assert verts.dtype == torch.float32
    ours = render_pair(verts[:2], verts[2:], body_model.faces, size, 0.015, backend="warp")
    theirs = render_pair(verts[:2], verts[2:], body_model.faces, size, 0.015, backend="torch")
    assert (ours.visibility == int(Visibility.VISIBLE)).sum() > 500
    assert torch.equal(ours.flow, theirs.flow)
    assert torch.equal(ours.visibility, theirs.visibility)
