"""``posetransfer show-flow``: draw one pair's flow as a PNG panel (:func:`make_flow_panel`).

Source and target with their keypoints, the flow in colour, the visibility map and the source
warped by the flow, side by side. Its flags pick the pair and the files, none sets a config key.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posetransfer.cli.command import Command
from posetransfer.console import echo
from posetransfer.conventions import Visibility
from posetransfer.data.flow_files import IMAGE_EXTENSIONS
from posetransfer.pose.keypoints import Pose

__all__ = ["SHOW_FLOW", "ShowFlowConfig", "make_flow_panel"]


@dataclass(frozen=True)
class ShowFlowConfig:
    """Settings of ``show-flow``.

    Attributes:
        max_magnitude: Flow magnitude drawn fully saturated (None: the pair's largest).
        draw_keypoints: Draw the skeletons on the source and target images.
    """

    max_magnitude: float | None = None
    draw_keypoints: bool = True


def make_flow_panel(
    source: np.ndarray,
    target: np.ndarray,
    flow: np.ndarray,
    visibility: np.ndarray,
    *,
    source_pose: Pose | None = None,
    target_pose: Pose | None = None,
    max_magnitude: float | None = None,
) -> np.ndarray:
    """Source, target, flow colour, visibility and the source warped by the flow, side by side.

    The warped source shows VISIBLE pixels as warped, INVISIBLE ones warped at half brightness
    and BACKGROUND in white.

    Args:
        source: ``(H, W, 3)`` uint8 source image, at the flow's size.
        target: ``(H, W, 3)`` uint8 target image.
        flow: ``(H, W, 2)`` flow target -> source in pixels.
        visibility: ``(H, W)`` Visibility codes.
        source_pose: Drawn on the source when given.
        target_pose: Drawn on the target when given.
        max_magnitude: See :func:`posetransfer.ops.flow_viz.flow_to_color`.

    Returns:
        ``(H', W', 3)`` uint8 panel.
    """
    import torch

    from posetransfer.ops.flow_viz import flow_to_color, make_panel, visibility_to_color
    from posetransfer.ops.warp import warp
    from posetransfer.pose.draw import draw_pose

    if source.shape != target.shape or source.shape[:2] != flow.shape[:2]:
        raise ValueError(
            f"source {source.shape}, target {target.shape} and flow {flow.shape} must share (H, W)"
        )
    warped = warp(
        torch.from_numpy(source).permute(2, 0, 1)[None].float(),
        torch.from_numpy(np.ascontiguousarray(flow, np.float32)).permute(2, 0, 1)[None],
    )[0]
    warped_u8 = warped.permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    shown = np.full_like(warped_u8, 255)
    vis = np.asarray(visibility)
    shown[vis == Visibility.VISIBLE] = warped_u8[vis == Visibility.VISIBLE]
    hidden = vis == Visibility.INVISIBLE
    shown[hidden] = warped_u8[hidden] // 2
    images = [
        draw_pose(source, source_pose) if source_pose is not None else source,
        draw_pose(target, target_pose) if target_pose is not None else target,
        flow_to_color(flow, max_magnitude),
        visibility_to_color(vis),
        shown,
    ]
    return make_panel(images, ["source", "target", "flow", "visibility", "warped source"])


def _show_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", type=Path, help="dataset folder (PATN/GFLA or DIAF layout)")
    parser.add_argument("--out", type=Path, required=True, metavar="PANEL.png", help="PNG to write")
    parser.add_argument("--source", help="source image name (as in the pair list)")
    parser.add_argument("--target", help="target image name")
    parser.add_argument("--pair", type=int, metavar="K", help="pair index in --split instead")
    parser.add_argument("--split", help="split of --pair (default: the first split)")
    parser.add_argument(
        "--flows",
        type=Path,
        metavar="DIR",
        help="flow folder (default: the dataset's, or ROOT/flows)",
    )
    parser.add_argument("--layout", choices=("patn", "diaf"), help="force the dataset layout")
    parser.add_argument("--prefix", help="PATN file prefix when several are present")


def _find_pair(args: argparse.Namespace, files) -> tuple[str, str, Pose, Pose, Path, Path]:
    """Names, poses and image paths of the pair to show."""
    from posetransfer.data.layout import load_split

    if (args.pair is None) == (args.source is None or args.target is None):
        raise ValueError("give either --source and --target, or --pair K (with --split)")
    splits = [args.split] if args.split else files.splits
    for split in splits:
        data = load_split(files, split)
        if args.pair is not None:
            if not 0 <= args.pair < len(data.pairs):
                raise ValueError(f"--pair {args.pair}: split {split!r} has {len(data.pairs)} pairs")
            source, target = data.pairs[args.pair]
        else:
            source, target = args.source, args.target
            if source not in data.poses or target not in data.poses:
                continue
        paths = [_image_path(data.image_dir, name) for name in (source, target)]
        return source, target, data.poses[source], data.poses[target], paths[0], paths[1]
    raise ValueError(
        f"no split of {files.root} has keypoints of both {args.source!r} and {args.target!r}"
    )


def _image_path(folder: Path, name: str) -> Path:
    for candidate in (name, *(name + ext for ext in IMAGE_EXTENSIONS)):
        if (folder / candidate).is_file():
            return folder / candidate
    raise FileNotFoundError(f"image {name!r} not found in {folder}")


def _load_rgb(path: Path, size: tuple[int, int]) -> tuple[np.ndarray, tuple[float, float]]:
    """RGB image resized to ``size`` (H, W) and the ``(x, y)`` scale applied."""
    from PIL import Image

    with Image.open(path) as image:
        rgb = image.convert("RGB")
        scale = (size[1] / rgb.width, size[0] / rgb.height)
        if (rgb.height, rgb.width) != size:
            rgb = rgb.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        return np.asarray(rgb).copy(), scale


def _show_run(args: argparse.Namespace, cfg: ShowFlowConfig) -> int:
    from posetransfer.data.flow_files import flow_filename, read_any_flow
    from posetransfer.data.layout import discover_dataset
    from posetransfer.io import save_png

    files = discover_dataset(args.root, layout=args.layout, prefix=args.prefix)
    source, target, pose_src, pose_tgt, path_src, path_tgt = _find_pair(args, files)
    flows_dir = args.flows or files.flows_dir or files.root / "flows"
    names = [flow_filename(source, target, fmt) for fmt in ("npz", "corr")]
    found = next((flows_dir / n for n in names if (flows_dir / n).is_file()), None)
    if found is None:
        raise FileNotFoundError(
            f"no flow file for {source} -> {target}: looked for {names[0]} and {names[1]} in "
            f"{flows_dir} (run `posetransfer synth-flow`, or pass --flows)"
        )
    flow, visibility = read_any_flow(found)
    size = flow.shape[:2]
    img_src, scale_src = _load_rgb(path_src, size)
    img_tgt, scale_tgt = _load_rgb(path_tgt, size)
    poses = [
        Pose(pose.xy * np.asarray(scale, np.float32), pose.valid) if cfg.draw_keypoints else None
        for pose, scale in ((pose_src, scale_src), (pose_tgt, scale_tgt))
    ]
    panel = make_flow_panel(
        img_src,
        img_tgt,
        flow,
        visibility,
        source_pose=poses[0],
        target_pose=poses[1],
        max_magnitude=cfg.max_magnitude,
    )
    save_png(args.out, panel)
    echo(f"wrote {args.out} ({source} -> {target}, {found.name}, {size[0]}x{size[1]})")
    return 0


SHOW_FLOW = Command(
    name="show-flow",
    help="draw a pair's flow as a PNG panel",
    config=ShowFlowConfig,
    add_arguments=_show_arguments,
    run=_show_run,
    description="Write a PNG panel for one pair: source and target images (with keypoints), "
    "the flow in colour, the visibility map and the source warped by the flow. Choose the "
    "pair with --source/--target or --pair K [--split S]; flows come from --flows, else the "
    "dataset's flow folder (ROOT/flows or ROOT/3d/hmr/corr).",
)
