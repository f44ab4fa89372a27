"""The one place for threads, device and rank: :mod:`posetransfer.runtime`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from posetransfer.runtime import (
    DistInfo,
    dist_info_from_env,
    is_main_process,
    resolve_device,
    set_torch_threads,
    torch_threads,
)

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "posetransfer"


def test_set_torch_threads_sets_and_none_or_zero_keep() -> None:
    before = torch.get_num_threads()
    try:
        set_torch_threads(2)
        assert torch.get_num_threads() == 2
        set_torch_threads(None)
        set_torch_threads(0)
        assert torch.get_num_threads() == 2
        with pytest.raises(ValueError, match=">= 0"):
            set_torch_threads(-1)
    finally:
        torch.set_num_threads(before)


def test_torch_threads_restores_the_count_even_on_error() -> None:
    before = torch.get_num_threads()
    other = 2 if before != 2 else 1
    with pytest.raises(RuntimeError), torch_threads(other):
        assert torch.get_num_threads() == other
        raise RuntimeError
    assert torch.get_num_threads() == before


def test_dist_info_reads_the_given_environment() -> None:
    assert dist_info_from_env({}) == DistInfo(0, 1, 0)
    info = dist_info_from_env({"RANK": "3", "WORLD_SIZE": "4"})
    assert (info.rank, info.world_size, info.local_rank) == (3, 4, 3)
    assert info.enabled and not info.is_main
    with pytest.raises(ValueError, match="inconsistent"):
        dist_info_from_env({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(ValueError, match="not an integer"):
        dist_info_from_env({"RANK": "x"})


def test_is_main_process_follows_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert not is_main_process()
    monkeypatch.setenv("RANK", "0")
    assert is_main_process()


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="'auto', 'cpu' or 'cuda'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda")


def _calls(tree: ast.AST, names: set[str]) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in names
    ]


def test_library_reads_threads_rank_and_device_only_through_runtime() -> None:
    """No module but runtime sets torch threads or reads RANK; none does at import time."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        module_level = [n for n in tree.body if not isinstance(n, ast.FunctionDef | ast.ClassDef)]
        for node in module_level:
            if _calls(node, {"set_num_threads", "set_torch_threads", "set_device"}):
                offenders.append(f"{path.name}: thread/device side effect at import time")
        if path.name == "runtime.py":
            continue
        if _calls(tree, {"set_num_threads"}):
            offenders.append(f"{path.relative_to(PACKAGE)}: torch.set_num_threads")
        if '"RANK"' in text:
            offenders.append(f"{path.relative_to(PACKAGE)}: reads RANK itself")
    assert offenders == []
