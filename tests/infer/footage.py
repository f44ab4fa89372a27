"""Short footage made from the committed real frames, for the ``make-dataset`` tests.

:func:`make_footage` writes, under a folder:

- ``walk.mp4``: 12 frames (144 x 256, 10 fps) cycling through the four single-person frames
  (two frames each, so tracking holds), a blank grey frame at index 3;
- ``alice/``: three photos, one with two people (``multi_cam04_f005.jpg``, the largest is used).

The cached demo videos (``make real-videos``) are found by :func:`cached_video`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from posetransfer.infer.images import load_image
from tests.infer.real_frames import FIXTURES

__all__ = ["BLANK", "PHOTOS", "REAL", "WALK", "cached_video", "make_footage"]

REAL = Path(__file__).resolve().parents[2] / ".cache" / "real"  # `make real-videos`

#: The frames of ``walk.mp4`` (None: a blank grey frame).
WALK: tuple[str | None, ...] = (
    "single_cam01_f050.jpg",
    "single_cam01_f050.jpg",
    "single_cam02_f030.jpg",
    None,
    "single_cam02_f030.jpg",
    "single_cam04_f070.jpg",
    "single_cam04_f070.jpg",
    "single_cam03_f060.jpg",
    "single_cam03_f060.jpg",
    "single_cam01_f050.jpg",
    "single_cam02_f030.jpg",
    "single_cam04_f070.jpg",
)
BLANK = WALK.index(None)
PHOTOS = ("multi_cam04_f005.jpg", "single_cam02_f030.jpg", "single_cam04_f070.jpg")


def make_footage(folder: Path) -> Path:
    """Write ``walk.mp4`` and ``alice/`` (module docstring) under ``folder``; returns it."""
    from posetransfer.infer.video import VideoWriter

    folder.mkdir(parents=True, exist_ok=True)
    with VideoWriter(folder / "walk.mp4", fps=10, crf=12) as writer:
        for name in WALK:
            if name is None:
                writer.write(np.full((256, 144, 3), 100, np.uint8))
            else:
                writer.write(np.ascontiguousarray(load_image(FIXTURES / name)[:, :144]))
    (folder / "alice").mkdir(exist_ok=True)
    for name in PHOTOS:
        shutil.copy(FIXTURES / name, folder / "alice" / name)
    return folder


def cached_video(relative: str) -> Path | None:
    """A demo video in ``.cache/real`` (``make real-videos``), or None when it is not there."""
    path = REAL / relative
    return path if path.is_file() else None
