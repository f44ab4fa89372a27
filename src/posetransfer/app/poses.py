"""Target poses in the web app: the built-in gallery, the editing canvas and the pose as text.

Every target pose the page handles lives in one *canvas*: a :data:`CANVAS` (256x176, H x W)
image in which the person is framed by the box of their keypoints with a 10% margin, the way
``RePoser.framed_pose`` frames a pose file. A pose from a second photo, from the gallery or from
editing all end up there, and rendering frames it again into the model's own size, so the
canvas size does not have to match the model's.

- :func:`load_library`: the built-in poses (``poses.json`` beside this module: keypoints of the
  real BSD-3 frames in ``tests/fixtures/real`` and of synthetic people from
  ``posetransfer make-synthetic``), each with a skeleton picture drawn when the app starts;
- :func:`pose_to_text` / :func:`pose_from_text`: the pose as JSON text, 18 ``[x, y]`` canvas
  pixels in the COCO-18 order with ``null`` for a missing point (what the page keeps and what
  API clients send);
- :func:`move_joint`, :func:`pose_to_rows` / :func:`pose_from_rows`: editing by clicking and by
  the keypoint table;
- :func:`draw_canvas`: the skeleton picture, with the selected joint ringed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

import numpy as np
from PIL import Image, ImageDraw

from posetransfer.app.config import AppInputError
from posetransfer.conventions import NUM_KEYPOINTS, Keypoint
from posetransfer.infer.framing import Frame, box_from_pose
from posetransfer.pose.draw import draw_pose
from posetransfer.pose.keypoints import Pose

__all__ = [
    "CANVAS",
    "JOINT_NAMES",
    "LibraryPose",
    "draw_canvas",
    "load_library",
    "move_joint",
    "pose_from_rows",
    "pose_from_text",
    "pose_to_rows",
    "pose_to_text",
    "to_canvas",
]

#: ``(H, W)`` of the canvas target poses are kept in.
CANVAS: Final[tuple[int, int]] = (256, 176)

#: Joint names in the COCO-18 order, as the page shows them (``r_shoulder`` ...).
JOINT_NAMES: Final[tuple[str, ...]] = tuple(Keypoint(k).name.lower() for k in range(18))

#: Fraction of the keypoint box added on every side when a pose is framed into the canvas.
MARGIN: Final[float] = 0.1

#: Fewest valid keypoints a target pose needs (the pipeline refuses fewer).
MIN_KEYPOINTS: Final[int] = 4

_LIBRARY_FILE: Final[str] = "poses.json"


@dataclass(frozen=True, eq=False)
class LibraryPose:
    """One built-in target pose.

    Attributes:
        name: Short caption (``"walking"``).
        origin: Where the keypoints come from.
        pose: The keypoints in the canvas.
    """

    name: str
    origin: str
    pose: Pose


def load_library() -> list[LibraryPose]:
    """The built-in poses of ``poses.json``, in the file's order.

    Raises:
        ValueError: The file is malformed (a packaging error, naming the pose).
    """
    text = resources.files("posetransfer.app").joinpath(_LIBRARY_FILE).read_text("utf-8")
    data = json.loads(text)
    if tuple(data["canvas"]) != CANVAS:
        raise ValueError(f"{_LIBRARY_FILE}: canvas {data['canvas']} is not {list(CANVAS)}")
    library = []
    for entry in data["poses"]:
        try:
            pose = _pose_from_points(entry["keypoints"])
        except AppInputError as exc:
            raise ValueError(f"{_LIBRARY_FILE}: pose {entry['name']!r}: {exc}") from None
        library.append(LibraryPose(entry["name"], entry["origin"], pose))
    return library


def to_canvas(pose: Pose) -> Pose:
    """``pose`` (in any image's pixels) framed into the canvas by its own keypoint box.

    Raises:
        AppInputError: Fewer than :data:`MIN_KEYPOINTS` valid keypoints.
    """
    _check_count(pose)
    box = box_from_pose(pose)
    size = (max(1, int(np.ceil(box[3]))), max(1, int(np.ceil(box[2]))))
    return Frame.from_box(box, size, CANVAS, margin=MARGIN).to_frame(pose)


def pose_to_text(pose: Pose) -> str:
    """JSON text of 18 ``[x, y]`` (one decimal) or ``null``, on one line."""
    points = [
        [round(float(x), 1), round(float(y), 1)] if valid else None
        for (x, y), valid in zip(pose.xy, pose.valid, strict=True)
    ]
    return json.dumps(points)


def pose_from_text(text: str) -> Pose:
    """Parse :func:`pose_to_text`'s format (also ``{"keypoints": [...]}``).

    Raises:
        AppInputError: Not JSON, not 18 points, a point that is not two finite numbers, or
            fewer than :data:`MIN_KEYPOINTS` valid points.
    """
    if not isinstance(text, str) or not text.strip():
        raise AppInputError("no target pose: upload a target photo, pick a pose or edit one")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AppInputError(f"the target pose is not valid JSON: {exc.msg}") from None
    if isinstance(data, dict):
        data = data.get("keypoints")
    return _pose_from_points(data)


def pose_to_rows(pose: Pose) -> list[list[str]]:
    """One ``[joint, x, y]`` row of text per keypoint (one decimal); a missing point has empty
    x and y (text, not numbers: a number column would show an empty cell as 0)."""
    return [
        [name, f"{x:.1f}", f"{y:.1f}"] if valid else [name, "", ""]
        for name, (x, y), valid in zip(JOINT_NAMES, pose.xy, pose.valid, strict=True)
    ]


def pose_from_rows(rows: Sequence[Sequence[Any]]) -> Pose:
    """The pose of an edited keypoint table (rows in the COCO-18 order; empty x or y = missing).

    Raises:
        AppInputError: Not 18 rows, or a value that is not a number inside the canvas.
    """
    if len(rows) != NUM_KEYPOINTS:
        raise AppInputError(f"the keypoint table needs {NUM_KEYPOINTS} rows, got {len(rows)}")
    points: list[list[float] | None] = []
    for name, row in zip(JOINT_NAMES, rows, strict=True):
        cells = [str(v).strip() if v is not None else "" for v in list(row)[1:3]]
        if len(cells) < 2 or "" in cells or "nan" in (c.lower() for c in cells):
            points.append(None)
            continue
        try:
            points.append([float(cells[0]), float(cells[1])])
        except ValueError:
            raise AppInputError(
                f"keypoint {name}: {cells[0]!r}, {cells[1]!r} are not numbers"
            ) from None
    return _pose_from_points(points)


def move_joint(pose: Pose, joint: int, xy: tuple[float, float] | None) -> Pose:
    """``pose`` with ``joint`` moved to ``xy`` (canvas pixels, clipped to it) or removed (None)."""
    if not 0 <= joint < NUM_KEYPOINTS:
        raise AppInputError(f"joint index {joint} is not in 0..{NUM_KEYPOINTS - 1}")
    points = pose.xy.copy()
    valid = pose.valid.copy()
    if xy is None:
        valid[joint] = False
    else:
        height, width = CANVAS
        points[joint] = (min(max(float(xy[0]), 0.0), width), min(max(float(xy[1]), 0.0), height))
        valid[joint] = True
    return Pose(points, valid)


def draw_canvas(
    pose: Pose | None, selected: int | None = None, size: tuple[int, int] = CANVAS
) -> np.ndarray:
    """The skeleton of ``pose`` on a white ``size`` picture; ``selected`` gets a black ring.

    ``size`` other than :data:`CANVAS` scales the drawing (thumbnails).
    """
    height, width = size
    image = np.full((height, width, 3), 255, np.uint8)
    if pose is None:
        return image
    scale = height / CANVAS[0]
    if scale != 1.0:
        pose = Pose(pose.xy * np.float32(scale), pose.valid)
    line = max(1, round(3 * scale))
    image = draw_pose(image, pose, radius=max(1, round(4 * scale)), thickness=line)
    if selected is not None and pose.valid[selected]:
        canvas = Image.fromarray(image)
        x, y = (int(v) for v in np.floor(pose.xy[selected]))
        ring = max(3, round(8 * scale))
        ImageDraw.Draw(canvas).ellipse(
            [x - ring, y - ring, x + ring, y + ring], outline=(0, 0, 0), width=2
        )
        image = np.asarray(canvas).copy()
    return image


def _pose_from_points(points: Any) -> Pose:
    if not isinstance(points, list) or len(points) != NUM_KEYPOINTS:
        raise AppInputError(
            f"a target pose is a list of {NUM_KEYPOINTS} [x, y] points (null for a missing one)"
        )
    xy = np.zeros((NUM_KEYPOINTS, 2), np.float32)
    valid = np.zeros(NUM_KEYPOINTS, bool)
    height, width = CANVAS
    for k, point in enumerate(points):
        if point is None:
            continue
        ok = isinstance(point, list | tuple) and len(point) == 2
        ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in point)
        if not ok or not all(np.isfinite(point)):
            raise AppInputError(f"keypoint {JOINT_NAMES[k]} is {point!r}, not [x, y] or null")
        x, y = float(point[0]), float(point[1])
        if not (0 <= x <= width and 0 <= y <= height):
            raise AppInputError(
                f"keypoint {JOINT_NAMES[k]} at ({x:g}, {y:g}) is outside the {width}x{height} "
                "canvas (x, y in pixels)"
            )
        xy[k], valid[k] = (x, y), True
    pose = Pose(xy, valid)
    _check_count(pose)
    return pose


def _check_count(pose: Pose) -> None:
    if pose.num_valid < MIN_KEYPOINTS:
        raise AppInputError(
            f"the target pose has {pose.num_valid} keypoints; at least {MIN_KEYPOINTS} are needed"
        )
