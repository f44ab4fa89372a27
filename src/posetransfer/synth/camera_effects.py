"""Lighting and sensor effects on synthetic images: a random camera between the scene and the file.

Real frames differ from our renders in more than their backgrounds: exposure, white balance and
tone curve vary from camera to camera, optics blur a little, sensors add noise that grows with
the signal, and files are often JPEG-compressed. With
:class:`~posetransfer.synth.synthetic_config.CameraConfig` enabled, ``make-synthetic`` passes
every image through :func:`apply_camera`, in this order (on ``[0, 1]`` floats):

1. white balance and exposure: ``x * brightness * (1 + t, 1, 1 - t)``;
2. optics: a Gaussian blur of ``blur_sigma`` pixels (with probability ``blur_prob``);
3. sensor noise: ``x + sqrt(noise^2 + shot_noise^2 * x) * N(0, 1)`` (Gaussian read noise
   plus Poisson-like shot noise whose variance grows with the value);
4. tone: contrast about mid-grey, then ``x ** gamma`` (clipped to ``[0, 1]``), quantised;
5. a JPEG round trip at ``jpeg_quality`` (with probability ``jpeg_prob``).

Why here and not as a training transform: the effects change pixels only, so they can be baked
into the dataset with the exact flows untouched; the data stays deterministic per seed, every
stage and the contact sheet see the same images, and no training code changes. The price is one
draw per image instead of a fresh draw per epoch.

Per pair: by default (``per_person``) steps 1, 2, 4 and 5 are drawn once per person, so the
source and target of every pair come from the same camera, as the generator expects (it copies
background pixels from the source and cannot predict a colour change); the noise of step 3 is
drawn per image, as a sensor's is. ``per_person=False`` draws everything per image.

Randomness: numpy generators seeded by ``(seed, person, stream[, image])``
(:func:`camera_rng`, :func:`noise_rng`), separate from the body, clothes and background draws.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from posetransfer.synth.synthetic_config import CameraConfig

__all__ = [
    "Camera",
    "apply_camera",
    "camera_images",
    "camera_rng",
    "gaussian_blur",
    "noise_rng",
    "sample_camera",
]

_CAMERA_STREAM: Final[int] = 0x43_41  # "CA"
_NOISE_STREAM: Final[int] = 0x4E_4F  # "NO"


def camera_rng(seed: int, person: int, image: int | None = None) -> np.random.Generator:
    """Generator of the camera of ``person`` (or of one of its images, ``per_person=False``)."""
    key = [seed, person, _CAMERA_STREAM] + ([] if image is None else [image])
    return np.random.default_rng(key)


def noise_rng(seed: int, person: int, image: int) -> np.random.Generator:
    """Generator of the sensor noise of image ``image`` of ``person``."""
    return np.random.default_rng([seed, person, _NOISE_STREAM, image])


@dataclass(frozen=True)
class Camera:
    """One drawn camera (see the module docstring for the order of the steps).

    Attributes:
        brightness: Exposure gain.
        temperature: Red gain ``1 + t``, blue gain ``1 - t``.
        blur_sigma: Gaussian blur in pixels, 0 for none.
        noise: Read-noise standard deviation.
        shot_noise: Shot-noise standard deviation at white.
        contrast: Contrast factor about 0.5.
        gamma: Tone-curve exponent.
        jpeg_quality: JPEG quality, 0 for no JPEG round trip.
    """

    brightness: float = 1.0
    temperature: float = 0.0
    blur_sigma: float = 0.0
    noise: float = 0.0
    shot_noise: float = 0.0
    contrast: float = 1.0
    gamma: float = 1.0
    jpeg_quality: int = 0


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return math.exp(rng.uniform(math.log(bounds[0]), math.log(bounds[1])))


def sample_camera(rng: np.random.Generator, cfg: CameraConfig) -> Camera:
    """Draw a camera from the ranges of ``cfg`` (a fixed number of draws, whatever the odds)."""
    brightness = _log_uniform(rng, cfg.brightness)
    temperature = rng.uniform(*cfg.temperature)
    blur = rng.uniform(*cfg.blur_sigma)
    use_blur = rng.random() < cfg.blur_prob
    noise, shot = rng.uniform(*cfg.noise), rng.uniform(*cfg.shot_noise)
    contrast, gamma = rng.uniform(*cfg.contrast), _log_uniform(rng, cfg.gamma)
    quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
    use_jpeg = rng.random() < cfg.jpeg_prob
    return Camera(
        brightness=brightness,
        temperature=temperature,
        blur_sigma=blur if use_blur else 0.0,
        noise=noise,
        shot_noise=shot,
        contrast=contrast,
        gamma=gamma,
        jpeg_quality=quality if use_jpeg else 0,
    )


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of an ``(H, W, 3)`` float32 image (edges replicated).

    Args:
        image: ``(H, W, 3)`` float32.
        sigma: Standard deviation in pixels, > 0 (the kernel spans ``3 * sigma`` each side).

    Returns:
        ``(H, W, 3)`` float32.
    """
    radius = max(1, int(3 * sigma + 0.5))
    k = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / sigma) ** 2)
    k = (k / k.sum()).repeat(3, 1)
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
    t = F.conv2d(F.pad(t, (radius, radius, 0, 0), mode="replicate"), k[:, None, None], groups=3)
    t = F.conv2d(F.pad(t, (0, 0, radius, radius), mode="replicate"), k[:, None, :, None], groups=3)
    return t[0].permute(1, 2, 0).numpy()


