"""SSIM against scikit-image's structural_similarity (the reference the published scripts used)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posetransfer.eval.ssim import (
    GAUSSIAN_GEN_RANGE,
    UNIFORM_7,
    UNIFORM_51,
    SSIMSpec,
    gaussian_window,
    masked_ssim,
    ssim,
    ssim_map,
)

skm = pytest.importorskip("skimage.metrics")
ndi = pytest.importorskip("scipy.ndimage")

GAUSSIAN_255 = SSIMSpec("gaussian", 1.5, None, False, 255.0)
SIZES = [(256, 176), (128, 64), (64, 48), (23, 31)]


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) uint8."""
    return torch.from_numpy(image).permute(2, 0, 1)[None]


def reference(gt: np.ndarray, gen: np.ndarray, spec: SSIMSpec) -> float:
    """The published call: compare_ssim(reference, generated, ...) on uint8 HWC arrays."""
    if spec.window == "gaussian":
        kwargs = {"gaussian_weights": True, "sigma": spec.sigma, "use_sample_covariance": False}
    else:
        kwargs = {"win_size": spec.win_size}  # skimage's default: sample covariance
    rng = float(gen.max()) - float(gen.min()) if spec.data_range == "gen_range" else spec.data_range
    return skm.structural_similarity(gt, gen, data_range=rng, channel_axis=2, **kwargs)


