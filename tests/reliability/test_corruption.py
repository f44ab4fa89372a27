"""A flipped byte in a flow file, a manifest or a checkpoint is an error naming the file, never a
silently different result; loading a checkpoint never runs code.

Each test flips bytes of a small valid file one position at a time (several XOR masks) and
reads it back: the reader must raise the project's error naming the file, or return exactly
what the intact file gives (a flip in bytes that carry no data, such as a zip timestamp).
"""

from __future__ import annotations

import ast
import io
import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from torch import nn

from posetransfer.data.flow_files import read_corr, read_flow, write_corr, write_flow
from posetransfer.data.formats import FormatError
from posetransfer.synth.flow_output import read_manifest
from posetransfer.train.checkpoint import (
    CheckpointError,
    capture_rng_state,
    find_checkpoint,
    load_module_weights,
    load_state,
    read_meta,
    repoint_latest,
    save_checkpoint,
)

from .fuzzing import FLIPS
from .test_fuzz_flows import manifest_seed, small_flow

#: XOR masks applied at each position (all of them in the slow tests, two by default).
MASKS = (0x01, 0x20, 0x80, 0xFF)
QUICK_MASKS = (0x01, 0xFF)
SRC = Path(__file__).resolve().parents[2] / "src" / "posetransfer"


def _equal(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.dtype == b.dtype
            and torch.equal(a, b)
        )
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(
            isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
        ) and np.array_equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(_equal, a, b))
    return type(a) is type(b) and a == b


def flip_every_byte(
    path: Path,
    read: Callable[[], object],
    errors: tuple[type[Exception], ...],
    positions: range | None = None,
    names: tuple[Path, ...] = (),
    masks: tuple[int, ...] = QUICK_MASKS,
) -> dict[str, int]:
    """Flip each byte of ``path`` (``positions``) with each mask; return the outcome counts."""
    original = path.read_bytes()
    expected = read()
    counts = {"detected": 0, "unchanged": 0}
    try:
        for pos in positions or range(len(original)):
            for mask in masks:
                damaged = bytearray(original)
                damaged[pos] ^= mask
                path.write_bytes(bytes(damaged))
                try:
                    result = read()
                except errors as exc:
                    assert any(str(n) in str(exc) for n in (path, *names)), str(exc)
                    counts["detected"] += 1
                    continue
                assert _equal(result, expected), f"{path.name}: byte {pos} ^ {mask:#x} went unseen"
                counts["unchanged"] += 1
    finally:
        path.write_bytes(original)
    total = FLIPS.setdefault(path.name, {"detected": 0, "unchanged": 0, "bytes": len(original)})
    total["detected"] += counts["detected"]
    total["unchanged"] += counts["unchanged"]
    return counts


# ---------------------------------------------------------------------------------- data files


@pytest.mark.parametrize("kind", ["corr", "npz"])
def test_flipped_byte_in_a_flow_file_is_detected(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"t_s.{kind}"
    (write_corr if kind == "corr" else write_flow)(path, *small_flow())
    reader = read_corr if kind == "corr" else read_flow
    counts = flip_every_byte(path, lambda: reader(path), (FormatError,))
    assert counts["detected"] > 0.6 * 2 * path.stat().st_size
    if kind == "corr":  # every byte of a .corr is data, header or checksum
        assert counts["unchanged"] == 0


def test_corr_without_checksum_still_loads(tmp_path: Path) -> None:
    """Files of the original code (and of ours before the checksum) have no trailer."""
    path = tmp_path / "t_s.corr"
    write_corr(path, *small_flow())
    with_trailer = read_corr(path)
    path.write_bytes(path.read_bytes()[:-8])
    without = read_corr(path)
    assert all(np.array_equal(a, b) for a, b in zip(with_trailer, without, strict=True))


def test_flipped_byte_in_a_manifest_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "manifest.jsonl"
    path.write_bytes(manifest_seed())
    counts = flip_every_byte(path, lambda: read_manifest(path), (FormatError,))
    assert counts["detected"] > 0.9 * 2 * path.stat().st_size


def test_manifest_of_an_older_run_loads_unchecked(tmp_path: Path) -> None:
    path = tmp_path / "manifest.jsonl"
    path.write_text('{"kind": "image", "item": "a", "stage": "fit", "reason": "r"}\n')
    (entry,) = read_manifest(path)
    assert (entry.kind, entry.item, entry.stage, entry.reason, entry.split) == (
        "image", "a", "fit", "r", None,
    )  # fmt: skip


# ---------------------------------------------------------------------------------- checkpoints


def _tiny_checkpoint(root: Path) -> tuple[Path, nn.Module]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3))
    optim = torch.optim.Adam(net.parameters())
    net(torch.randn(2, 2, 5, 5)).sum().backward()
    optim.step()
    state = {"optim": optim.state_dict(), "rng": capture_rng_state(), "step": 3}
    return save_checkpoint(root, 3, {"net": net}, state, {"note": "x"}), net


