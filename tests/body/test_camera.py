"""Tests for posetransfer.body.camera."""

from __future__ import annotations

import math

import pytest
import torch

from posetransfer.body.camera import camera_scale, make_camera, project, rescale_camera


def test_project_hand_computed() -> None:
    points = torch.tensor([[[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]])
    camera = torch.tensor([[math.log(2.0), 10.0, 20.0]])
    out = project(points, camera)
    # x = 2*1 + 10, y = -2*3 + 20, depth = 2*2
    torch.testing.assert_close(out[0, 0], torch.tensor([12.0, 14.0, 4.0]))
    torch.testing.assert_close(out[0, 1], torch.tensor([10.0, 20.0, 0.0]))


def test_project_orientation() -> None:
    camera = make_camera(100.0, 50.0, 60.0)[None]
    up, left, back = torch.eye(3)[[2, 0, 1]]
    out = project(torch.stack([up, left, back])[None], camera)[0]
    assert out[0, 1] < 60.0  # world up -> image up (smaller y)
    assert out[1, 0] > 50.0  # person's left (+X) -> image right on a body facing the camera
    assert out[2, 2] > 0.0  # behind the body (+Y) -> farther from the camera


def test_make_camera_and_scale() -> None:
    camera = make_camera(torch.tensor([120.0, 60.0]), 1.0, torch.tensor([2.0, 3.0]))
    assert camera.shape == (2, 3)
    torch.testing.assert_close(camera_scale(camera), torch.tensor([120.0, 60.0]))
    with pytest.raises(ValueError, match="positive"):
        make_camera(0.0, 1.0, 1.0)


def test_rescale_camera_scales_projection() -> None:
    gen = torch.Generator().manual_seed(0)
    points = torch.randn(2, 5, 3, generator=gen)
    camera = make_camera(torch.tensor([90.0, 130.0]), torch.tensor([80.0, 90.0]), 120.0)
    factor = 2.5
    torch.testing.assert_close(
        project(points, rescale_camera(camera, factor)), factor * project(points, camera)
    )
    with pytest.raises(ValueError, match="factor"):
        rescale_camera(camera, -1.0)


def test_project_shape_errors() -> None:
    with pytest.raises(ValueError, match="points"):
        project(torch.zeros(4, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="camera"):
        project(torch.zeros(2, 4, 3), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="camera"):
        project(torch.zeros(2, 4, 3), torch.zeros(2, 2))
