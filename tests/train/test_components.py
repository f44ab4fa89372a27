"""Checkpoint component names: defined once, and the names already on disk in users' runs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from posetransfer.train import components

SRC = Path(__file__).resolve().parents[2] / "src" / "posetransfer"
NAMES = {
    "GENERATOR": "generator",
    "PIXEL_WARP": "pixel_warp",
    "DISCRIMINATOR": "discriminator",
    "DISCRIMINATOR_PW": "discriminator_pw",
    "FLOW_REGRESSOR": "flow_regressor",
    "FLOW_OPTIMIZER": "flow",
}


def test_names_match_existing_checkpoints() -> None:
    """Runs hold ``<name>.safetensors`` and optimiser states under these names: never rename."""
    assert {name: getattr(components, name) for name in components.__all__} == NAMES


def string_literals(path: Path) -> set[str]:
    """String constants of a module, docstrings left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in docstrings
    }  # fmt: skip


@pytest.mark.parametrize(
    "module",
    ["train/flow_stage.py", "train/generator_stage.py", "train/generator_data.py",
     "infer/pipeline.py", "experiments/compare.py", "experiments/baselines.py"],
)  # fmt: skip
def test_stages_and_readers_spell_no_component_name(module: str) -> None:
    spelled = string_literals(SRC / module) & set(NAMES.values())
    assert not spelled, f"{module} spells {spelled}: use posetransfer.train.components"
