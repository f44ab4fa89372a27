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


def _grads_as_handed_on(leaves: list[torch.Tensor]) -> list[torch.Tensor]:
    """Record each leaf's gradient as the op hands it on (before AccumulateGrad copies it)."""
    seen: list[torch.Tensor] = []
    for t in leaves:
        t.register_hook(lambda g: seen.append(g))
    return seen


def _twins(leaves: list[torch.Tensor]) -> list[torch.Tensor]:
    return [t.detach().clone().requires_grad_() for t in leaves]  # clone keeps the layout


def test_cat_channels_matches_torch_cat_with_dense_channels_last_gradients() -> None:
    ours = _leaves((2, 3, 5, 4), (2, 6, 5, 4), (2, 2, 5, 4), fmt=CL)
    theirs = _twins(ours)
    seen_ours, seen_theirs = _grads_as_handed_on(ours), _grads_as_handed_on(theirs)
    out, ref = cat_channels(ours), torch.cat(theirs, dim=1)
    assert torch.equal(out, ref) and is_channels_last(out)
    upstream = torch.randn(ref.shape).contiguous(memory_format=CL)
    out.backward(upstream)
    ref.backward(upstream)
    for a, b in zip(ours, theirs, strict=True):
        assert a.grad is not None and b.grad is not None and torch.equal(a.grad, b.grad)
    assert sorted(g.shape[1] for g in seen_ours) == [2, 3, 6]
    assert all(g.is_contiguous(memory_format=CL) for g in seen_ours)
    # torch.cat's own: channel slices, dense in neither format.
    assert not any(g.is_contiguous(memory_format=CL) for g in seen_theirs)


def test_cat_channels_with_mixed_layouts_and_odd_gradients() -> None:
    (a,) = _leaves((2, 3, 4, 4), fmt=CL)
    (b,) = _leaves((2, 2, 4, 4), fmt=torch.contiguous_format)
    a2, b2 = _twins([a, b])
    weights = torch.randn(1, 5, 4, 4)
    (cat_channels((a, b)) * weights).sum().backward()
    (torch.cat((a2, b2), dim=1) * weights).sum().backward()
    assert torch.equal(a.grad, a2.grad) and torch.equal(b.grad, b2.grad)
    # A broadcast (zero-stride) gradient from .sum(): no format at all.
    a3, b3 = _twins([a, b])
    cat_channels((a3, b3)).sum().backward()
    assert torch.equal(a3.grad, torch.ones_like(a)) and torch.equal(b3.grad, torch.ones_like(b))


def test_cat_channels_second_derivatives() -> None:
    gen = torch.Generator().manual_seed(1)
    xs = tuple(
        torch.randn(s, dtype=torch.float64, generator=gen).contiguous(memory_format=CL)
        for s in ((1, 2, 3, 3), (1, 3, 3, 3))
    )
    xs = tuple(x.requires_grad_() for x in xs)
    assert torch.autograd.gradcheck(lambda *t: cat_channels(t) ** 2, xs)
    assert torch.autograd.gradgradcheck(lambda *t: cat_channels(t) ** 2, xs)


def test_cat_channels_is_plain_torch_cat_where_nothing_is_channels_last() -> None:
    ours = _leaves((2, 3, 5, 4), (2, 6, 5, 4), fmt=torch.contiguous_format)
    out = cat_channels(ours)
    assert out.grad_fn is not None and out.grad_fn.name() == "CatBackward0"
    cl = cat_channels(_leaves((2, 3, 5, 4), (2, 6, 5, 4), fmt=CL))
    assert cl.grad_fn is not None and cl.grad_fn.name() != "CatBackward0"


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
