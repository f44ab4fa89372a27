"""Tests of posetransfer.ops.memory_format: same values and gradients, dense layouts."""

from __future__ import annotations

import torch

from posetransfer.ops.memory_format import cat_channels, dense_grad, is_channels_last
from posetransfer.ops.warp import warp

CL = torch.channels_last


def _leaves(*shapes: tuple[int, ...], fmt: torch.memory_format) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return [
        torch.randn(s, generator=gen).contiguous(memory_format=fmt).requires_grad_() for s in shapes
    ]


def test_cat_channels_matches_torch_cat_with_dense_gradients() -> None:
    for fmt in (CL, torch.contiguous_format):
        ours = _leaves((2, 3, 5, 4), (2, 6, 5, 4), fmt=fmt)
        theirs = [t.detach().clone().requires_grad_() for t in ours]
        seen: dict[str, list[torch.Tensor]] = {"ours": [], "theirs": []}
        for name, leaves in (("ours", ours), ("theirs", theirs)):
            for t in leaves:  # the gradient as the op hands it on, before AccumulateGrad
                t.register_hook(lambda g, found=seen[name]: found.append(g))
        out, ref = cat_channels(ours), torch.cat(theirs, dim=1)
        assert torch.equal(out, ref)
        upstream = torch.randn(ref.shape).contiguous(memory_format=fmt)
        out.backward(upstream)
        ref.backward(upstream)
        for a, b in zip(ours, theirs, strict=True):
            assert a.grad is not None and b.grad is not None
            assert torch.equal(a.grad, b.grad)
        assert all(g.is_contiguous(memory_format=fmt) for g in seen["ours"])
        # torch.cat's own: channel slices, dense in neither format (batch 2).
        assert not any(g.is_contiguous(memory_format=fmt) for g in seen["theirs"])


def test_cat_channels_skips_inputs_without_grad_and_unrecorded_calls() -> None:
    a, b = _leaves((1, 2, 3, 3), (1, 4, 3, 3), fmt=CL)
    frozen = b.detach()
    cat_channels((a, frozen)).sum().backward()
    assert a.grad is not None and torch.equal(a.grad, torch.ones_like(a))
    with torch.no_grad():
        out = cat_channels((a, b))
    assert out.grad_fn is None and torch.equal(out, torch.cat((a, b), dim=1))


def test_dense_grad_returns_the_gradient_in_the_input_format() -> None:
    (x,) = _leaves((2, 3, 4, 5), fmt=CL)
    y = dense_grad(x)
    assert torch.equal(y, x)
    upstream = torch.randn(2, 3, 4, 5)  # contiguous
    y.backward(upstream)
    assert x.grad is not None and torch.equal(x.grad, upstream)
    assert is_channels_last(x.grad)
    (c,) = _leaves((2, 3, 4, 5), fmt=torch.contiguous_format)
    assert dense_grad(c) is c  # nothing to do


def test_warp_keeps_channels_last_and_its_gradients() -> None:
    (x,) = _leaves((2, 16, 8, 6), fmt=CL)
    ref_x = x.detach().contiguous().requires_grad_()
    flow = torch.randn(2, 2, 8, 6) * 2
    out, ref = warp(x, flow), warp(ref_x, flow)
    assert is_channels_last(out) and not is_channels_last(ref)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    upstream = torch.randn(ref.shape)
    out.backward(upstream.contiguous(memory_format=CL))
    ref.backward(upstream)
    assert x.grad is not None and ref_x.grad is not None
    assert is_channels_last(x.grad)
    torch.testing.assert_close(x.grad, ref_x.grad, rtol=0, atol=1e-5)