def noisy_pair(rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    gt = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    gen = np.clip(gt.astype(int) + rng.integers(-60, 60, gt.shape), 0, 255).astype(np.uint8)
    return gt, gen


def structured_pair(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Smooth gradients and a bright box, vs a shifted, blurred, darker copy (narrow range)."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    gt = np.stack([xx * 200 / w, yy * 180 / h, (xx + yy) % 37 * 5], axis=-1)
    gt[h // 4 : h // 2, w // 4 : w // 2] = 230
    gen = ndi.gaussian_filter(np.roll(gt, (2, 3), axis=(0, 1)), (1.2, 1.2, 0)) * 0.8 + 20
    return gt.astype(np.uint8), np.clip(gen, 0, 255).astype(np.uint8)


SPECS = {
    "gauss-gen": GAUSSIAN_GEN_RANGE,
    "gauss-255": GAUSSIAN_255,
    "win51": UNIFORM_51,
    "win7": UNIFORM_7,
}
CASES = [
    pytest.param(size, spec, id=f"{name}-{size[0]}x{size[1]}")
    for name, spec in SPECS.items()
    for size in SIZES
    if spec.win_size is None or spec.win_size <= min(size)
]


@pytest.mark.parametrize(("size", "spec"), CASES)
def test_matches_skimage(size: tuple[int, int], spec: SSIMSpec, rng: np.random.Generator) -> None:
    for gt, gen in (noisy_pair(rng, size), structured_pair(size)):
        ours = ssim(to_tensor(gen), to_tensor(gt), spec).item()
        assert ours == pytest.approx(reference(gt, gen, spec), abs=1e-5)


def test_batch_uses_each_images_own_range(rng: np.random.Generator) -> None:
    pairs = [noisy_pair(rng, (64, 48)), structured_pair((64, 48))]
    batch_gen = torch.cat([to_tensor(gen) for _, gen in pairs])
    batch_gt = torch.cat([to_tensor(gt) for gt, _ in pairs])
    values = ssim(batch_gen, batch_gt, GAUSSIAN_GEN_RANGE)
    expected = [reference(gt, gen, GAUSSIAN_GEN_RANGE) for gt, gen in pairs]
    assert values.dtype == torch.float64
    np.testing.assert_allclose(values.numpy(), expected, atol=1e-5)
    assert values[0].item() != pytest.approx(values[1].item(), abs=1e-3)


def test_uniform_51_equals_gfla_call_on_unit_floats(rng: np.random.Generator) -> None:
    # GFLA/CFLD: compare_ssim(gt / 255, pred / 255, data_range=1, win_size=51) on [0, 1] floats.
    gt, gen = noisy_pair(rng, (128, 64))
    gfla = skm.structural_similarity(
        gt / 255.0, gen / 255.0, data_range=1, win_size=51, channel_axis=2
    )
    assert ssim(to_tensor(gen), to_tensor(gt), UNIFORM_51).item() == pytest.approx(gfla, abs=1e-9)


def test_identical_images_score_one(rng: np.random.Generator) -> None:
    gt, _ = noisy_pair(rng, (64, 48))
    for spec in (GAUSSIAN_GEN_RANGE, UNIFORM_7):
        assert ssim(to_tensor(gt), to_tensor(gt), spec).item() == pytest.approx(1.0, abs=1e-12)


def test_fixed_range_is_symmetric(rng: np.random.Generator) -> None:
    gt, gen = noisy_pair(rng, (40, 30))
    a, b = to_tensor(gt), to_tensor(gen)
    assert ssim(a, b, GAUSSIAN_255).item() == pytest.approx(ssim(b, a, GAUSSIAN_255).item())


def test_data_range_override_and_tensor(rng: np.random.Generator) -> None:
    gt, gen = noisy_pair(rng, (40, 30))
    a, b = to_tensor(gen), to_tensor(gt)
    by_spec = ssim(a, b, GAUSSIAN_255)
    assert ssim(a, b, GAUSSIAN_GEN_RANGE, data_range=255.0) == pytest.approx(by_spec)
    assert ssim(a, b, GAUSSIAN_GEN_RANGE, data_range=torch.tensor([255.0])) == pytest.approx(
        by_spec
    )
    assert ssim(a, b, GAUSSIAN_255, data_range=100.0).item() != pytest.approx(by_spec.item())


def test_map_is_cropped_to_valid_windows() -> None:
    x = torch.zeros(2, 3, 30, 20)
    assert ssim_map(x + 1, x + 2, GAUSSIAN_255).shape == (2, 3, 20, 10)
    assert ssim_map(x + 1, x + 2, UNIFORM_7).shape == (2, 3, 24, 14)


def test_gaussian_window_is_scipys_kernel() -> None:
    window = gaussian_window(1.5)
    assert window.shape == (11,)  # radius int(3.5 * 1.5 + 0.5) = 5
    impulse = np.zeros(21)
    impulse[10] = 1.0
    scipy_kernel = ndi.gaussian_filter1d(impulse, 1.5, truncate=3.5)[5:16]
    np.testing.assert_allclose(window.numpy(), scipy_kernel, atol=1e-15)
    assert gaussian_window(1.2).shape == (9,)


def test_masked_ssim_matches_masked_images(rng: np.random.Generator) -> None:
    gt, gen = noisy_pair(rng, (128, 64))
    mask = np.zeros((128, 64), bool)
    mask[30:100, 10:50] = True
    # pose-gan: image * mask[..., None] on uint8, then the same SSIM (range of the masked gen)
    expected = reference(gt * mask[..., None], gen * mask[..., None], GAUSSIAN_GEN_RANGE)
    ours = masked_ssim(to_tensor(gen), to_tensor(gt), torch.from_numpy(mask)[None, None])
    assert ours.item() == pytest.approx(expected, abs=1e-5)
    flat_mask = masked_ssim(to_tensor(gen), to_tensor(gt), torch.from_numpy(mask)[None])
    assert flat_mask.item() == pytest.approx(ours.item())


def test_errors() -> None:
    x = torch.zeros(1, 3, 20, 20)
    with pytest.raises(ValueError, match="same shape"):
        ssim(x, torch.zeros(1, 3, 20, 21))
    with pytest.raises(ValueError, match="does not fit"):
        ssim(x, x, UNIFORM_51)
    with pytest.raises(ValueError, match="gen_range"):
        ssim(x, x, data_range="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        ssim(x, x, data_range=0.0)
    with pytest.raises(ValueError, match="odd"):
        ssim(x, x, SSIMSpec("uniform", win_size=8, data_range=255.0))
    with pytest.raises(ValueError, match="mask must be"):
        masked_ssim(x, x, torch.ones(1, 1, 20, 19))
