"""Load pickles of plain data and numpy arrays without running any other code.

A pickle names callables (``module.name``) that the unpickler imports and calls, so loading an
untrusted pickle with :func:`pickle.load` can run anything. :func:`safe_load` resolves only the few
globals numpy uses to pickle arrays, dtypes and scalars, and refuses every other one *before* it
is imported or called, raising :class:`ForbiddenGlobalError`. ``builtins`` is refused entirely.

It uses Python's own (pure-Python) unpickler on the file's bytes in memory: the C unpickler
sizes its memo by the largest index a ``PUT`` opcode names and allocates a counted object before
reading it, so a few-kilobyte pickle could make it allocate gigabytes (found by fuzzing). This
costs about 5x the C unpickler's time (2.6 s for a 9 MB, 52,000-image ``pose_label.pkl``).

Even numpy's own globals are not called while unpickling: a pickle can apply ``BUILD`` to any
object it made, and ``BUILD`` on a live ``numpy.dtype`` changes the item size under an array that
already uses it (reads and writes past its buffer: a crash found by fuzzing, see
``tests/reliability``). Each allowed numpy global is replaced by an inert stand-in that only
records its arguments and state; once the whole pickle is read, every stand-in is checked and
turned into a fresh array, dtype or scalar of a plain numeric type (bool, int, uint, float,
complex), whose byte count must match its shape. Nothing else can reach numpy.

It reads Python 2 ``cPickle`` files (``encoding="latin1"``, numpy 1.x names ``numpy.core.*``) and
protocol 2-5 pickles written by Python 3 (numpy 2.x names ``numpy._core.*``; protocol 2 rebuilds
``bytes`` with ``_codecs.encode(text, "latin1")``, which is allowed for latin1 only).
"""

from __future__ import annotations

import io
import math
import pickle
from collections.abc import Callable
from typing import IO, Any, Literal

import numpy as np

__all__ = ["ForbiddenGlobalError", "safe_load"]

#: numpy type codes a pickled array or scalar may have (no objects, strings, records, voids).
_DTYPES = frozenset(f"{kind}{size}" for kind in "iu" for size in (1, 2, 4, 8)) | frozenset(
    {"b1", "f2", "f4", "f8", "c8", "c16"}
)

#: Containers nested deeper than this are refused when a pickle holds numpy values.
MAX_DEPTH = 200


class ForbiddenGlobalError(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list; it was neither imported nor called.

    Attributes:
        module: Module part of the refused global.
        name: Name part of the refused global.
    """

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name
        super().__init__(f"refused global {module}.{name}")


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Stand-in for ``_codecs.encode``, restricted to what protocol-2 ``bytes`` need."""
    if not isinstance(text, str) or encoding.replace("-", "").lower() != "latin1":
        raise pickle.UnpicklingError(
            f"_codecs.encode is allowed for latin1 text only: {encoding!r}"
        )
    return text.encode("latin1", errors)


# ------------------------------------------------------------------------------- numpy stand-ins


class _Stand:
    """An inert record of a numpy call (and the state ``BUILD`` gives it)."""

    def __init__(self, *args: Any) -> None:
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _NdarrayClass(_Stand):
    """``numpy.ndarray`` as the first argument of ``_reconstruct``."""


class _DType(_Stand):
    """``numpy.dtype(code, align, copy)``, then ``BUILD`` with its byte order."""

    def resolve(self) -> np.dtype:
        code = self.args[0] if self.args else None
        if not isinstance(code, str) or code not in _DTYPES:
            raise pickle.UnpicklingError(f"numpy dtype {code!r} is not a plain numeric type")
        dtype = np.dtype(code)
        state = self.state
        if state is None:
            return dtype
        if not isinstance(state, tuple) or len(state) < 2 or state[1] not in ("<", ">", "|", "="):
            raise pickle.UnpicklingError(f"numpy dtype {code!r} has an invalid state")
        if any(item is not None for item in state[2:5]):  # sub-array, field names, fields
            raise pickle.UnpicklingError(f"numpy dtype {code!r} has sub-arrays or fields")
        return dtype.newbyteorder(state[1]) if state[1] in "<>" else dtype


def _raw_bytes(data: Any, what: str) -> bytes:
    if isinstance(data, str):  # Python 2 pickles hold the bytes as latin1 text
        return data.encode("latin1")
    if isinstance(data, bytes | bytearray | pickle.PickleBuffer):
        return bytes(memoryview(data))
    raise pickle.UnpicklingError(f"{what}: expected raw bytes, got {type(data).__name__}")


def _array(data: Any, dtype: Any, shape: Any, order: Literal["C", "F"]) -> np.ndarray:
    """A fresh array from checked pieces (the byte count must fit the shape exactly)."""
    if not isinstance(dtype, _DType):
        raise pickle.UnpicklingError(f"numpy array: expected a dtype, got {type(dtype).__name__}")
    resolved = dtype.resolve()
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if not (
        isinstance(shape, tuple)
        and len(shape) <= 32
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
    ):
        raise pickle.UnpicklingError(f"numpy array: invalid shape {shape!r:.80}")
    raw = _raw_bytes(data, "numpy array")
    if math.prod(shape) * resolved.itemsize != len(raw):
        raise pickle.UnpicklingError(
            f"numpy array: {len(raw)} bytes do not fill shape {shape} of {resolved}"
        )
    return np.frombuffer(raw, resolved).reshape(shape, order=order).copy()


class _Reconstructed(_Stand):
    """``_reconstruct(ndarray, (0,), b"b")``, then ``BUILD`` with ``(version, shape, dtype,
    is_fortran, raw)``."""

    def resolve(self) -> np.ndarray:
        if not self.args or not isinstance(self.args[0], _NdarrayClass):
            raise pickle.UnpicklingError("numpy _reconstruct of something other than ndarray")
        state = self.state
        if isinstance(state, tuple) and len(state) == 5:
            state = state[1:]
        if not isinstance(state, tuple) or len(state) != 4:
            raise pickle.UnpicklingError("numpy array without a valid state")
        shape, dtype, fortran, raw = state
        return _array(raw, dtype, shape, "F" if fortran else "C")


class _FromBuffer(_Stand):
    """``_frombuffer(buffer, dtype, shape, order)`` (protocol 5)."""

    def resolve(self) -> np.ndarray:
        if len(self.args) != 4 or self.args[3] not in ("C", "F"):
            raise pickle.UnpicklingError("numpy _frombuffer with invalid arguments")
        raw, dtype, shape, order = self.args
        return _array(raw, dtype, shape, "F" if order == "F" else "C")


class _Scalar(_Stand):
    """``scalar(dtype, raw)``: one numpy number."""

    def resolve(self) -> Any:
        if len(self.args) != 2:
            raise pickle.UnpicklingError("numpy scalar with invalid arguments")
        dtype, raw = self.args
        return _array(raw, dtype, (), "C")[()]  # a numpy scalar


_STAND_INS: dict[str, Callable[..., Any]] = {
    "multiarray._reconstruct": _Reconstructed,
    "multiarray.scalar": _Scalar,
    "numeric._frombuffer": _FromBuffer,
}


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """``(module, name)`` as written in pickles -> the object the unpickler gets instead."""
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): _NdarrayClass(),
        ("numpy", "dtype"): _DType,
        ("_codecs", "encode"): _latin1_encode,
    }
    for written in ("numpy.core", "numpy._core"):  # numpy 1.x / numpy 2.x names
        for dotted, stand_in in _STAND_INS.items():
            module, name = dotted.split(".")
            allowed[(f"{written}.{module}", name)] = stand_in
    return allowed


