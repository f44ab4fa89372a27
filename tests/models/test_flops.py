"""Tests for posetransfer.models.flops: hand formulas for each counted layer, hook hygiene."""

from __future__ import annotations

import torch
from torch import nn

from posetransfer.models.flops import count_flops, count_parameters


def test_conv_flops_equal_the_hand_formula() -> None:
    conv = nn.Conv2d(6, 10, kernel_size=(3, 5), stride=2, padding=1, groups=2)
    x = torch.zeros(3, 6, 16, 20)
    out_h, out_w = (16 + 2 - 3) // 2 + 1, (20 + 2 - 5) // 2 + 1
    macs = 3 * 10 * out_h * out_w * (6 // 2) * 3 * 5
    assert count_flops(conv, x) == 2 * macs


def test_transposed_conv_flops_count_every_input_through_the_kernel() -> None:
    conv = nn.ConvTranspose2d(4, 6, kernel_size=4, stride=2, padding=1)
    x = torch.zeros(2, 4, 5, 7)
    assert count_flops(conv, x) == 2 * (2 * 4 * 5 * 7) * 6 * 4 * 4


def test_linear_and_nested_modules_are_summed_and_others_ignored() -> None:
    net = nn.Sequential(
        nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 2 * 2, 5)
    )
    x = torch.zeros(1, 3, 2, 2)
    assert count_flops(net, x) == 2 * (4 * 2 * 2 * 3 + 5 * 16)


def test_count_flops_leaves_no_hooks_and_keeps_the_mode() -> None:
    net = nn.Sequential(nn.Conv2d(1, 1, 3), nn.BatchNorm2d(1)).train()
    x = torch.randn(2, 1, 5, 5)
    first = count_flops(net, x)
    assert count_flops(net, x) == first  # hooks removed: no double counting
    assert not net[0]._forward_hooks and net.training


def test_count_parameters_counts_shared_weights_once() -> None:
    shared = nn.Linear(3, 4)  # 12 + 4
    net = nn.Sequential(shared, nn.ReLU(), nn.Linear(4, 4, bias=False), shared)
    net[2].weight.requires_grad_(False)  # 16 frozen
    assert count_parameters(net) == 16 + 16
    assert count_parameters(net, trainable_only=True) == 16
