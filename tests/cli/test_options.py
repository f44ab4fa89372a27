"""The option helpers every command shares (posetransfer.cli.options)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from posetransfer.cli.options import (
    add_device_option,
    add_threads_option,
    parse_size,
    positive_int,
    require,
    with_flags,
)
from posetransfer.config import ConfigError


def test_parse_size() -> None:
    assert parse_size("256x176") == (256, 176)
    assert parse_size("64X32") == (64, 32)
    assert parse_size(" 8 x 4 ") == (8, 4)
    for bad in ("256", "axb", "1x2x3", "-1x5", "1.5x2", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="expected HxW"):
            parse_size(bad)
    for zero in ("0x5", "5x0"):
        with pytest.raises(argparse.ArgumentTypeError, match="positive"):
            parse_size(zero)


def test_positive_int() -> None:
    assert positive_int("3") == 3
    for bad in ("0", "-2", "x", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError, match=">= 1"):
            positive_int(bad)


def test_threads_and_device_options() -> None:
    parser = argparse.ArgumentParser()
    add_threads_option(parser)
    add_device_option(parser)
    args = parser.parse_args([])
    assert args.threads is None and args.device is None  # not given: keep the config's
    args = parser.parse_args(["--threads", "2", "--device", "cpu"])
    assert args.threads == 2 and args.device == "cpu"
    with pytest.raises(SystemExit):
        parser.parse_args(["--device", "tpu"])


def test_require_names_every_missing_option() -> None:
    args = argparse.Namespace(out=None, data=Path("d"), flow_checkpoint=None)
    require(args, "data")
    with pytest.raises(ValueError, match="required: --out, --flow-checkpoint"):
        require(args, "out", "data", "flow_checkpoint")


@dataclass(frozen=True)
class _Inner:
    steps: int = 1

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError("steps must be >= 1")


@dataclass(frozen=True)
class _Outer:
    root: Path | None = None
    inner: _Inner = field(default_factory=_Inner)


def test_with_flags_sets_given_values_only() -> None:
    cfg = _Outer(inner=_Inner(5))
    assert with_flags(cfg, {"root": None, "inner.steps": None}) == cfg
    assert with_flags(cfg, {"root": Path("x"), "inner.steps": 9}) == _Outer(Path("x"), _Inner(9))
    with pytest.raises(ConfigError, match="steps"):  # the config's own checks run
        with_flags(cfg, {"inner.steps": 0})
    with pytest.raises(KeyError, match="nope"):
        with_flags(cfg, {"inner.nope": 1})