def _resolve(obj: Any, memo: dict[int, tuple[Any, Any]], depth: int) -> Any:
    """``obj`` with every stand-in replaced by its checked numpy value (lists and dicts in place).

    ``memo`` maps ``id(original) -> (original, value)`` (the original kept alive, so its id is
    not reused): shared objects are resolved once and stay shared.
    """
    if id(obj) in memo:
        return memo[id(obj)][1]
    kind = type(obj)
    if kind is _NdarrayClass:
        raise pickle.UnpicklingError("numpy.ndarray may only be used to rebuild an array")
    if kind in (_DType, _Reconstructed, _FromBuffer, _Scalar):
        value = obj.resolve()
    elif kind not in (list, dict, tuple, set, frozenset):
        return obj
    elif depth > MAX_DEPTH:
        raise pickle.UnpicklingError(f"containers nested more than {MAX_DEPTH} levels deep")
    elif kind is list:
        memo[id(obj)] = (obj, obj)  # before the items: a list may hold itself
        obj[:] = [_resolve(item, memo, depth + 1) for item in obj]
        return obj
    elif kind is dict:
        memo[id(obj)] = (obj, obj)
        for key in list(obj):
            if _resolve(key, memo, depth + 1) is not key:
                raise pickle.UnpicklingError("a numpy value cannot be a dict key")
            obj[key] = _resolve(obj[key], memo, depth + 1)
        return obj
    else:  # tuple, set, frozenset: rebuilt only if an item changed
        items = [_resolve(item, memo, depth + 1) for item in obj]
        value = obj
        if any(a is not b for a, b in zip(items, obj, strict=True)):
            if kind is not tuple:
                raise pickle.UnpicklingError("a numpy value cannot be a set member")
            value = tuple(items)
    memo[id(obj)] = (obj, value)
    return value


class _RestrictedUnpickler(pickle._Unpickler):  # the pure-Python unpickler (see safe_load)
    def __init__(self, file: IO[bytes]) -> None:
        super().__init__(file, encoding="latin1")
        self._allowed = _allowed_globals()
        self.used_numpy = False

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._allowed:
            raise ForbiddenGlobalError(module, name)
        self.used_numpy = self.used_numpy or module.startswith("numpy")
        return self._allowed[(module, name)]


def safe_load(file: IO[bytes]) -> Any:
    """Unpickle plain containers, numbers, strings and numpy arrays from an open binary file.

    Args:
        file: Binary file positioned at the start of a pickle.

    Returns:
        The unpickled object; numpy arrays, dtypes and scalars are fresh and of plain numeric
        types.

    Raises:
        ForbiddenGlobalError: The pickle names any other global (nothing was called).
        pickle.UnpicklingError, EOFError, ValueError: The pickle is corrupt.
    """
    # Python's unpickler, not the C one: the C unpickler grows its memo to the largest index a
    # PUT names, so a 5 KB pickle made it allocate (and zero) gigabytes; Python's memo is a dict.
    # The bytes are read first so that a length field cannot make a read larger than the file.
    unpickler = _RestrictedUnpickler(io.BytesIO(file.read()))
    data = unpickler.load()
    if not unpickler.used_numpy:
        return data
    return _resolve(data, {}, 0)
