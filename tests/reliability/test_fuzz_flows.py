"""Fuzzing the flow readers (``.corr``, the ``.npz`` store) and the synth-flow manifest."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import strategies as st

from posetransfer.data.flow_files import read_corr, read_flow, write_corr, write_flow
from posetransfer.synth.flow_output import ManifestEntry, manifest_line, read_manifest

from .fuzzing import QUICK_EXAMPLES, SLOW_EXAMPLES, check_reader, fuzz_bytes, run_fuzz


def small_flow(height: int = 5, width: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A flow with all three visibility classes."""
    rng = np.random.default_rng(seed)
    flow = rng.normal(0, 3, (height, width, 2)).astype(np.float32)
    visibility = rng.integers(0, 3, (height, width)).astype(np.uint8)
    return flow, visibility


def corr_seeds(tmp_path: Path) -> list[bytes]:
    seeds = []
    for k, size in enumerate([(5, 4), (2, 3), (9, 7)]):
        path = tmp_path / f"seed{k}.corr"
        write_corr(path, *small_flow(*size, seed=k))
        seeds += [path.read_bytes(), path.read_bytes()[:-8]]  # with and without the checksum
    return seeds


def npz_seeds(tmp_path: Path) -> list[bytes]:
    seeds = []
    for k, size in enumerate([(5, 4), (12, 9)]):
        path = tmp_path / f"seed{k}.npz"
        write_flow(path, *small_flow(*size, seed=k))
        seeds.append(path.read_bytes())
    return seeds


def manifest_seed() -> bytes:
    entries = [
        ManifestEntry("image", "a.jpg", "fit", "did not converge: 7.5 px", "train"),
        ManifestEntry("pair", "a.jpg -> b.jpg", "render", "source fit failed: x", None),
        ManifestEntry("file", "x-annotation.csv", "plan", "line 3: bad row"),
    ]
    return "".join(manifest_line(e) for e in entries).encode()


def _npz_archives() -> st.SearchStrategy[bytes]:
    """Zip archives of .npy members with random names, dtypes, shapes and header claims."""
    arrays = st.builds(
        lambda shape, dtype: np.zeros(shape, dtype),
        st.lists(st.integers(0, 12), max_size=4).map(tuple),
        st.sampled_from(["float16", "float32", "uint8", "int64", "bool", "complex64", "U2"]),
    )
    names = st.sampled_from(["flow", "visibility", "x", "flow.npy/../a"])

    def archive(members: list[tuple[str, np.ndarray]], claim: int) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, array in members:
                member = io.BytesIO()
                np.lib.format.write_array(member, array)
                data = member.getvalue()
                if claim:  # a header that promises a huge array
                    data = data.replace(repr(array.shape).encode(), f"({claim}, {claim})".encode())
                zf.writestr(f"{name}.npy", data)
        return buffer.getvalue()

    members = st.lists(st.tuples(names, arrays), min_size=1, max_size=3, unique_by=lambda m: m[0])
    return st.builds(archive, members, st.sampled_from([0, 0, 1 << 16, 1 << 31]))


def fuzz_corr(tmp_path: Path, examples: int) -> None:
    strategy = fuzz_bytes(corr_seeds(tmp_path))
    path = tmp_path / "t_s.corr"

    def body(data: bytes) -> None:
        path.write_bytes(data)
        check_reader(".corr flow", read_corr, path)

    run_fuzz(strategy, body, examples)


def fuzz_npz(tmp_path: Path, examples: int) -> None:
    strategy = fuzz_bytes(npz_seeds(tmp_path), extra=[_npz_archives()])
    path = tmp_path / "t_s.npz"

    def body(data: bytes) -> None:
        path.write_bytes(data)
        check_reader(".npz flow", read_flow, path)

    run_fuzz(strategy, body, examples)


def fuzz_manifest(tmp_path: Path, examples: int) -> None:
    strategy = fuzz_bytes([manifest_seed()], text=True)
    path = tmp_path / "manifest.jsonl"

    def body(data: bytes) -> None:
        path.write_bytes(data)
        check_reader("synth-flow manifest", read_manifest, path)

    run_fuzz(strategy, body, examples)


FUZZERS = {"corr": fuzz_corr, "npz": fuzz_npz, "manifest": fuzz_manifest}


@pytest.mark.parametrize("reader", sorted(FUZZERS))
def test_fuzz_quick(reader: str, tmp_path: Path) -> None:
    FUZZERS[reader](tmp_path, QUICK_EXAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize("reader", sorted(FUZZERS))
def test_fuzz_slow(reader: str, tmp_path: Path) -> None:
    FUZZERS[reader](tmp_path, SLOW_EXAMPLES)
