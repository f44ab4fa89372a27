"""Tests for posetransfer.train.generator_config: the shipped configs and their schedules."""

from __future__ import annotations

from pathlib import Path

import pytest

from posetransfer.config import ConfigError, load_config
from posetransfer.data.transforms import PROTOCOLS
from posetransfer.train.generator_config import GeneratorStageConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "generator"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_loads_with_a_consistent_schedule(path: Path) -> None:
    cfg = load_config(GeneratorStageConfig, path)
    assert 0 < cfg.schedule.coarse_steps < cfg.train.max_steps
    assert cfg.loss.gan_start_step <= cfg.schedule.coarse_steps  # the GAN starts in each stage
    size = PROTOCOLS[cfg.data.protocol].size
    if size is not None:  # the images the protocol delivers are the ones the networks take
        assert tuple(size) == tuple(cfg.generator.image_size)


def test_market_paper_is_the_original_market_recipe() -> None:
    cfg = load_config(GeneratorStageConfig, CONFIGS / "market-paper.yaml")
    epoch = 263_632 // 8
    assert cfg.data.protocol == "market-128x64" and cfg.data.pose_map.radius == 4.0
    assert cfg.schedule.coarse_steps == 8 * epoch and cfg.train.max_steps == 38 * epoch
    assert cfg.loss.gan_start_step == 5 * epoch and cfg.train.val_every == epoch


def test_a_protocol_of_another_size_is_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"gives 256x176 images but generator.image_size=\[128, 64\]"
    ):
        load_config(
            GeneratorStageConfig,
            CONFIGS / "market-paper.yaml",
            ["data.protocol=deepfashion-256x176"],
        )


def test_an_unknown_protocol_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"protocol='bogus' is unknown; choose from .*native"):
        load_config(GeneratorStageConfig, None, ["data.protocol=bogus"])
