"""Metric names: defined once in posetransfer.eval.names, spelled nowhere else."""

from __future__ import annotations

from pathlib import Path

import pytest

from posetransfer.eval import names
from tests.train.test_components import string_literals

SRC = Path(__file__).resolve().parents[2] / "src" / "posetransfer"
METRICS = {getattr(names, n) for n in names.__all__ if isinstance(getattr(names, n), str)}


def test_names_are_the_report_keys() -> None:
    assert {names.SSIM, names.PSNR, names.L1, names.LPIPS, names.FID, names.KID} == {
        "ssim", "psnr", "l1", "lpips", "fid", "kid"
    }  # fmt: skip
    assert names.MASKED_METRICS == ("mask_ssim", "mask_l1", "mask_lpips")
    assert names.EPE_FG == "epe_fg"


@pytest.mark.parametrize(
    "module",
    ["eval/evaluate.py", "eval/scoring.py", "train/generator_stage.py", "train/flow_stage.py",
     "train/flow_config.py", "train/flow_eval.py", "train/generator_config.py",
     "experiments/baselines.py",
     "cli/demo.py"],
)  # fmt: skip
def test_scorers_spell_no_metric_name(module: str) -> None:
    spelled = string_literals(SRC / module) & METRICS
    assert not spelled, f"{module} spells {spelled}: use posetransfer.eval.names"
