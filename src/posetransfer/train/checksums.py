"""Checksums of checkpoint files, and safetensors bytes that depend only on their content.

:mod:`posetransfer.train.checkpoint` writes and checks the checksums.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["meta_checksum", "stable_safetensors", "tensors_digest"]


def tensors_digest(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> str:
    """SHA-256 of the tensors (names, dtypes, shapes, bytes) and of the other metadata."""
    digest = hashlib.sha256()
    for key in sorted(metadata):
        if key != "sha256":
            digest.update(f"{key}={metadata[key]}\0".encode())
    for key in sorted(tensors):
        tensor = tensors[key].detach().cpu().contiguous()
        digest.update(f"{key}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def meta_checksum(meta: Mapping[str, Any]) -> str:
    """SHA-256 of ``meta``'s keys other than ``checksum`` (canonical JSON)."""
    body = {k: v for k, v in meta.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def stable_safetensors(data: bytes) -> bytes:
    """``data`` (a safetensors file) with its JSON header in sorted key order.

    safetensors keeps the metadata in a hash map whose order changes from one process to the
    next, so the same tensors and metadata gave different bytes; sorted, a repeated (or resumed)
    run writes the same file. The tensor bytes and their offsets are unchanged.
    """
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    if "__metadata__" in header:
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(dict(sorted(header.items())), separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned, as safetensors writes it
    return struct.pack("<Q", len(text)) + text + data[8 + size :]
