"""The app's modules import without the ``app`` extra: ``--doctest-modules`` imports every module
of the package, and only building the page needs Gradio."""

from __future__ import annotations

import subprocess
import sys

_CODE = """
import importlib, pkgutil, sys
sys.modules["gradio"] = None  # as if the app extra were not installed
sys.modules["gradio_client"] = None
import posetransfer.app as app
for module in pkgutil.iter_modules(app.__path__):
    importlib.import_module("posetransfer.app." + module.name)
print(len(list(pkgutil.iter_modules(app.__path__))))
"""


def test_every_app_module_imports_without_gradio() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _CODE], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout) >= 9  # every module of posetransfer.app
