"""Write a synthetic dataset: PATN layout plus exact flows, sharded by person, merged at the end.

Output folder ``OUT``::

    OUT/<prefix>annotation-{train,test}.csv   keypoints (PATN: name: [y...]: [x...])
    OUT/<prefix>pairs-{train,test}.csv        all ordered pairs of distinct poses of each person
    OUT/{train,test}/<name>.png               images; a person's images are all in one split
    OUT/flows/<target>_<source>.npz           exact flow and visibility of every pair
    OUT/corr/<target>_<source>.corr           the same in the original format (flow_format corr)
    OUT/bodies/synthPERSONid<person>.npz      ground-truth bodies and cameras (FitResult format)
    OUT/parts/shard-<i>-of-<n>/...            each shard's labels, merged into the CSVs above
    OUT/config.yaml                           the resolved config
    OUT/preview.png                           contact sheet (with ``preview``)

Backgrounds and camera effects (``cfg.background``, ``cfg.camera``; off by default) change the
images only, after rendering (:func:`finish_images`); keypoints, flows and bodies are the same
as without them.

Train and test are split by person: the last ``test_fraction`` of the people are test people.
Shard ``i`` of ``n`` renders the people ``p`` with ``p % n == i``; each person's randomness comes
from its own seed (:func:`~posetransfer.synth.people.person_seed`), so images and flows do not
depend on the sharding. A shard writes its labels to ``parts/`` and a ``done.json`` marker last;
once every shard's marker exists, the merge (run by the shard that finishes last, or by
``merge_only``) writes the sorted CSVs. Every file is written atomically. The settings are
:class:`~posetransfer.synth.synthetic_config.SyntheticConfig`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from posetransfer.body.fit_result import FitResult
from posetransfer.config import from_dict, save_config, to_dict
from posetransfer.data import flow_files, formats
from posetransfer.io import atomic_write_bytes, atomic_write_text, remove_stale_temporaries
from posetransfer.pose.keypoints import Pose
from posetransfer.runtime import set_torch_threads
from posetransfer.synth.backgrounds import BackgroundSampler, composite
from posetransfer.synth.camera_effects import camera_images
from posetransfer.synth.people import PersonRender, PersonSpec, render_person, sample_person
from posetransfer.synth.synthetic_config import SPLITS, SyntheticConfig, split_of

if TYPE_CHECKING:
    from posetransfer.body.anny_model import BodyModel

__all__ = [
    "SyntheticConfig",
    "finish_images",
    "generate_shard",
    "make_synthetic",
    "merge_parts",
    "missing_shards",
    "split_of",
    "write_person",
]

logger = logging.getLogger(__name__)

_NOT_CONTENT = ("preview", "preview_pairs")  # config keys that do not change the data


def _person_spec(cfg: SyntheticConfig, person: int) -> PersonSpec:
    return sample_person(
        person,
        seed=cfg.seed,
        poses=cfg.poses_per_person,
        pose_mix=cfg.pose_mix,
        view_mix=cfg.view_mix,
        height_fraction=cfg.height_fraction,
        textured_background=cfg.textured_background,
    )


def _encode_image(image: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "png":
        Image.fromarray(image).save(buffer, format="PNG")
    else:
        Image.fromarray(image).save(buffer, format="JPEG", quality=95, subsampling=0)
    return buffer.getvalue()


def finish_images(
    render: PersonRender, cfg: SyntheticConfig, person: int, backgrounds: BackgroundSampler
) -> PersonRender:
    """The render with its background (:mod:`~posetransfer.synth.backgrounds`) and camera
    effects (:mod:`~posetransfer.synth.camera_effects`) applied: pixels change, nothing else.

    Args:
        render: One person's render.
        cfg: The settings (``cfg.background``, ``cfg.camera``, ``cfg.seed``).
        person: The person's index.
        backgrounds: The shard's background sampler.

    Returns:
        ``render`` itself when neither option is on, else a copy with new ``images``.
    """
    images = render.images
    background = backgrounds.sample(cfg.seed, person)
    if background is not None:
        images = composite(images, render.foreground, background)
    images = camera_images(images, cfg.camera, cfg.seed, person)
    return render if images is render.images else dataclasses.replace(render, images=images)


def write_person(
    out: Path, cfg: SyntheticConfig, spec: PersonSpec, render: PersonRender
) -> tuple[dict[str, Pose], list[tuple[str, str]]]:
    """Write one person's images, flows (and ``.corr`` files, bodies) under ``out``.

    Args:
        out: Output folder.
        cfg: Formats and split rule.
        spec: The person.
        render: Its render (:func:`~posetransfer.synth.people.render_person`).

    Returns:
        The person's keypoints by image file name, and its ``(source, target)`` pairs of names.
    """
    split = split_of(spec.index, cfg)
    names = [stem + cfg.image_ext for stem in spec.stems]
    for name, image in zip(names, render.images.numpy(), strict=True):
        atomic_write_bytes(out / split / name, _encode_image(image, cfg.image_format))
    pairs = [(names[s], names[t]) for s, t in render.pairs]
    for k, (src, tgt) in enumerate(pairs):
        flow = render.flow.flow[k].permute(1, 2, 0).numpy()
        vis = render.flow.visibility[k].to(torch.uint8).numpy()
        flow_files.write_flow(out / "flows" / flow_files.flow_filename(src, tgt), flow, vis)
        if cfg.flow_format != "npz":
            corr_name = flow_files.flow_filename(src, tgt, "corr")
            flow_files.write_corr(out / "corr" / corr_name, flow, vis)
    if cfg.save_bodies:
        count = len(names)
        FitResult(
            params=spec.params,
            camera=render.cameras,
            reprojection_error=torch.zeros(count),
            converged=torch.ones(count, dtype=torch.bool),
            reason=[None] * count,
            image_size=cast(tuple[int, int], tuple(cfg.size)),
            keypoints_xy=render.keypoints,
            num_valid=torch.tensor([p.num_valid for p in render.poses]),
        ).save(out / "bodies" / f"synthPERSONid{spec.index:08d}.npz")
    return dict(zip(names, render.poses, strict=True)), pairs


def _part_dir(out: Path, shard: int, num_shards: int) -> Path:
    return out / "parts" / f"shard-{shard:04d}-of-{num_shards:04d}"


def _content(cfg: SyntheticConfig) -> dict:
    return {k: v for k, v in to_dict(cfg).items() if k not in _NOT_CONTENT}


def generate_shard(
    out: str | os.PathLike[str],
    cfg: SyntheticConfig,
    model: BodyModel,
    *,
    shard: int = 0,
    num_shards: int = 1,
    progress: bool = False,
) -> int:
    """Render and write the people of one shard, then its labels and ``done.json`` marker.

    Args:
        out: Output folder.
        cfg: What to generate.
        model: The body model.
        shard: This shard, ``0 <= shard < num_shards``.
        num_shards: Number of shards; people ``p`` with ``p % num_shards == shard`` are rendered.
        progress: Show a progress bar.

    Returns:
        Number of people written.
    """
    if not (isinstance(num_shards, int) and num_shards >= 1 and 0 <= shard < num_shards):
        raise ValueError(
            f"need 0 <= shard < num_shards, got shard={shard}, num_shards={num_shards}"
        )
    out = Path(out)
    part = _part_dir(out, shard, num_shards)
    (part / "done.json").unlink(missing_ok=True)  # a rerun is unfinished until it is done
    people = range(shard, cfg.num_people, num_shards)
    poses: dict[str, dict[str, Pose]] = {s: {} for s in SPLITS}
    pairs: dict[str, list[tuple[str, str]]] = {s: [] for s in SPLITS}
    backgrounds = BackgroundSampler(cfg.background, cfg.size)
    for person in tqdm(people, desc=f"make-synthetic {shard}/{num_shards}", disable=not progress):
        spec = _person_spec(cfg, person)
        render = render_person(
            model, spec, cfg.size, lit=cfg.lit, depth_tolerance_m=cfg.depth_tolerance_m
        )
        render = finish_images(render, cfg, person, backgrounds)
        person_poses, person_pairs = write_person(out, cfg, spec, render)
        poses[split_of(person, cfg)].update(person_poses)
        pairs[split_of(person, cfg)] += person_pairs
    for split in SPLITS:
        formats.write_annotation_csv(part / f"annotation-{split}.csv", poses[split])
        formats.write_pairs_csv(part / f"pairs-{split}.csv", pairs[split])
    marker = {"config": _content(cfg), "people": len(people)}
    atomic_write_text(part / "done.json", json.dumps(marker, indent=1) + "\n")
    logger.info("shard %d/%d: wrote %d people to %s", shard, num_shards, len(people), out)
    return len(people)


def _marker_config(path: Path) -> dict:
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise formats.FormatError(path, f"unreadable shard marker: {err}") from None
    if not isinstance(marker, dict) or not isinstance(marker.get("config"), dict):
        raise formats.FormatError(path, "shard marker without a 'config' mapping", field="config")
    return marker["config"]


def missing_shards(out: str | os.PathLike[str], num_shards: int) -> list[int]:
    """Shards of ``num_shards`` whose ``done.json`` marker is not in ``out/parts`` yet."""
    return [
        i
        for i in range(num_shards)
        if not (_part_dir(Path(out), i, num_shards) / "done.json").is_file()
    ]


def merge_parts(out: str | os.PathLike[str], num_shards: int) -> SyntheticConfig:
    """Merge every shard's labels into the PATN CSVs (sorted by name) and write ``config.yaml``.

    Args:
        out: Output folder.
        num_shards: Number of shards the data was generated with.

    Returns:
        The config the shards were generated with (read from their markers).

    Raises:
        FileNotFoundError: A shard has not finished (names the shards).
        FormatError: Shards generated with different configs, or the same image twice.
    """
    out = Path(out)
    missing = missing_shards(out, num_shards)
    if missing:
        raise FileNotFoundError(
            f"{out / 'parts'}: shards {missing} of {num_shards} have not finished "
            f"(no done.json); run them with --shard I --num-shards {num_shards}"
        )
    markers = [_part_dir(out, i, num_shards) / "done.json" for i in range(num_shards)]
    configs = [_marker_config(path) for path in markers]
    for path, config in zip(markers, configs, strict=True):
        if config != configs[0]:
            diff = sorted(k for k in config if config.get(k) != configs[0].get(k))
            raise formats.FormatError(path, f"config differs from shard 0 in {diff}")
    cfg = from_dict(SyntheticConfig, configs[0], where=str(markers[0]))
    for split in SPLITS:
        poses: dict[str, Pose] = {}
        pairs: list[tuple[str, str]] = []
        for i in range(num_shards):
            part = _part_dir(out, i, num_shards)
            shard_poses = formats.read_annotation_csv(part / f"annotation-{split}.csv")
            twice = sorted(set(poses) & set(shard_poses))
            if twice:
                raise formats.FormatError(part, f"image {twice[0]!r} written by two shards")
            poses.update(shard_poses)
            pairs += formats.read_pairs_csv(part / f"pairs-{split}.csv")
        formats.write_annotation_csv(
            out / f"{cfg.prefix}annotation-{split}.csv", dict(sorted(poses.items()))
        )
        formats.write_pairs_csv(out / f"{cfg.prefix}pairs-{split}.csv", sorted(pairs))
    save_config(cfg, out / "config.yaml")
    logger.info("merged %d shard(s) into %s", num_shards, out)
    return cfg


def _worker(out: str, cfg_data: dict, shard: int, num_shards: int) -> int:
    """Process-pool entry: one shard with its own model and one torch thread."""
    from posetransfer.body import load_body_model

    set_torch_threads(1)
    cfg = from_dict(SyntheticConfig, cfg_data)
    return generate_shard(out, cfg, load_body_model(), shard=shard, num_shards=num_shards)


def make_synthetic(
    out: str | os.PathLike[str],
    cfg: SyntheticConfig,
    *,
    model: BodyModel | None = None,
    shard: int = 0,
    num_shards: int = 1,
    workers: int = 1,
    progress: bool = False,
) -> bool:
    """Generate (one shard of) a synthetic dataset; merge and preview when every shard is done.

    Args:
        out: Output folder.
        cfg: What to generate.
        model: The body model (loaded when None).
        shard: This process's shard.
        num_shards: Number of shards over all processes.
        workers: With one shard, split the work over this many local processes (each its own
            shard of ``workers``); the result is byte-identical apart from the shard parts.
        progress: Show a progress bar.

    Returns:
        True when the dataset was merged (all shards done), False when shards are missing.
    """
    out = Path(out)
    remove_stale_temporaries(out)  # what a killed run was writing
    if workers > 1:
        if num_shards != 1:
            raise ValueError(f"workers > 1 needs num_shards == 1, got num_shards={num_shards}")
        data = to_dict(cfg)
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            jobs = [pool.submit(_worker, str(out), data, i, workers) for i in range(workers)]
            for job in jobs:
                job.result()
        num_shards = workers
    else:
        if model is None:
            from posetransfer.body import load_body_model

            model = load_body_model()
        generate_shard(out, cfg, model, shard=shard, num_shards=num_shards, progress=progress)
    if missing_shards(out, num_shards):
        logger.info("shard %d/%d done; the merge runs when every shard is", shard, num_shards)
        return False
    merge_parts(out, num_shards)
    if cfg.preview:
        from posetransfer.synth.contact_sheet import write_contact_sheet

        write_contact_sheet(out, out / "preview.png", rows=cfg.preview_pairs)
    return True
