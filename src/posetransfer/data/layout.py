"""Find the files of a dataset on disk (PATN/GFLA or original DIAF layout) and load one split.

PATN/GFLA layout (the field's standard)::

    ROOT/<prefix>-annotation-<split>.csv   prefix: fasion | fashion | market, optionally + "-resize"
    ROOT/<prefix>-pairs-<split>.csv
    ROOT/<split>/                          images; ROOT/<split>_<suffix>/ (e.g. train_256) is used
                                           when it is the only candidate
    ROOT/flows/                            optional flow store

Names in the CSVs carry the file extension (``x.jpg``).

Original DIAF layout::

    ROOT/Img/img/<id>.jpg                  (Market-1501: ROOT/Images/img/)
    ROOT/Label/pair_split.json             {"train": [[source, target], ...], "test": ..., ...}
    ROOT/Label/pose_label.pkl              keypoints of every image
    ROOT/3d/hmr/corr/<target>_<source>.corr   optional ground-truth flow

Ids carry no extension. Both layouts resolve to a :class:`DatasetFiles`; :func:`load_split` reads
one split into a :class:`SplitData`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from posetransfer.data.diaf_formats import read_pair_split, read_pose_label
from posetransfer.data.formats import FormatError, PathLike, read_annotation_csv, read_pairs_csv
from posetransfer.pose.keypoints import Pose

__all__ = ["DatasetFiles", "SplitData", "discover_dataset", "load_split"]

Layout = Literal["patn", "diaf"]

_PATN_FILE = re.compile(
    r"^(?P<prefix>(?:fasion|fashion|market)(?:-resize)?)-(?P<kind>annotation|pairs)"
    r"-(?P<split>[A-Za-z0-9_]+)\.csv$"
)
_DIAF_IMAGE_DIRS = ("Img/img", "Images/img")
_DIAF_SPLIT = "Label/pair_split.json"
_DIAF_POSES = "Label/pose_label.pkl"


@dataclass(frozen=True)
class DatasetFiles:
    """Where the files of one dataset are.

    Attributes:
        root: The dataset folder.
        layout: ``"patn"`` or ``"diaf"``.
        image_dirs: Split -> folder holding that split's images (DIAF: the same folder for all).
        annotations: Split -> annotation CSV (PATN); DIAF: ``{"all": Label/pose_label.pkl}``.
        pairs: Split -> pair CSV (PATN); DIAF: ``{split: Label/pair_split.json}`` for each key.
        flows_dir: PATN: ``ROOT/flows``; DIAF: ``ROOT/3d/hmr/corr``; None when absent.
    """

    root: Path
    layout: Layout
    image_dirs: dict[str, Path]
    annotations: dict[str, Path]
    pairs: dict[str, Path]
    flows_dir: Path | None

    @property
    def splits(self) -> list[str]:
        """Split names, sorted."""
        return sorted(self.pairs)


@dataclass(frozen=True)
class SplitData:
    """The keypoints and pairs of one split.

    Attributes:
        poses: Image name -> pose (DIAF: every image of the dataset).
        pairs: ``(source, target)`` image names; every name has a pose.
        image_dir: Folder holding the images.
    """

    poses: dict[str, Pose]
    pairs: list[tuple[str, str]]
    image_dir: Path


def _patn_candidates(root: Path) -> dict[str, dict[tuple[str, str], Path]]:
    """Prefix -> {(kind, split): path} for every PATN-style CSV in ``root``."""
    found: dict[str, dict[tuple[str, str], Path]] = {}
    for path in sorted(root.iterdir()):
        match = _PATN_FILE.match(path.name)
        if match and path.is_file():
            found.setdefault(match["prefix"], {})[(match["kind"], match["split"])] = path
    return found


def _patn_image_dir(root: Path, split: str) -> Path:
    exact = root / split
    if exact.is_dir():
        return exact
    candidates = sorted(p for p in root.glob(f"{split}_*") if p.is_dir())
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise FormatError(
            root, f"no image folder for split {split!r}: looked for {split}/ and {split}_<suffix>/"
        )
    names = [p.name for p in candidates]
    raise FormatError(
        root,
        f"ambiguous image folder for split {split!r}: {names}; rename all "
        f"but one or name the folder {split}/",
    )


def _discover_patn(root: Path, files: dict[tuple[str, str], Path], prefix: str) -> DatasetFiles:
    splits = sorted({split for _, split in files})
    annotations: dict[str, Path] = {}
    pairs: dict[str, Path] = {}
    for split in splits:
        for kind, table in (("annotation", annotations), ("pairs", pairs)):
            if (kind, split) not in files:
                raise FormatError(root, f"split {split!r} has no {prefix}-{kind}-{split}.csv")
            table[split] = files[(kind, split)]
    image_dirs = {split: _patn_image_dir(root, split) for split in splits}
    flows = root / "flows"
    return DatasetFiles(
        root, "patn", image_dirs, annotations, pairs, flows if flows.is_dir() else None
    )


def _discover_diaf(root: Path) -> DatasetFiles:
    split_file, pose_file = root / _DIAF_SPLIT, root / _DIAF_POSES
    for path in (split_file, pose_file):
        if not path.is_file():
            raise FormatError(root, f"DIAF layout without {path.relative_to(root)}")
    image_dirs = [root / d for d in _DIAF_IMAGE_DIRS if (root / d).is_dir()]
    if len(image_dirs) != 1:
        raise FormatError(
            root,
            f"DIAF layout needs exactly one image folder among "
            f"{list(_DIAF_IMAGE_DIRS)}, found {len(image_dirs)}",
        )
    splits = sorted(read_pair_split(split_file))
    if not splits:
        raise FormatError(split_file, "no split in the pair list")
    flows = root / "3d" / "hmr" / "corr"
    return DatasetFiles(
        root, "diaf", dict.fromkeys(splits, image_dirs[0]), {"all": pose_file},
        dict.fromkeys(splits, split_file), flows if flows.is_dir() else None,
    )  # fmt: skip


def discover_dataset(
    root: PathLike, *, layout: Layout | None = None, prefix: str | None = None
) -> DatasetFiles:
    """Find the files of a dataset in either layout (see the module docstring).

    Args:
        root: The dataset folder.
        layout: Force ``"patn"`` or ``"diaf"`` when a folder holds both.
        prefix: PATN file prefix (``"fasion-resize"``, ``"market"``, ...) when several are present.

    Returns:
        The located files.

    Raises:
        FormatError: Naming ``root`` and what was looked for when nothing matches, when a split
            lacks a file, or when the choice is ambiguous.
    """
    root = Path(root)
    if not root.is_dir():
        raise FormatError(root, "dataset folder does not exist or is not a folder")
    patn = _patn_candidates(root)
    if prefix is not None:
        patn = {p: f for p, f in patn.items() if p == prefix.rstrip("-")}
    has_diaf = (root / "Label").is_dir()
    if layout is None:
        if patn and has_diaf:
            raise FormatError(
                root,
                "holds both a PATN layout (*.csv) and a DIAF layout (Label/);"
                " pass layout='patn' or layout='diaf'",
            )
        layout = "diaf" if has_diaf else "patn"
    if layout == "diaf":
        return _discover_diaf(root)
    if not patn:
        wanted = "" if prefix is None else f" with prefix {prefix!r}"
        raise FormatError(
            root,
            f"no dataset found{wanted}: looked for "
            "{fasion,fashion,market}[-resize]-{annotation,pairs}-<split>.csv "
            f"(PATN layout) and {_DIAF_SPLIT} + {_DIAF_POSES} (DIAF layout)",
        )
    if len(patn) > 1:
        raise FormatError(root, f"several PATN file prefixes {sorted(patn)}; pass prefix=...")
    ((name, files),) = patn.items()
    return _discover_patn(root, files, name)


def _check_pairs_have_poses(
    pairs: list[tuple[str, str]], poses: dict[str, Pose], pairs_path: Path, poses_path: Path
) -> None:
    missing = [(k, n) for k, pair in enumerate(pairs) for n in pair if n not in poses]
    if missing:
        k, name = missing[0]
        raise FormatError(
            pairs_path,
            f"{len(missing)} pair entries name images without keypoints"
            f" in {poses_path}; the first is pair {k}: {name!r}",
        )


def load_split(files: DatasetFiles, split: str) -> SplitData:
    """Read the keypoints and pairs of one split.

    Args:
        files: From :func:`discover_dataset`.
        split: A key of ``files.pairs`` (``"train"``, ``"test"``, DIAF ``"test_small"``, ...).

    Returns:
        The split's poses, pairs and image folder.

    Raises:
        FormatError: An unknown split (listing the available ones), a malformed file, or a pair
            naming an image without keypoints.
    """
    if split not in files.pairs:
        where = files.pairs[next(iter(files.pairs))] if files.layout == "diaf" else files.root
        raise FormatError(where, f"no split {split!r}; available: {files.splits}")
    pairs_path = files.pairs[split]
    if files.layout == "patn":
        poses_path = files.annotations[split]
        poses = read_annotation_csv(poses_path)
        pairs = read_pairs_csv(pairs_path)
    else:
        poses_path = files.annotations["all"]
        splits = read_pair_split(pairs_path)
        if split not in splits:
            raise FormatError(pairs_path, f"no split {split!r}; available: {sorted(splits)}")
        poses, pairs = read_pose_label(poses_path), splits[split]
    _check_pairs_have_poses(pairs, poses, pairs_path, poses_path)
    return SplitData(poses, pairs, files.image_dirs[split])
