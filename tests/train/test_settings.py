"""Tests of posetransfer.train.settings: TrainConfig validation and the lr schedule."""

from __future__ import annotations

import math

import pytest
import torch

from posetransfer.config import ConfigError, apply_overrides, from_dict
from posetransfer.train.settings import TrainConfig, lr_factor, make_adam, memory_format


def test_defaults_are_the_original_generator_optimiser() -> None:
    cfg = TrainConfig()
    opt = make_adam([torch.nn.Parameter(torch.zeros(2))], cfg)
    group = opt.param_groups[0]
    assert (group["lr"], group["betas"], group["weight_decay"]) == (2e-4, (0.5, 0.999), 0.0)
    assert cfg.batch_size == 8


def test_make_adam_overrides_lr_and_weight_decay() -> None:
    opt = make_adam([torch.nn.Parameter(torch.zeros(2))], TrainConfig(), lr=2e-5, weight_decay=4e-4)
    assert opt.param_groups[0]["lr"] == 2e-5
    assert opt.param_groups[0]["weight_decay"] == 4e-4


def test_constant_schedule() -> None:
    cfg = TrainConfig(max_steps=100)
    assert [lr_factor(s, cfg) for s in (0, 50, 99)] == [1.0, 1.0, 1.0]


def test_linear_decay_after_start() -> None:
    cfg = TrainConfig(max_steps=100, lr_schedule="linear", lr_decay_start=50, lr_final_factor=0.0)
    assert lr_factor(0, cfg) == 1.0
    assert lr_factor(50, cfg) == 1.0
    assert lr_factor(75, cfg) == pytest.approx(0.5)
    assert lr_factor(99, cfg) == pytest.approx(0.02)
    floor = TrainConfig(max_steps=100, lr_schedule="linear", lr_final_factor=0.2)
    assert lr_factor(50, floor) == pytest.approx(0.6)  # halfway from 1 to 0.2


def test_cosine_decay() -> None:
    cfg = TrainConfig(max_steps=100, lr_schedule="cosine", lr_decay_start=20, lr_final_factor=0.1)
    assert lr_factor(10, cfg) == 1.0
    assert lr_factor(60, cfg) == pytest.approx(0.55)  # cos(pi/2) = 0: midway to the floor
    assert lr_factor(40, cfg) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))


def test_step_schedule_and_warmup() -> None:
    cfg = TrainConfig(max_steps=100, lr_schedule="step", lr_step_size=10, lr_step_gamma=0.5)
    assert [lr_factor(s, cfg) for s in (9, 10, 25)] == [1.0, 0.5, 0.25]
    warm = TrainConfig(max_steps=100, lr_warmup_steps=4)
    assert [lr_factor(s, warm) for s in (0, 1, 3, 50)] == [0.25, 0.5, 1.0, 1.0]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_steps", 0),
        ("batch_size", 0),
        ("lr", -1.0),
        ("betas", (0.5, 1.0)),
        ("grad_clip", 0.0),
        ("amp", "fp8"),
        ("memory_format", "nhwc"),
        ("keep_last", 0),
        ("lr_decay_start", 100),
        ("val_mode", "median"),
        ("log_every", 0),
    ],
)
def test_invalid_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"train\.{field} must be .*{value!r}"):
        TrainConfig(**{"max_steps": 100, field: value})  # type: ignore[arg-type]


def test_yaml_dict_and_overrides() -> None:
    cfg = from_dict(TrainConfig, {"amp": "bf16", "grad_clip": None, "betas": [0.9, 0.99]})
    assert (cfg.amp, cfg.grad_clip, cfg.betas) == ("bf16", None, (0.9, 0.99))
    cfg = apply_overrides(cfg, ["grad_clip=1", "lr=1e-4", "keep_last=null"])
    assert (cfg.grad_clip, cfg.lr, cfg.keep_last) == (1.0, 1e-4, None)
    with pytest.raises(ConfigError, match="amp"):
        from_dict(TrainConfig, {"amp": "fp8"})


def test_memory_format_auto_is_channels_last_on_cpu_only() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert memory_format(TrainConfig(), cpu) == torch.channels_last
    assert memory_format(TrainConfig(), cuda) == torch.contiguous_format
    assert memory_format(TrainConfig(memory_format="contiguous"), cpu) == torch.contiguous_format
    assert memory_format(TrainConfig(memory_format="channels_last"), cuda) == torch.channels_last
