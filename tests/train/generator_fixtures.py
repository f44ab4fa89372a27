"""Shared set-up of the generator-stage and inference tests: a tiny dataset, a tiny flow run, a
tiny generator config, and one generator run trained through ``posetransfer train`` (built once
per session, however many test modules ask for it)."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from posetransfer.cli import main
from posetransfer.config import from_dict
from posetransfer.train.flow_stage import FlowStageConfig, train_flow

from .flow_fixtures import TINY as FLOW_TINY
from .flow_fixtures import make_dataset

#: A tiny generator run on the 64x48 data: 2 coarse steps then pixel warping, GAN from step 0,
#: no VGG (no weights file offline). Pose maps differ from the flow run's (radius 3), so the flow
#: regressor's inputs are re-rendered.
GEN_TINY = {
    "data": {"pose_map": {"radius": 4.0}, "val_fraction": 0.34, "sample_pairs": 2},
    "generator": {"image_size": [64, 48], "channels": [4, 8, 8], "warp_levels": 2},
    "pixel_warp": {"channels": [4, 8]},
    "discriminator": {"base_channels": 4, "num_layers": 2},
    "loss": {"perceptual_weight": 0.0, "gan_start_step": 0},
    "schedule": {"coarse_steps": 2},
    "discriminator_optim": {"lr": 1e-3},
    # the flow run's tiny loop settings, without its step lr schedule
    "train": {k: v for k, v in FLOW_TINY["train"].items() if k != "lr_step_size"},
}


@dataclass(frozen=True)
class Env:
    """Paths of the shared set-up."""

    data: Path
    flow_run: Path
    config: Path
    run: Path  # trained 2 steps, then resumed to 4 (both stages)
    summaries: tuple[dict, dict]  # the JSON lines of the two `train` calls


_CACHE: dict[str, Env] = {}


def write_gen_config(path: Path, **sections: dict) -> Path:
    """Write :data:`GEN_TINY` with sections merged from ``sections`` and return ``path``."""
    data = {key: dict(value) for key, value in GEN_TINY.items()}
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    path.write_text(yaml.safe_dump(data))
    return path


def train_cli(
    data: Path, flow_run: Path | None, config: Path, out: Path, *extra: str
) -> tuple[int, dict | None]:
    """``posetransfer train`` in-process: the exit code and the JSON summary it printed."""
    args = ["train", "--config", str(config), "--data", str(data), "--out", str(out)]
    if flow_run is not None:
        args += ["--flow-checkpoint", str(flow_run)]
    with contextlib.redirect_stdout(io.StringIO()) as out_text:
        code = main([*args, *extra])
    lines = out_text.getvalue().strip().splitlines()
    return code, json.loads(lines[-1]) if lines else None


def shared_env(factory: pytest.TempPathFactory, body_model) -> Env:
    """Build (once) the dataset, the flow run and a generator run of 2 + 2 resumed steps."""
    if "env" in _CACHE:
        return _CACHE["env"]
    root = factory.mktemp("generator")
    data = make_dataset(root / "synth", body_model)
    flow_run = root / "flow_run"
    flow_train = {**FLOW_TINY["train"], "max_steps": 2}
    flow_data = {**FLOW_TINY["data"], "root": str(data)}
    flow_cfg = from_dict(FlowStageConfig, {**FLOW_TINY, "data": flow_data, "train": flow_train})
    train_flow(flow_cfg, flow_run)
    config = write_gen_config(root / "tiny.yaml")
    run = root / "run"
    summaries = []
    for steps in ("2", "4"):
        code, summary = train_cli(data, flow_run, config, run, "--max-steps", steps)
        assert code == 0 and summary is not None
        summaries.append(summary)
    _CACHE["env"] = Env(data, flow_run, config, run, (summaries[0], summaries[1]))
    return _CACHE["env"]
