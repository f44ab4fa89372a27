"""Footage inputs grouped by person: videos and photo folders as :class:`Source` sequences.

:func:`collect_sources` turns the command line's inputs into sources, each one sequence of
frames of one identity (``posetransfer make-dataset``):

- a video file is a source; its identity defaults to the file's stem (``walk.mp4`` -> ``walk``);
- a folder's photos (sorted by name) are one source and each video in it is another, all of the
  folder's identity, by default the folder's name;
- photo files given one by one are grouped by folder, as if the folder had been given with only
  those photos; their identity defaults to the folder's name.

Identities given explicitly (one for every input, or one per input) replace the defaults. An
identity holds letters, digits, ``.`` and ``-`` only: ``_`` separates it from the rest of an image
name, so ``posetransfer.data.splits.identity_of`` finds it again. Names derived from files have
other characters replaced by ``-``.

A source's :attr:`~Source.key` (its identity, then the file or folder stem when that differs) is
the prefix of its image names, ``<key>_f<frame:06d>.png`` for a video and ``<key>_<photo
stem>.png`` for a photo; two sources with the same key, or two photos of a folder with the same
stem, are refused before any work.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from posetransfer.infer.video import VIDEO_SUFFIXES

__all__ = ["IMAGE_SUFFIXES", "Source", "check_identity", "collect_sources"]

logger = logging.getLogger(__name__)

#: File suffixes treated as photos by the commands (lower case).
IMAGE_SUFFIXES: Final[tuple[str, ...]] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

_IDENTITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")
_NOT_NAME = re.compile(r"[^A-Za-z0-9.-]+")
_NOT_STEM = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Source:
    """One sequence of frames of one person.

    Attributes:
        key: Unique among the sources; the prefix of its image names.
        identity: Whose frames these are.
        kind: ``"video"`` or ``"photos"``.
        path: The video file, or the folder holding the photos.
        photos: The photo files in order (``kind == "photos"``), else empty.
    """

    key: str
    identity: str
    kind: Literal["video", "photos"]
    path: Path
    photos: tuple[Path, ...] = ()

    def frame_name(self, index: int) -> str:
        """The image name of frame ``index`` (a video frame, or the ``index``-th photo)."""
        if self.kind == "video":
            return f"{self.key}_f{index:06d}.png"
        return f"{self.key}_{_stem(self.photos[index].stem)}.png"

    def frame_label(self, index: int) -> str:
        """Where frame ``index`` comes from, for messages and the dataset's frame list."""
        if self.kind == "video":
            return str(self.path)
        return str(self.photos[index])


def check_identity(name: str) -> str:
    """``name`` if it is a valid identity (letters, digits, ``.``, ``-``; no ``_``).

    Raises:
        ValueError: Naming the identity and the rule.
    """
    if not isinstance(name, str) or _IDENTITY.fullmatch(name) is None:
        raise ValueError(
            f"identity {name!r} must start with a letter or digit and hold only letters, digits, "
            "'.' and '-' ('_' separates the identity from the rest of an image name)"
        )
    return name


def collect_sources(inputs: Sequence[str], identities: Sequence[str] = ()) -> list[Source]:
    """Group the inputs into sources (module docstring), in the order they are first named.

    Args:
        inputs: Video files, photo files and folders.
        identities: Empty (names from files and folders), one identity for every input, or one
            per input in order.

    Returns:
        The sources; at least one.

    Raises:
        FileNotFoundError: A missing input.
        ValueError: An input that is neither a photo, a video nor a folder; a wrong number of
            identities or an invalid one; two sources with the same key; two photos of one
            folder with the same stem; no photo or video at all.
    """
    if not inputs:
        raise ValueError("no input given (videos, photos or folders)")
    if len(identities) not in (0, 1, len(inputs)):
        raise ValueError(
            f"got {len(identities)} identities for {len(inputs)} inputs: give one for all "
            "inputs or one per input"
        )
    given = [check_identity(i) for i in identities]
    videos: list[tuple[str, Path]] = []
    photo_groups: dict[tuple[str, Path], tuple[Path, list[Path]]] = {}
    for k, item in enumerate(inputs):
        path = Path(item)
        identity = given[0] if len(given) == 1 else given[k] if given else None
        if path.is_dir():
            name = identity or _identity(path.resolve().name)
            found = sorted(path.iterdir())
            photos = [p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
            clips = [p for p in found if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()]
            if not photos and not clips:
                logger.warning("%s: no photo or video files, left out", path)
            if photos:
                photo_groups.setdefault((name, path.resolve()), (path, []))[1].extend(photos)
            videos += [(name, clip) for clip in clips]
        elif not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            folder = path.parent
            name = identity or _identity(folder.resolve().name)
            photo_groups.setdefault((name, folder.resolve()), (folder, []))[1].append(path)
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            videos.append((identity or _identity(path.stem), path))
        else:
            raise ValueError(
                f"{path}: not a photo ({', '.join(IMAGE_SUFFIXES)}), a video "
                f"({', '.join(VIDEO_SUFFIXES)}) or a folder"
            )
    sources = [_video_source(name, path) for name, path in videos]
    for (name, _), (folder, photos) in photo_groups.items():
        unique = sorted({p.resolve(): p for p in photos}.values(), key=lambda p: p.name)
        sources.append(_photo_source(name, folder, unique))
    if not sources:
        raise ValueError(f"no photo or video found in {', '.join(map(str, inputs))}")
    _check_unique_keys(sources)
    return sources


def _identity(text: str) -> str:
    """A valid identity made from a file or folder name."""
    return _NOT_NAME.sub("-", text).strip("-.") or "person"


def _stem(text: str) -> str:
    """A file stem made safe for the PATN files (no ``:``, ``,``, spaces)."""
    return _NOT_STEM.sub("-", text).strip("-") or "x"


def _key(identity: str, stem: str) -> str:
    stem = _stem(stem)
    return identity if stem == identity else f"{identity}_{stem}"


def _video_source(identity: str, path: Path) -> Source:
    return Source(_key(identity, path.stem), identity, "video", path)


def _photo_source(identity: str, folder: Path, photos: list[Path]) -> Source:
    name = folder.resolve().name
    source = Source(_key(identity, name), identity, "photos", folder, tuple(photos))
    seen: dict[str, Path] = {}
    for index, photo in enumerate(photos):
        frame = source.frame_name(index)
        if frame in seen:
            raise ValueError(
                f"{seen[frame]} and {photo} would both become {frame!r}; rename one of them"
            )
        seen[frame] = photo
    return source


def _check_unique_keys(sources: list[Source]) -> None:
    seen: dict[str, Source] = {}
    for source in sources:
        other = seen.get(source.key)
        if other is not None:
            same = other.path.resolve() == source.path.resolve() and other.kind == source.kind
            if same:
                raise ValueError(f"{source.path} is given twice")
            raise ValueError(
                f"{other.path} and {source.path} would both be named {source.key!r} (identity "
                f"{source.identity!r}); give identities with --identity or rename one of them"
            )
        seen[source.key] = source
