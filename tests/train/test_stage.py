"""Tests of posetransfer.train.stage: StepContext updates, AMP contexts, batch helpers."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from posetransfer.train.distributed import DistInfo
from posetransfer.train.stage import (
    NonFiniteLossError,
    StepContext,
    eval_mode,
    move_to_device,
    nonfinite_fields,
    requires_grad,
)

CPU = torch.device("cpu")


def _setup(
    amp: str = "off", grad_clip: float | None = None, opt: str = "adam"
) -> tuple[nn.Module, torch.optim.Optimizer, StepContext]:
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    if opt == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(net.parameters(), lr=0.1)
    else:
        optimizer = torch.optim.SGD(net.parameters(), lr=1.0)
    return net, optimizer, StepContext(CPU, amp, DistInfo(), {"net": optimizer}, grad_clip)


def test_update_equals_a_plain_optimiser_step() -> None:
    net, _, ctx = _setup()
    ref = copy.deepcopy(net)
    ref_opt = torch.optim.Adam(ref.parameters(), lr=0.1)
    x = torch.randn(5, 3)
    for _ in range(3):
        norm = ctx.update("net", net(x).pow(2).mean())
        ref_opt.zero_grad()
        ref(x).pow(2).mean().backward()
        expected_norm = torch.linalg.vector_norm(
            torch.cat([p.grad.flatten() for p in ref.parameters()])
        )
        ref_opt.step()
        assert norm.item() == pytest.approx(expected_norm.item(), rel=1e-6)
    for a, b in zip(net.parameters(), ref.parameters(), strict=True):
        assert torch.equal(a, b)
    assert set(ctx.grad_norms) == {"net"}


def test_grad_clip_limits_the_update() -> None:
    net, _, ctx = _setup(grad_clip=0.01, opt="sgd")  # SGD lr=1: the change is the gradient
    before = [p.detach().clone() for p in net.parameters()]
    norm = ctx.update("net", net(torch.randn(5, 3)).sum() * 10)
    change = torch.cat(
        [(b - p.detach()).flatten() for b, p in zip(before, net.parameters(), strict=True)]
    )
    assert norm.item() > 0.01  # the raw norm is returned
    assert torch.linalg.vector_norm(change).item() == pytest.approx(0.01, rel=1e-4)


def test_non_finite_loss_raises_and_leaves_weights() -> None:
    net, _, ctx = _setup()
    before = copy.deepcopy(net.state_dict())
    loss = net(torch.full((2, 3), math.nan)).sum()
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss \(nan\) for optimizer 'net'"):
        ctx.update("net", loss)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())
    assert all(p.grad is None for p in net.parameters())


def test_non_finite_gradient_raises() -> None:
    net, _, ctx = _setup()
    w = net.weight
    loss = torch.sqrt(w - w.detach()).sum()  # value 0, gradient 1/(2*sqrt(0)) = inf
    with pytest.raises(NonFiniteLossError, match="non-finite gradient norm"):
        ctx.update("net", loss)


def test_update_argument_errors() -> None:
    net, _, ctx = _setup()
    with pytest.raises(KeyError, match=r"no optimizer 'g'.*\['net'\]"):
        ctx.update("g", net(torch.ones(1, 3)).sum())
    with pytest.raises(ValueError, match=r"must be a scalar, got shape \(1, 2\)"):
        ctx.update("net", net(torch.ones(1, 3)))


def test_autocast_bf16_runs_on_cpu() -> None:
    net, _, ctx = _setup(amp="bf16")
    with ctx.autocast():
        out = net(torch.randn(4, 3))
    assert out.dtype == torch.bfloat16
    ctx.update("net", out.float().pow(2).mean())  # backward through bf16 works
    assert all(p.dtype == torch.float32 for p in net.parameters())
    off = _setup(amp="off")[2]
    with off.autocast():
        assert net(torch.randn(4, 3)).dtype == torch.float32


def test_scaler_states_without_fp16_are_empty() -> None:
    _, _, ctx = _setup()
    assert ctx.scaler_states() == {"net": {}}
    ctx.load_scaler_states({"net": {}})  # a no-op, not an error


@dataclass
class _Batch:
    image: torch.Tensor
    names: list[str]


def test_nonfinite_fields_names_nested_fields() -> None:
    batch = {
        "a": _Batch(torch.tensor([1.0, math.inf]), ["x"]),
        "b": (torch.zeros(2), torch.tensor([math.nan])),
        "c": torch.tensor([1, 2]),  # integers never count
    }
    assert nonfinite_fields(batch) == ["batch.a.image", "batch.b.1"]
    assert nonfinite_fields({"ok": torch.ones(3)}) == []


def test_move_to_device_keeps_structure() -> None:
    class WithTo:
        def __init__(self) -> None:
            self.device = None

        def to(self, device: torch.device) -> str:
            return f"moved to {device}"

    batch = {"x": torch.ones(2), "pair": (torch.zeros(1), [torch.ones(1)]), "obj": WithTo(), "n": 3}
    out = move_to_device(batch, CPU)
    assert isinstance(out["pair"], tuple) and isinstance(out["pair"][1], list)
    assert out["obj"] == "moved to cpu" and out["n"] == 3
    assert torch.equal(out["x"], batch["x"])


def test_eval_mode_restores_each_submodule_flag() -> None:
    frozen = nn.BatchNorm1d(2).eval()  # e.g. a frozen generator kept in eval mode
    net = nn.Sequential(nn.Linear(2, 2), frozen, nn.Dropout(0.5))
    with eval_mode([net]):
        assert not any(m.training for m in net.modules())
        assert not torch.is_grad_enabled()
    assert net.training and net[2].training and not frozen.training


def test_requires_grad_switches_every_parameter() -> None:
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    requires_grad(net, False)
    assert not any(p.requires_grad for p in net.parameters())
    requires_grad(net, True)
    assert all(p.requires_grad for p in net.parameters())
