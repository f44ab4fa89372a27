"""Tests of posetransfer.train.allocator: thresholds set, results unchanged, used by training."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import posetransfer.train.loop as loop
from posetransfer.train.allocator import retain_freed_memory

from .tiny_stage import quiet_config, train

# Child script: bytes glibc holds in mmapped blocks (mallinfo2().hblkhd) while a 64 MiB tensor
# is alive, with or without retain_freed_memory().
_MMAPPED = """
import ctypes, json, sys
import torch
from posetransfer.train.allocator import retain_freed_memory
class Info(ctypes.Structure):
    names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
    _fields_ = [(n, ctypes.c_size_t) for n in names.split()]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
tuned = retain_freed_memory() if sys.argv[1] == "1" else None
big = torch.ones(16 << 20)  # 64 MiB of float32
"""

# Child script (appended to _MMAPPED): two GAN steps of a small generator and discriminator
# (Adam, BCE + L1), fixed seed; prints the losses, output and updated weights as exact floats.
_STEP = """
from posetransfer.losses.generator import (GeneratorLossConfig, discriminator_loss_terms,
    generator_loss_terms, weighted_discriminator_total, weighted_total)
from posetransfer.models.discriminator import DiscriminatorConfig, PatchDiscriminator
from posetransfer.models.generator import GeneratorConfig, PoseTransferGenerator
mmapped = libc.mallinfo2().hblkhd
del big
torch.set_num_threads(1)
torch.manual_seed(0)
gen = PoseTransferGenerator(GeneratorConfig(image_size=(64, 64), channels=(16, 16, 32),
                                            warp_levels=2)).train()
disc = PatchDiscriminator(DiscriminatorConfig(base_channels=8, num_layers=2)).train()
cfg = GeneratorLossConfig(perceptual_weight=0.0, gan_weight=0.01, gan_start_step=0)
g_opt = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
d_opt = torch.optim.Adam(disc.parameters(), lr=2e-5, betas=(0.5, 0.999), weight_decay=4e-4)
src, tgt = torch.rand(4, 3, 64, 64) * 2 - 1, torch.rand(4, 3, 64, 64) * 2 - 1
pose = (torch.rand(4, 18, 64, 64) > 0.97).float()
flow, vis = torch.randn(4, 2, 64, 64) * 3, torch.randint(0, 3, (4, 64, 64))
losses = []
for _ in range(2):
    out = gen(src, pose, flow, vis).image
    d_terms = discriminator_loss_terms(disc(src, tgt, pose), disc(src, out.detach(), pose), cfg)
    d_opt.zero_grad(set_to_none=True)
    d_loss = weighted_discriminator_total(d_terms, cfg)
    d_loss.backward()
    d_opt.step()
    disc.requires_grad_(False)
    terms = generator_loss_terms(out, tgt, cfg, fake_logits=disc(src, out, pose))
    g_opt.zero_grad(set_to_none=True)
    total = weighted_total(terms, cfg, step=0)
    total.backward()
    g_opt.step()
    disc.requires_grad_(True)
    losses += [d_loss.item(), total.item()]
weights = {k: v.flatten().tolist() for k, v in {**gen.state_dict(), **disc.state_dict()}.items()}
result = {"losses": losses, "out": out.detach().flatten().tolist(), "weights": weights}
print(json.dumps(result | {"tuned": tuned, "mmapped": mmapped}))
"""


def _child(script: str, tuned: bool) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", script, "1" if tuned else "0"],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("threshold", [0, -5, 2**31, 1.5, "big"])
def test_invalid_thresholds_are_refused(threshold: object) -> None:
    with pytest.raises(ValueError, match="threshold must be an int"):
        retain_freed_memory(threshold)  # type: ignore[arg-type]


@pytest.mark.slow  # two child processes that import torch: ~15 s idle, ~40 s loaded
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallinfo2")
def test_tuned_heap_serves_large_tensors_and_training_is_bit_identical() -> None:
    default, tuned = _child(_MMAPPED + _STEP, False), _child(_MMAPPED + _STEP, True)
    assert default["mmapped"] >= 64 << 20  # glibc's default: a fresh mmap per large block
    assert tuned["tuned"] is True
    assert tuned["mmapped"] < 64 << 20  # now from the heap, reused by the next allocation
    assert tuned["losses"] == default["losses"]
    assert tuned["out"] == default["out"]
    assert tuned["weights"].keys() == default["weights"].keys()
    for name, values in default["weights"].items():
        assert tuned["weights"][name] == values, name


def test_run_training_tunes_the_allocator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def record() -> bool:
        calls.append(1)
        return True

    monkeypatch.setattr(loop, "retain_freed_memory", record)
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    train(tmp_path, quiet_config(max_steps=2))
    assert calls == [1]
