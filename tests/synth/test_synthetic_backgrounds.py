"""make-synthetic with backgrounds and camera effects: pixels change, geometry does not."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from posetransfer.conventions import Visibility
from posetransfer.synth.backgrounds import BackgroundSampler
from posetransfer.synth.dataset_writer import finish_images, make_synthetic
from posetransfer.synth.people import render_person, sample_person
from posetransfer.synth.synthetic_config import BackgroundConfig, CameraConfig, SyntheticConfig

BASE = SyntheticConfig(num_people=3, poses_per_person=2, size=(64, 48), seed=11, test_fraction=0.3)


@pytest.fixture(scope="module")
def plate_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("plates")
    rng = np.random.default_rng(0)
    for k in range(2):
        image = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
        Image.fromarray(image).resize((150, 200), Image.Resampling.NEAREST).save(
            folder / f"{k}.png"
        )
    return folder


def _varied(plate_dir: Path, camera: bool = True) -> SyntheticConfig:
    background = BackgroundConfig(mix=(0.0, 1.0, 1.0), plate_dir=str(plate_dir))
    return dataclasses.replace(BASE, background=background, camera=CameraConfig(enabled=camera))


def _contents(root: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if not path.is_file() or rel.startswith("parts") or rel == "config.yaml":
            continue
        if path.suffix == ".npz":
            with np.load(path) as data:
                out[rel] = {k: data[k].tobytes() for k in data.files}
        else:
            out[rel] = path.read_bytes()
    return out


def test_backgrounds_change_pixels_only(tmp_path: Path, body_model, plate_dir: Path) -> None:
    make_synthetic(tmp_path / "plain", BASE, model=body_model)
    make_synthetic(tmp_path / "varied", _varied(plate_dir), model=body_model)
    plain, varied = _contents(tmp_path / "plain"), _contents(tmp_path / "varied")
    assert sorted(plain) == sorted(varied)
    images = [k for k in plain if k.endswith(".png")]
    assert len(images) == BASE.num_people * BASE.poses_per_person
    for name in plain:
        if name in images:
            assert plain[name] != varied[name], name
        else:  # flows, bodies, keypoint and pair CSVs
            assert plain[name] == varied[name], name


def test_sharding_gives_the_same_bytes(tmp_path: Path, body_model, plate_dir: Path) -> None:
    cfg = _varied(plate_dir)
    make_synthetic(tmp_path / "one", cfg, model=body_model)
    for shard in (1, 0):
        make_synthetic(tmp_path / "two", cfg, model=body_model, shard=shard, num_shards=2)
    assert _contents(tmp_path / "one") == _contents(tmp_path / "two")


def test_the_person_is_composited_through_its_exact_silhouette(body_model, plate_dir: Path) -> None:
    cfg = _varied(plate_dir, camera=False)
    spec = sample_person(4, seed=cfg.seed, poses=3)
    render = render_person(body_model, spec, cfg.size)
    sampler = BackgroundSampler(cfg.background, cfg.size)
    out = finish_images(render, cfg, 4, sampler)
    background = torch.from_numpy(sampler.sample(cfg.seed, 4)).expand_as(render.images)
    fg = render.foreground
    assert fg.any(dim=(1, 2)).all() and (~fg).any(dim=(1, 2)).all()
    assert torch.equal(out.images[fg], render.images[fg])
    assert torch.equal(out.images[~fg], background[~fg])
    assert not torch.equal(out.images[~fg], render.images[~fg])
    # the silhouette is exactly the target pixels whose visibility is not BACKGROUND
    for k, (_, tgt) in enumerate(render.pairs):
        body = render.flow.visibility[k] != int(Visibility.BACKGROUND)
        assert torch.equal(body, fg[tgt])
    assert out.flow is render.flow and out.poses is render.poses
