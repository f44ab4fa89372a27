"""Variant configs of the comparison (the end-to-end run is tests/test_demo.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from posetransfer.config import apply_overrides
from posetransfer.data.formats import read_pairs_csv, write_pairs_csv
from posetransfer.train.compare import VARIANTS, run_steps, select_test_pairs, variant_config
from posetransfer.train.generator_config import GeneratorStageConfig

BASE = apply_overrides(
    GeneratorStageConfig(),
    ["schedule.coarse_steps=30", "train.max_steps=50", "generator.image_size=[64, 48]",
     "generator.channels=[4, 8, 8]", "generator.warp_levels=2", "pixel_warp.channels=[4, 8]"],
)  # fmt: skip


def test_ablations_are_generators_with_one_component_less_each() -> None:
    cfgs = {name: variant_config(BASE, name, "runs", list(VARIANTS)) for name in VARIANTS}
    gen = {name: cfg.generator for name, cfg in cfgs.items()}
    assert cfgs["full"].pixel_warp.enabled
    assert not any(cfgs[n].pixel_warp.enabled for n in VARIANTS if n != "full")
    assert gen["no_pixel_warp"] == BASE.generator
    assert (gen["no_visibility"].visibility, gen["no_visibility"].use_flow) == ("none", True)
    assert (gen["no_flow"].use_flow, gen["no_flow"].dual_encoder) == (False, True)
    assert (gen["single_encoder"].dual_encoder, gen["single_encoder"].use_flow) == (False, False)
    for name in VARIANTS:  # everything else is the base's
        assert cfgs[name].loss == BASE.loss and cfgs[name].data == BASE.data
        assert cfgs[name].generator.channels == BASE.generator.channels


def test_step_budgets_and_shared_generator() -> None:
    names = list(VARIANTS)
    full = variant_config(BASE, "full", "runs", names)
    assert full.schedule.init_generator == Path("runs") / "no_pixel_warp"
    assert (full.schedule.coarse_steps, full.train.max_steps) == (0, 20)
    for name in names[1:]:
        assert variant_config(BASE, name, "runs", names).train.max_steps == 30
    alone = variant_config(BASE, "full", "runs", ["full"])
    assert alone == BASE  # without no_pixel_warp, full trains both stages itself


def test_bad_variant_and_budget() -> None:
    with pytest.raises(ValueError, match="unknown variant 'bogus'"):
        variant_config(BASE, "bogus", "runs")
    short = apply_overrides(BASE, ["train.max_steps=30"])
    with pytest.raises(ValueError, match="no refiner steps"):
        variant_config(short, "full", "runs", ["full", "no_pixel_warp"])


def test_run_steps_of_missing_run(tmp_path: Path) -> None:
    assert run_steps(tmp_path / "absent") == 0
    assert run_steps(tmp_path) == 0


def test_test_pairs_subset_is_evenly_spaced(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "test").mkdir(parents=True)
    pairs = [(f"a{k}.png", f"b{k}.png") for k in range(10)]
    write_pairs_csv(root / "fasion-resize-pairs-test.csv", pairs)
    (root / "fasion-resize-annotation-test.csv").write_text("name:keypoints_y:keypoints_x\n")
    got = select_test_pairs(root, tmp_path / "sub.csv", max_pairs=4)
    assert got == [pairs[0], pairs[2], pairs[5], pairs[7]]
    assert read_pairs_csv(tmp_path / "sub.csv") == got
    assert select_test_pairs(root, tmp_path / "all.csv") == pairs
    with pytest.raises(ValueError, match="no split 'val'"):
        select_test_pairs(root, tmp_path / "x.csv", split="val")
