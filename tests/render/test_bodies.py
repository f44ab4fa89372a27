"""Tests for posetransfer.render.bodies (needs the shared Anny model)."""

from __future__ import annotations

import torch

from posetransfer.body import BodyParams, make_camera
from posetransfer.conventions import Visibility
from posetransfer.render.bodies import body_image_vertices, render_body_flow


def _camera(tx: float, ty: float) -> torch.Tensor:
    return make_camera(torch.tensor([60.0]), torch.tensor([tx]), torch.tensor([ty]))


def test_same_body_same_camera_gives_zero_visible_flow(body_model):
    params = BodyParams.identity(1)
    cam = _camera(44, 60)
    field = render_body_flow(body_model, params, cam, params, cam, (128, 88))
    fg = field.visibility[0] != Visibility.BACKGROUND
    assert fg.sum() > 800
    assert (field.visibility[0][fg] == Visibility.VISIBLE).all()
    assert field.flow[:, :, fg[None].expand(1, -1, -1)[0]].abs().max() < 1e-4


def test_camera_shift_gives_the_opposite_constant_flow(body_model):
    params = BodyParams.identity(1)
    cam_src, cam_tgt = _camera(47, 58), _camera(44, 60)
    field = render_body_flow(body_model, params, cam_src, params, cam_tgt, (128, 88))
    fg = field.visibility[0] != Visibility.BACKGROUND
    # the target point u comes from u + (3, -2) in the source
    # (float32 vertices at ~100 px: 1e-4 px is a few ulps)
    dx, dy = field.flow[0, 0][fg], field.flow[0, 1][fg]
    torch.testing.assert_close(dx, torch.full_like(dx, 3.0), atol=1e-4, rtol=0)
    torch.testing.assert_close(dy, torch.full_like(dy, -2.0), atol=1e-4, rtol=0)
    assert (field.visibility[0][fg] == Visibility.VISIBLE).all()


def test_depth_is_in_metres_whatever_the_camera_scale(body_model):
    params = BodyParams.identity(1)
    small = make_camera(torch.tensor([50.0]), torch.tensor([0.0]), torch.tensor([0.0]))
    large = make_camera(torch.tensor([200.0]), torch.tensor([0.0]), torch.tensor([0.0]))
    depth_small = body_image_vertices(body_model, params, small)[..., 2]
    depth_large = body_image_vertices(body_model, params, large)[..., 2]
    torch.testing.assert_close(depth_small, depth_large)
    assert depth_small.max() - depth_small.min() < 1.0  # a body is well under a metre deep
