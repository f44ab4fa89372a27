"""What ``synth-flow`` works on: a dataset's images and pairs, checked, keyed and split into shards.

:func:`build_plan` reads the label files of a dataset in either layout
(:func:`posetransfer.data.formats.discover_dataset`) and returns a :class:`SynthPlan`:

Images
    PATN: every image annotated in the chosen splits' annotation CSVs. DIAF: every image named
    by the chosen splits' pairs (its single ``pose_label.pkl`` covers all splits). Each image is
    keyed by its file stem (the extension is dropped, as in flow file names); the fit file is
    ``fits/<key>.npz``. Images are sorted by key and cut into *chunks* of ``fit_batch``.

Pairs
    Every pair of the chosen splits (sorted split names, file order), duplicates removed, cut into
    *blocks* of ``render_block`` consecutive pairs.

Sharding
    Chunk ``c`` and block ``b`` belong to shard ``c % n`` and ``b % n``. Chunks and blocks are
    also the units of batching, so every image is always fitted with the same companions and every
    body is posed in the same batch, whatever the number of shards: sharded and single-process
    runs write identical values (for a fixed ``fit_batch`` and ``render_block``).

Bad records are not fatal. A label file that the strict readers refuse because of single records
(NaN or negative coordinates, a malformed row, a name given twice with different keypoints) is
re-read record by record (:mod:`posetransfer.synth.flow_inputs`); the bad records become
:attr:`ImageItem.problem` and end up in the run's manifest. Two names with the same stem
(``a.jpg``, ``a.png``) are refused the same way, since their fit and flow files would collide.
Problems of the file as a whole (missing file, wrong header, unreadable pickle) still raise
:class:`~posetransfer.data.formats.FormatError`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from posetransfer.data.diaf_formats import read_pair_split
from posetransfer.data.flow_files import IMAGE_EXTENSIONS, flow_filename
from posetransfer.data.formats import FormatError, read_pairs_csv
from posetransfer.data.layout import DatasetFiles, discover_dataset
from posetransfer.pose.keypoints import Pose
from posetransfer.synth.flow_inputs import read_keypoints

__all__ = ["ImageItem", "PairItem", "SynthPlan", "build_plan", "image_key"]

logger = logging.getLogger(__name__)

FlowFormat = Literal["npz", "corr"]


@dataclass(frozen=True)
class ImageItem:
    """One image to fit.

    Attributes:
        key: File stem; names the fit file ``fits/<key>.npz``.
        name: The image's name in the label files (PATN: with extension; DIAF: id).
        image_dir: Folder the image should be in.
        path: The image file, or None when it is not there.
        pose: Its keypoints, or None when they could not be read.
        problem: Why it cannot be fitted, known from the label files alone, or None.
    """

    key: str
    name: str
    image_dir: Path
    path: Path | None
    pose: Pose | None
    problem: str | None = None


@dataclass(frozen=True)
class PairItem:
    """One pair to render.

    Attributes:
        source: Source image name.
        target: Target image name.
        split: The split that lists it (the first one, for a pair listed in several).
        filename: Its flow file name (``<target>_<source>.<fmt>``), or "" when it has none.
        problem: Why it cannot be rendered, known from the label files alone, or None.
    """

    source: str
    target: str
    split: str
    filename: str
    problem: str | None = None

    @property
    def label(self) -> str:
        """``"source -> target"`` for messages."""
        return f"{self.source} -> {self.target}"


@dataclass(frozen=True)
class SynthPlan:
    """The images and pairs of one ``synth-flow`` run, in their fixed order.

    Attributes:
        files: The dataset's files.
        splits: The chosen splits.
        images: Images sorted by key.
        pairs: Pairs, duplicates removed.
        fit_batch: Images per chunk.
        render_block: Pairs per block.
        notes: ``(item, reason)`` problems tied to no single image or pair (a malformed row).
    """

    files: DatasetFiles
    splits: tuple[str, ...]
    images: tuple[ImageItem, ...]
    pairs: tuple[PairItem, ...]
    fit_batch: int
    render_block: int
    notes: tuple[tuple[str, str], ...] = ()
    _index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("fit_batch", "render_block"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"SynthPlan.{name} must be an integer >= 1, got {value!r}")
        self._index.update({item.name: k for k, item in enumerate(self.images)})

    @property
    def num_chunks(self) -> int:
        """Number of fit chunks."""
        return -(-len(self.images) // self.fit_batch)

    @property
    def num_blocks(self) -> int:
        """Number of render blocks."""
        return -(-len(self.pairs) // self.render_block)

    def image(self, name: str) -> ImageItem:
        """The image called ``name`` in the label files (KeyError if it is not planned)."""
        return self.images[self._index[name]]

    def has_image(self, name: str) -> bool:
        """Whether ``name`` is a planned image."""
        return name in self._index

    def chunk_of(self, name: str) -> int:
        """Index of the chunk holding image ``name``."""
        return self._index[name] // self.fit_batch

    def chunk(self, index: int) -> tuple[ImageItem, ...]:
        """The images of chunk ``index``."""
        return self.images[index * self.fit_batch : (index + 1) * self.fit_batch]

    def block(self, index: int) -> tuple[PairItem, ...]:
        """The pairs of block ``index``."""
        return self.pairs[index * self.render_block : (index + 1) * self.render_block]

    def shard_chunks(self, shard: int, num_shards: int) -> range:
        """Chunk indices of shard ``shard`` of ``num_shards``."""
        return range(shard, self.num_chunks, num_shards)

    def shard_blocks(self, shard: int, num_shards: int) -> range:
        """Block indices of shard ``shard`` of ``num_shards``."""
        return range(shard, self.num_blocks, num_shards)


def image_key(name: str) -> str:
    """The file stem of an image name (a known image extension is dropped, as in flow names)."""
    lower = name.lower()
    ext = next((e for e in IMAGE_EXTENSIONS if lower.endswith(e)), "")
    return name[: len(name) - len(ext)]


# ---------------------------------------------------------------------------------- the plan


def _present_files(folder: Path) -> set[str]:
    try:
        return {entry.name for entry in os.scandir(folder) if entry.is_file()}
    except FileNotFoundError:
        return set()


def _find_image(name: str, folder: Path, present: set[str]) -> Path | None:
    if name in present:
        return folder / name
    found = next((name + ext for ext in IMAGE_EXTENSIONS if name + ext in present), None)
    return None if found is None else folder / found


def _read_pairs(files: DatasetFiles, splits: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    if files.layout == "patn":
        return {split: read_pairs_csv(files.pairs[split]) for split in splits}
    path = files.pairs[splits[0]]
    table = read_pair_split(path)
    return {split: table[split] for split in splits}


def _collect_keypoints(
    files: DatasetFiles, splits: Sequence[str]
) -> tuple[dict[str, tuple[Pose | None, str | None, Path, str]], list[str]]:
    """Name -> (pose, problem, image folder, keypoint file) for the annotated images."""
    found: dict[str, tuple[Pose | None, str | None, Path, str]] = {}
    unattributed: list[str] = []
    sources = (
        [(files.annotations[s], files.image_dirs[s]) for s in splits]
        if files.layout == "patn"
        else [(files.annotations["all"], files.image_dirs[splits[0]])]
    )
    for path, image_dir in sources:
        poses, problems, notes = read_keypoints(path, files.layout)
        unattributed += notes
        entries: list[tuple[str, Pose | None, str | None]] = [
            (n, p, None) for n, p in poses.items()
        ]
        entries += [(n, None, r) for n, r in problems.items()]
        for name, pose, problem in entries:
            if name in found:
                old_pose, old_problem, old_dir, old_file = found[name]
                if old_pose is not None and pose is not None and old_pose == pose:
                    continue
                problem = (
                    f"duplicate name: {name!r} has different keypoints in {old_file} and {path}"
                )
                found[name] = (None, old_problem or problem, old_dir, old_file)
                continue
            found[name] = (pose, problem, image_dir, str(path))
    return found, unattributed


def build_plan(
    root: str | os.PathLike[str],
    *,
    splits: Sequence[str] | None = None,
    fmt: FlowFormat = "npz",
    fit_batch: int = 64,
    render_block: int = 64,
    layout: Literal["patn", "diaf"] | None = None,
    prefix: str | None = None,
) -> SynthPlan:
    """Read a dataset's label files and fix the order of its images and pairs.

    Args:
        root: Dataset folder (PATN/GFLA or DIAF layout).
        splits: Splits to process; None for all of them.
        fmt: Flow file format, which fixes the flow file names.
        fit_batch: Images per fit chunk.
        render_block: Pairs per render block.
        layout: Force a layout (see :func:`~posetransfer.data.formats.discover_dataset`).
        prefix: PATN file prefix when several are present.

    Returns:
        The plan (see the module docstring).

    Raises:
        FormatError: Unreadable layout, pair list or keypoint file (as a whole), or an
            unknown split.
    """
    files = discover_dataset(root, layout=layout, prefix=prefix)
    chosen = tuple(sorted(set(splits))) if splits else tuple(files.splits)
    unknown = [s for s in chosen if s not in files.pairs]
    if unknown:
        raise FormatError(files.root, f"no split {unknown[0]!r}; available: {files.splits}")
    pair_lists = _read_pairs(files, chosen)
    keypoints, unattributed = _collect_keypoints(files, chosen)
    if files.layout == "diaf":
        used = {name for pairs in pair_lists.values() for pair in pairs for name in pair}
        keypoints = {n: v for n, v in keypoints.items() if n in used}
    images = _make_images(keypoints)
    planned = {item.name for item in images}
    pairs, duplicates = [], 0
    seen: set[tuple[str, str]] = set()
    for split in chosen:
        for source, target in pair_lists[split]:
            if (source, target) in seen:
                duplicates += 1
                continue
            seen.add((source, target))
            pairs.append(_make_pair(source, target, split, fmt, planned, files))
    if duplicates:
        logger.info("%d duplicate pairs listed more than once are rendered once", duplicates)
    plan = SynthPlan(
        files=files,
        splits=chosen,
        images=tuple(images),
        pairs=tuple(pairs),
        fit_batch=fit_batch,
        render_block=render_block,
        notes=tuple(("label files", note) for note in unattributed),
    )
    logger.info(
        "planned %d images (%d chunks) and %d pairs (%d blocks) of %s split(s) %s",
        len(plan.images), plan.num_chunks, len(plan.pairs), plan.num_blocks,
        files.layout, ", ".join(chosen),
    )  # fmt: skip
    return plan


def _make_images(
    keypoints: dict[str, tuple[Pose | None, str | None, Path, str]],
) -> list[ImageItem]:
    by_key: dict[str, list[str]] = {}
    for name in keypoints:
        by_key.setdefault(image_key(name), []).append(name)
    folders = {folder for _, _, folder, _ in keypoints.values()}
    present = {folder: _present_files(folder) for folder in folders}
    images = []
    for key in sorted(by_key):
        names = sorted(by_key[key])
        for name in names:
            pose, problem, folder, _ = keypoints[name]
            if problem is None and ("/" in name or "\\" in name):
                problem = f"invalid name: {name!r} holds a path separator"
            if problem is None and len(names) > 1:
                problem = (
                    f"duplicate name: {', '.join(map(repr, names))} share the file stem {key!r}, "
                    "which names their fit and flow files"
                )
            images.append(
                ImageItem(
                    key=key,
                    name=name,
                    image_dir=folder,
                    path=_find_image(name, folder, present[folder]),
                    pose=pose if problem is None else None,
                    problem=problem,
                )
            )
    return images


def _make_pair(
    source: str, target: str, split: str, fmt: FlowFormat, planned: set[str], files: DatasetFiles
) -> PairItem:
    missing = [
        (role, n) for role, n in (("source", source), ("target", target)) if n not in planned
    ]
    problem = None
    if missing:
        where = files.annotations.get(split, files.annotations.get("all"))
        problem = "; ".join(f"{role} {n!r} has no keypoints in {where}" for role, n in missing)
    try:
        filename = flow_filename(source, target, fmt)
    except ValueError as exc:
        filename, problem = "", problem or f"invalid name: {exc}"
    return PairItem(source, target, split, filename, problem)
