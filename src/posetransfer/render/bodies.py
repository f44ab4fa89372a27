"""Render body-model pairs: posed Anny meshes -> image-space vertices -> flow and visibility.

The glue between :mod:`posetransfer.body` (parameters, camera) and the mesh renderer
(:mod:`posetransfer.render.rasterize`, :mod:`posetransfer.render.correspondence`), shared by
``synth-flow`` (fitted bodies) and ``make-synthetic`` (sampled bodies).

Depth units: the rasterizer only compares depths, so the image-space vertices returned here keep
``x, y`` in pixels but depth in *metres* (the body's world ``Y``). The occlusion tolerance of the
visibility test is then one number in metres for every pair, whatever each image's camera scale.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from posetransfer.body.camera import project
from posetransfer.render.correspondence import DEFAULT_DEPTH_TOLERANCE_M, FlowField, render_pair

if TYPE_CHECKING:
    from posetransfer.body.anny_model import BodyModel
    from posetransfer.body.params import BodyParams

__all__ = ["body_image_vertices", "render_body_flow"]


def body_image_vertices(model: BodyModel, params: BodyParams, camera: Tensor) -> Tensor:
    """Pose the body and project it.

    Args:
        model: The body model.
        params: ``B`` body parameters.
        camera: ``(B, 3)`` weak-perspective cameras ``(log s, tx, ty)``.

    Returns:
        ``(B, V, 3)`` vertices ``(x, y, depth)``: ``x, y`` in pixels (pixel-centre convention),
        depth in metres, increasing away from the camera.
    """
    with torch.no_grad():
        verts = project(model(params), camera)
        scale = camera[:, 0].exp()[:, None]
        return torch.cat([verts[..., :2], verts[..., 2:] / scale[..., None]], dim=-1)


def render_body_flow(
    model: BodyModel,
    params_src: BodyParams,
    camera_src: Tensor,
    params_tgt: BodyParams,
    camera_tgt: Tensor,
    size: tuple[int, int],
    *,
    depth_tolerance_m: float = DEFAULT_DEPTH_TOLERANCE_M,
) -> FlowField:
    """Flow and visibility from the target body render to the source body render.

    Args:
        model: The body model.
        params_src: ``B`` source body parameters.
        camera_src: ``(B, 3)`` source cameras.
        params_tgt: ``B`` target body parameters (same people, so the same phenotype).
        camera_tgt: ``(B, 3)`` target cameras.
        size: ``(H, W)`` of both images.
        depth_tolerance_m: Occlusion tolerance of the visibility test, in metres.

    Returns:
        :class:`FlowField` with flow ``(B, 2, H, W)`` and visibility ``(B, H, W)``.
    """
    verts_src = body_image_vertices(model, params_src, camera_src)
    verts_tgt = body_image_vertices(model, params_tgt, camera_tgt)
    return render_pair(verts_src, verts_tgt, model.faces, size, depth_tolerance_m)
