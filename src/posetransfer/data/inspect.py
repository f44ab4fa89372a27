"""Dataset validation for ``posetransfer inspect-data``: counts, and typed findings.

:func:`inspect_dataset` reads a dataset in either supported layout (PATN/GFLA or DIAF, see
``docs/data.md``) and returns an :class:`InspectReport`; it never raises on bad *content*. A file
that a reader rejects (:class:`~posetransfer.data.formats.FormatError`, which stops at the first bad
line) becomes one ``format_error`` finding and the inspection goes on with the other files and
splits. The report model and its rendering (:func:`format_report`) live in
:mod:`posetransfer.data.inspect_report`.

Checks, by finding kind (``error`` unless marked):

- ``format_error``: the layout cannot be discovered, or a label/flow file cannot be parsed.
- ``missing_image_dir``: a split has no image folder.
- ``missing_image``: a pose or a pair names an image file that does not exist.
- ``unreadable_image``: an image file PIL cannot identify.
- ``keypoint_out_of_bounds``: a valid keypoint outside its image (size read from the header only).
- ``few_keypoints`` (warning): fewer than ``min_valid_keypoints`` valid keypoints.
- ``pair_unknown_image``: a pair names an image that has no pose in the split's annotations.
- ``duplicate_pair`` (warning), ``self_pair`` (warning): a pair listed twice, or ``src == tgt``.
- ``image_without_pose`` (warning): an image file in the image folder that no pose names.
- ``empty_split`` (warning): a split without poses or pairs.
- ``missing_flows`` (warning): pairs without a flow file, when a flow folder exists.
- ``flow_shape_mismatch``: a sampled flow file whose size differs from its target image.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from posetransfer.conventions import KEYPOINT_NAMES
from posetransfer.data import diaf_formats, flow_files, formats, layout
from posetransfer.data.inspect_report import (
    Finding,
    InspectReport,
    SplitCounts,
    format_report,
    severity_of,
)
from posetransfer.pose.keypoints import Pose

__all__ = [
    "Finding",
    "InspectConfig",
    "InspectReport",
    "SplitCounts",
    "format_report",
    "inspect_dataset",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class InspectConfig:
    """Tunable thresholds of :func:`inspect_dataset`.

    Attributes:
        min_valid_keypoints: Fewer valid keypoints than this in one image gives a warning.
        flow_samples: Flow files read to check their size against the target image.
    """

    min_valid_keypoints: int = 4
    flow_samples: int = 1


def inspect_dataset(
    root: str | os.PathLike[str],
    splits: Sequence[str] | None = None,
    config: InspectConfig = InspectConfig(),
) -> InspectReport:
    """Validate a dataset folder and count what it holds.

    Args:
        root: Dataset folder in the PATN/GFLA or DIAF layout.
        splits: Splits to check (e.g. ``["train"]``); ``None`` checks every split found. In the
            DIAF layout the keypoint file is shared by all splits and is checked as split ``"all"``.
        config: Thresholds.

    Returns:
        The report; ``report.errors`` is empty when the dataset is usable.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        ValueError: A requested split that the dataset does not have.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    try:
        files = layout.discover_dataset(root)
    except formats.FormatError as exc:
        report = InspectReport(str(root), None)
        report.findings.append(Finding("format_error", "error", "all", str(exc), str(exc.path)))
        return report
    return _Inspector(files, config).run(_select_splits(files, splits))


def _select_splits(files: layout.DatasetFiles, splits: Sequence[str] | None) -> list[str]:
    found = list(dict.fromkeys([*files.annotations, *files.pairs]))
    found = [s for s in found if s != "all"]
    if splits is None:
        return found
    unknown = [s for s in splits if s not in found]
    if unknown:
        raise ValueError(
            f"{files.root}: no split {', '.join(map(repr, unknown))}; the dataset has "
            f"{', '.join(map(repr, found)) or 'no splits'}"
        )
    return list(splits)


