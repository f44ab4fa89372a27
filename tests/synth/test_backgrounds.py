"""Tests of posetransfer.synth.backgrounds: procedural textures, plates, compositing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from posetransfer.data.formats import FormatError
from posetransfer.synth.backgrounds import (
    BackgroundSampler,
    background_rng,
    composite,
    list_plates,
    plate_crop,
    procedural_texture,
)
from posetransfer.synth.synthetic_config import TEXTURES, BackgroundConfig

SIZE = (64, 48)


@pytest.mark.parametrize("kind", TEXTURES)
def test_texture_is_deterministic_per_seed(kind: str) -> None:
    a = procedural_texture(np.random.default_rng(3), SIZE, kind)
    b = procedural_texture(np.random.default_rng(3), SIZE, kind)
    c = procedural_texture(np.random.default_rng(4), SIZE, kind)
    assert a.shape == (*SIZE, 3) and a.dtype == np.float32
    assert a.min() >= 0.0 and a.max() <= 1.0
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.std(axis=(0, 1)).max() > 0.005, "a texture is not one flat colour"


def test_texture_edges_are_antialiased() -> None:
    """Checks drawn at 2x and box-averaged: edge pixels take values between the two colours."""
    image = procedural_texture(np.random.default_rng(0), SIZE, "checks")
    levels = np.unique(image[..., 0].round(3))
    assert len(levels) > 4


def test_unknown_texture_is_an_error() -> None:
    with pytest.raises(ValueError, match="marble"):
        procedural_texture(np.random.default_rng(0), SIZE, "marble")


def test_default_config_keeps_the_backdrop() -> None:
    sampler = BackgroundSampler(BackgroundConfig(), SIZE)
    assert all(sampler.sample(0, person) is None for person in range(5))


def test_procedural_backgrounds_per_person() -> None:
    sampler = BackgroundSampler(BackgroundConfig(mix=(0, 1, 0)), SIZE)
    first = sampler.sample(5, 0)
    assert first is not None and first.shape == (*SIZE, 3) and first.dtype == np.uint8
    again = BackgroundSampler(BackgroundConfig(mix=(0, 1, 0)), SIZE).sample(5, 0)
    assert again is not None and np.array_equal(first, again)
    others = [sampler.sample(5, p) for p in (1, 2)] + [sampler.sample(6, 0)]
    assert all(o is not None and not np.array_equal(first, o) for o in others)


def test_mix_odds_are_followed() -> None:
    sampler = BackgroundSampler(BackgroundConfig(mix=(1, 3, 0)), (16, 16))
    kept = sum(sampler.sample(0, p) is None for p in range(400))
    assert 70 <= kept <= 130  # binomial(400, 1/4): mean 100, sd 8.7


def test_background_stream_is_not_the_person_stream() -> None:
    a = background_rng(0, 1).random(4)
    assert not np.array_equal(a, background_rng(0, 2).random(4))
    assert not np.array_equal(a, background_rng(1, 1).random(4))
    assert np.array_equal(a, background_rng(0, 1).random(4))


def _ramp_plate(path: Path, size: tuple[int, int] = (200, 150)) -> Path:
    """A plate whose red channel grows left to right and green top to bottom."""
    height, width = size
    x = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height)[:, None].repeat(width, 1)
    image = np.stack([x, y, np.full_like(x, 60)], -1).round().astype(np.uint8)
    Image.fromarray(image).save(path)
    return path


def test_plate_crop_covers_the_plate_at_zoom_one(tmp_path: Path) -> None:
    plate = Image.open(_ramp_plate(tmp_path / "a.png"))  # 200x150: the aspect of 64x48
    seen_mirrored = seen_plain = False
    for seed in range(8):
        out = plate_crop(plate, SIZE, np.random.default_rng(seed), (1.0, 1.0))
        assert out.shape == (*SIZE, 3) and out.dtype == np.uint8
        assert out[..., 2].min() >= 59 and out[..., 2].max() <= 61
        # the whole plate: red spans (almost) 0..255 across, green top to bottom
        red = out[..., 0].astype(int)
        assert red[:, 0].mean() < 10 or red[:, 0].mean() > 245
        assert abs(int(red[:, 0].mean()) - int(red[:, -1].mean())) > 230
        assert out[0, :, 1].mean() < 10 and out[-1, :, 1].mean() > 245
        mirrored = red[:, 0].mean() > red[:, -1].mean()
        seen_mirrored |= mirrored
        seen_plain |= not mirrored
    assert seen_mirrored and seen_plain


def test_plate_crop_zooms_in(tmp_path: Path) -> None:
    plate = Image.open(_ramp_plate(tmp_path / "a.png"))
    out = plate_crop(plate, SIZE, np.random.default_rng(0), (2.0, 2.0))
    green = out[..., 1].astype(int)
    assert 100 < green[-1].mean() - green[0].mean() < 155  # half the height: ~127 levels


def test_plates_from_a_folder(tmp_path: Path) -> None:
    _ramp_plate(tmp_path / "b.png")
    _ramp_plate(tmp_path / "a.jpg", (120, 300))
    (tmp_path / "notes.txt").write_text("not a plate")
    assert [p.name for p in list_plates(tmp_path)] == ["a.jpg", "b.png"]
    cfg = BackgroundConfig(mix=(0, 0, 1), plate_dir=str(tmp_path))
    first = BackgroundSampler(cfg, SIZE).sample(0, 0)
    assert first is not None and first.shape == (*SIZE, 3)
    assert np.array_equal(first, BackgroundSampler(cfg, SIZE).sample(0, 0))


def test_plate_errors_name_the_folder_and_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"background\.plate_dir.*holds no"):
        BackgroundSampler(BackgroundConfig(mix=(0, 0, 1), plate_dir=str(tmp_path)), SIZE)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        list_plates(tmp_path / "missing")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    sampler = BackgroundSampler(BackgroundConfig(mix=(0, 0, 1), plate_dir=str(tmp_path)), SIZE)
    with pytest.raises(FormatError, match=r"broken\.png"):
        sampler.sample(0, 0)


def test_composite_is_exact_on_the_silhouette() -> None:
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (3, *SIZE, 3), generator=gen, dtype=torch.uint8)
    foreground = torch.rand(3, *SIZE, generator=gen) < 0.4
    background = np.random.default_rng(0).integers(0, 256, (*SIZE, 3), dtype=np.uint8)
    out = composite(images, foreground, background)
    assert out.dtype == torch.uint8 and out.shape == images.shape
    assert torch.equal(out[foreground], images[foreground])
    plate = torch.from_numpy(background).expand_as(images)
    assert torch.equal(out[~foreground], plate[~foreground])


def test_composite_checks_shapes() -> None:
    images = torch.zeros(2, *SIZE, 3, dtype=torch.uint8)
    mask = torch.zeros(2, *SIZE, dtype=torch.bool)
    with pytest.raises(ValueError, match="background must be"):
        composite(images, mask, np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="foreground must be"):
        composite(images, mask[:1], np.zeros((*SIZE, 3), np.uint8))
    with pytest.raises(ValueError, match="images must be"):
        composite(images.float(), mask, np.zeros((*SIZE, 3), np.uint8))
