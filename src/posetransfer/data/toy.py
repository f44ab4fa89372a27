"""A tiny, deterministic toy dataset in the exact on-disk formats (PATN/GFLA or DIAF layout).

Each "person" is a coloured figure (shirt, trousers, skin-coloured head) drawn with PIL from 18
OpenPose keypoints on a plain light background. Keypoints are a plausible standing skeleton with
per-person proportions and per-image arm/leg jitter. Pairs are all ordered pairs of distinct images
of one person; persons are split between ``train`` and ``test`` (the last third goes to test), so
the two splits share no identity, as in the real protocols.

Ground-truth flow (``with_flows=True``) is written only where it is exact by construction: each
person is then drawn once, and the person's images are that drawing translated horizontally by
whole multiples of 8 pixels, so the flow of a pair is the constant translation
``F = t_src - t_tgt`` on the body and 0 on the background (``Visibility.BACKGROUND``); every body
pixel is ``VISIBLE``. Images are JPEG with 4:4:4 chroma and 8-pixel aligned shifts, so even the
decoded images are exact translations of one another. Without flows the poses vary freely.

Keypoints are generated as integer pixel indices and stored in memory at the pixel centres
(``index + 0.5``), so what the format readers return equals what was drawn.

Example:
    >>> import tempfile
    >>> from posetransfer.data.layout import discover_dataset
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     files = discover_dataset(make_toy_dataset(Path(tmp) / "toy", layout="patn"))
    ...     files.layout, sorted(files.annotations), len(list(files.image_dirs["test"].iterdir()))
    ('patn', ['test', 'train'], 2)
"""

from __future__ import annotations

import io
import itertools
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw

from posetransfer.conventions import Keypoint, Visibility
from posetransfer.data import diaf_formats, flow_files, formats
from posetransfer.io import atomic_write_bytes
from posetransfer.pose.keypoints import Pose

__all__ = ["ToyDatasetConfig", "make_toy_dataset"]

logger = logging.getLogger(__name__)

K = Keypoint

#: Standing skeleton, (x, y) as fractions of the image width and height; the person's right
#: side is on the image's left (the person faces the camera).
_TEMPLATE: dict[Keypoint, tuple[float, float]] = {
    K.NOSE: (0.50, 0.15), K.NECK: (0.50, 0.25),
    K.R_SHOULDER: (0.37, 0.26), K.R_ELBOW: (0.32, 0.41), K.R_WRIST: (0.30, 0.55),
    K.L_SHOULDER: (0.63, 0.26), K.L_ELBOW: (0.68, 0.41), K.L_WRIST: (0.70, 0.55),
    K.R_HIP: (0.43, 0.54), K.R_KNEE: (0.42, 0.70), K.R_ANKLE: (0.41, 0.86),
    K.L_HIP: (0.57, 0.54), K.L_KNEE: (0.58, 0.70), K.L_ANKLE: (0.59, 0.86),
    K.R_EYE: (0.47, 0.13), K.L_EYE: (0.53, 0.13), K.R_EAR: (0.44, 0.14), K.L_EAR: (0.56, 0.14),
}  # fmt: skip

_BACKGROUND_RGB = (238, 236, 230)
_SKIN_RGB = (224, 172, 140)
_SHIFT_STEP = 8  # JPEG block size: shifts by whole blocks keep decoded images exact translations
_ARMS = ((K.R_SHOULDER, K.R_ELBOW, K.R_WRIST), (K.L_SHOULDER, K.L_ELBOW, K.L_WRIST))
_LEGS = ((K.R_HIP, K.R_KNEE, K.R_ANKLE), (K.L_HIP, K.L_KNEE, K.L_ANKLE))
_FACE = (K.R_EYE, K.L_EYE, K.R_EAR, K.L_EAR)
_PATN_PREFIX = re.compile(r"^(fasion|fashion|market)(-resize)?-$")


