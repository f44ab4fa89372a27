"""Slow per-pixel reference of :func:`posetransfer.render.rasterize.rasterize`, for tests.

It follows the coverage and tie rules of :mod:`posetransfer.render.rasterize` with a Python loop
over pixels and numpy over faces, so the fast backends can be checked against it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from posetransfer.render.rasterize import Fragments, _check_inputs, barycentric

__all__ = ["rasterize_reference"]


def rasterize_reference(verts: Tensor, faces: Tensor, size: tuple[int, int]) -> Fragments:
    """Per-pixel loop version of :func:`rasterize` (same coverage and tie rules), for tests.

    Loops over images and pixels in Python; each pixel tests all faces with numpy. Barycentrics
    come from :func:`barycentric`, so they agree with :func:`rasterize` to rounding only.

    Args:
        verts: ``(B, V, 3)`` float image-space vertices.
        faces: ``(F, 3)`` integer vertex indices.
        size: output size ``(H, W)``.

    Returns:
        :class:`Fragments`, as :func:`rasterize`.
    """
    height, width = _check_inputs(verts, faces, size)
    verts, faces = verts.detach().cpu(), faces.cpu()
    dtype = verts.dtype
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    fc = faces.long().numpy()
    face_ids = np.full((verts.shape[0], height, width), -1, dtype=np.int64)
    for b in range(verts.shape[0]):
        tri = verts[b].double().numpy()[fc]  # (F, 3, 3)
        edges, lo, hi = _reference_edges(tri)
        edges = edges.astype(np_dtype)
        zs = tri[..., 2].astype(np_dtype)
        for i in range(height):
            for j in range(width):
                px, py = np_dtype(j + 0.5), np_dtype(i + 0.5)
                in_box = (lo[:, 0] <= px) & (px <= hi[:, 0]) & (lo[:, 1] <= py) & (py <= hi[:, 1])
                w = edges[:, :, 0] * px + edges[:, :, 1] * py + edges[:, :, 2]  # (F, 3)
                cover = in_box & (w >= 0).all(1) & (w.sum(1) > 0)
                if not cover.any():
                    continue
                w, z = w[cover], zs[cover]
                depth = (w[:, 0] * z[:, 0] + w[:, 1] * z[:, 1] + w[:, 2] * z[:, 2]) / (
                    w[:, 0] + w[:, 1] + w[:, 2]
                )
                depth = depth.astype(np.float32)
                ids = np.flatnonzero(cover)
                face_ids[b, i, j] = ids[depth == depth.min()].min()
    face_ids_t = torch.from_numpy(face_ids)
    fg = face_ids_t >= 0
    bary = torch.zeros(*face_ids_t.shape, 3, dtype=dtype)
    depth_t = torch.full(face_ids_t.shape, float("inf"), dtype=dtype)
    bi, yi, xi = torch.nonzero(fg, as_tuple=True)
    corners = verts[bi[:, None], faces.long()[face_ids_t[fg]]]  # (N, 3, 3)
    centres = torch.stack([xi, yi], -1).to(dtype) + 0.5
    bary[fg] = barycentric(centres, corners[..., :2])
    depth_t[fg] = (bary[fg] * corners[..., 2]).sum(-1)
    return Fragments(face_ids=face_ids_t, bary=bary, depth=depth_t)


def _reference_edges(tri: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Oriented edge coefficients ``(F, 3, 3)`` (edge k: A, B, C), bbox min and max ``(F, 2)``."""
    edges = np.zeros((len(tri), 3, 3))
    for k in range(3):
        (ax, ay), (bx, by) = tri[:, (k + 1) % 3, :2].T, tri[:, (k + 2) % 3, :2].T
        edges[:, k] = np.stack([ay - by, bx - ax, ax * by - ay * bx], 1)
    e1, e2 = tri[:, 1, :2] - tri[:, 0, :2], tri[:, 2, :2] - tri[:, 0, :2]
    area2 = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    edges *= np.sign(area2)[:, None, None]  # zero-area faces get all-zero edges: never covered
    return edges, tri[:, :, :2].min(1), tri[:, :, :2].max(1)
