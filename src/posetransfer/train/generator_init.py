"""Fine-tuning: start a pose-transfer run from another run's networks (``train --init RUN``).

:func:`adopt_init` resolves ``init.run`` to one checkpoint (``best``, else ``latest`` for
``which="auto"``) and brings the config in line with that run's: every architecture key
(:data:`ARCHITECTURE_KEYS`) left at its built-in default takes the init run's value, one set to
the init run's value is fine, and one set to anything else is a :class:`ConfigError` listing each
such key with both values (the weights would not fit). It also records the checkpoint found
(``init.which``, ``init.step``) and whether its refiner had trained (``init.refiner_trained``),
so the new run's ``config.yaml`` says exactly where it started.

:func:`load_init_weights` copies the networks of that checkpoint into a freshly built stage;
:func:`init_flow_network` builds the init run's flow regressor (``flow_model.yaml`` and its
weights) when no ``flow.checkpoint`` names another. The optimisers and the step counter start
fresh; a run folder that already has checkpoints is resumed instead and the init run is not read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from torch import nn

from posetransfer.config import ConfigError, from_dict, load_config, to_dict
from posetransfer.io import PathLike
from posetransfer.models.flow_regressor import FlowRegressor
from posetransfer.pose.maps import PoseMapConfig
from posetransfer.train.checkpoint import (
    BEST_DIR,
    META_FILE,
    WEIGHTS_SUFFIX,
    CheckpointError,
    find_checkpoint,
    load_module_weights,
)
from posetransfer.train.components import FLOW_REGRESSOR, PIXEL_WARP
from posetransfer.train.generator_config import (
    FLOW_MODEL_FILE,
    FlowModelRecord,
    GeneratorStageConfig,
)
from posetransfer.train.resume import CHECKPOINTS_DIR, CONFIG_FILE

__all__ = [
    "ARCHITECTURE_KEYS",
    "adopt_init",
    "init_checkpoint",
    "init_flow_network",
    "init_run_dir",
    "load_init_weights",
]

logger = logging.getLogger(__name__)

#: Config sections whose values must match the init run's (they shape the networks' weights).
#: ``pixel_warp.enabled`` is adopted when left at its default but may be switched off.
ARCHITECTURE_KEYS: tuple[str, ...] = ("generator", "pixel_warp", "discriminator", "data.pose_map")

_OPTIONAL_KEYS = frozenset({"pixel_warp.enabled"})


def init_run_dir(path: PathLike) -> Path:
    """The run folder of ``path`` (a run folder, its ``checkpoints/`` or one checkpoint folder).

    Raises:
        FileNotFoundError: No such folder, or no ``config.yaml`` in the run folder.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: init run not found (init.run, --init)")
    if (path / META_FILE).is_file() and path.parent.name == CHECKPOINTS_DIR:
        path = path.parent.parent
    elif path.name == CHECKPOINTS_DIR:
        path = path.parent
    if not (path / CONFIG_FILE).is_file():
        raise FileNotFoundError(
            f"{path / CONFIG_FILE}: missing; init.run must be a `posetransfer train` run"
        )
    return path


def init_checkpoint(path: PathLike, which: Literal["auto", "best", "latest"]) -> Path:
    """The checkpoint folder that starts the run: ``best``, ``latest``, or ``auto`` (best, else
    latest); a checkpoint folder given as ``path`` is taken as it is.

    Raises:
        CheckpointError: No such checkpoint.
    """
    path = Path(path)
    if (path / META_FILE).is_file():
        return path
    if which == "auto":
        try:
            return find_checkpoint(init_run_dir(path), "best")
        except CheckpointError:
            return find_checkpoint(init_run_dir(path), "latest")
    return find_checkpoint(init_run_dir(path), which)


