"""Shared set-up of the flow-stage tests: a tiny make-synthetic dataset and a tiny stage config."""

from __future__ import annotations

from pathlib import Path

import yaml

from posetransfer.synth.dataset_writer import SyntheticConfig, make_synthetic

#: 4 people x 3 poses at 64x48: 3 training people (18 pairs), 1 test person (6 pairs).
SYNTH = SyntheticConfig(num_people=4, poses_per_person=3, size=(64, 48), seed=3, save_bodies=False)

#: A tiny, fast stage (stride 8 divides 64x48); one validation person of the three.
TINY = {
    "data": {"pose_map": {"radius": 3.0}, "val_fraction": 0.34, "hflip_prob": 0.5},
    "model": {"base_channels": 4, "max_channels": 16, "num_levels": 2},
    "loss": {"level_weights": [0.0, 0.32, 0.16]},
    "train": {
        "batch_size": 4,
        "num_workers": 0,
        "lr": 1e-3,
        "log_every": 1,
        "val_every": 2,
        "ckpt_every": 2,
        "sample_every": 2,
        "keep_last": None,
        "device": "cpu",
        "tensorboard": False,
        "progress": False,
        "lr_step_size": 2,
    },
}


def make_dataset(root: Path, body_model) -> Path:
    """Write the tiny synthetic dataset (exact flows in ``root/flows``) and return ``root``."""
    make_synthetic(root, SYNTH, model=body_model)
    return root


def write_config(path: Path, **sections: dict) -> Path:
    """Write :data:`TINY` (sections replaced by ``sections``) as YAML and return ``path``."""
    data = {key: sections.get(key, value) for key, value in TINY.items()}
    path.write_text(yaml.safe_dump(data))
    return path
