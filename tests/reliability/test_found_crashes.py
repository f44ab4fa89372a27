"""Every crash the fuzzers found, as a fixed input: each now gives the project's clear error.

Before the fixes these inputs raised another exception (``OverflowError``, ``RecursionError``,
``UnicodeDecodeError``, ``_csv.Error``, ``TypeError``, a bare ``ValueError`` without the file),
made the process allocate gigabytes, or crashed it (a pickle that resized a numpy dtype under an
array). The counts are in BENCHMARKS.md ("Reliability").
"""

from __future__ import annotations

import io
import pickle
import resource
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from posetransfer.config import ConfigError, apply_overrides, load_config
from posetransfer.data.diaf_formats import read_pair_split, read_pose_label
from posetransfer.data.formats import FormatError, read_annotation_csv, read_pairs_csv
from posetransfer.data.safe_pickle import safe_load
from posetransfer.infer.inputs import read_pose
from posetransfer.infer.video import iter_frames, video_info
from posetransfer.synth.flow_inputs import read_keypoints
from posetransfer.synth.flow_output import SynthFlowConfig, read_manifest
from posetransfer.train.flow_stage import FlowStageConfig

HEADER = "name:keypoints_y:keypoints_x\n"
ONES = "[" + ", ".join(["1"] * 18) + "]"
HUGE = "[" + ", ".join(["1" + "0" * 400] * 18) + "]"  # beyond float64
DIGITS = "[" + ", ".join(["1" * 5000] * 18) + "]"  # beyond int_max_str_digits
DEEP = "[" * 100_000


def _pickle_str(text: bytes) -> bytes:
    return b"X" + len(text).to_bytes(4, "little") + text


def _dtype_exploit(code: bytes) -> bytes:
    """A pickle that builds an array on a dtype, then applies BUILD to that dtype again with an
    item size of 16 MiB: with numpy's real globals the array then reads past its 8 bytes."""

    def state(size: int) -> bytes:
        return b"(K\x03" + _pickle_str(b"|") + b"NNNJ" + size.to_bytes(4, "little") + b"K\x01K\x00t"

    return (
        b"\x80\x05cnumpy\ndtype\n" + _pickle_str(code) + b"\x89\x88\x87Rq\x01" + state(8) + b"b"
        b"cnumpy.core.numeric\n_frombuffer\n(\x96" + (8).to_bytes(8, "little") + bytes(8)
        + b"h\x01K\x01\x85" + _pickle_str(b"C") + b"tRq\x02"
        + b"h\x01" + state(1 << 24) + b"b0."
    )  # fmt: skip


def _memo_bomb() -> bytes:
    """LONG_BINPUT at index 2**28: the C unpickler sizes its memo to that index (2 GiB)."""
    return b"\x80\x02]r" + (1 << 28).to_bytes(4, "little") + b"."


def _shared_lists() -> bytes:
    """A list holding one list ten times, nine levels deep: 10**9 numbers to np.asarray."""
    level = [1] * 10
    for _ in range(8):
        level = [level] * 10
    return pickle.dumps({"a": level}, protocol=2)


def _deep_key() -> bytes:
    return b"\x80\x02})" + b"\x85" * 100_000 + b"K\x01s."  # a 100,000-deep tuple as a key


CASES: list[tuple[str, Callable[[Path], object], bytes, str]] = [
    ("annotation-200-digit-int", read_annotation_csv,
     f"{HEADER}a.jpg: {HUGE}: {ONES}\n".encode(), "not a pixel coordinate"),
    ("annotation-5000-digit-int", read_annotation_csv,
     f"{HEADER}a.jpg: {DIGITS}: {ONES}\n".encode(), "expected a list"),
    ("annotation-deep-list", read_annotation_csv,
     f"{HEADER}a.jpg: {DEEP}: {ONES}\n".encode(), "expected a list"),
    ("pairs-long-field", read_pairs_csv, b"from,to\n" + b"a" * 200_000 + b",b\n",
     "not a valid CSV line"),
    ("pose-json-not-utf8", read_pose, b"\x80", "not UTF-8"),
    ("pose-json-deep", read_pose, DEEP.encode(), "nested too deeply"),
    ("pose-json-5000-digits", read_pose, ("[" + "1" * 5000 + "]").encode(), "invalid JSON"),
    ("pose-rows-not-utf8", read_pose, b"a: [1]: [\xff]", "not UTF-8"),
    ("pose-rows-huge-int", read_pose, f"a: {HUGE}: {ONES}".encode(), "a.txt"),
    ("pair-split-deep", read_pair_split, DEEP.encode(), "nested too deeply"),
    ("pair-split-5000-digits", read_pair_split, b"1" * 5000, "invalid JSON"),
    ("pose-label-dtype-resized-under-array", read_pose_label, _dtype_exploit(b"V8"),
     "not a plain numeric type"),
    ("pose-label-memo-bomb", read_pose_label, _memo_bomb(), "expected a dict"),
    ("pose-label-shared-lists", read_pose_label, _shared_lists(), "expected 18 .x, y. pairs"),
    ("pose-label-deep-key", read_pose_label, _deep_key(), "expected string ids"),
    ("manifest-not-utf8", read_manifest, b"\xff", "not UTF-8"),
    ("manifest-deep", read_manifest, DEEP.encode(), "nested too deeply"),
    ("manifest-wrong-types", read_manifest,
     b'{"kind": 1, "item": [], "stage": null, "reason": 5}', "expected text"),
    ("manifest-not-an-object", read_manifest, b"[1, 2]", "not a manifest entry"),
]  # fmt: skip