def _leaves(data: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out |= _leaves(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def _section(data: Mapping[str, Any], dotted: str) -> Mapping[str, Any]:
    for part in dotted.split("."):
        data = data[part]
    return data


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        data = data[part]
    data[last] = value


def adopt_init(cfg: GeneratorStageConfig) -> GeneratorStageConfig:
    """``cfg`` with the init run's architecture and the init checkpoint recorded.

    Returns ``cfg`` unchanged when ``init.run`` is None. Idempotent.

    Raises:
        FileNotFoundError: The init run or its ``config.yaml`` is missing.
        CheckpointError: It has no such checkpoint.
        ConfigError: An architecture key set to a value other than the init run's (the message
            lists every such key, this config's value and the init run's).
    """
    if cfg.init.run is None:
        return cfg
    ckpt = init_checkpoint(cfg.init.run, cfg.init.which)
    run = ckpt.parent.parent
    init_cfg = load_config(GeneratorStageConfig, run / CONFIG_FILE)
    mine, theirs, default = to_dict(cfg), to_dict(init_cfg), to_dict(GeneratorStageConfig())
    merged = to_dict(cfg)
    mismatched = []
    for section in ARCHITECTURE_KEYS:
        ours, their_leaves, base_leaves = (
            _leaves(_section(data, section), f"{section}.") for data in (mine, theirs, default)
        )
        for key, value in ours.items():
            if value == their_leaves[key]:
                continue
            if value == base_leaves[key]:
                _set(merged, key, their_leaves[key])
            elif key not in _OPTIONAL_KEYS:
                mismatched.append(f"{key}={value!r} (init run: {their_leaves[key]!r})")
    if mismatched:
        raise ConfigError(
            f"the architecture differs from the init run {run} ({len(mismatched)} key(s)): "
            + "; ".join(mismatched)
            + "; leave these keys unset to take the init run's values"
        )
    step = int(json.loads((ckpt / META_FILE).read_text(encoding="utf-8"))["step"])
    has_refiner = (ckpt / f"{PIXEL_WARP}{WEIGHTS_SUFFIX}").is_file()
    merged["init"] = {
        "run": str(cfg.init.run),
        "which": "best" if ckpt.name == BEST_DIR else "latest",
        "step": step,
        "refiner_trained": bool(has_refiner and init_cfg.refiner_trained_after(step)),
    }
    out = from_dict(GeneratorStageConfig, merged, where=f"config with init run {run}")
    if out != cfg:
        logger.info("fine-tuning from %s (step %d)", ckpt, step)
    return out


def load_init_weights(
    ckpt: PathLike, modules: Mapping[str, nn.Module], skip: tuple[str, ...] = ()
) -> list[str]:
    """Load every module of ``modules`` that checkpoint ``ckpt`` holds; the others stay fresh.

    Args:
        ckpt: The init checkpoint folder.
        modules: A freshly built stage's modules by name.
        skip: Names not to load (e.g. the flow regressor when another run provides it).

    Returns:
        The names loaded.

    Raises:
        CheckpointMismatchError: Weights that do not fit (names the module and the keys).
    """
    ckpt = Path(ckpt)
    present = {p.name.removesuffix(WEIGHTS_SUFFIX) for p in ckpt.glob(f"*{WEIGHTS_SUFFIX}")}
    chosen = {n: m for n, m in modules.items() if n in present and n not in skip}
    fresh = sorted(set(modules) - set(chosen) - set(skip))
    load_module_weights(ckpt, chosen)
    if fresh:
        logger.warning("%s holds no %s; they start from random weights", ckpt, ", ".join(fresh))
    logger.info("initialised %s from %s", ", ".join(sorted(chosen)), ckpt)
    return sorted(chosen)


def init_flow_network(cfg: GeneratorStageConfig) -> tuple[FlowRegressor, PoseMapConfig]:
    """The init run's flow regressor (architecture from its ``flow_model.yaml``, weights from
    the init checkpoint) and its pose maps, on the CPU.

    Raises:
        FileNotFoundError: The init run has no ``flow_model.yaml``.
        CheckpointMismatchError: The checkpoint holds no fitting flow regressor.
    """
    assert cfg.init.run is not None
    ckpt = init_checkpoint(cfg.init.run, cfg.init.which)
    path = ckpt.parent.parent / FLOW_MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; the init run records no flow regressor")
    record = load_config(FlowModelRecord, path)
    net = FlowRegressor(record.model)
    load_module_weights(ckpt, {FLOW_REGRESSOR: net})
    return net, record.pose_map
