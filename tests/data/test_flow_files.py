"""Flow files: the original ``.corr`` format and our float16 ``.npz`` store."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from posetransfer.conventions import Visibility
from posetransfer.data.flow_files import (
    flow_filename,
    read_any_flow,
    read_corr,
    read_flow,
    write_corr,
    write_flow,
)
from posetransfer.data.formats import FormatError

NAN = float("nan")

# A 2x3 (H x W) target image: absolute source coordinates (x, y) per pixel, and visibility codes.
CORR_2X3 = [
    [(1.5, 0.25), (0.0, 1.0), (99.0, 99.0)],
    [(2.0, 0.0), (NAN, NAN), (0.5, 1.75)],
]
VIS_2X3 = [[0, 1, 2], [0, 2, 1]]


def corr_bytes(width: int, height: int, coords, codes) -> bytes:
    flat = [v for row in coords for xy in row for v in xy]
    return struct.pack(f"<ii{len(flat)}f", width, height, *flat) + bytes(
        c for row in codes for c in row
    )


def random_flow(rng: np.random.Generator, h: int = 5, w: int = 7, scale: float = 30.0):
    flow = (rng.standard_normal((h, w, 2)) * scale).astype(np.float32)
    vis = rng.integers(0, 3, size=(h, w)).astype(np.uint8)
    flow[vis == Visibility.BACKGROUND] = 0
    return flow, vis


def test_corr_hand_made_2x3(tmp_path: Path) -> None:
    path = tmp_path / "tgt_src.corr"
    path.write_bytes(corr_bytes(3, 2, CORR_2X3, VIS_2X3))
    flow, vis = read_corr(path)
    assert flow.dtype == np.float32 and flow.shape == (2, 3, 2)
    assert vis.dtype == np.uint8 and vis.tolist() == VIS_2X3
    # flow = corr - (x=j, y=i); background -> 0 whatever the file holds (even NaN)
    expected = [
        [(1.5, 0.25), (-1.0, 1.0), (0.0, 0.0)],
        [(2.0, -1.0), (0.0, 0.0), (-1.5, 0.75)],
    ]
    np.testing.assert_array_equal(flow, np.array(expected, np.float32))


def test_corr_write_layout(tmp_path: Path) -> None:
    flow = np.array(
        [[(1.5, 0.25), (-1.0, 1.0), (7.0, 7.0)], [(2.0, -1.0), (3.0, 3.0), (-1.5, 0.75)]],
        np.float32,
    )
    path = tmp_path / "x.corr"
    write_corr(path, flow, np.array(VIS_2X3))
    raw = path.read_bytes()
    assert len(raw) == 8 + 2 * 3 * 9 + 8  # + the checksum trailer
    assert struct.unpack("<ii", raw[:8]) == (3, 2)  # W first
    corr = np.frombuffer(raw[8:56], "<f4").reshape(2, 3, 2)
    expected = [[(1.5, 0.25), (0.0, 1.0), (2.0, 0.0)], [(2.0, 0.0), (1.0, 1.0), (0.5, 1.75)]]
    np.testing.assert_array_equal(corr, np.array(expected, np.float32))  # background: grid
    assert list(raw[56:62]) == [0, 1, 2, 0, 2, 1]
    assert raw[62:66] == b"PTC1" and struct.unpack("<I", raw[66:]) == (zlib.crc32(raw[:62]),)


def test_corr_round_trip(tmp_path: Path, rng) -> None:
    flow, vis = random_flow(rng)
    path = tmp_path / "a_b.corr"
    write_corr(path, flow, vis)
    back_flow, back_vis = read_corr(path)
    np.testing.assert_array_equal(back_vis, vis)
    np.testing.assert_allclose(back_flow, flow, atol=1e-5)  # float32 (grid + flow) - grid


def test_corr_write_zeroes_background_flow(tmp_path: Path) -> None:
    flow = np.full((2, 2, 2), 5.0, np.float32)
    vis = np.array([[0, 2], [2, 1]], np.uint8)
    write_corr(tmp_path / "a.corr", flow, vis)
    back, _ = read_corr(tmp_path / "a.corr")
    assert back[:, :, 0].tolist() == [[5.0, 0.0], [0.0, 5.0]]


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"\x03\x00\x00", "truncated: 3 bytes"),
        (corr_bytes(3, 2, CORR_2X3, VIS_2X3)[:-1], "expected 62 bytes for W=3, H=2.*got 61"),
        (corr_bytes(3, 2, CORR_2X3, VIS_2X3) + b"\x00", "expected 62 bytes.*got 63"),
        (corr_bytes(3, 2, CORR_2X3, VIS_2X3) + b"PTC2" + bytes(4), "unknown 8-byte trailer"),
        (corr_bytes(3, 2, CORR_2X3, VIS_2X3) + b"PTC1" + bytes(4), "checksum mismatch"),
        (corr_bytes(0, 2, [], []), "implausible image size W=0, H=2"),
        (corr_bytes(3, -2, [], []), "implausible image size W=3, H=-2"),
        (corr_bytes(1 << 20, 1 << 20, [], []), "implausible image size"),
        (corr_bytes(3, 2, CORR_2X3, [[0, 1, 2], [0, 3, 1]]), r"codes must be in \[0, 1, 2\]"),
        (corr_bytes(1, 1, [[(NAN, 0.0)]], [[1]]), "non-finite flow, first at row 0, col 0"),
    ],
)
def test_corr_errors(tmp_path: Path, blob: bytes, message: str) -> None:
    path = tmp_path / "t_s.corr"
    path.write_bytes(blob)
    with pytest.raises(FormatError, match=message) as excinfo:
        read_corr(path)
    assert str(path) in str(excinfo.value)


def test_flow_npz_round_trip_within_float16_precision(tmp_path: Path, rng) -> None:
    flow, vis = random_flow(rng, 16, 12, scale=150.0)
    path = tmp_path / "t_s.npz"
    write_flow(path, flow, vis)
    with np.load(path) as archive:
        assert sorted(archive.files) == ["flow", "visibility"]
        assert archive["flow"].dtype == np.float16 and archive["visibility"].dtype == np.uint8
    back, back_vis = read_flow(path)
    assert back.dtype == np.float32 and back.shape == flow.shape
    np.testing.assert_array_equal(back_vis, vis)
    # float16 rounds to the nearest of 11 significant bits: relative error <= 2**-11
    assert (np.abs(back - flow) <= np.abs(flow) * 2.0**-11 + 1e-7).all()
    assert np.abs(back - flow).max() > 0  # it really is stored in half precision


@pytest.mark.parametrize(("low", "bound"), [(64.0, 0.03125), (128.0, 0.0625), (256.0, 0.125)])
def test_flow_npz_documented_error_bounds(tmp_path: Path, low: float, bound: float) -> None:
    flow = np.linspace(low, 2 * low, 2000, endpoint=False, dtype=np.float32).reshape(40, 25, 2)
    write_flow(tmp_path / "f.npz", flow, np.zeros((40, 25), np.uint8))
    error = np.abs(read_flow(tmp_path / "f.npz")[0] - flow).max()
    assert bound / 2 < error <= bound


def test_flow_npz_forces_background_to_zero(tmp_path: Path) -> None:
    flow = np.ones((2, 2, 2), np.float64)
    flow[0, 1] = np.nan  # non-finite values are allowed on background only
    vis = np.array([[1, 2], [0, 2]], np.int64)
    write_flow(tmp_path / "f.npz", flow, vis)
    back, back_vis = read_flow(tmp_path / "f.npz")
    assert back[..., 1].tolist() == [[1.0, 0.0], [1.0, 0.0]]
    assert back_vis.dtype == np.uint8


@pytest.mark.parametrize(
    ("flow", "vis", "message"),
    [
        (np.zeros((2, 3, 3)), np.zeros((2, 3)), r"flow must be float \(H, W, 2\)"),
        (np.zeros((2, 3)), np.zeros((2, 3)), "flow must be"),
        (np.zeros((2, 3, 2), np.int32), np.zeros((2, 3)), "flow must be float"),
        (np.zeros((2, 3, 2)), np.zeros((3, 2)), "visibility must be integer"),
        (np.zeros((2, 3, 2)), np.zeros((2, 3), np.float32), "visibility must be integer"),
        (np.zeros((0, 3, 2)), np.zeros((0, 3), np.uint8), "empty image"),
        (np.zeros((2, 3, 2)), np.full((2, 3), 3), r"found \[3\]"),
        (np.zeros((2, 3, 2)), np.full((2, 3), -1), r"found \[-1\]"),
        (np.full((2, 3, 2), np.inf), np.zeros((2, 3), np.uint8), "6 non-background pixels"),
    ],
)
@pytest.mark.parametrize("writer", [write_flow, write_corr])
def test_flow_write_errors_keep_old_file(tmp_path: Path, writer, flow, vis, message) -> None:
    path = tmp_path / "old.bin"
    path.write_bytes(b"old")
    with pytest.raises(FormatError, match=message) as excinfo:
        writer(path, flow, vis)
    assert str(path) in str(excinfo.value)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["old.bin"]


def test_flow_npz_refuses_values_beyond_float16(tmp_path: Path) -> None:
    flow = np.zeros((1, 2, 2), np.float32)
    flow[0, 1, 0] = 70000.0
    with pytest.raises(FormatError, match="exceeds the float16 range 65504"):
        write_flow(tmp_path / "f.npz", flow, np.zeros((1, 2), np.uint8))


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"flow": np.zeros((2, 2, 2), np.float16)}, r"found \['flow'\]"),
        (
            {"flow": np.zeros((2, 2, 2)), "visibility": np.zeros((2, 2), np.uint8), "x": 1},
            r"found \['flow', 'visibility', 'x'\]",
        ),
        ({"flow": np.zeros((2, 2, 2)), "visibility": np.zeros((2, 3), np.uint8)}, "visibility"),
        ({"flow": np.zeros((2, 2)), "visibility": np.zeros((2, 2), np.uint8)}, "flow must be"),
        ({"flow": np.zeros((2, 2, 2)), "visibility": np.full((2, 2), 7, np.uint8)}, r"\[7\]"),
    ],
)
def test_flow_npz_read_errors(tmp_path: Path, arrays: dict, message: str) -> None:
    path = tmp_path / "f.npz"
    np.savez(path, **arrays)
    with pytest.raises(FormatError, match=message) as excinfo:
        read_flow(path)
    assert str(path) in str(excinfo.value)


def test_flow_npz_read_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "f.npz"
    path.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(FormatError, match="not a readable npz archive"):
        read_flow(path)
    with pytest.raises(FormatError, match="file not found"):
        read_flow(tmp_path / "missing.npz")


def test_read_any_flow_dispatches_on_suffix(tmp_path: Path, rng) -> None:
    flow, vis = random_flow(rng)
    write_flow(tmp_path / "a.npz", flow, vis)
    write_corr(tmp_path / "a.corr", flow, vis)
    for name in ("a.npz", "a.corr"):
        back, back_vis = read_any_flow(tmp_path / name)
        np.testing.assert_array_equal(back_vis, vis)
        np.testing.assert_allclose(back, flow, rtol=2.0**-11, atol=1e-5)
    with pytest.raises(FormatError, match=r"unknown flow file type '\.flo'"):
        read_any_flow(tmp_path / "a.flo")


def test_flow_filename() -> None:
    assert flow_filename("src.jpg", "tgt.jpg") == "tgt_src.npz"
    assert flow_filename("0002_c1s1_000451_03", "0002_c2s1_000301_01", "corr") == (
        "0002_c2s1_000301_01_0002_c1s1_000451_03.corr"
    )
    assert flow_filename("a.v2.PNG", "b.x") == "b.x_a.v2.npz"  # only image extensions drop
    for bad in [("", "b"), ("a", "img/b.jpg")]:
        with pytest.raises(ValueError, match="without folders"):
            flow_filename(*bad)
    with pytest.raises(ValueError, match="fmt"):
        flow_filename("a", "b", "flo")  # type: ignore[arg-type]
