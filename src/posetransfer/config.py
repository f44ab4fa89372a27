"""Configuration: frozen dataclasses <-> YAML, with dotted command-line overrides.

Each component and each stage owns a frozen dataclass. A YAML file fills it; an unknown key is an
error naming the key and the valid ones; ``a.b.c=value`` overrides any field (values parsed as
YAML scalars, so ``true``, ``1e-4`` and ``[1, 2]`` work). The resolved config is saved with every
run (:func:`save_config`).

Example (``make_dataclass`` stands in for two ``@dataclass(frozen=True)`` classes: a class
statement run as this module's doctest gets postponed annotations naming no module-level class):
    >>> from dataclasses import field, make_dataclass
    >>> Opt = make_dataclass("Opt", [("lr", float, 2e-4)], frozen=True)
    >>> Run = make_dataclass(
    ...     "Run", [("steps", int, 10), ("opt", Opt, field(default_factory=Opt))], frozen=True
    ... )
    >>> apply_overrides(Run(), ["opt.lr=1e-3", "steps=5"])
    Run(steps=5, opt=Opt(lr=0.001))
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from posetransfer.io import atomic_write_text

__all__ = [
    "ConfigError",
    "apply_overrides",
    "from_dict",
    "load_config",
    "save_config",
    "to_dict",
]

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override does not match the config dataclass."""


def to_dict(cfg: Any) -> dict[str, Any]:
    """Convert a (nested) config dataclass to plain dicts, lists and scalars."""
    out = dataclasses.asdict(cfg)
    return _plain(out)


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    return x


def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from a mapping, recursing into nested dataclasses.

    Args:
        cls: A dataclass type.
        data: Values by field name; missing fields keep their defaults.
        where: Name used in error messages (a file name or a dotted prefix).

    Raises:
        ConfigError: On an unknown key or a value of the wrong type.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    unknown = sorted(str(k) for k in set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(fields)}"
        )
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:  # a dataclass's own checks (__post_init__)
        raise ConfigError(f"{where}: {exc}") from None


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Check ``value`` against annotation ``tp`` and convert lists to tuples, ints to floats."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)  # type: ignore[arg-type]
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin in (tuple, list) or tp in (tuple, list):
        if not isinstance(value, Sequence) or isinstance(value, str):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if args and len(args) == 2 and args[1] is Ellipsis:
            items = [_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
        elif args:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
            pairs = enumerate(zip(args, value, strict=True))
            items = [_coerce(a, v, f"{where}[{i}]") for i, (a, v) in pairs]
        else:
            items = list(value)
        return tuple(items) if (origin or tp) is tuple else items
    if tp is Any:
        return value
    if tp is float and isinstance(value, str):
        # YAML 1.1 reads "1e-3" (no dot) as a string; accept it as a number.
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{where}: expected float, got {value!r}") from None
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # an integer beyond float64
            raise ConfigError(f"{where}: {str(value)[:20]}... is out of range") from None
    if tp is Path and isinstance(value, str):
        return Path(value)
    wrong_type = isinstance(tp, type) and not isinstance(value, tp)
    if wrong_type or (tp is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {value!r}")
    return value


def apply_overrides(cfg: T, overrides: Sequence[str]) -> T:
    """Return a copy of ``cfg`` with dotted ``key=value`` overrides applied.

    Args:
        cfg: A config dataclass instance.
        overrides: Strings like ``"model.base_channels=32"``; values are parsed as YAML.

    Raises:
        ConfigError: On a malformed override, an unknown key or a wrong type.
    """
    data = to_dict(cfg)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip().removeprefix("--")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"override {item!r}: cannot parse value: {e}") from e
        except (ValueError, RecursionError) as e:  # an int beyond 4300 digits; deep nesting
            reason = "nested too deeply" if isinstance(e, RecursionError) else str(e)
            raise ConfigError(f"override {item[:80]!r}: cannot parse value: {reason}") from None
        node = data
        parts = key.split(".")
        for depth, part in enumerate(parts[:-1]):
            if not isinstance(node.get(part), dict):
                section = ".".join(parts[: depth + 1])
                raise ConfigError(f"override {item!r}: {section} is not a section")
            node = node[part]
        if parts[-1] not in node:
            raise ConfigError(
                f"override {item!r}: unknown key {key!r}; valid keys here: {', '.join(node)}"
            )
        node[parts[-1]] = value
    return from_dict(type(cfg), data, where="overrides")


def load_config(
    cls: type[T], path: str | os.PathLike[str] | None = None, overrides: Sequence[str] = ()
) -> T:
    """Load ``cls`` from a YAML file (or defaults when ``path`` is None), then apply overrides."""
    if path is None:
        cfg = cls()
    else:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: invalid YAML: {e}") from e
        except (ValueError, RecursionError) as e:  # an int beyond 4300 digits; deep nesting
            reason = "nested too deeply" if isinstance(e, RecursionError) else str(e)
            raise ConfigError(f"{path}: invalid YAML: {reason}") from None
        cfg = from_dict(cls, data, where=str(path))
    return apply_overrides(cfg, overrides)


def save_config(cfg: Any, path: str | os.PathLike[str]) -> None:
    """Write ``cfg`` as YAML, atomically."""
    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
