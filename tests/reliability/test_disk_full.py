"""A full disk or a read-only folder: a clear error naming the file, earlier outputs intact.

Every writer is tried with a patched ``fsync`` that fails as a full disk does (``ENOSPC``); the
command-line tests (``slow``) write to a real, tiny ``tmpfs`` (run as root where mounting is
allowed, skipped elsewhere), fill it, make it read-only, and then give it room again: the run
resumes to the same files as an uninterrupted one.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import posetransfer.io as io_module
from posetransfer.data.diaf_formats import write_pair_split, write_pose_label
from posetransfer.data.flow_files import write_corr, write_flow
from posetransfer.data.formats import write_annotation_csv, write_pairs_csv
from posetransfer.io import save_png
from posetransfer.pose.keypoints import Pose
from posetransfer.train.checkpoint import find_checkpoint, list_checkpoints, save_checkpoint

from .killing import command, command_env, differences, leftovers, snapshot
from .test_fuzz_flows import small_flow
from .test_kill_resume import OLD_RUN, _infer_args, _train_flow_args, assert_same_run

POSE = Pose(np.full((18, 2), 5.5), np.ones(18, bool))
WRITERS: dict[str, tuple[str, Callable[[Path], object]]] = {
    "flow npz": ("t_s.npz", lambda p: write_flow(p, *small_flow())),
    "flow corr": ("t_s.corr", lambda p: write_corr(p, *small_flow())),
    "png": ("x.png", lambda p: save_png(p, np.zeros((4, 3, 3), np.uint8))),
    "annotation csv": ("a.csv", lambda p: write_annotation_csv(p, {"a.jpg": POSE})),
    "pairs csv": ("p.csv", lambda p: write_pairs_csv(p, [("a.jpg", "b.jpg")])),
    "pair split": ("s.json", lambda p: write_pair_split(p, {"train": [("a", "b")]})),
    "pose label": ("l.pkl", lambda p: write_pose_label(p, {"a": POSE})),
}


def _full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    def fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(io_module.os, "fsync", fsync)


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_full_disk_names_the_file_and_keeps_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: str
) -> None:
    name, write = WRITERS[writer]
    path = tmp_path / name
    path.write_bytes(b"earlier output")
    _full_disk(monkeypatch)
    with pytest.raises(OSError, match="No space left on device") as excinfo:
        write(path)
    assert excinfo.value.filename == str(path)
    assert path.read_bytes() == b"earlier output" and os.listdir(tmp_path) == [name]


def test_full_disk_during_a_checkpoint_keeps_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = nn.Linear(2, 2)
    first = save_checkpoint(tmp_path, 2, {"net": net}, {"step": torch.tensor(2)})
    before = snapshot(tmp_path)
    _full_disk(monkeypatch)
    with pytest.raises(OSError, match="No space left on device") as excinfo:
        save_checkpoint(tmp_path, 4, {"net": net}, {"step": torch.tensor(4)})
    assert str(tmp_path) in excinfo.value.filename
    assert snapshot(tmp_path) == before and leftovers(tmp_path) == []
    assert find_checkpoint(tmp_path) == first and list_checkpoints(tmp_path) == [(2, first)]


# --------------------------------------------------------------------------- a real tiny tmpfs


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Callable[[str], None]]:
    """A tmpfs at ``tmp_path/disk``; the fixture's value remounts it with options (size=, ro)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                             capture_output=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")

    def remount(options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(disk)], check=True)

    try:
        yield remount
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _fails(args: list[str | Path], message: str) -> str:
    done = subprocess.run(command(args), env=command_env(), capture_output=True, text=True)
    assert done.returncode == 2, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert "error:" in last and message in last, done.stderr[-2000:]
    return last


@pytest.mark.slow
def test_infer_on_a_full_then_read_only_disk(tmp_path: Path, tiny_disk) -> None:
    old_run = tmp_path / "old_run"
    shutil.copytree(OLD_RUN, old_run, ignore=shutil.ignore_patterns("*.py", "*.md", "expected"))
    ref, out = tmp_path / "ref", tmp_path / "disk" / "pairs"
    subprocess.run(command(_infer_args(old_run, ref)), env=command_env(), check=True)
    (tmp_path / "disk" / "ballast").write_bytes(b"\0" * (64 * 1024 - 8 * 1024))
    line = _fails(_infer_args(old_run, out), "No space left on device")
    assert str(out) in line  # names the file it could not write
    written = snapshot(out)
    assert written and all(snapshot(ref)[k] == v for k, v in written.items())  # whole files
    assert leftovers(out) == []
    tiny_disk("ro")
    _fails(_infer_args(old_run, out), "Read-only file system")
    assert snapshot(out) == written
    tiny_disk("rw,size=1m")
    subprocess.run(command(_infer_args(old_run, out)), env=command_env(), check=True)
    assert differences(snapshot(ref), snapshot(out)) == [] and leftovers(out) == []


@pytest.mark.slow
def test_training_on_a_full_disk_stops_cleanly_and_resumes(tmp_path: Path, tiny_disk) -> None:
    old_run = tmp_path / "old_run"
    shutil.copytree(OLD_RUN, old_run, ignore=shutil.ignore_patterns("*.py", "*.md", "expected"))
    ref, out = tmp_path / "ref", tmp_path / "disk" / "run"
    subprocess.run(command(_train_flow_args(old_run, ref, 6)), env=command_env(), check=True)
    tiny_disk("size=700k")  # room for a checkpoint or two, not for six steps of them
    _fails(_train_flow_args(old_run, out, 6), "No space left on device")
    assert leftovers(out) == []
    for _, ckpt in list_checkpoints(out / "checkpoints"):  # whatever was saved is whole
        assert (ckpt / "state.pt.sha256").is_file()
    tiny_disk("size=20m")
    subprocess.run(command(_train_flow_args(old_run, out, 6)), env=command_env(), check=True)
    assert_same_run(ref, out)
