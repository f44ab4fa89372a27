"""Variant configs of the comparison (the end-to-end run is tests/test_demo.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from posetransfer.config import apply_overrides
from posetransfer.experiments.compare import (
    PAPER,
    VARIANTS,
    Variant,
    resolve_variant,
    run_steps,
    variant_config,
    variant_name,
)
from posetransfer.models.discriminator import DiscriminatorConfig
from posetransfer.models.generator import GeneratorConfig
from posetransfer.models.pixel_warp import PixelWarpConfig
from posetransfer.train.generator_config import GeneratorStageConfig

BASE = apply_overrides(
    GeneratorStageConfig(),
    ["schedule.coarse_steps=30", "train.max_steps=50", "generator.image_size=[64, 48]",
     "generator.channels=[4, 8, 8]", "generator.warp_levels=2", "pixel_warp.channels=[4, 8]"],
)  # fmt: skip


def test_each_ablation_switches_one_component_off() -> None:
    cfgs = {name: variant_config(BASE, name, "runs", list(VARIANTS)) for name in VARIANTS}
    gen = {name: cfg.generator for name, cfg in cfgs.items()}
    pixel_warp = {name: cfg.pixel_warp.enabled for name, cfg in cfgs.items()}
    assert pixel_warp == {
        "full": True, "no_pixel_warp": False, "no_visibility": True, "no_flow": False,
        "single_encoder": False,
    }  # fmt: skip
    assert gen["no_pixel_warp"] == gen["full"] == BASE.generator
    assert gen["no_visibility"] == replace(BASE.generator, visibility="none")
    assert gen["no_flow"] == replace(BASE.generator, use_flow=False, visibility="none")
    assert gen["single_encoder"] == replace(gen["no_flow"], dual_encoder=False)
    for name in VARIANTS:  # everything else is the base's
        assert cfgs[name].loss == BASE.loss and cfgs[name].data == BASE.data
        assert cfgs[name].discriminator == BASE.discriminator


def test_step_budgets_and_shared_generator() -> None:
    names = list(VARIANTS)
    cfgs = {name: variant_config(BASE, name, "runs", names) for name in names}
    assert cfgs["full"].schedule.init_generator == Path("runs") / "no_pixel_warp"
    assert (cfgs["full"].schedule.coarse_steps, cfgs["full"].train.max_steps) == (0, 20)
    for name in ("no_pixel_warp", "no_flow", "single_encoder"):  # generators alone
        assert cfgs[name].train.max_steps == 30
    # With pixel warping the variant trains both stages itself, from scratch.
    assert cfgs["no_visibility"].schedule == BASE.schedule
    assert cfgs["no_visibility"].train == BASE.train
    alone = variant_config(BASE, "full", "runs", ["full"])
    assert alone == BASE  # without no_pixel_warp, full trains both stages itself
    no_pw_base = apply_overrides(BASE, ["pixel_warp.enabled=false"])
    assert variant_config(no_pw_base, "no_flow", "runs").train.max_steps == 50


def test_paper_variant_uses_the_original_sizes() -> None:
    market = apply_overrides(BASE, ["generator.image_size=[128, 96]"])
    cfg = variant_config(market, PAPER, "runs", [PAPER, *VARIANTS])
    assert cfg.generator == replace(
        GeneratorConfig.paper("market"), image_size=(128, 96), pose_channels=18
    )
    assert cfg.pixel_warp == PixelWarpConfig.paper("market")
    assert cfg.discriminator == DiscriminatorConfig.paper()
    assert (cfg.train, cfg.schedule, cfg.loss) == (market.train, market.schedule, market.loss)
    deepfashion = apply_overrides(BASE, ["generator.image_size=[256, 256]"])
    cfg = variant_config(deepfashion, PAPER, "runs")
    assert cfg.generator.channels == GeneratorConfig.paper("deepfashion").channels
    assert cfg.pixel_warp == PixelWarpConfig.paper("deepfashion")
    with pytest.raises(ValueError, match="64x48: the original's market nets need multiples of 32"):
        variant_config(BASE, PAPER, "runs")
    assert resolve_variant(market, PAPER).description.startswith("full model")


def test_bad_variant_and_budget() -> None:
    with pytest.raises(ValueError, match=r"unknown variant 'bogus'; choose from full, .*, paper"):
        variant_config(BASE, "bogus", "runs")
    short = apply_overrides(BASE, ["train.max_steps=30"])
    with pytest.raises(ValueError, match="no refiner steps"):
        variant_config(short, "full", "runs", ["full", "no_pixel_warp"])


def test_run_steps_of_missing_run(tmp_path: Path) -> None:
    assert run_steps(tmp_path / "absent") == 0
    assert run_steps(tmp_path) == 0


def test_a_custom_variant_keeps_its_own_schedule() -> None:
    custom = Variant("short", ("schedule.coarse_steps=10", "train.max_steps=15"), "a short run")
    assert resolve_variant(BASE, custom) is custom
    assert variant_name(custom) == "short" and variant_name("full") == "full"
    cfg = variant_config(BASE, custom, "runs", ["full", "no_pixel_warp", custom])
    assert (cfg.schedule.coarse_steps, cfg.train.max_steps) == (10, 15)
    assert cfg.generator == BASE.generator
    # full still chains on no_pixel_warp when the list mixes names and variants
    full = variant_config(BASE, "full", "runs", [custom, "no_pixel_warp"])
    assert full.schedule.init_generator == Path("runs") / "no_pixel_warp"
