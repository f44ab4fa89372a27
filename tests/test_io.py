"""Tests for posetransfer.io: atomic writes never leave partial files."""

from __future__ import annotations

import os

import pytest

from posetransfer.io import atomic_open, atomic_write_bytes, atomic_write_text


def test_write_creates_parents_and_content(tmp_path):
    path = tmp_path / "a" / "b" / "f.txt"
    atomic_write_text(path, "hello")
    assert path.read_text() == "hello"
    atomic_write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"


def test_failure_keeps_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old")
    with pytest.raises(RuntimeError), atomic_open(path, "wb") as f:
        f.write(b"partial new content")
        raise RuntimeError("boom")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_failure_without_previous_file_writes_nothing(tmp_path):
    path = tmp_path / "f.bin"
    with pytest.raises(KeyboardInterrupt), atomic_open(path) as f:
        f.write(b"x")
        raise KeyboardInterrupt
    assert not path.exists()
    assert os.listdir(tmp_path) == []


def test_rejects_non_write_modes(tmp_path):
    with pytest.raises(ValueError, match="modes"), atomic_open(tmp_path / "f", "ab"):
        pass


def test_write_npz_is_loadable_and_byte_stable(tmp_path):
    import time

    import numpy as np

    from posetransfer.io import write_npz

    arrays = {
        "flow": np.arange(12, dtype=np.float16).reshape(2, 3, 2),
        "vis": np.eye(3, dtype=np.uint8),
    }
    with open(tmp_path / "a.npz", "wb") as f:
        write_npz(f, **arrays)
    time.sleep(2.1)  # np.savez_compressed would stamp a different time now
    with open(tmp_path / "b.npz", "wb") as f:
        write_npz(f, **arrays)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with np.load(tmp_path / "a.npz") as data:
        assert sorted(data.files) == ["flow", "vis"]
        np.testing.assert_array_equal(data["flow"], arrays["flow"])
        assert data["vis"].dtype == np.uint8


def test_write_npz_compresslevel_trades_size_and_flow_files_use_level_1(tmp_path):
    import numpy as np

    from posetransfer.data.flow_files import FLOW_COMPRESSLEVEL, read_flow, write_flow
    from posetransfer.io import write_npz

    y, x = np.mgrid[0:64, 0:48]
    flow = np.stack([np.sin(x / 5.0) * 20, np.cos(y / 7.0) * 10], -1).astype(np.float16)
    sizes = {}
    for level in (1, 9):
        with open(tmp_path / f"{level}.npz", "wb") as f:
            write_npz(f, level, flow=flow)
        sizes[level] = (tmp_path / f"{level}.npz").stat().st_size
        with np.load(tmp_path / f"{level}.npz") as data:
            np.testing.assert_array_equal(data["flow"], flow)
    assert sizes[1] > sizes[9]  # the level is applied
    assert FLOW_COMPRESSLEVEL == 1
    vis = np.zeros((64, 48), dtype=np.uint8)
    write_flow(tmp_path / "pair.npz", flow.astype(np.float32), vis)
    with open(tmp_path / "direct.npz", "wb") as f:
        write_npz(f, 1, flow=flow, visibility=vis)
    assert (tmp_path / "pair.npz").read_bytes() == (tmp_path / "direct.npz").read_bytes()
    np.testing.assert_array_equal(read_flow(tmp_path / "pair.npz")[0], flow)


