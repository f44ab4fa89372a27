"""Real people on video for tests and benchmarks: the BSD-3 demo videos shipped in two wheels.

``pose2sim==0.10.49`` ships ``Pose2Sim/Demo_SinglePerson/videos/cam01..04.mp4`` and
``Pose2Sim/Demo_MultiPerson/videos/cam01..04.mp4``; ``sports2d==0.8.34`` ships
``Sports2D/Demo/demo.mp4``. :func:`ensure_real_videos` fetches each wheel with
``pip download --no-deps`` (the packages are never installed) and extracts the videos and the
licence files with :mod:`zipfile` into a git-ignored cache folder (default ``.cache/real``).
Nothing is fetched when the files are already there.

:func:`extract_fixture_frames` writes the small JPEG frames committed under
``tests/fixtures/real/`` (:data:`FIXTURE_FRAMES`: video, frame index; 256 px high).

Usage: ``python benchmarks/real_videos.py [--cache-dir DIR] [--fixtures DIR]``
(``make real-videos``).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = ROOT / ".cache" / "real"

#: Wheel requirement -> (video key, member path inside the wheel) for each video it ships.
WHEELS: dict[str, list[tuple[str, str]]] = {
    "pose2sim==0.10.49": [
        *[
            (f"single_cam{i:02d}", f"Pose2Sim/Demo_SinglePerson/videos/cam{i:02d}.mp4")
            for i in (1, 2, 3, 4)
        ],
        *[
            (f"multi_cam{i:02d}", f"Pose2Sim/Demo_MultiPerson/videos/cam{i:02d}.mp4")
            for i in (1, 2, 3, 4)
        ],
    ],
    "sports2d==0.8.34": [("sports2d_demo", "Sports2D/Demo/demo.mp4")],
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

_LICENSE = re.compile(r"\.dist-info/(licenses/)?(LICEN[CS]E|COPYING|NOTICE)[^/]*$", re.IGNORECASE)


def _project(requirement: str) -> str:
    return requirement.split("==")[0]


def video_paths(cache_dir: Path = DEFAULT_CACHE) -> dict[str, Path]:
    """Where each video lives (or will live) in ``cache_dir``: ``{key: path}``."""
    return {
        key: cache_dir / _project(req) / member
        for req, videos in WHEELS.items()
        for key, member in videos
    }


def _download_wheel(requirement: str, dest: Path) -> Path:
    """``pip download --no-deps`` one wheel into ``dest`` and return its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["--dest", str(dest), "--quiet", requirement]
    subprocess.run(cmd, check=True)
    wheels = sorted(dest.glob(f"{_project(requirement).replace('-', '_')}-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"pip download {requirement} left no wheel in {dest}")
    return wheels[-1]


def _extract(wheel: Path, members: list[str], out: Path) -> None:
    """Extract ``members`` and the wheel's licence files under ``out`` (atomically per file)."""
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        missing = [m for m in members if m not in names]
        if missing:
            raise FileNotFoundError(f"{wheel.name} does not contain {missing}")
        licences = [n for n in names if _LICENSE.search(n)]
        for member in [*members, *licences]:
            target = out / member
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".part")
            tmp.write_bytes(zf.read(member))
            tmp.replace(target)


def ensure_real_videos(cache_dir: Path = DEFAULT_CACHE) -> dict[str, Path]:
    """Fetch the demo videos into ``cache_dir`` unless they are there already.

    Args:
        cache_dir: Folder for the extracted files (one sub-folder per wheel's project).

    Returns:
        ``{key: path}`` for every video: ``single_cam01..04``, ``multi_cam01..04`` and
        ``sports2d_demo``.

    Raises:
        subprocess.CalledProcessError: If ``pip download`` fails (no access to the package index).
        FileNotFoundError: If a wheel lacks an expected video.
    """
    cache_dir = Path(cache_dir)
    paths = video_paths(cache_dir)
    for requirement, videos in WHEELS.items():
        if all(paths[key].is_file() for key, _ in videos):
            continue
        with tempfile.TemporaryDirectory(prefix="wheel-") as tmp:
            wheel = _download_wheel(requirement, Path(tmp))
            _extract(wheel, [member for _, member in videos], cache_dir / _project(requirement))
    return paths


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
