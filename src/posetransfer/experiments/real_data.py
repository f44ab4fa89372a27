"""Test pairs of real people from a ``make-dataset`` folder, with their fitted-body flows.

:func:`load_split` reads one split of a ``posetransfer make-dataset`` output into memory
(:class:`RealImage`: crop, keypoints, person mask, and where it came from: ``frames.csv``'s
*origin*, the video or photo, and frame index). :func:`choose_pairs` picks benchmark pairs of one
person: a few *sources* per origin (evenly spread over its frames, the first one first) and, for
each, every other image of the same identity whose pose changed enough
(:func:`posetransfer.data.pairing.pose_change`): a target from the same origin is a **pose**
change (same camera, other moment), one from another origin a **view** change (another camera).
:func:`fit_images` fits the body model once per image (images whose fit fails or does not
converge are reported and left out of the pairs), :func:`pair_flows` renders each pair's
fitted-body flow from those fits, as ``synth-flow`` and ``infer --flow 3d`` do, and
:func:`person_crop` makes the :class:`~posetransfer.train.person_crop.PersonCrop` that the photo
pipeline and personalisation take (the crop, its keypoints and mask, the inpainted plate).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

import numpy as np
import torch

from posetransfer.data.formats import read_annotation_csv
from posetransfer.data.layout import discover_dataset
from posetransfer.data.pairing import pose_change
from posetransfer.data.person_masks import mask_path, read_mask
from posetransfer.io import PathLike
from posetransfer.pose.keypoints import Pose, stack_poses
from posetransfer.train.person_crop import PersonCrop

if TYPE_CHECKING:
    from posetransfer.body.anny_model import BodyModel
    from posetransfer.body.fit_result import FitResult
    from posetransfer.infer.make_dataset import DatasetSummary

__all__ = [
    "RealImage",
    "RealPair",
    "choose_pairs",
    "fit_images",
    "load_split",
    "make_real_dataset",
    "pair_flows",
    "person_crop",
]

T = TypeVar("T")

#: Pixels the person mask grows by before the plate is inpainted (as ``infer`` does).
HOLE_DILATION = 3


@dataclass(frozen=True, eq=False)
class RealImage:
    """One person crop of a ``make-dataset`` split.

    Attributes:
        name: File name in the split folder.
        identity: The person (``frames.csv``).
        origin: The video or photo it came from (``frames.csv``).
        frame: Frame index in that video (photos: their index in the folder).
        image: ``(H, W, 3)`` uint8.
        pose: Keypoints in crop pixels.
        mask: ``(H, W)`` float32 person mask in ``[0, 1]``.
    """

    name: str
    identity: str
    origin: str
    frame: int
    image: np.ndarray
    pose: Pose
    mask: np.ndarray


@dataclass(frozen=True)
class RealPair:
    """A test pair: ``kind`` is ``"pose"`` (same origin) or ``"view"`` (another origin)."""

    source: str
    target: str
    kind: Literal["pose", "view"]


def make_real_dataset(
    inputs: Sequence[PathLike],
    out: PathLike,
    size: tuple[int, int],
    *,
    every: int = 2,
    identity: str = "single",
    test_fraction: float = 0.2,
    progress: bool = False,
) -> DatasetSummary:
    """``posetransfer make-dataset INPUTS --identity IDENTITY --out OUT --size HxW --every K``.

    One identity for all inputs (the four cameras of one person); a time split (each video's
    last ``test_fraction`` of frames, after a 15-frame gap); resumable.
    """
    from posetransfer.infer.dataset_config import MakeDatasetConfig
    from posetransfer.infer.detect import DetectorConfig
    from posetransfer.infer.make_dataset import make_dataset

    cfg = MakeDatasetConfig(
        inputs=tuple(str(p) for p in inputs), out=str(out), size=size, every=every,
        identities=(identity,), test_fraction=test_fraction, detector=DetectorConfig(aspect=size),
    )  # fmt: skip
    return make_dataset(cfg, progress=progress)


def load_split(root: PathLike, split: str = "test") -> dict[str, RealImage]:
    """The images of one split of a ``make-dataset`` folder, by name (``frames.csv`` order).

    Raises:
        FormatError: Unreadable label files. FileNotFoundError: A missing image, mask or
            ``frames.csv`` (not a ``make-dataset`` output).
    """
    from PIL import Image

    root = Path(root)
    files = discover_dataset(root)
    poses = read_annotation_csv(files.annotations[split])
    frames = root / "frames.csv"
    if not frames.is_file():
        raise FileNotFoundError(f"{frames}: missing; not a `posetransfer make-dataset` output")
    with frames.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == split and r["name"] in poses]
    images = {}
    for row in rows:
        name = row["name"]
        with Image.open(files.image_dirs[split] / name) as pil:
            image = np.asarray(pil.convert("RGB"))
        mask = read_mask(mask_path(root, split, name))
        images[name] = RealImage(name, row["identity"], row["origin"], int(row["frame"]), image,
                                 poses[name], mask)  # fmt: skip
    return images


def _spread(items: Sequence[T], count: int) -> list[T]:
    """``count`` evenly spaced items, the first one first."""
    if count >= len(items):
        return list(items)
    return [items[int(k * len(items) / count)] for k in range(count)]


def _balanced(pairs: list[RealPair], count: int) -> list[RealPair]:
    """``count`` of one source's pairs: pose and view changes alternately, each evenly spread."""
    kinds = {k: [p for p in pairs if p.kind == k] for k in ("pose", "view")}
    take = {"pose": min(len(kinds["pose"]), (count + 1) // 2)}
    take["view"] = min(len(kinds["view"]), count - take["pose"])
    take["pose"] = min(len(kinds["pose"]), count - take["view"])
    chosen = {p for k in kinds for p in _spread(kinds[k], take[k])}
    return [p for p in pairs if p in chosen]


def choose_pairs(
    images: Mapping[str, RealImage],
    *,
    sources_per_origin: int = 1,
    max_sources: int | None = None,
    pairs_per_source: int | None = None,
    min_change: float = 8.0,
    min_common: int = 6,
    exclude: Sequence[str] = (),
) -> list[RealPair]:
    """Benchmark pairs: a few sources per origin, each with the targets that changed enough.

    Args:
        images: One split (:func:`load_split`).
        sources_per_origin: Sources per video (evenly spread over its frames, first one first).
        max_sources: At most this many sources (the first of each origin first; None: all).
        pairs_per_source: At most this many pairs per source, pose and view changes
            alternately, each kind evenly spread (None: every target).
        min_change: Least pose change in crop pixels (as ``make-dataset``'s pair rule).
        min_common: Least number of keypoints valid in both poses.
        exclude: Names to leave out entirely (e.g. failed body fits).

    Returns:
        Pairs ordered by source, then same-origin targets, then the others, each by frame.
    """
    skip = set(exclude)
    usable = [im for im in images.values() if im.name not in skip]
    by_origin: dict[str, list[str]] = {}
    for im in sorted(usable, key=lambda im: (im.origin, im.frame)):
        by_origin.setdefault(im.origin, []).append(im.name)
    spread = [_spread(names, sources_per_origin) for names in by_origin.values()]
    sources = [names[k] for k in range(sources_per_origin) for names in spread if k < len(names)]
    sources = sources[:max_sources] if max_sources is not None else sources
    sources.sort(key=lambda n: (images[n].origin, images[n].frame))
    pairs = []
    for source in sources:
        src = images[source]
        targets = [im for im in usable if im.identity == src.identity and im.name != source]
        targets.sort(key=lambda im: (im.origin != src.origin, im.origin, im.frame))
        found = []
        for tgt in targets:
            change = pose_change(src.pose, tgt.pose, min_common=min_common)
            if change >= min_change:  # False for NaN
                kind: Literal["pose", "view"] = "pose" if tgt.origin == src.origin else "view"
                found.append(RealPair(source, tgt.name, kind))
        pairs += found if pairs_per_source is None else _balanced(found, pairs_per_source)
    return pairs


def fit_images(
    model: BodyModel, images: Mapping[str, RealImage], size: tuple[int, int]
) -> tuple[FitResult, list[str], dict[str, str]]:
    """Fit the body to every image's keypoints once (``FitConfig`` defaults, as ``synth-flow``).

    Returns:
        ``(fits, names in fit order, {name: why}`` for fits that failed or did not converge).
    """
    from posetransfer.body.fitting import fit_keypoints

    names = list(images)
    xy, valid = stack_poses([images[n].pose for n in names])
    fits = fit_keypoints(model, xy, valid, size)
    failed = {n: why for n, why in zip(names, fits.reason, strict=True) if why is not None}
    return fits, names, failed


def pair_flows(
    model: BodyModel,
    fits: FitResult,
    names: Sequence[str],
    pairs: Sequence[tuple[str, str]],
    size: tuple[int, int],
    batch: int = 32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each pair's fitted-body flow and visibility from :func:`fit_images`' fits.

    Returns:
        ``(flow (N, 2, H, W), visibility (N, H, W))`` on the CPU.
    """
    from posetransfer.render.bodies import render_body_flow

    index = {n: i for i, n in enumerate(names)}
    flows, vis = [], []
    for start in range(0, len(pairs), batch):
        chunk = pairs[start : start + batch]
        src = fits.select([index[s] for s, _ in chunk])
        tgt = fits.select([index[t] for _, t in chunk])
        field = render_body_flow(model, src.params, src.camera, tgt.params, tgt.camera, size)
        flows.append(field.flow.cpu())
        vis.append(field.visibility.cpu())
    if not flows:
        return torch.zeros(0, 2, *size), torch.zeros(0, *size, dtype=torch.long)
    return torch.cat(flows), torch.cat(vis)


def person_crop(image: RealImage) -> PersonCrop:
    """The crop as the photo pipeline frames a source: keypoints, mask and inpainted plate."""
    from posetransfer.infer.background import dilate_mask, inpaint, solid_background

    hole = dilate_mask(image.mask, HOLE_DILATION)
    size = image.image.shape[:2]
    plate = inpaint(image.image, hole) if not hole.all() else solid_background(size, (255,) * 3)
    return PersonCrop(image.image, image.pose, image.mask, plate)