class _Inspector:
    """Runs the checks of one dataset; holds caches so each file is read once."""

    def __init__(self, files: layout.DatasetFiles, config: InspectConfig) -> None:
        self.files = files
        self.config = config
        self.report = InspectReport(str(files.root), files.layout)
        self._sizes: dict[Path, tuple[int, int] | None] = {}  # path -> (W, H), None if missing
        self._dir_files: dict[Path, set[str]] = {}  # image folder -> file names in it
        self._poses: dict[str, dict[str, Pose] | None] = {}  # annotation key -> poses
        self._pair_files: dict[Path, dict[str, list[tuple[str, str]]] | None] = {}

    # -- helpers -----------------------------------------------------------------------------

    def add(
        self, kind: str, split: str, message: str, path: Path | None = None, line: int | None = None
    ) -> None:
        self.report.findings.append(
            Finding(
                kind, severity_of(kind), split, message, None if path is None else str(path), line
            )
        )

    def add_format_error(self, split: str, exc: formats.FormatError) -> None:
        self.add("format_error", split, str(exc), exc.path, exc.line)

    def image_dir(self, split: str) -> Path | None:
        """Folder of a split's images (the DIAF layout has one folder for every split)."""
        dirs = self.files.image_dirs
        if self.files.layout == "diaf":
            return dirs.get(split) or dirs.get("all") or next(iter(dirs.values()), None)
        return dirs.get(split)

    def dir_files(self, folder: Path) -> set[str]:
        """Names of the files in ``folder``, listed once."""
        if folder not in self._dir_files:
            with os.scandir(folder) as it:
                self._dir_files[folder] = {entry.name for entry in it if entry.is_file()}
        return self._dir_files[folder]

    def image_size(self, split: str, name: str) -> tuple[int, int] | None:
        """``(W, H)`` from the image header, or None (reported once) if missing/unreadable.

        The file is ``name`` itself or ``name`` plus a known image extension (DIAF ids carry
        none), the rule :class:`~posetransfer.data.datasets.PairDataset` uses.
        """
        image_dir = self.image_dir(split)
        if image_dir is None or not image_dir.is_dir():
            return None  # reported once as missing_image_dir
        present = self.dir_files(image_dir)
        found = next((name + e for e in ("", *IMAGE_EXTENSIONS) if name + e in present), None)
        path = image_dir / (found or (name + ".jpg" if self.files.layout == "diaf" else name))
        if path not in self._sizes:
            size = None
            try:
                if found is None:
                    raise FileNotFoundError(path)
                with Image.open(path) as im:
                    size = im.size
            except FileNotFoundError:
                self.add("missing_image", split, f"{name}: image file {path} does not exist", path)
            except (UnidentifiedImageError, OSError) as exc:
                self.add("unreadable_image", split, f"{name}: cannot read {path}: {exc}", path)
            self._sizes[path] = size
        return self._sizes[path]

    def annotation_key(self, split: str) -> str:
        return "all" if self.files.layout == "diaf" else split

    def poses(self, split: str) -> dict[str, Pose] | None:
        """Poses of a split's annotation file, read once; None (reported) if unreadable/absent."""
        key = self.annotation_key(split)
        if key not in self._poses:
            path = self.files.annotations.get(key)
            poses = None
            if path is None:
                self.add(
                    "format_error", key, f"{self.files.root}: no annotation file for split {key!r}"
                )
            else:
                read = (
                    diaf_formats.read_pose_label
                    if self.files.layout == "diaf"
                    else formats.read_annotation_csv
                )
                try:
                    poses = read(path)
                except formats.FormatError as exc:
                    self.add_format_error(key, exc)
            self._poses[key] = poses
        return self._poses[key]

    def pairs(self, split: str) -> list[tuple[str, str]] | None:
        path = self.files.pairs.get(split)
        if path is None:
            self.add("format_error", split, f"{self.files.root}: no pair list for split {split!r}")
            return None
        if self.files.layout == "patn":
            try:
                return formats.read_pairs_csv(path)
            except formats.FormatError as exc:
                self.add_format_error(split, exc)
                return None
        if path not in self._pair_files:  # one JSON holds every DIAF split: read and report once
            try:
                self._pair_files[path] = diaf_formats.read_pair_split(path)
            except formats.FormatError as exc:
                self.add_format_error(split, exc)
                self._pair_files[path] = None
        data = self._pair_files[path]
        return None if data is None else data.get(split, [])

    # -- checks ------------------------------------------------------------------------------

    def run(self, splits: list[str]) -> InspectReport:
        if self.files.layout == "diaf":  # one keypoint file and one image folder for all splits
            self.report.counts["all"] = counts = SplitCounts()
            counts.image_files = self.check_image_dir("all")
            poses = self.poses("all")
            if poses is not None:
                counts.poses = len(poses)
                self.check_poses("all", poses)
                self.check_unannotated("all", poses)
        for split in splits:
            self.check_split(split)
        return self.report

    def check_split(self, split: str) -> None:
        counts = self.report.counts.setdefault(split, SplitCounts())
        poses = self.poses(split)
        if self.files.layout == "patn":
            counts.image_files = self.check_image_dir(split)
            if poses is not None:
                counts.poses = len(poses)
                self.check_poses(split, poses)
                self.check_unannotated(split, poses)
        pairs = self.pairs(split)
        if pairs is not None:
            counts.pairs = len(pairs)
            counts.pair_images = len({name for pair in pairs for name in pair})
            self.check_pairs(split, pairs, poses)
            self.check_flows(split, pairs, counts)
        if counts.pairs == 0 or counts.poses == 0:
            what = "pairs" if counts.pairs == 0 else "poses"
            self.add("empty_split", split, f"split {split!r} has no {what}")

    def check_image_dir(self, split: str) -> int | None:
        """Number of image files in the split's folder; None (reported) if there is no folder."""
        image_dir = self.image_dir(split)
        if image_dir is None or not image_dir.is_dir():
            where = image_dir or f"{self.files.root} (no image folder for split {split!r})"
            self.add("missing_image_dir", split, f"{where}: image folder not found")
            return None
        return len(_images(self.dir_files(image_dir)))

    def check_poses(self, key: str, poses: dict[str, Pose]) -> None:
        """Image existence, keypoint bounds and keypoint count of every pose of one file."""
        path = self.files.annotations[key]
        for name, pose in poses.items():
            if pose.num_valid < self.config.min_valid_keypoints:
                self.add(
                    "few_keypoints",
                    key,
                    f"{name}: only {pose.num_valid} valid keypoints "
                    f"(< {self.config.min_valid_keypoints})",
                    path,
                )
            size = self.image_size(key, name)
            if size is None:
                continue
            width, height = size
            for k in np.flatnonzero(pose.out_of_bounds(height, width)):
                col, row = (int(v) for v in np.floor(pose.xy[k]))
                self.add(
                    "keypoint_out_of_bounds",
                    key,
                    f"{name}: keypoint {KEYPOINT_NAMES[k]} at column {col}, row {row} is "
                    f"outside the image ({width}x{height} WxH)",
                    path,
                )

    def check_unannotated(self, split: str, poses: dict[str, Pose]) -> None:
        """Image files in the split's folder that no pose names (by file name or by stem)."""
        image_dir = self.image_dir(split)
        if image_dir is None or not image_dir.is_dir():
            return
        for name in sorted(_images(self.dir_files(image_dir))):
            if name not in poses and Path(name).stem not in poses:
                self.add(
                    "image_without_pose", split, f"{name}: image in {image_dir} has no pose",
                    image_dir / name,
                )  # fmt: skip

    def check_pairs(
        self, split: str, pairs: list[tuple[str, str]], poses: dict[str, Pose] | None
    ) -> None:
        path = self.files.pairs[split]
        for pair, count in collections.Counter(pairs).items():
            if count > 1:
                self.add(
                    "duplicate_pair",
                    split,
                    f"pair {pair[0]} -> {pair[1]} is listed {count} times",
                    path,
                )
        unknown: set[str] = set()
        annotations = self.files.annotations.get(self.annotation_key(split))
        for src, tgt in dict.fromkeys(pairs):
            if src == tgt:
                self.add(
                    "self_pair", split, f"pair {src} -> {tgt} has the same source and target", path
                )
            for name in (src, tgt):
                if poses is not None and name not in poses and name not in unknown:
                    unknown.add(name)
                    self.add(
                        "pair_unknown_image",
                        split,
                        f"pair {src} -> {tgt} names {name}, which has no pose in {annotations}",
                        path,
                    )
                self.image_size(split, name)  # reports a missing file (once per image)

    def check_flows(self, split: str, pairs: list[tuple[str, str]], counts: SplitCounts) -> None:
        flows_dir = self.files.flows_dir
        if flows_dir is None:
            return
        flow_names = self.dir_files(flows_dir)
        found: list[tuple[str, str, Path]] = []
        missing: list[str] = []
        for src, tgt in dict.fromkeys(pairs):
            names = [flow_files.flow_filename(src, tgt, fmt) for fmt in ("npz", "corr")]
            present = [n for n in names if n in flow_names]
            if present:
                found.append((src, tgt, flows_dir / present[0]))
            else:
                missing.append(names[0 if self.files.layout == "patn" else 1])
        counts.flows_found, counts.flows_missing = len(found), len(missing)
        if missing:
            examples = ", ".join(missing[:3])
            self.add(
                "missing_flows",
                split,
                f"{len(missing)} of {len(found) + len(missing)} "
                f"pairs have no flow file in {flows_dir} (e.g. {examples})",
                flows_dir,
            )
        for src, tgt, path in found[: max(0, self.config.flow_samples)]:
            self.check_flow_file(split, src, tgt, path)

    def check_flow_file(self, split: str, src: str, tgt: str, path: Path) -> None:
        try:
            flow, vis = flow_files.read_any_flow(path)
        except formats.FormatError as exc:
            self.add_format_error(split, exc)
            return
        size = self.image_size(split, tgt)
        if size is None:
            return
        width, height = size
        if flow.shape[:2] != (height, width) or vis.shape[:2] != (height, width):
            self.add(
                "flow_shape_mismatch",
                split,
                f"{path}: flow {flow.shape[1]}x{flow.shape[0]} (WxH) does not match the "
                f"target image {tgt} ({width}x{height})",
                path,
            )


def _images(names: set[str]) -> list[str]:
    return [n for n in names if n.lower().endswith(IMAGE_EXTENSIONS)]
