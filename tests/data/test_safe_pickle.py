"""The restricted unpickler: plain data and numpy arrays load, every other global is refused."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest

from posetransfer.data.safe_pickle import ForbiddenGlobalError, safe_load


def load(blob: bytes):
    return safe_load(io.BytesIO(blob))


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_plain_data_and_arrays_load(protocol: int) -> None:
    data = {
        "ints": [1, -1, 2**70],
        "nested": {"t": (1.5, None, True), "s": "é"},
        "array": np.arange(6, dtype=np.int16).reshape(2, 3),
        "floats": np.linspace(0, 1, 4, dtype=np.float32),
        "scalar": np.int64(7),
    }
    back = load(pickle.dumps(data, protocol=protocol))
    assert back["ints"] == data["ints"] and back["nested"] == data["nested"]
    for key in ("array", "floats"):
        assert back[key].dtype == data[key].dtype
        np.testing.assert_array_equal(back[key], data[key])
    assert back["scalar"] == 7 and back["scalar"].dtype == np.int64


def test_protocol2_bytes_use_codecs_encode_latin1_only() -> None:
    blob = pickle.dumps({"b": b"\x00\xff"}, protocol=2)
    assert b"_codecs\nencode" in blob
    assert load(blob) == {"b": b"\x00\xff"}
    with pytest.raises(pickle.UnpicklingError, match="latin1 text only"):
        load(blob.replace(b"latin1", b"rot_13"))


@pytest.mark.parametrize(
    ("global_line", "refused"),
    [
        (b"cbuiltins\neval\n", "builtins.eval"),
        (b"c__builtin__\nopen\n", "__builtin__.open"),
        (b"cos\nsystem\n", "os.system"),
        (b"cnumpy\nload\n", "numpy.load"),
        (b"cnumpy.testing._private.utils\nrunstring\n", "numpy.testing._private.utils.runstring"),
    ],
)
def test_other_globals_are_refused_before_import(global_line: bytes, refused: str) -> None:
    blob = b"\x80\x02" + global_line + b"U\x011\x85R."  # GLOBAL, ('1',), REDUCE
    with pytest.raises(ForbiddenGlobalError, match=refused) as excinfo:
        load(blob)
    assert f"{excinfo.value.module}.{excinfo.value.name}" == refused
    assert isinstance(excinfo.value, pickle.UnpicklingError)