def _load(root: Path) -> tuple[dict[str, torch.Tensor], dict, dict]:
    ckpt = find_checkpoint(root)
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3))
    load_module_weights(ckpt, {"net": net}, exact=True)
    return net.state_dict(), load_state(ckpt), read_meta(ckpt)


@pytest.mark.parametrize("name", ["net.safetensors", "state.pt", "state.pt.sha256", "meta.json"])
def test_flipped_byte_in_a_checkpoint_is_detected(tmp_path: Path, name: str) -> None:
    ckpt, _ = _tiny_checkpoint(tmp_path / "checkpoints")
    path = ckpt / name
    size = path.stat().st_size
    positions = range(0, size, max(1, size // 100))  # ~100 positions per file
    counts = flip_every_byte(path, lambda: _load(tmp_path / "checkpoints"), (CheckpointError,),
                             positions, names=(ckpt,))  # fmt: skip
    assert counts["detected"] > 0.8 * 2 * len(positions)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["net.safetensors", "state.pt", "state.pt.sha256", "meta.json", "latest"]
)
def test_flipped_byte_in_a_checkpoint_is_detected_everywhere(tmp_path: Path, name: str) -> None:
    root = tmp_path / "checkpoints"
    ckpt, _ = _tiny_checkpoint(root)
    path = root / name if name == "latest" else ckpt / name
    flip_every_byte(path, lambda: _load(root), (CheckpointError,), names=(ckpt,), masks=MASKS)


def test_damaged_latest_pointer_still_resumes_the_newest_checkpoint(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    ckpt, _ = _tiny_checkpoint(root)
    for text in (b"\xff\xfe", b"../../etc", b"ckpt-000001\n", b""):
        (root / "latest").write_bytes(text)
        assert find_checkpoint(root) == ckpt
        repoint_latest(root)  # what a resumed run does first
        assert (root / "latest").read_text() == f"{ckpt.name}\n"


def _as_older_checkpoint(ckpt: Path, net: nn.Module) -> dict[str, torch.Tensor]:
    """Rewrite ``ckpt`` as code before the checksums wrote it; return the tensors."""
    (ckpt / "meta.json").write_text('{"step": 3, "modules": ["net"]}\n')
    (ckpt / "state.pt.sha256").unlink()
    tensors = {k: v.contiguous() for k, v in net.state_dict().items()}
    (ckpt / "net.safetensors").write_bytes(safetensors.torch.save(tensors, {"module": "net"}))
    return tensors


def test_checkpoint_without_checksums_still_loads(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    ckpt, net = _tiny_checkpoint(root)
    tensors = _as_older_checkpoint(ckpt, net)
    weights, state, meta = _load(root)
    assert all(torch.equal(weights[k], tensors[k]) for k in tensors) and state["step"] == 3
    assert meta == {"step": 3, "modules": ["net"]}


class _RunsCode:
    def __init__(self, *args: object) -> None:
        self.args = args

    def __reduce__(self) -> tuple[object, ...]:
        return os.system, self.args


def test_malicious_pickle_in_state_pt_is_refused_and_never_runs(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    ckpt, net = _tiny_checkpoint(root)
    marker = tmp_path / "ran"
    payload = pickle.dumps({"step": _RunsCode(f"touch {marker}")}, protocol=2)
    good = zipfile.ZipFile(io.BytesIO((ckpt / "state.pt").read_bytes()))
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as archive:
        for member in good.namelist():
            data = payload if member.endswith("data.pkl") else good.read(member)
            archive.writestr(member, data)
    for blob in (evil.getvalue(), payload):  # a torch zip, and a bare legacy pickle
        (ckpt / "state.pt").write_bytes(blob)
        with pytest.raises(CheckpointError, match=r"state\.pt: checksum mismatch"):
            load_state(ckpt)
    _as_older_checkpoint(ckpt, net)  # no checksum: torch.load(weights_only=True) must refuse
    for blob in (evil.getvalue(), payload):
        (ckpt / "state.pt").write_bytes(blob)
        with pytest.raises(CheckpointError, match=r"state\.pt: cannot read"):
            load_state(ckpt)
    assert not marker.exists()
    evil_path = tmp_path / "evil.pt"
    evil_path.write_bytes(evil.getvalue())
    torch.load(evil_path, weights_only=False)  # the file really is hostile
    assert marker.exists()


def test_every_torch_load_in_the_package_is_weights_only() -> None:
    """No module of the package may call torch.load without weights_only=True."""
    offenders = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "load"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "torch"
            ):
                safe = any(
                    k.arg == "weights_only"
                    and isinstance(k.value, ast.Constant)
                    and k.value.value is True
                    for k in node.keywords
                )
                if not safe:
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not offenders
