"""Tests for posetransfer.config: YAML <-> frozen dataclasses and dotted overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from posetransfer.config import (
    ConfigError,
    apply_overrides,
    from_dict,
    load_config,
    save_config,
    to_dict,
)


@dataclass(frozen=True)
class Optim:
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)


@dataclass(frozen=True)
class Model:
    kind: Literal["unet", "unet_v2"] = "unet"
    channels: tuple[int, ...] = (64, 128)
    dropout: float | None = None


@dataclass(frozen=True)
class Stage:
    steps: int = 100
    name: str = "run"
    model: Model = field(default_factory=Model)
    optim: Optim = field(default_factory=Optim)


def test_defaults_round_trip_through_yaml(tmp_path):
    cfg = Stage(steps=7, model=Model(kind="unet_v2", channels=(8, 16, 32)))
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(Stage, tmp_path / "c.yaml") == cfg


def test_partial_yaml_keeps_defaults(tmp_path):
    (tmp_path / "c.yaml").write_text("model:\n  channels: [4, 8]\noptim:\n  lr: 1\n")
    cfg = load_config(Stage, tmp_path / "c.yaml")
    assert cfg.model.channels == (4, 8)
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.steps == 100


def test_overrides_parse_yaml_scalars():
    cfg = apply_overrides(
        Stage(),
        ["steps=5", "optim.lr=1e-3", "model.channels=[1, 2, 3]", "model.dropout=0.5", "--name=abc"],
    )
    assert cfg.steps == 5
    assert cfg.optim.lr == pytest.approx(1e-3)
    assert cfg.model.channels == (1, 2, 3)
    assert cfg.model.dropout == 0.5
    assert cfg.name == "abc"


def test_optional_field_accepts_null():
    cfg = apply_overrides(Stage(model=Model(dropout=0.1)), ["model.dropout=null"])
    assert cfg.model.dropout is None


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("model.widht=3", "widht"),
        ("stepz=3", "stepz"),
        ("steps", "key=value"),
        ("steps=abc", "expected int"),
        ("steps=true", "expected int"),
        ("model.kind=resnet", "'resnet' is not one of"),
        ("optim.betas=[0.5]", "expected 2 values"),
        ("model=3", "expected a mapping"),
        ("steps.x=3", "not a section"),
    ],
)
def test_bad_overrides_name_the_problem(override, needle):
    with pytest.raises(ConfigError, match=needle):
        apply_overrides(Stage(), [override])


def test_unknown_yaml_key_names_file_and_valid_keys(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  chanels: [1]\n")
    with pytest.raises(ConfigError) as e:
        load_config(Stage, path)
    msg = str(e.value)
    assert "bad.yaml" in msg and "chanels" in msg and "channels" in msg


def test_missing_and_invalid_yaml_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Stage, tmp_path / "nope.yaml")
    (tmp_path / "broken.yaml").write_text("steps: [1, \n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(Stage, tmp_path / "broken.yaml")


def test_to_dict_is_plain():
    d = to_dict(Stage())
    assert d["model"]["channels"] == [64, 128]
    assert from_dict(Stage, d) == Stage()