@pytest.mark.parametrize(("label", "reader", "data", "message"), CASES, ids=[c[0] for c in CASES])
def test_found_crash_is_a_clear_error(
    tmp_path: Path, label: str, reader: Callable[[Path], object], data: bytes, message: str
) -> None:
    path = tmp_path / ("a.txt" if label.startswith("pose-rows") else f"{label}.json")
    path.write_bytes(data)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(FormatError, match=message) as excinfo:
        reader(path)
    assert str(path) in str(excinfo.value)
    assert time.perf_counter() - start < 10
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 256 * 1024  # KiB


def test_synth_flow_keypoints_skip_a_huge_integer(tmp_path: Path) -> None:
    """synth-flow's tolerant reader raised OverflowError; now the record is a problem."""
    path = tmp_path / "x-annotation.csv"
    path.write_text(f"{HEADER}a.jpg: {HUGE}: {ONES}\nb.jpg: {ONES}: {ONES}\n")
    poses, problems, unattributed = read_keypoints(path, "patn")
    assert list(poses) == ["b.jpg"] and not unattributed
    assert "a.jpg" in problems and "out of range" in problems["a.jpg"]


def test_video_with_a_title_that_is_not_utf8_reads(tmp_path: Path) -> None:
    """PyAV raised UnicodeDecodeError on opening it; the damaged tag is now replaced."""
    av = pytest.importorskip("av")
    path = tmp_path / "clip.mkv"
    with av.open(str(path), "w") as container:
        container.metadata["title"] = "ABCDEFGH"
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        for _ in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((24, 32, 3), np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    path.write_bytes(path.read_bytes().replace(b"ABCDEFGH", b"AB\xff\xfeEFGH"))
    info = video_info(path)
    assert (info.frame_count, info.width, info.height) == (3, 32, 24)
    assert len(list(iter_frames(path))) == 3


def test_run_folder_whose_config_asks_for_a_huge_network(tmp_path: Path) -> None:
    """One digit inserted in config.yaml (8 -> 88888 channels) made from_run allocate gigabytes
    before the weights reported the mismatch; the shapes are now checked on the meta device."""
    from posetransfer.infer.pipeline import PoseTransferPipeline
    from posetransfer.train.checkpoint import CheckpointMismatchError

    run = tmp_path / "gen_run"
    shutil.copytree(Path(__file__).resolve().parents[1] / "fixtures" / "old_run" / "gen_run", run)
    config = run / "config.yaml"
    text = config.read_text()
    assert text.count("  channels:\n  - 4\n  - 8\n  - 8\n") == 1
    config.write_text(text.replace("  - 8\n  - 8\n", "  - 8\n  - 88888\n", 1))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointMismatchError, match=r"generator\.safetensors"):
        PoseTransferPipeline.from_run(run)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 256 * 1024  # KiB


def test_png_whose_chunk_claims_two_gigabytes(tmp_path: Path) -> None:
    """Pillow read the rest of the IDAT chunk as long as its header claimed; with the address
    space limited (as in the fuzzers) that was a bare MemoryError, now a clear error."""
    from PIL import Image

    from posetransfer.infer.images import ImageInputError, load_image

    from .fuzzing import limits

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((11, 17, 3), np.uint8)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    start = data.index(b"IDAT") - 4
    data[start : start + 4] = (0x7FFFFFF0).to_bytes(4, "big")
    path = tmp_path / "chunk.png"
    path.write_bytes(bytes(data))
    assert load_image(path).shape == (11, 17, 3)  # enough memory: the image is whole
    with limits(20, 1 << 30), pytest.raises(ImageInputError, match="more data than memory"):
        load_image(path)


def test_config_float_given_an_integer_beyond_float64(tmp_path: Path) -> None:
    """Was OverflowError (found by the slow fuzzing of run folders)."""
    path = tmp_path / "config.yaml"
    path.write_text("data:\n  val_fraction: 0" + "1" * 400 + "\n")
    with pytest.raises(ConfigError, match="out of range") as excinfo:
        load_config(FlowStageConfig, path)
    assert str(path) in str(excinfo.value)


def test_pickled_dtype_state_cannot_change_an_array() -> None:
    """The same attack on a plain dtype loads, as a fresh array of the dtype's own size."""
    array = safe_load(io.BytesIO(_dtype_exploit(b"i8")))
    assert array.dtype == np.int64 and array.shape == (1,) and array.flags.owndata
    assert array.tolist() == [0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1: 2\nmodel: {}\n", "unknown key"),  # was TypeError: '<' between str and int
        ("train: {batch_size: -1}\n", "batch_size"),  # __post_init__: now names the file
        ("[" * 1500, "invalid YAML"),  # was RecursionError
        ("a: &a [*a]\n", "unknown key"),
        ("train: {lr: " + "1" * 5000 + "}\n", "invalid YAML"),  # was a bare ValueError
    ],
)
def test_config_errors_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as excinfo:
        load_config(FlowStageConfig, path)
    assert str(path) in str(excinfo.value)


@pytest.mark.parametrize("value", ["[" * 1500, "1" * 5000])
def test_override_values_that_broke_the_yaml_parser(value: str) -> None:
    """Were RecursionError and a bare ValueError."""
    with pytest.raises(ConfigError, match="cannot parse value"):
        apply_overrides(FlowStageConfig(), [f"train.lr={value}"])


def test_config_not_utf8_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"fit_batch: \xff\n")
    with pytest.raises(ConfigError, match="not UTF-8") as excinfo:
        load_config(SynthFlowConfig, path)
    assert str(path) in str(excinfo.value)