def test_read_npz_equals_np_load_for_plain_and_unusual_members(tmp_path):
    import io as stdlib_io
    import zipfile

    import numpy as np

    from posetransfer.io import read_npz, write_npz

    rng = np.random.default_rng(1)
    arrays = {
        "f32": rng.normal(size=(1, 20, 3)).astype(np.float32),
        "f64be": rng.normal(size=(4,)).astype(">f8"),
        "i64": np.arange(6, dtype=np.int64).reshape(2, 3),
        "flag": np.array([True, False]),
        "scalar": np.array(2.5),
        "text": np.array(["", "did not converge"]),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "fortran": np.asfortranarray(rng.normal(size=(3, 4))),  # numpy's parser reads it
        "record": np.zeros(2, dtype=[("a", "<i4"), ("b", "<f2")]),
    }
    with open(tmp_path / "a.npz", "wb") as f:
        write_npz(f, **arrays)
    got = read_npz(tmp_path / "a.npz")
    with np.load(tmp_path / "a.npz") as data:
        assert sorted(got) == sorted(data.files) == sorted(arrays)
        for key in arrays:
            assert got[key].dtype == data[key].dtype and got[key].shape == data[key].shape, key
            np.testing.assert_array_equal(got[key], data[key])
    assert got["f32"].flags.writeable and got["f32"].flags.c_contiguous
    # a member whose data is shorter than its header says: numpy's reader refuses it
    buffer = stdlib_io.BytesIO()
    np.lib.format.write_array(buffer, np.arange(4, dtype=np.int32))
    with zipfile.ZipFile(tmp_path / "short.npz", "w") as archive:
        archive.writestr("x.npy", buffer.getvalue()[:-4])
    with pytest.raises(ValueError):
        read_npz(tmp_path / "short.npz")
    # any flipped byte gives a ValueError or the same arrays, never different ones
    clean = (tmp_path / "a.npz").read_bytes()
    for position in range(0, len(clean), 7):
        raw = bytearray(clean)
        raw[position] ^= 0xFF
        (tmp_path / "bad.npz").write_bytes(bytes(raw))
        try:
            damaged = read_npz(tmp_path / "bad.npz")
        except ValueError:
            continue
        assert sorted(damaged) == sorted(got), position
        for key in got:
            assert damaged[key].dtype == got[key].dtype, (position, key)
            np.testing.assert_array_equal(damaged[key], got[key])
    # a header numpy would refuse ("(,)" is no shape) is refused, not read as a scalar
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (,), }"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    member = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()
    with zipfile.ZipFile(tmp_path / "odd.npz", "w") as archive:
        archive.writestr("x.npy", member + np.float32(1).tobytes())
    with pytest.raises(ValueError):
        read_npz(tmp_path / "odd.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(ValueError, match=r"text\.npz: not a readable npz archive"):
        read_npz(tmp_path / "text.npz")


def _dead_pid() -> int:
    """The id of a process that has exited."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
    import subprocess
    import sys

    from posetransfer.io import remove_stale_temporaries, temporary_owner

    host = temporary_owner().split("@")[1]
    sub = tmp_path / "sub"
    sub.mkdir()
    dead = _dead_pid()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = [
            tmp_path / f".a.png.{dead}@{host}.x1y2z3_4.tmp",
            sub / f".b.npz.{dead}@{host}.ab.tmp",
        ]
        kept = [
            tmp_path / f".c.png.{alive.pid}@{host}.x1y2z3_4.tmp",  # a live writer (another shard)
            tmp_path / f".d.png.{dead}@otherhost.x1y2z3_4.tmp",  # another machine's writer
            tmp_path / ".e.png.x1y2z3_4.tmp",  # older code's name: owner unknown
            tmp_path / "f.png",
        ]
        for path in stale + kept:
            path.write_bytes(b"x")
        assert remove_stale_temporaries(tmp_path, recursive=False) == [stale[0]]
        assert remove_stale_temporaries(tmp_path) == [stale[1]]
        assert sorted(tmp_path.rglob("*.*")) == sorted(kept)
    finally:
        alive.kill()
        alive.wait()


def test_a_checkpoint_swap_killed_between_its_renames_is_undone(tmp_path):
    from posetransfer.io import remove_stale_temporaries, temporary_owner

    host = temporary_owner().split("@")[1]
    dead = _dead_pid()
    old = tmp_path / f".old-best-{dead}@{host}-abc_123"
    (old / "best").mkdir(parents=True)
    (old / "best" / "meta.json").write_text("{}")
    half = tmp_path / f".tmp-ckpt-000004-{dead}@{host}-q1w2e3"
    half.mkdir()
    (half / "net.safetensors").write_bytes(b"half")
    remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]
    assert (tmp_path / "best" / "meta.json").read_text() == "{}"


def test_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    import errno

    import posetransfer.io as io_module

    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io_module.os, "fsync", full)
    with pytest.raises(OSError, match="No space left") as excinfo:
        atomic_write_bytes(path, b"new")
    assert excinfo.value.filename == str(path) and excinfo.value.errno == errno.ENOSPC
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.bin"]
