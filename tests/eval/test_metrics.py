"""PSNR, L1 and masked L1 on explicit scales."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from posetransfer.eval.metrics import finite_mean, l1, masked_l1, psnr


def test_psnr_matches_skimage(rng: np.random.Generator) -> None:
    skm = pytest.importorskip("skimage.metrics")
    a = rng.integers(0, 256, (2, 3, 32, 24), dtype=np.uint8)
    b = rng.integers(0, 256, (2, 3, 32, 24), dtype=np.uint8)
    ours = psnr(torch.from_numpy(a), torch.from_numpy(b), data_range=255.0)
    expected = [skm.peak_signal_noise_ratio(b[i], a[i], data_range=255) for i in range(2)]
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12)


def test_psnr_hand_value_and_identical_images() -> None:
    x = torch.zeros(2, 3, 4, 4)
    y = x.clone()
    y[0] += 25.5  # MSE 650.25 -> 10 log10(255^2 / 25.5^2) = 20 dB
    values = psnr(y, x, data_range=255.0)
    assert values[0].item() == pytest.approx(20.0)
    assert math.isinf(values[1].item()) and values[1] > 0


def test_finite_mean_skips_and_counts_non_finite() -> None:
    assert finite_mean(torch.tensor([20.0, math.inf, 30.0])) == (25.0, 1)
    assert finite_mean(torch.tensor([math.inf, math.nan])) == (None, 2)


def test_l1_is_on_the_unit_scale() -> None:
    x = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    y = torch.full_like(x, 51)
    assert l1(y, x, data_range=255.0).item() == pytest.approx(0.2)
    # PATN's l1_score works on [-1, 1] (x / 127.5 - 1): twice our value
    patn = (2 * (y.double() / 255 - 0.5) - 2 * (x.double() / 255 - 0.5)).abs().mean()
    assert patn.item() == pytest.approx(2 * l1(y, x, data_range=255.0).item())
    assert l1(y / 255.0, x / 255.0, data_range=1.0).item() == pytest.approx(0.2)


def test_masked_l1_averages_inside_the_mask_only() -> None:
    pred = torch.zeros(2, 3, 4, 4)
    target = torch.zeros(2, 3, 4, 4)
    target[:, :, :2] = 10.0  # rows 0-1 differ by 10
    target[:, :, 2:] = 100.0  # rows 2-3 differ by 100
    mask = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    mask[0, :, :2] = True
    values = masked_l1(pred, target, mask, data_range=255.0)
    assert values[0].item() == pytest.approx(10 / 255)
    assert math.isnan(values[1].item())  # empty mask
    assert masked_l1(pred, target, mask[:, 0], data_range=255.0)[0] == pytest.approx(10 / 255)


def test_errors() -> None:
    x = torch.zeros(1, 3, 4, 4)
    with pytest.raises(ValueError, match="same shape"):
        psnr(x, torch.zeros(1, 3, 4, 5), data_range=255.0)
    with pytest.raises(ValueError, match="data_range"):
        l1(x, x, data_range=0)
    with pytest.raises(ValueError, match="mask must be"):
        masked_l1(x, x, torch.ones(1, 2, 4, 4), data_range=1.0)
