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
