"""Fixtures the command tests share with the evaluation tests."""

from tests.eval.conftest import make_folder, no_weights

__all__ = ["make_folder", "no_weights"]
