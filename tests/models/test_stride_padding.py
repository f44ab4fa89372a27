"""Tests for posetransfer.models.stride_padding: the padding values; multiples untouched."""

from __future__ import annotations

import pytest
import torch

from posetransfer.conventions import Visibility
from posetransfer.models.stride_padding import (
    crop_to,
    pad_amount,
    pad_constant,
    pad_image,
    pad_visibility,
    padded_size,
)


@pytest.mark.parametrize(
    ("size", "stride", "expected"),
    [((128, 88), 16, (128, 96)), ((100, 70), 16, (112, 80)), ((128, 96), 16, (128, 96)),
     ((1, 1), 8, (8, 8)), ((17, 16), 16, (32, 16))],
)  # fmt: skip
def test_padded_size(size: tuple, stride: int, expected: tuple) -> None:
    assert padded_size(size, stride) == expected
    assert pad_amount(size, stride) == (expected[0] - size[0], expected[1] - size[1])


def test_image_padding_replicates_the_last_row_and_column() -> None:
    x = torch.arange(2 * 3 * 5 * 6, dtype=torch.float32).reshape(2, 3, 5, 6)
    out = pad_image(x, 4)
    assert out.shape == (2, 3, 8, 8)
    assert torch.equal(out[..., :5, :6], x)
    assert torch.equal(out[..., 5:, :6], x[..., 4:5, :].expand(-1, -1, 3, -1))
    assert torch.equal(out[..., :5, 6:], x[..., :, 5:6].expand(-1, -1, -1, 2))
    assert torch.equal(out[..., 5:, 6:], x[..., 4:5, 5:6].expand(-1, -1, 3, 2))


def test_constant_padding() -> None:
    x = torch.rand(1, 2, 3, 5) + 1
    out = pad_constant(x, 4)
    assert out.shape == (1, 2, 4, 8) and torch.equal(out[..., :3, :5], x)
    assert (out[..., 3:, :] == 0).all() and (out[..., 5:] == 0).all()
    assert (pad_constant(x, 4, -1.0)[..., 3:, :] == -1).all()
    assert pad_constant(None, 4) is None


def test_visibility_padding_is_background() -> None:
    codes = torch.randint(0, 2, (2, 5, 6))  # VISIBLE / INVISIBLE only
    out = pad_visibility(codes, 4)
    assert out.shape == (2, 8, 8) and out.dtype == codes.dtype
    assert torch.equal(out[:, :5, :6], codes)
    assert (out[:, 5:] == Visibility.BACKGROUND).all()
    assert (out[:, :, 6:] == Visibility.BACKGROUND).all()
    probs = torch.softmax(torch.randn(2, 3, 5, 6), dim=1)
    padded = pad_visibility(probs, 4)
    assert padded.shape == (2, 3, 8, 8) and torch.equal(padded[..., :5, :6], probs)
    one_hot = torch.tensor([0.0, 0.0, 0.0])
    one_hot[Visibility.BACKGROUND] = 1
    assert torch.equal(padded[0, :, 7, 7], one_hot) and torch.equal(padded[1, :, 0, 6], one_hot)
    assert pad_visibility(None, 4) is None


def test_multiples_are_returned_untouched_and_crop_inverts_padding() -> None:
    x = torch.rand(1, 3, 8, 12)
    vis = torch.zeros(1, 8, 12, dtype=torch.long)
    assert pad_image(x, 4) is x and pad_constant(x, 4) is x and pad_visibility(vis, 4) is vis
    assert crop_to(x, (8, 12)) is x and crop_to(None, (1, 1)) is None
    odd = torch.rand(1, 3, 7, 10)
    assert torch.equal(crop_to(pad_image(odd, 4), (7, 10)), odd)
    assert torch.equal(crop_to(pad_visibility(vis[..., :7, :10], 4), (7, 10)), vis[..., :7, :10])