def apply_camera(image: np.ndarray, camera: Camera, noise: np.random.Generator) -> np.ndarray:
    """Pass one image through ``camera``.

    Args:
        image: ``(H, W, 3)`` uint8 sRGB.
        camera: The camera (:func:`sample_camera`); ``Camera()`` leaves the image unchanged.
        noise: Generator of this image's sensor noise (drawn only when the camera has noise).

    Returns:
        ``(H, W, 3)`` uint8.

    Raises:
        ValueError: Not an ``(H, W, 3)`` uint8 image.
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3), got {getattr(image, 'shape', type(image))}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if camera == Camera():
        return image.copy()
    x = image.astype(np.float32) / 255.0
    t = camera.temperature
    x = x * (camera.brightness * np.array([1 + t, 1.0, 1 - t], np.float32))
    if camera.blur_sigma > 0:
        x = gaussian_blur(x, camera.blur_sigma)
    if camera.noise > 0 or camera.shot_noise > 0:
        std = np.sqrt(camera.noise**2 + camera.shot_noise**2 * np.clip(x, 0, None))
        x = x + std * noise.standard_normal(x.shape, dtype=np.float32)
    x = np.clip((x - 0.5) * camera.contrast + 0.5, 0, 1) ** camera.gamma
    out = np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)
    if camera.jpeg_quality:
        buffer = io.BytesIO()
        Image.fromarray(out).save(buffer, format="JPEG", quality=camera.jpeg_quality)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            out = np.asarray(decoded.convert("RGB"), dtype=np.uint8).copy()
    return out


def camera_images(images: torch.Tensor, cfg: CameraConfig, seed: int, person: int) -> torch.Tensor:
    """All ``K`` images of one person through its camera(s) (the module's per-pair rule).

    Args:
        images: ``(K, H, W, 3)`` uint8.
        cfg: The settings (``cfg.enabled`` False returns ``images`` unchanged).
        seed: Dataset seed.
        person: Person index.

    Returns:
        ``(K, H, W, 3)`` uint8.
    """
    if not cfg.enabled:
        return images
    shared = sample_camera(camera_rng(seed, person), cfg) if cfg.per_person else None
    out = []
    for k, image in enumerate(images.numpy()):
        camera = shared if shared is not None else sample_camera(camera_rng(seed, person, k), cfg)
        out.append(apply_camera(image, camera, noise_rng(seed, person, k)))
    return torch.from_numpy(np.stack(out))
