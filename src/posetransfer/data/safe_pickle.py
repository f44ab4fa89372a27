"""Load pickles of plain data and numpy arrays without running any other code.

A pickle names callables (``module.name``) that the unpickler imports and calls, so loading an
untrusted pickle with :func:`pickle.load` can run anything. :func:`safe_load` resolves only the few
globals numpy needs to rebuild arrays, dtypes and scalars, and refuses every other one *before* it
is imported or called, raising :class:`ForbiddenGlobalError`. ``builtins`` is refused entirely.

It reads Python 2 ``cPickle`` files (``encoding="latin1"``, numpy 1.x names ``numpy.core.*``) and
protocol 2-5 pickles written by Python 3 (numpy 2.x names ``numpy._core.*``; protocol 2 rebuilds
``bytes`` with ``_codecs.encode(text, "latin1")``, which is allowed for latin1 only).
"""

from __future__ import annotations

import functools
import importlib
import pickle
from collections.abc import Callable
from typing import IO, Any

import numpy as np

__all__ = ["ForbiddenGlobalError", "safe_load"]


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


def _numpy_attribute(module: str, name: str) -> Callable[..., Any]:
    return getattr(importlib.import_module(module), name)


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Stand-in for ``_codecs.encode``, restricted to what protocol-2 ``bytes`` need."""
    if not isinstance(text, str) or encoding.replace("-", "").lower() != "latin1":
        raise pickle.UnpicklingError(
            f"_codecs.encode is allowed for latin1 text only: {encoding!r}"
        )
    return text.encode("latin1", errors)


def _allowed_globals() -> dict[tuple[str, str], Callable[[], Any]]:
    """``(module, name)`` as written in pickles -> a function returning the object to use."""
    core = "numpy._core" if hasattr(np, "_core") else "numpy.core"
    allowed: dict[tuple[str, str], Callable[[], Any]] = {
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
        ("_codecs", "encode"): lambda: _latin1_encode,
    }
    for written in ("numpy.core", "numpy._core"):  # numpy 1.x / numpy 2.x names
        for module, name in (
            ("multiarray", "_reconstruct"),
            ("multiarray", "scalar"),
            ("numeric", "_frombuffer"),
        ):
            allowed[(f"{written}.{module}", name)] = functools.partial(
                _numpy_attribute, f"{core}.{module}", name
            )
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes]) -> None:
        super().__init__(file, encoding="latin1")
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        factory = self._allowed.get((module, name))
        if factory is None:
            raise ForbiddenGlobalError(module, name)
        return factory()


def safe_load(file: IO[bytes]) -> Any:
    """Unpickle plain containers, numbers, strings and numpy arrays from an open binary file.

    Args:
        file: Binary file positioned at the start of a pickle.

    Returns:
        The unpickled object.

    Raises:
        ForbiddenGlobalError: The pickle names any other global (nothing was called).
        pickle.UnpicklingError, EOFError, ValueError: The pickle is corrupt.
    """
    return _RestrictedUnpickler(file).load()
