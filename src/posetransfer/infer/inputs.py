"""Inputs and outputs of inference: pose files, source images, pair lists, GFLA-named PNGs.

Pose files (``posetransfer infer --source-pose/--target-pose``) hold one pose in pixel indices,
-1 for a missing point (as the keypoint files; read with :meth:`Pose.from_indices`):

- ``*.json``: a list of 18 ``[x, y]`` (``null`` also marks a missing point);
- any other file: PATN annotation rows ``name: [y0, ..., y17]: [x0, ..., x17]`` (rows first; the
  ``name:keypoints_y:keypoints_x`` header is optional); ``FILE#NAME`` picks the row ``NAME``, a
  file with one row needs no name;
- the text of such a row itself, in place of a file name.

:func:`infer_pairs` renders a pair list of a dataset (either layout; names are looked up in every
split) into ``OUT/<source>_2_<target>.png``, skipping files that exist.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from posetransfer.data.formats import FormatError, parse_json, read_pairs_csv, read_text
from posetransfer.data.layout import discover_dataset, load_split
from posetransfer.data.transforms import apply_image, apply_pose, get_protocol, plan_transform
from posetransfer.infer.pipeline import MIN_VALID_KEYPOINTS, PoseTransferPipeline, check_pose
from posetransfer.io import (
    PathLike,
    remove_stale_temporaries,
    save_png,
    tensor_to_uint8,
    uint8_to_tensor,
)
from posetransfer.pose.keypoints import Pose, stack_poses

__all__ = [
    "IMAGE_EXTENSIONS",
    "FlowFn",
    "PairListDataset",
    "gfla_name",
    "infer_pairs",
    "prepare_source",
    "read_pose",
]

logger = logging.getLogger(__name__)

#: Extensions stripped from output names and tried for image ids without one.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")

#: ``(source poses, target poses) -> (flow, visibility)`` replacing the flow regressor; poses
#: are in the model's image frame.
FlowFn = Callable[[Sequence[Pose], Sequence[Pose]], tuple[torch.Tensor, torch.Tensor]]


def _parse_row(text: str, where: Path | str, line: int) -> tuple[str, Pose]:
    fields = text.split(":")
    if len(fields) != 3:
        raise FormatError(where, "expected 'name: [y0, ..., y17]: [x0, ..., x17]'", line=line)
    lists = []
    for field, raw in zip(("keypoints_y", "keypoints_x"), fields[1:], strict=True):
        try:
            values = json.loads(raw)
        except (ValueError, RecursionError):  # bad syntax, a huge integer, deep nesting
            values = None
        if not isinstance(values, list) or len(values) != 18:
            raise FormatError(where, f"expected a list of 18 numbers, got {raw.strip()[:60]!r}",
                              line=line, field=field)  # fmt: skip
        lists.append(values)
    try:
        return fields[0].strip(), Pose.from_indices(np.stack([lists[1], lists[0]], axis=1))
    except (ValueError, TypeError, OverflowError) as exc:
        raise FormatError(where, str(exc), line=line, field="keypoints_y/keypoints_x") from None


def read_pose(spec: PathLike) -> Pose:
    """Read one pose from a JSON file, a PATN annotation file (``FILE#NAME``) or a row's text.

    Raises:
        FormatError: Naming the file, line and field of a malformed pose, an unknown row name,
            or a file of several rows without ``#NAME``.
        FileNotFoundError: If the file does not exist.
    """
    text = str(spec)
    base, sep, name = text.rpartition("#")
    if Path(text).is_file() or not (sep and Path(base).is_file()):
        base, name = text, ""
    path = Path(base)
    if not path.is_file():
        if ":" in text and "[" in text:
            return _parse_row(text, "pose text", 1)[1]
        raise FileNotFoundError(f"{path}: pose file not found")
    content = read_text(path)
    if path.suffix.lower() == ".json":
        points = parse_json(content, path)
        if not isinstance(points, list) or len(points) != 18:
            raise FormatError(path, "expected a list of 18 [x, y] keypoints (-1 for missing)")
        for k, point in enumerate(points):
            if point is not None and not (isinstance(point, list) and len(point) == 2):
                raise FormatError(path, f"keypoint {k} is {point!r}, not [x, y]", field=str(k))
        indices = [[-1, -1] if p is None else p for p in points]
        try:
            return Pose.from_indices(np.asarray(indices))
        except (ValueError, TypeError, OverflowError) as exc:
            raise FormatError(path, str(exc)) from None
    rows = {}
    for number, line in enumerate(content.splitlines(), start=1):
        if line.strip() and line.replace(" ", "") != "name:keypoints_y:keypoints_x":
            row_name, pose = _parse_row(line, path, number)
            rows[row_name] = pose
    if name:
        if name not in rows:
            raise FormatError(path, f"no row named {name!r} ({len(rows)} rows)")
        return rows[name]
    if len(rows) != 1:
        raise FormatError(path, f"holds {len(rows)} rows; pick one with {path}#NAME")
    return next(iter(rows.values()))


def gfla_name(source: str, target: str) -> str:
    """Output file name of a pair: ``<source>_2_<target>.png``, image extensions stripped."""

    def stem(name: str) -> str:
        base = Path(name).name
        return (
            base[: -len(Path(base).suffix)]
            if Path(base).suffix.lower() in IMAGE_EXTENSIONS
            else base
        )

    return f"{stem(source)}_2_{stem(target)}.png"


def prepare_source(
    image: np.ndarray,
    pose_src: Pose,
    pose_tgt: Pose,
    protocol: str,
    target_size: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, Pose, Pose]:
    """Bring a source image and both poses into the run's image protocol.

    Args:
        image: ``(H, W, 3)`` uint8 source image.
        pose_src: Source keypoints in the image's frame.
        pose_tgt: Target keypoints in the frame of an image of ``target_size`` (default: the
            source's size).
        protocol: The run's ``data.protocol``.

    Returns:
        ``(3, H', W')`` source in ``[-1, 1]`` and both poses in the protocol's frame.

    Raises:
        ValueError: If the protocol does not take the image's size.
    """
    proto = get_protocol(protocol)
    affine_src = plan_transform(proto, image.shape[:2])
    affine_tgt = plan_transform(proto, target_size or image.shape[:2])
    return (
        uint8_to_tensor(apply_image(image, affine_src)),
        apply_pose(pose_src, affine_src, proto.keypoint_frame),
        apply_pose(pose_tgt, affine_tgt, proto.keypoint_frame),
    )


def _find_image(folder: Path, name: str) -> Path | None:
    for candidate in (name, *(name + ext for ext in IMAGE_EXTENSIONS)):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


class PairListDataset(Dataset):
    """The pairs of a pair list, with keypoints and images found in any split of a dataset.

    Items are dicts: ``index``, ``source_image`` ``(3, H, W)`` and the keypoints ``src_xy``,
    ``src_valid``, ``tgt_xy``, ``tgt_valid`` in the protocol's frame. Target images are not read
    (only their size, from the header, for the keypoints' frame; absent ones take the source's).

    Args:
        root: Dataset folder, PATN/GFLA or DIAF layout.
        pairs: ``(source, target)`` image names.
        protocol: Image protocol of the model.
        pairs_file: Named in errors.
        min_valid: Fewest valid keypoints per pose.

    Raises:
        FormatError: Pairs naming images without keypoints or without a source image file.
        PoseInputError: A pose with fewer than ``min_valid`` valid keypoints.
    """

    def __init__(
        self,
        root: PathLike,
        pairs: Sequence[tuple[str, str]],
        protocol: str,
        pairs_file: PathLike = "pairs",
        min_valid: int = MIN_VALID_KEYPOINTS,
    ) -> None:
        files = discover_dataset(root)
        self.poses: dict[str, Pose] = {}
        folders: dict[str, Path] = {}
        for split in files.splits:
            data = load_split(files, split)
            for name, pose in data.poses.items():
                self.poses.setdefault(name, pose)
                folders.setdefault(name, data.image_dir)
        self.pairs, self.protocol = list(pairs), protocol
        self.paths: dict[str, Path | None] = {}
        problems = []
        for k, (source, target) in enumerate(self.pairs):
            for role, name in (("source", source), ("target", target)):
                if name not in self.poses:
                    problems.append(f"pair {k}: {role} {name!r} has no keypoints in {root}")
                    continue
                check_pose(self.poses[name], f"pair {k} {role} {name!r}", min_valid)
                if name not in self.paths:
                    self.paths[name] = _find_image(folders[name], name)
            if source in self.poses and self.paths.get(source) is None:
                problems.append(f"pair {k}: source image {source!r} not in {folders[source]}")
        if problems:
            more = f"\n  ... and {len(problems) - 5} more" if len(problems) > 5 else ""
            raise FormatError(
                pairs_file, "\n  ".join(["pairs refer to missing data:", *problems[:5]]) + more
            )

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        source, target = self.pairs[index]
        src_path, tgt_path = self.paths[source], self.paths[target]
        assert src_path is not None
        with Image.open(src_path) as img:
            image = np.array(img.convert("RGB"))
        target_size = None
        if tgt_path is not None:
            with Image.open(tgt_path) as img:
                target_size = (img.height, img.width)
        try:
            x, pose_src, pose_tgt = prepare_source(
                image, self.poses[source], self.poses[target], self.protocol, target_size
            )
        except ValueError as exc:
            raise ValueError(f"{src_path}: {exc}") from None
        (src_xy, tgt_xy), (src_valid, tgt_valid) = stack_poses([pose_src, pose_tgt])
        return {"index": torch.tensor(index), "source_image": x, "src_xy": src_xy,
                "src_valid": src_valid, "tgt_xy": tgt_xy, "tgt_valid": tgt_valid}  # fmt: skip


def infer_pairs(
    pipeline: PoseTransferPipeline,
    root: PathLike,
    pairs_csv: PathLike,
    out_dir: PathLike,
    *,
    batch_size: int = 8,
    num_workers: int = 0,
    flow_fn: FlowFn | None = None,
    min_valid: int = MIN_VALID_KEYPOINTS,
    progress: bool = True,
) -> tuple[int, int]:
    """Render every pair of a pair list into ``out_dir/<source>_2_<target>.png``.

    Args:
        pipeline: The trained model.
        root: Dataset folder holding the images and keypoints.
        pairs_csv: PATN/GFLA pair list (``from,to``).
        out_dir: Output folder; existing outputs are skipped.
        batch_size: Pairs per forward pass.
        num_workers: DataLoader worker processes.
        flow_fn: Flow source replacing the regressor (e.g. :func:`~.inference.body_flow`).
        min_valid: Fewest valid keypoints per pose.
        progress: Show a progress bar.

    Returns:
        ``(written, skipped)`` counts.

    Raises:
        FormatError: Missing keypoints or images. ValueError: images the model cannot take.
    """
    out_dir = Path(out_dir)
    remove_stale_temporaries(out_dir)  # what a killed run was writing
    pairs = read_pairs_csv(pairs_csv)
    todo = [p for p in pairs if not (out_dir / gfla_name(*p)).is_file()]
    skipped = len(pairs) - len(todo)
    if skipped:
        logger.info("%s: %d of %d outputs exist; skipping them", out_dir, skipped, len(pairs))
    if not todo:
        return 0, skipped
    dataset = PairListDataset(root, todo, pipeline.cfg.data.protocol, pairs_csv, min_valid)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    bar = tqdm(total=len(todo), unit="pair", disable=not progress, desc="infer")
    for batch in loader:
        flow = None
        if flow_fn is not None:
            sources, targets = (
                [
                    Pose(xy.numpy(), ok.numpy())
                    for xy, ok in zip(batch[k + "_xy"], batch[k + "_valid"], strict=True)
                ]
                for k in ("src", "tgt")
            )
            flow = flow_fn(sources, targets)
        out = pipeline.run(batch["source_image"], batch["src_xy"], batch["src_valid"],
                           batch["tgt_xy"], batch["tgt_valid"], flow)  # fmt: skip
        for i, image in zip(batch["index"].tolist(), out.image.cpu(), strict=True):
            save_png(out_dir / gfla_name(*todo[i]), tensor_to_uint8(image))
        bar.update(len(batch["index"]))
    bar.close()
    return len(todo), skipped
