"""Fuzzing checkpoints (weights, training state, meta, ``latest``) and whole run folders.

A checkpoint folder is read as a resume reads it (:func:`find_checkpoint`, the weights, the
training state, ``meta.json``); a run folder as inference loads it
(:meth:`PoseTransferPipeline.from_run`, on a copy of ``tests/fixtures/old_run/gen_run``). One
file is replaced by a mutated or random one per input.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import strategies as st
from torch import nn

from posetransfer.infer.pipeline import PoseTransferPipeline
from posetransfer.train.checkpoint import (
    capture_rng_state,
    find_checkpoint,
    load_module_weights,
    load_state,
    read_meta,
    save_checkpoint,
)

from .fuzzing import QUICK_EXAMPLES, SLOW_EXAMPLES, check_reader, fuzz_bytes, run_fuzz

OLD_RUN = Path(__file__).resolve().parents[1] / "fixtures" / "old_run"
CKPT_FILES = ("net.safetensors", "state.pt", "state.pt.sha256", "meta.json", "latest")
RUN_FILES = (
    "config.yaml",
    "flow_model.yaml",
    "checkpoints/latest",
    "checkpoints/best/meta.json",
    "checkpoints/best/generator.safetensors",
    "checkpoints/best/pixel_warp.safetensors",
    "checkpoints/best/flow_regressor.safetensors",
)


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3))


def _checkpoint(root: Path) -> Path:
    torch.manual_seed(0)
    net = _net()
    optim = torch.optim.Adam(net.parameters())
    net(torch.randn(2, 2, 5, 5)).sum().backward()
    optim.step()
    state = {"optim": optim.state_dict(), "rng": capture_rng_state(), "step": 3}
    return save_checkpoint(root, 3, {"net": net}, state)


def _read_checkpoint(root: Path) -> None:
    ckpt = find_checkpoint(root)
    load_module_weights(ckpt, {"net": _net()}, exact=True)
    load_state(ckpt)
    read_meta(ckpt)


def _one_file(folder: Path, names: tuple[str, ...]) -> st.SearchStrategy[tuple[str, bytes]]:
    """A file of ``folder`` and mutated or random bytes to put in its place."""
    return st.sampled_from(names).flatmap(
        lambda name: st.tuples(st.just(name), fuzz_bytes([(folder / name).read_bytes()]))
    )


def fuzz_checkpoint(tmp_path: Path, examples: int) -> None:
    root = tmp_path / "checkpoints"
    ckpt = _checkpoint(root)
    originals = {name: _path(root, ckpt, name).read_bytes() for name in CKPT_FILES}

    def body(item: tuple[str, bytes]) -> None:
        name, data = item
        path = _path(root, ckpt, name)
        path.write_bytes(data)
        try:
            check_reader("checkpoint", _read_checkpoint, root, names=(root,))
        finally:
            path.write_bytes(originals[name])

    run_fuzz(_one_file(ckpt, CKPT_FILES[:4]) | _latest(root), body, examples)


def _path(root: Path, ckpt: Path, name: str) -> Path:
    return root / name if name == "latest" else ckpt / name


def _latest(root: Path) -> st.SearchStrategy[tuple[str, bytes]]:
    return st.tuples(st.just("latest"), fuzz_bytes([(root / "latest").read_bytes()], text=True))


def fuzz_run_folder(tmp_path: Path, examples: int) -> None:
    run = tmp_path / "gen_run"
    shutil.copytree(OLD_RUN / "gen_run", run)
    originals = {name: (run / name).read_bytes() for name in RUN_FILES}

    def body(item: tuple[str, bytes]) -> None:
        name, data = item
        (run / name).write_bytes(data)
        try:
            check_reader("run folder", PoseTransferPipeline.from_run, run, names=(run,))
        finally:
            (run / name).write_bytes(originals[name])

    run_fuzz(_one_file(run, RUN_FILES), body, examples)


FUZZERS = {"checkpoint": fuzz_checkpoint, "run_folder": fuzz_run_folder}


@pytest.mark.parametrize("reader", sorted(FUZZERS))
def test_fuzz_quick(reader: str, tmp_path: Path) -> None:
    FUZZERS[reader](tmp_path, QUICK_EXAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize("reader", sorted(FUZZERS))
def test_fuzz_slow(reader: str, tmp_path: Path) -> None:
    FUZZERS[reader](tmp_path, SLOW_EXAMPLES)
