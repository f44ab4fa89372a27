"""Pairs of person images for training and evaluation: images, keypoints, pose maps and flow.

:class:`PairDataset` reads a dataset in the PATN/GFLA or the original DIAF layout
(:func:`posetransfer.data.layout.discover_dataset`), brings every pair into an image protocol
(:mod:`posetransfer.data.transforms`), optionally mirrors it, and returns typed
:class:`PairSample` objects; :func:`collate_pairs` batches them into a :class:`PairBatch` (both
in :mod:`posetransfer.data.samples`).

Everything that can be checked without reading pixels is checked at construction: a pair whose
image or keypoints are missing is refused there (``posetransfer inspect-data`` lists them all), and
so is a missing flow file when flow is required. Flow is never replaced by zeros.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from posetransfer.data.flow_files import flow_filename, read_any_flow
from posetransfer.data.formats import FormatError
from posetransfer.data.layout import discover_dataset, load_split
from posetransfer.data.pose_augment import PoseAugmentConfig, augment_pair
from posetransfer.data.samples import PairBatch, PairSample, collate_pairs
from posetransfer.data.transforms import (
    ImageProtocol,
    PairArrays,
    get_protocol,
    hflip_sample,
    plan_transform,
    transform_pair,
)
from posetransfer.io import uint8_to_tensor
from posetransfer.pose.keypoints import stack_poses
from posetransfer.pose.maps import PoseMapConfig, pose_maps

__all__ = ["PairBatch", "PairDataset", "PairSample", "collate_pairs"]

logger = logging.getLogger(__name__)

#: Suffixes tried for image ids without one (DIAF ids carry no extension).
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")

#: How many offending pairs an error message lists before summarising.
_MAX_LISTED = 5


class PairDataset(Dataset[PairSample]):
    """Source/target pairs of one split of a dataset on disk.

    Args:
        root: Dataset folder, PATN/GFLA or DIAF layout.
        split: Split name (``"train"``, ``"test"``, and for DIAF also e.g. ``"test_small"``).
        protocol: Image protocol (name or object) every pair is brought into.
        pose_map: How keypoints become pose-map channels.
        flows_dir: Folder with the flow files (``flow_files.flow_filename``: ``.npz``, or ``.corr``
            in the DIAF layout; the other suffix is used if only it exists). Default: the
            dataset's discovered flows folder.
        require_flow: If True, every pair must have a flow file (checked here). If False, flow is
            loaded when every pair has one and left out (with a warning) otherwise, so batches
            never mix samples with and without flow.
        skip_missing_flow: Leave out the pairs that have no flow file (logged; e.g. the pairs
            of images whose body fit failed in ``synth-flow``) and load flow for the others.
        hflip_prob: Probability of mirroring a pair, drawn deterministically from
            ``(seed, epoch, index)``.
        seed: Seed of the flip and augmentation draws, ``>= 0``.
        augment: Pose augmentation (:mod:`posetransfer.data.pose_augment`: a geometric map of
            the whole pair, detector-like keypoint noise), drawn deterministically from
            ``(seed, epoch, index, 1)``; None: none.

    Raises:
        FormatError: Unreadable layout or pair files, or pairs whose images or keypoints are
            missing (the message names them).
        FileNotFoundError: ``require_flow`` and a flow file is missing (names the expected path).
        ValueError: Bad arguments.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        *,
        protocol: str | ImageProtocol = "native",
        pose_map: PoseMapConfig = PoseMapConfig(),  # noqa: B008 (frozen, immutable)
        flows_dir: str | os.PathLike[str] | None = None,
        require_flow: bool = False,
        hflip_prob: float = 0.0,
        seed: int = 0,
        augment: PoseAugmentConfig | None = None,
        skip_missing_flow: bool = False,
    ) -> None:
        if not 0.0 <= hflip_prob <= 1.0:
            raise ValueError(f"hflip_prob must be in [0, 1], got {hflip_prob!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        self.files = discover_dataset(root)
        data = load_split(self.files, split)
        self.split = split
        self.protocol = get_protocol(protocol)
        self.pose_map = pose_map
        self.hflip_prob = float(hflip_prob)
        self.seed = seed
        self.augment = augment if augment is not None and augment.active else None
        self.epoch = 0
        self.poses = data.poses
        self.pairs = list(data.pairs)
        self.image_dir = Path(data.image_dir)
        self._pairs_file = Path(self.files.pairs.get(split, self.image_dir))
        self._image_paths = self._find_images()
        self.flows_dir = Path(flows_dir) if flows_dir is not None else self.files.flows_dir
        self._flow_paths = self._find_flows(require_flow, skip_missing_flow)

    # ------------------------------------------------------------------------------ public

    def __len__(self) -> int:
        return len(self.pairs)

    def __repr__(self) -> str:
        return (
            f"PairDataset(root={str(self.files.root)!r}, split={self.split!r}, "
            f"pairs={len(self)}, protocol={self.protocol.name!r}, flow={self.has_flow})"
        )

    @property
    def has_flow(self) -> bool:
        """Whether samples carry flow and visibility."""
        return self._flow_paths is not None

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose flip draws ``__getitem__`` uses (call before each epoch).

        DataLoader workers hold a copy of the dataset made when they start, so with
        ``persistent_workers=True`` the new epoch does not reach them; the default
        (workers restarted every epoch) picks it up.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")
        self.epoch = epoch

    def image_path(self, name: str) -> Path:
        """Path of the image ``name`` of a pair."""
        return self._image_paths[name]

    def flow_path(self, index: int) -> Path | None:
        """Path of pair ``index``'s flow file, or None if the dataset loads no flow."""
        return None if self._flow_paths is None else self._flow_paths[index]

    def is_flipped(self, index: int) -> bool:
        """Whether pair ``index`` is mirrored in the current epoch."""
        if self.hflip_prob <= 0.0:
            return False
        draw = np.random.default_rng((self.seed, self.epoch, index)).random()
        return bool(draw < self.hflip_prob)

    def __getitem__(self, index: int) -> PairSample:
        """Load, transform and convert pair ``index``."""
        source, target = self.pairs[index]
        src_path, tgt_path = self._image_paths[source], self._image_paths[target]
        flow = visibility = None
        flow_path = self.flow_path(index)
        if flow_path is not None:
            flow, visibility = read_any_flow(flow_path)
        pair = PairArrays(
            source_image=self._load_image(src_path),
            target_image=self._load_image(tgt_path),
            source_pose=self.poses[source],
            target_pose=self.poses[target],
            flow=flow,
            visibility=visibility,
        )
        try:
            pair = transform_pair(pair, self.protocol)
        except ValueError as exc:
            if flow_path is None:
                raise
            raise ValueError(f"{flow_path}: {exc}") from None  # images were checked already
        if pair.source_image.shape != pair.target_image.shape:
            raise ValueError(
                f"source {src_path} and target {tgt_path} have different sizes after protocol "
                f"{self.protocol.name!r}: {pair.source_image.shape[:2]} vs "
                f"{pair.target_image.shape[:2]}"
            )
        if self.augment is not None:
            rng = np.random.default_rng((self.seed, self.epoch, index, 1))
            pair = augment_pair(pair, self.augment, rng)
        if self.is_flipped(index):
            pair = hflip_sample(pair)
        return self._to_sample(source, target, pair)

    # ------------------------------------------------------------------------------ helpers

    def _load_image(self, path: Path) -> np.ndarray:
        """Read an RGB image and check the protocol takes its size."""
        with Image.open(path) as image:
            array = np.array(image.convert("RGB"))  # writable, for torch
        try:
            plan_transform(self.protocol, array.shape[:2])
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        return array

    def _to_sample(self, source: str, target: str, pair: PairArrays) -> PairSample:
        xy, valid = stack_poses([pair.source_pose, pair.target_pose])
        maps = pose_maps(xy, valid, pair.target_image.shape[:2], self.pose_map)
        flow = visibility = None
        if pair.flow is not None and pair.visibility is not None:
            flow = torch.from_numpy(np.ascontiguousarray(pair.flow, np.float32)).permute(2, 0, 1)
            visibility = torch.from_numpy(pair.visibility.astype(np.int64))
        return PairSample(
            source_name=source,
            target_name=target,
            source_image=uint8_to_tensor(pair.source_image),
            target_image=uint8_to_tensor(pair.target_image),
            source_xy=xy[0],
            source_valid=valid[0],
            target_xy=xy[1],
            target_valid=valid[1],
            source_pose_map=maps[0],
            target_pose_map=maps[1],
            flow=flow.contiguous() if flow is not None else None,
            visibility=visibility,
        )

    def _find_images(self) -> dict[str, Path]:
        """Map every name used by a pair to its image; refuse pairs with missing data."""
        try:
            present = {entry.name for entry in os.scandir(self.image_dir) if entry.is_file()}
        except FileNotFoundError:
            raise FormatError(self.image_dir, "image folder not found") from None
        paths: dict[str, Path] = {}
        problems: list[str] = []
        for k, (source, target) in enumerate(self.pairs):
            missing = []
            for role, name in (("source", source), ("target", target)):
                if name not in paths:
                    found = _match_image(name, present)
                    if found is not None:
                        paths[name] = self.image_dir / found
                if name not in paths:
                    missing.append(f"{role} image {name!r} not in {self.image_dir}")
                if name not in self.poses:
                    missing.append(f"{role} {name!r} has no keypoints")
            if missing:
                problems.append(f"pair {k} ({source}, {target}): {'; '.join(missing)}")
        if problems:
            listed = "\n  ".join(problems[:_MAX_LISTED])
            more = (
                f"\n  ... and {len(problems) - _MAX_LISTED} more"
                if len(problems) > _MAX_LISTED
                else ""
            )
            raise FormatError(
                self._pairs_file,
                f"{len(problems)} of {len(self.pairs)} pairs of split {self.split!r} refer to "
                f"missing data (run `posetransfer inspect-data` for the full list):\n  "
                f"{listed}{more}",
            )
        return paths

    def _find_flows(self, require_flow: bool, skip_missing: bool = False) -> list[Path] | None:
        """Flow file of every pair, or None if flow is not loaded; ``skip_missing`` drops the
        pairs without one from ``self.pairs``."""
        primary: Literal["npz", "corr"] = "corr" if self.files.layout == "diaf" else "npz"
        secondary: Literal["npz", "corr"] = "npz" if primary == "corr" else "corr"
        if self.flows_dir is None or not self.flows_dir.is_dir():
            if require_flow:
                where = "no flows folder" if self.flows_dir is None else f"no {self.flows_dir}"
                example = flow_filename(*self.pairs[0], primary) if self.pairs else ""
                raise FileNotFoundError(
                    f"dataset {self.files.root} has {where}; pass flows_dir= with the flow files "
                    f"(e.g. {example}) or run `posetransfer synth-flow`"
                )
            return None
        present = {entry.name for entry in os.scandir(self.flows_dir)}
        paths: list[Path] = []
        missing: list[tuple[int, Path]] = []
        for k, (source, target) in enumerate(self.pairs):
            names = [flow_filename(source, target, fmt) for fmt in (primary, secondary)]
            found = next((n for n in names if n in present), None)
            paths.append(self.flows_dir / (found or names[0]))
            if found is None:
                missing.append((k, paths[-1]))
        if not missing:
            return paths
        if skip_missing:
            gone = {k for k, _ in missing}
            logger.info(
                "%s: leaving out %d of %d pairs with no flow file (first: %s)",
                self.flows_dir, len(gone), len(self.pairs), missing[0][1],
            )  # fmt: skip
            self.pairs = [p for k, p in enumerate(self.pairs) if k not in gone]
            return [p for k, p in enumerate(paths) if k not in gone]
        if require_flow:
            k, path = missing[0]
            raise FileNotFoundError(
                f"{len(missing)} of {len(self.pairs)} pairs have no flow file; first: pair {k} "
                f"{self.pairs[k]} expects {path} (or its .{secondary} twin)"
            )
        if len(missing) < len(self.pairs):
            logger.warning(
                "%s: %d of %d pairs have no flow file (first expected: %s); loading no flow. "
                "Pass require_flow=True to make this an error.",
                self.flows_dir,
                len(missing),
                len(self.pairs),
                missing[0][1],
            )
        return None


def _match_image(name: str, present: set[str]) -> str | None:
    """The file in ``present`` for image ``name``: itself, or ``name`` + a known extension."""
    if name in present:
        return name
    return next((name + ext for ext in _IMAGE_EXTENSIONS if name + ext in present), None)
