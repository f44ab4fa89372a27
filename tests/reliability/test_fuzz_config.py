"""Fuzzing the YAML configs and the dotted ``key=value`` overrides of every stage's config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import strategies as st

from posetransfer.config import ConfigError, apply_overrides, load_config, to_dict
from posetransfer.experiments.demo_config import DemoConfig
from posetransfer.synth.flow_output import SynthFlowConfig
from posetransfer.synth.synthetic_config import SyntheticConfig
from posetransfer.train.flow_stage import FlowStageConfig
from posetransfer.train.generator_config import GeneratorStageConfig

from .fuzzing import QUICK_EXAMPLES, SLOW_EXAMPLES, check_reader, fuzz_bytes, run_fuzz

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

#: Each config folder and the dataclass its files fill.
KINDS: dict[str, type] = {
    "flow": FlowStageConfig,
    "generator": GeneratorStageConfig,
    "synth_flow": SynthFlowConfig,
    "synthetic": SyntheticConfig,
    "demo": DemoConfig,
}


def _yaml_values() -> st.SearchStrategy[object]:
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(), st.text(max_size=8)
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=30,
    )


def _seeds(kind: str) -> list[bytes]:
    files = sorted((CONFIGS / kind).glob("*.yaml"))
    return [f.read_bytes() for f in files] or [yaml.safe_dump(to_dict(KINDS[kind]())).encode()]


def _replaced_values(kind: str) -> st.SearchStrategy[bytes]:
    """The default config with one key set to a random value (well-formed YAML, wrong data)."""
    flat = []

    def walk(data: dict, prefix: tuple[str, ...]) -> None:
        for key, value in data.items():
            flat.append((*prefix, key))
            if isinstance(value, dict):
                walk(value, (*prefix, key))

    defaults = to_dict(KINDS[kind]())
    walk(defaults, ())

    def build(path: tuple[str, ...], value: object) -> bytes:
        data = to_dict(KINDS[kind]())
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return yaml.safe_dump(data).encode()

    return st.builds(build, st.sampled_from(flat), _yaml_values())


def fuzz_yaml(tmp_path: Path, examples: int) -> None:
    strategy = st.sampled_from(sorted(KINDS)).flatmap(
        lambda kind: st.tuples(
            st.just(kind),
            fuzz_bytes(_seeds(kind), text=True, extra=[_replaced_values(kind)]),
        )
    )
    path = tmp_path / "config.yaml"

    def body(item: tuple[str, bytes]) -> None:
        kind, data = item
        path.write_bytes(data)
        check_reader("YAML config", lambda p: load_config(KINDS[kind], p), path)

    run_fuzz(strategy, body, examples)


def _override() -> st.SearchStrategy[str]:
    keys = st.sampled_from(
        ["train.lr", "model.base_channels", "data", "train", "x.y", "", "loss.level_weights",
         "train.batch_size", "--train.max_steps", "data.pose_map.radius", "a..b", "model.="]
    )  # fmt: skip
    values = st.one_of(
        st.text(max_size=30),
        _yaml_values().map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip()),
        st.sampled_from(["[" * 2000, "&a [*a]", "!!python/object:os.system", "1e999", "-1"]),
    )
    return st.one_of(st.builds(lambda k, v: f"{k}={v}", keys, values), st.text(max_size=20))


def fuzz_overrides(tmp_path: Path, examples: int) -> None:
    """Overrides name no file: a clear error is a ConfigError that quotes the override."""

    def body(overrides: list[str]) -> None:
        def apply(_: Path) -> object:
            return apply_overrides(FlowStageConfig(), overrides)

        check_reader("dotted overrides", apply, tmp_path, names=("override", "overrides"),
                     allowed=(ConfigError,))  # fmt: skip

    run_fuzz(st.lists(_override(), min_size=1, max_size=3), body, examples)


FUZZERS = {"yaml": fuzz_yaml, "overrides": fuzz_overrides}


@pytest.mark.parametrize("reader", sorted(FUZZERS))
def test_fuzz_quick(reader: str, tmp_path: Path) -> None:
    FUZZERS[reader](tmp_path, QUICK_EXAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize("reader", sorted(FUZZERS))
def test_fuzz_slow(reader: str, tmp_path: Path) -> None:
    FUZZERS[reader](tmp_path, SLOW_EXAMPLES)
