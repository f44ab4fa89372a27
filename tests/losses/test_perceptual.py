"""Tests for posetransfer.losses.perceptual: Gram matrices and VGG feature terms."""

from __future__ import annotations

import pytest
import torch

from posetransfer.losses.perceptual import gram_matrix, perceptual_terms
from posetransfer.models.vgg import PERCEPTUAL_LAYERS, VGG19Features, load_vgg19


@pytest.fixture(scope="module")
def vgg() -> VGG19Features:
    torch.manual_seed(0)
    return load_vgg19(random_weights=True)


def _images(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1 for _ in range(2))


def test_gram_matrix_by_hand() -> None:
    feats = torch.tensor([[[[1.0, 2.0]], [[3.0, -1.0]]]])  # (1, 2, 1, 2)
    # F = [[1, 2], [3, -1]]; F F^T = [[5, 1], [1, 10]]; / (C H W = 4)
    assert gram_matrix(feats).tolist() == [[[1.25, 0.25], [0.25, 2.5]]]
    assert gram_matrix(torch.zeros(3, 4, 5, 6, dtype=torch.float16)).dtype == torch.float32
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        gram_matrix(torch.zeros(2, 3))


def test_terms_are_zero_for_identical_images_and_positive_otherwise(vgg: VGG19Features) -> None:
    output, target = _images()
    same = perceptual_terms(
        vgg, target, target, content_layers=PERCEPTUAL_LAYERS, style_layers=("relu2_1",)
    )
    assert list(same) == [f"vgg_{k}" for k in PERCEPTUAL_LAYERS] + ["style_relu2_1"]
    assert all(v.item() == 0 for v in same.values())
    diff = perceptual_terms(
        vgg, output, target, content_layers=PERCEPTUAL_LAYERS, style_layers=("relu2_1",)
    )
    assert all(v.item() > 0 for v in diff.values())


def test_content_term_is_the_mean_absolute_feature_difference(vgg: VGG19Features) -> None:
    output, target = _images(1)
    terms = perceptual_terms(vgg, output, target, content_layers=("relu3_1",))
    expected = (vgg(output, ["relu3_1"])["relu3_1"] - vgg(target, ["relu3_1"])["relu3_1"]).abs()
    torch.testing.assert_close(terms["vgg_relu3_1"], expected.mean())


def test_gradients_reach_the_output_but_not_the_target_or_vgg(vgg: VGG19Features) -> None:
    output, target = _images(2)
    output.requires_grad_(True)
    target.requires_grad_(True)
    terms = perceptual_terms(
        vgg, output, target, content_layers=("relu1_1", "relu2_1"), style_layers=("relu1_1",)
    )
    sum(terms.values()).backward()
    assert output.grad is not None and output.grad.abs().sum() > 0
    assert target.grad is None
    assert all(p.grad is None for p in vgg.parameters())


def test_shape_mismatch_and_no_layers(vgg: VGG19Features) -> None:
    output, target = _images()
    with pytest.raises(ValueError, match=r"differs from target\.shape"):
        perceptual_terms(vgg, output[:1], target, content_layers=("relu1_1",))
    assert perceptual_terms(vgg, output, target, content_layers=()) == {}
