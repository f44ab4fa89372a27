"""Tests of posetransfer.synth.synthetic_config: validation and the split rule."""

from __future__ import annotations

import pytest

from posetransfer.synth.synthetic_config import SyntheticConfig, split_of


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
