"""Option helpers the commands share: value parsers, ``--threads``/``--device``, folding flags.

Every command parses sizes with :func:`parse_size` and counts with :func:`positive_int`, adds its
thread and device options with :func:`add_threads_option` and :func:`add_device_option` (applied
by :func:`posetransfer.runtime.set_torch_threads` and :func:`posetransfer.runtime.resolve_device`),
and folds flags that set config keys into the config with :func:`with_flags` in its
``configure`` hook, so that ``--dry-run`` prints the configuration that runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from posetransfer.runtime import DEVICE_CHOICES

__all__ = [
    "add_device_option",
    "add_threads_option",
    "parse_size",
    "positive_int",
    "require",
    "with_flags",
]

C = TypeVar("C")

_SIZE = re.compile(r"\s*(\d+)\s*[xX]\s*(\d+)\s*")


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``HxW`` (e.g. ``256x176``; ``X`` works too) into ``(H, W)``, height first.

    Raises:
        argparse.ArgumentTypeError: Not two positive integers joined by ``x``.
    """
    match = _SIZE.fullmatch(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"expected HxW such as 256x176, got {text!r}")
    height, width = int(match[1]), int(match[2])
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"size sides must be positive, got {text!r}")
    return height, width


def positive_int(text: str) -> int:
    """Parse an integer >= 1.

    Raises:
        argparse.ArgumentTypeError: Anything else.
    """
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    """``--threads N``: torch CPU threads for the command (default: torch's own choice)."""
    parser.add_argument(
        "--threads", type=positive_int, metavar="N", help="torch CPU threads (default: torch's)"
    )


def add_device_option(parser: argparse.ArgumentParser, key: str = "device") -> None:
    """``--device {auto,cpu,cuda}``, which sets the config key ``key``."""
    parser.add_argument("--device", choices=DEVICE_CHOICES, help=f"sets {key}")


def require(args: argparse.Namespace, *names: str) -> None:
    """Fail, naming them, when options needed to run are missing (``--dry-run`` needs none).

    Raises:
        ValueError: One or more of ``args.<name>`` is None.
    """
    missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) is None]
    if missing:
        raise ValueError(f"the following arguments are required: {', '.join(missing)}")


def with_flags(cfg: C, values: Mapping[str, Any]) -> C:
    """``cfg`` with the dotted keys of ``values`` replaced, leaving out values that are None.

    ``with_flags(cfg, {"data.root": args.data, "train.max_steps": args.max_steps})`` sets what
    was given on the command line and keeps the rest of ``cfg`` (a frozen dataclass).
    """
    for key, value in values.items():
        if value is not None:
            cfg = _replace_dotted(cfg, key.split("."), value)
    return cfg


def _replace_dotted(obj: Any, path: list[str], value: Any) -> Any:
    head, *rest = path
    if not dataclasses.is_dataclass(obj) or head not in {f.name for f in dataclasses.fields(obj)}:
        raise KeyError(f"{type(obj).__name__} has no field {head!r}")
    new = _replace_dotted(getattr(obj, head), rest, value) if rest else value
    return dataclasses.replace(cast(Any, obj), **{head: new})
