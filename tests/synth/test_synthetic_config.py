"""Tests of posetransfer.synth.synthetic_config: validation and the split rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from posetransfer.config import ConfigError, from_dict, load_config
from posetransfer.synth.synthetic_config import SyntheticConfig, split_of

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("field", "value"),
    [("num_people", 1), ("poses_per_person", 1), ("size", (8, 8)), ("test_fraction", 1.0),
     ("prefix", "synth-"), ("view_mix", (0.0, 0.0, 0.0)), ("height_fraction", (0.9, 0.8))],
)  # fmt: skip
def test_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        SyntheticConfig(**{field: value})


def test_split_sizes() -> None:
    assert SyntheticConfig(num_people=300).num_test == 45
    assert SyntheticConfig(num_people=2, test_fraction=0.01).num_test == 1
    assert SyntheticConfig(num_people=3, test_fraction=0.99).num_test == 2


def test_split_of_puts_the_last_people_in_test() -> None:
    cfg = SyntheticConfig(num_people=10, test_fraction=0.2)
    assert [split_of(p, cfg) for p in range(10)] == ["train"] * 8 + ["test"] * 2


@pytest.mark.parametrize(
    ("data", "field"),
    [({"background": {"mix": [0, 0, 0]}}, "background.mix"),
     ({"background": {"mix": [0, 0, 1]}}, "background.plate_dir"),
     ({"background": {"textures": ["marble"]}}, "background.textures"),
     ({"background": {"plate_zoom": [2.0, 1.0]}}, "background.plate_zoom"),
     ({"camera": {"brightness": [0.0, 1.0]}}, "camera.brightness"),
     ({"camera": {"jpeg_quality": [0, 90]}}, "camera.jpeg_quality"),
     ({"camera": {"blur_prob": 1.5}}, "camera.blur_prob"),
     ({"camera": {"noise": [0.1, 0.0]}}, "camera.noise"),
     ({"pose_mix": [float("inf"), 0.0, 0.0]}, "pose_mix")],
)  # fmt: skip
def test_nested_config_errors_name_the_field(data: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"synthetic config: {field} must be"):
        from_dict(SyntheticConfig, data, where="synth.yaml")


def test_backgrounds_and_camera_are_off_by_default() -> None:
    cfg = SyntheticConfig()
    assert cfg.background.is_default and not cfg.camera.enabled
    on = from_dict(SyntheticConfig, {"background": {"mix": [1, 2, 3], "plate_dir": "p"}})
    assert on.background.mix == (1.0, 2.0, 3.0) and not on.background.is_default


@pytest.mark.parametrize(
    "path", sorted((REPO_ROOT / "configs" / "synthetic").glob("*.yaml")), ids=lambda p: p.stem
)
def test_shipped_presets_load(path: Path) -> None:
    cfg = load_config(SyntheticConfig, path)
    assert cfg.num_people >= 2
    if path.stem == "varied":
        assert cfg.camera.enabled and not cfg.background.is_default
    else:
        assert cfg.background.is_default and not cfg.camera.enabled
