"""Tests of posetransfer.synth.camera_effects: each step by hand, the per-pair rule, seeds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from posetransfer.synth.camera_effects import (
    Camera,
    apply_camera,
    camera_images,
    gaussian_blur,
    sample_camera,
)
from posetransfer.synth.synthetic_config import CameraConfig

SIZE = (32, 24)
NO_NOISE = CameraConfig(enabled=True, noise=(0.0, 0.0), shot_noise=(0.0, 0.0))


def _flat(value: tuple[int, int, int], size: tuple[int, int] = SIZE) -> np.ndarray:
    return np.broadcast_to(np.array(value, np.uint8), (*size, 3)).copy()


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_identity_camera_changes_nothing() -> None:
    image = np.random.default_rng(1).integers(0, 256, (*SIZE, 3), dtype=np.uint8)
    assert np.array_equal(apply_camera(image, Camera(), _rng()), image)


def test_brightness_and_temperature() -> None:
    out = apply_camera(_flat((100, 100, 100)), Camera(brightness=1.5, temperature=0.2), _rng())
    assert out[0, 0].tolist() == [180, 150, 120]  # 100 * 1.5 * (1.2, 1, 0.8)


def test_contrast_and_gamma() -> None:
    out = apply_camera(_flat((64, 128, 191)), Camera(contrast=1.5), _rng())
    # 255 * ((v/255 - 0.5) * 1.5 + 0.5) = 1.5 v - 63.75: 32.25, 128.25, 222.75
    assert out[0, 0].tolist() == [32, 128, 223]
    out = apply_camera(_flat((20, 128, 240)), Camera(contrast=3.0), _rng())
    assert out[0, 0].tolist() == [0, 129, 255]  # 3 v - 255, clipped
    out = apply_camera(_flat((0, 128, 255)), Camera(gamma=2.0), _rng())
    assert out[0, 0].tolist() == [0, 64, 255]  # (128/255)^2 * 255 = 64.25


def test_blur_spreads_a_point_and_keeps_its_sum() -> None:
    image = np.zeros((21, 21, 3), np.float32)
    image[10, 10] = 1.0
    out = gaussian_blur(image, 1.5)
    assert out[10, 10, 0] < 0.1 and out[10, 12, 0] > 0.01
    assert out[..., 0].sum() == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(out[10, 8], out[10, 12]) and np.allclose(out[8, 10], out[12, 10])


def test_gaussian_noise_has_its_standard_deviation() -> None:
    out = apply_camera(_flat((128, 128, 128), (100, 100)), Camera(noise=0.02), _rng())
    diff = out.astype(np.float64) - 128
    assert abs(diff.mean()) < 0.2
    assert diff.std() == pytest.approx(0.02 * 255, rel=0.05)


def test_shot_noise_grows_with_the_signal() -> None:
    camera = Camera(shot_noise=0.08)
    dark = apply_camera(_flat((64, 64, 64), (100, 100)), camera, _rng()).astype(float)
    light = apply_camera(_flat((191, 191, 191), (100, 100)), camera, _rng()).astype(float)
    ratio = light.std() / dark.std()
    assert ratio == pytest.approx(np.sqrt(191 / 64), rel=0.08)


def test_jpeg_round_trip_is_lossy_and_deterministic() -> None:
    image = np.random.default_rng(2).integers(0, 256, (*SIZE, 3), dtype=np.uint8)
    a = apply_camera(image, Camera(jpeg_quality=30), _rng())
    assert not np.array_equal(a, image)
    assert np.array_equal(a, apply_camera(image, Camera(jpeg_quality=30), _rng()))


def test_apply_camera_checks_its_input() -> None:
    with pytest.raises(ValueError, match="uint8"):
        apply_camera(np.zeros((*SIZE, 3), np.float32), Camera(), _rng())
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        apply_camera(np.zeros(SIZE, np.uint8), Camera(), _rng())


def test_sampled_cameras_stay_in_their_ranges() -> None:
    cfg = CameraConfig(enabled=True, blur_prob=0.0, jpeg_prob=1.0)
    rng = np.random.default_rng(0)
    for _ in range(200):
        c = sample_camera(rng, cfg)
        assert cfg.brightness[0] <= c.brightness <= cfg.brightness[1]
        assert cfg.gamma[0] <= c.gamma <= cfg.gamma[1]
        assert cfg.temperature[0] <= c.temperature <= cfg.temperature[1]
        assert c.blur_sigma == 0.0
        assert cfg.jpeg_quality[0] <= c.jpeg_quality <= cfg.jpeg_quality[1]


def test_disabled_returns_the_images() -> None:
    images = torch.zeros(2, *SIZE, 3, dtype=torch.uint8)
    assert camera_images(images, CameraConfig(), 0, 0) is images


def test_one_camera_per_person_by_default() -> None:
    images = torch.from_numpy(np.stack([_flat((90, 120, 150))] * 3))
    out = camera_images(images, NO_NOISE, seed=0, person=4)
    assert torch.equal(out[0], out[1]) and torch.equal(out[0], out[2])
    assert not torch.equal(out[0], images[0])
    apart = camera_images(images, dataclasses.replace(NO_NOISE, per_person=False), 0, 4)
    assert not torch.equal(apart[0], apart[1])


def test_noise_is_drawn_per_image() -> None:
    cfg = CameraConfig(enabled=True, noise=(0.02, 0.02), blur_prob=0.0, jpeg_prob=0.0)
    images = torch.from_numpy(np.stack([_flat((128, 128, 128))] * 2))
    out = camera_images(images, cfg, seed=0, person=0).float()
    assert not torch.equal(out[0], out[1])
    assert abs(float(out[0].mean() - out[1].mean())) < 1.0  # same camera, other noise


def test_same_seed_same_bytes() -> None:
    images = torch.randint(0, 256, (2, *SIZE, 3), generator=torch.Generator().manual_seed(0))
    images = images.to(torch.uint8)
    cfg = CameraConfig(enabled=True)
    a = camera_images(images, cfg, seed=3, person=1)
    assert torch.equal(a, camera_images(images, cfg, seed=3, person=1))
    assert not torch.equal(a, camera_images(images, cfg, seed=4, person=1))
    assert not torch.equal(a, camera_images(images, cfg, seed=3, person=2))