@dataclass(frozen=True)
class ToyDatasetConfig:
    """Keyword arguments of :func:`make_toy_dataset` (used by CLI configs)."""

    layout: Literal["patn", "diaf"] = "patn"
    num_people: int = 3
    poses_per_person: int = 2
    size: tuple[int, int] = (64, 48)
    seed: int = 0
    with_flows: bool = False
    prefix: str = "fasion-resize-"


@dataclass(frozen=True)
class _Person:
    shirt: tuple[int, int, int]
    trousers: tuple[int, int, int]
    base: np.ndarray  # (18, 2) float, template scaled to this person (pixels)


def make_toy_dataset(
    root: str | os.PathLike[str],
    *,
    layout: Literal["patn", "diaf"] = "patn",
    num_people: int = 3,
    poses_per_person: int = 2,
    size: tuple[int, int] = (64, 48),
    seed: int = 0,
    with_flows: bool = False,
    prefix: str = "fasion-resize-",
) -> Path:
    """Write a small synthetic dataset to ``root`` and return ``root``.

    Args:
        root: Output folder (created; existing files with the same names are replaced).
        layout: ``"patn"``: ``{prefix}annotation-{split}.csv``, ``{prefix}pairs-{split}.csv``,
            images in ``train/`` and ``test/``, flows as ``.npz`` in ``flows/``. ``"diaf"``:
            ``Img/img/<sid>.jpg``, ``Label/pose_label.pkl``, ``Label/pair_split.json``, flows as
            ``.corr`` in ``3d/hmr/corr/``.
        num_people: Identities (>= 2); the last ``max(1, num_people // 3)`` form the test split.
        poses_per_person: Images per identity (>= 1); pairs are all ordered pairs of distinct ones.
        size: Image size ``(H, W)`` in pixels, each >= 16.
        seed: Seed of everything random; equal arguments give byte-identical images and labels.
        with_flows: Also write the exact ground-truth flow of every pair (poses then differ by
            horizontal translations only, see the module docstring).
        prefix: File-name prefix of the PATN CSVs (``fasion-``, ``fashion-`` or ``market-``,
            optionally with ``-resize``); ignored for ``"diaf"``.

    Returns:
        ``Path(root)``.

    Raises:
        ValueError: On an invalid argument (named in the message).
    """
    height, width = (int(v) for v in size)
    if layout not in ("patn", "diaf"):
        raise ValueError(f"layout must be 'patn' or 'diaf', got {layout!r}")
    if num_people < 2:
        raise ValueError(f"num_people must be >= 2 (train and test persons), got {num_people}")
    if poses_per_person < 1:
        raise ValueError(f"poses_per_person must be >= 1, got {poses_per_person}")
    if height < 16 or width < 16:
        raise ValueError(f"size must be (H, W) with both >= 16, got {tuple(size)}")
    if layout == "patn" and not _PATN_PREFIX.match(prefix):
        raise ValueError(
            "prefix must be fasion-, fashion- or market-, optionally with -resize (e.g. "
            f"'fasion-resize-'), got {prefix!r}"
        )
    root = Path(root)
    rng = np.random.default_rng(seed)
    num_test = max(1, num_people // 3)
    ext = ".jpg"

    poses: dict[str, dict[str, Pose]] = {"train": {}, "test": {}}
    pairs: dict[str, list[tuple[str, str]]] = {"train": [], "test": []}
    images: dict[str, Image.Image] = {}
    masks: dict[str, np.ndarray] = {}
    shifts: dict[str, int] = {}
    for p in range(num_people):
        split = "test" if p >= num_people - num_test else "train"
        person = _make_person(rng, height, width)
        stems = [f"fashionTOYSid{p:08d}{k:02d}_{k + 1}front" for k in range(poses_per_person)]
        if with_flows:
            idx = _pixel_indices(_jitter(person.base, rng, height), height, width)
            image, mask = _draw(person, idx, height, width)
            for stem, dx in zip(stems, _shifts(mask, idx, rng, poses_per_person), strict=True):
                images[stem], masks[stem] = _translate(image, mask, dx)
                shifts[stem] = dx
                poses[split][stem] = _to_pose(idx + np.array([dx, 0]), height, width)
        else:
            for stem in stems:
                idx = _pixel_indices(_jitter(person.base, rng, height), height, width)
                images[stem], _ = _draw(person, idx, height, width)
                poses[split][stem] = _to_pose(idx, height, width)
        pairs[split] += list(itertools.permutations(stems, 2))

    def name(stem: str) -> str:  # how the layout names an image in its label files
        return stem + ext if layout == "patn" else stem

    for split in ("train", "test"):
        if layout == "patn":
            image_dir = root / split
            formats.write_annotation_csv(
                root / f"{prefix}annotation-{split}.csv",
                {name(s): pose for s, pose in poses[split].items()},
            )
            formats.write_pairs_csv(
                root / f"{prefix}pairs-{split}.csv", [(name(a), name(b)) for a, b in pairs[split]]
            )
        else:
            image_dir = root / "Img" / "img"
        for stem in poses[split]:
            atomic_write_bytes(image_dir / (stem + ext), _encode_jpeg(images[stem]))
    if layout == "diaf":
        diaf_formats.write_pose_label(
            root / "Label" / "pose_label.pkl", {s: p for d in poses.values() for s, p in d.items()}
        )
        diaf_formats.write_pair_split(root / "Label" / "pair_split.json", pairs)

    if with_flows:
        fmt: Literal["npz", "corr"] = "npz" if layout == "patn" else "corr"
        flow_dir = root / "flows" if layout == "patn" else root / "3d" / "hmr" / "corr"
        write = flow_files.write_flow if fmt == "npz" else flow_files.write_corr
        for src, tgt in pairs["train"] + pairs["test"]:
            flow, vis = _translation_flow(masks[tgt], shifts[src] - shifts[tgt])
            write(flow_dir / flow_files.flow_filename(name(src), name(tgt), fmt), flow, vis)

    logger.info(
        "wrote a toy %s dataset to %s: %d images, %d train / %d test pairs%s",
        layout, root, len(images), len(pairs["train"]), len(pairs["test"]),
        " with flows" if with_flows else "",
    )  # fmt: skip
    return root


def _make_person(rng: np.random.Generator, height: int, width: int) -> _Person:
    """Random clothing colours and body proportions around the template."""
    shirt = tuple(int(v) for v in rng.integers(40, 220, size=3))
    trousers = tuple(int(v) for v in rng.integers(20, 120, size=3))
    tmpl = np.array([_TEMPLATE[k] for k in Keypoint], dtype=np.float64)
    scale = rng.uniform(0.88, 1.0)
    centre = np.array([0.5 + rng.uniform(-0.03, 0.03), 0.5])
    base = (tmpl - centre) * scale + centre
    return _Person(shirt, trousers, base * np.array([width, height]))  # type: ignore[arg-type]


def _jitter(base: np.ndarray, rng: np.random.Generator, height: int) -> np.ndarray:
    """One pose of a person: arms and legs swing about their root joint, small global shift."""
    xy = base.copy()
    for limb, max_angle in ((_ARMS, 0.6), (_LEGS, 0.15)):
        for root, mid, end in limb:
            angle = rng.uniform(-max_angle, max_angle)
            c, s = np.cos(angle), np.sin(angle)
            rot = np.array([[c, -s], [s, c]])
            xy[[mid, end]] = (xy[[mid, end]] - xy[root]) @ rot.T + xy[root]
    return xy + rng.normal(0.0, 0.01 * height, size=2)


def _pixel_indices(xy: np.ndarray, height: int, width: int) -> np.ndarray:
    """Integer (col, row) indices of continuous positions, clipped into the image."""
    idx = np.floor(xy).astype(np.int64)
    return np.clip(idx, 0, [width - 1, height - 1])


def _to_pose(idx: np.ndarray, height: int, width: int) -> Pose:
    """Pose at the pixel centres of integer ``(col, row)`` indices inside the image."""
    assert (idx >= 0).all() and (idx < [width, height]).all()
    return Pose.from_indices(idx)


def _draw(
    person: _Person, idx: np.ndarray, height: int, width: int
) -> tuple[Image.Image, np.ndarray]:
    """Draw the figure; return the RGB image and the ``(H, W)`` bool body mask."""
    image = Image.new("RGB", (width, height), _BACKGROUND_RGB)
    mask = Image.new("L", (width, height), 0)
    limb = max(2, round(height / 18))
    pt = [tuple(int(v) for v in p) for p in idx]
    for canvas, colour in ((ImageDraw.Draw(image), None), (ImageDraw.Draw(mask), 255)):
        torso = [pt[K.R_SHOULDER], pt[K.L_SHOULDER], pt[K.L_HIP], pt[K.R_HIP]]
        canvas.polygon(torso, fill=colour or person.shirt)
        for chain in _LEGS:
            canvas.line([pt[k] for k in chain], fill=colour or person.trousers, width=limb + 1)
        for root, mid, end in _ARMS:
            canvas.line([pt[root], pt[mid]], fill=colour or person.shirt, width=limb)
            canvas.line([pt[mid], pt[end]], fill=colour or _SKIN_RGB, width=limb)
        canvas.line([pt[K.NECK], pt[K.NOSE]], fill=colour or _SKIN_RGB, width=limb)
        r = max(2, round(height / 16))
        x, y = pt[K.NOSE]
        canvas.ellipse([x - r, y - r - 1, x + r, y + r - 1], fill=colour or _SKIN_RGB)
        if colour is None:
            for k in (K.R_EYE, K.L_EYE):
                canvas.point(pt[k], fill=(40, 30, 30))
    return image, np.asarray(mask) > 0


def _shifts(mask: np.ndarray, idx: np.ndarray, rng: np.random.Generator, count: int) -> list[int]:
    """Horizontal shifts (multiples of 8 px) that keep the figure and its keypoints in the image."""
    cols = np.concatenate([np.flatnonzero(mask.any(axis=0)), idx[:, 0]])
    left, right = int(cols.min()), mask.shape[1] - 1 - int(cols.max())
    choices = np.arange(-(left // _SHIFT_STEP), right // _SHIFT_STEP + 1) * _SHIFT_STEP
    return [int(v) for v in rng.choice(choices, size=count, replace=count > len(choices))]


def _translate(image: Image.Image, mask: np.ndarray, dx: int) -> tuple[Image.Image, np.ndarray]:
    """Shift image and mask right by ``dx`` pixels (left when negative), background filled."""
    pixels = np.asarray(image)
    out = np.empty_like(pixels)
    out[...] = _BACKGROUND_RGB
    out_mask = np.zeros_like(mask)
    w = pixels.shape[1]
    if dx >= 0:
        out[:, dx:], out_mask[:, dx:] = pixels[:, : w - dx], mask[:, : w - dx]
    else:
        out[:, :dx], out_mask[:, :dx] = pixels[:, -dx:], mask[:, -dx:]
    return Image.fromarray(out), out_mask


def _translation_flow(mask_tgt: np.ndarray, dx: int) -> tuple[np.ndarray, np.ndarray]:
    """Flow ``(H, W, 2)`` and visibility ``(H, W)`` of a target that is the source moved by -dx.

    Every body pixel of the target shows the body point found ``dx`` pixels to its right in the
    source (``dx`` = source shift minus target shift), which lies inside the source image.
    """
    flow = np.zeros((*mask_tgt.shape, 2), dtype=np.float32)
    flow[mask_tgt, 0] = dx
    vis = np.where(mask_tgt, Visibility.VISIBLE, Visibility.BACKGROUND).astype(np.uint8)
    return flow, vis


def _encode_jpeg(image: Image.Image) -> bytes:
    """JPEG bytes, 4:4:4 chroma (8x8 blocks, so 8-pixel shifts stay exact), no metadata."""
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=95, subsampling=0)
    return buf.getvalue()
